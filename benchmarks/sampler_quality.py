"""Few-step sampling on a trained Diff-MVAE: FID, coherence and images/s per sampler setting.

Each setting (sampler:network calls) generates, from one checkpoint, N unconditional samples
(FID per image modality against N test images, and unconditional coherence) and the missing
modalities of N test examples given --given (conditional coherence), through the same
Evaluator as --mode=eval; images/s is timed separately on one jitted conditional batch
(median of 3 after compilation; ddpm: --ddpm_timing_runs). One JSON per setting plus
summary.json under --out.

  .venv/bin/python benchmarks/sampler_quality.py \
      --config=configs/compare_polymnist.py:diffusion --workdir=runs/compare/diffusion_s0 \
      --classifier_dir=runs/compare/classifiers --fid_cache_dir=runs/compare/fid_stats \
      --settings=dpmpp_2m:10,dpmpp_2m:20,ddim:10,ddim:20,ddim:50 --num=250 \
      --out=runs/sampler_quality

Cost on a 2-core CPU (N = 250, 3 modalities, the comparison's small U-Net): roughly
N * 5 images * calls / 200 seconds per setting for sampling plus ~4 minutes of Inception
features; DDPM (1000 calls) is 20x DDIM-50, so give it a smaller --ddpm_num (its own N: its
FID is then only comparable with rows of the same N, which the table says), or
--ddpm_timing_runs=1 (one timed call after an ahead-of-time compile, instead of four calls).
Resumable: a finished setting is read back from its JSON, a stopped one from its task files.
"""

import dataclasses
import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from diffmvae_jax import evaluate  # pylint: disable=g-import-not-at-top
from diffmvae_jax import eval_tasks
from diffmvae_jax import generate as generate_lib

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', None, 'The run\'s config.', lock_config=False)
  flags.DEFINE_string('workdir', None, 'Training workdir holding the checkpoint.')
  flags.DEFINE_string('classifier_dir', '', 'From --mode=train_classifiers.')
  flags.DEFINE_string('fid_cache_dir', '', "Reference statistics cache ('' = <out>/fid_stats).")
  flags.DEFINE_string('settings', 'dpmpp_2m:10,dpmpp_2m:20,ddim:10,ddim:20,ddim:50',
                      'Comma-separated sampler:calls (ddpm:<T> for ancestral DDPM).')
  flags.DEFINE_integer('num', 250, 'N: test examples given --given, unconditional samples, '
                       'and FID reference images.')
  flags.DEFINE_integer('ddpm_num', 0, 'N for ddpm settings (0 = --num).')
  flags.DEFINE_integer('ddpm_timing_runs', 3, 'Timed calls behind images/s of ddpm settings '
                       '(1: compiled ahead of time, one timed call; its batch takes minutes).')
  flags.DEFINE_string('given', 'm0', 'Given modalities of the conditional coherence.')
  flags.DEFINE_string('out', 'runs/sampler_quality', 'Output folder (JSON per setting).')
  flags.mark_flags_as_required(['config', 'workdir'])


def parse_settings(text: str) -> list:
  """'ddim:50,ddpm:1000' -> [('ddim', 50), ('ddpm', 1000)]."""
  out = []
  for item in filter(None, (s.strip() for s in text.split(','))):
    name, _, calls = item.partition(':')
    if not calls.isdigit() or int(calls) < 1:
      raise app.UsageError(f'--settings item {item!r}: expected sampler:calls, e.g. ddim:50.')
    out.append((name, int(calls)))
  return out


def setting_config(config, sampler: str, calls: int, num: int, classifier_dir: str,
                   fid_cache_dir: str):
  """The run's config with one sampler setting and the benchmark's evaluation sizes."""
  c = config.copy_and_resolve_references()
  c.sample.sampler, c.sample.steps = sampler, calls
  if sampler == 'ddpm':
    c.sample.steps = 50          # Unused by DDPM (it runs all T steps); any valid value.
  c.eval.metrics = 'coherence,fid'
  c.eval.fid_conditional = False
  c.eval.latent_gap = False
  c.eval.num_examples = c.eval.unconditional_num = num
  c.eval.classifier_dir = classifier_dir
  c.eval.fid_cache_dir = fid_cache_dir
  return c


def images_per_second(ev: evaluate.Evaluator, given: tuple, runs: int = 3) -> float:
  """Generated images/s of one jitted conditional batch: the median of `runs` timed calls.

  With runs > 1 an untimed call compiles and warms up first; with runs = 1 (ancestral
  DDPM, whose batch takes minutes on a CPU) the function is compiled ahead of time and the
  one timed call is the first.
  """
  missing = tuple(n for n in ev.model.names if n not in given)
  fn = jax.jit(generate_lib.make_conditional_generate_fn(ev.model, ev.config.sample, given,
                                                         names=missing))
  batch = next(iter(ev.test_batches()))
  inputs = {k: batch[k] for k in given}
  if runs > 1:
    jax.block_until_ready(fn(ev.params, inputs, jax.random.PRNGKey(0)))
  else:
    fn = fn.lower(ev.params, inputs, jax.random.PRNGKey(0)).compile()
  times = []
  for i in range(runs):
    start = time.perf_counter()
    jax.block_until_ready(fn(ev.params, inputs, jax.random.PRNGKey(i + 1)))
    times.append(time.perf_counter() - start)
  return len(missing) * len(batch[given[0]]) / float(np.median(times))


def run_setting(config, workdir: str, out_dir: str, given: tuple, timing_runs: int = 3
                ) -> dict:
  """Evaluates one setting into out_dir (resumable task files); returns the eval record."""
  config.eval.classifier_dir = config.eval.classifier_dir or os.path.join(workdir, 'classifiers')
  ev = evaluate.Evaluator(config, workdir)
  ev.plan = dataclasses.replace(
      ev.plan, conditional={g: p for g, p in ev.plan.conditional.items() if g == given})
  if not ev.plan.conditional:
    raise app.UsageError(f'--given={",".join(given)} is not a conditioning subset of '
                         f'{ev.model.names}.')
  os.makedirs(out_dir, exist_ok=True)
  ev.workdir, ev.out_dir = out_dir, out_dir         # Scalars and task files stay in out_dir.
  ev.store = eval_tasks.TaskStore(out_dir)
  record = ev.run()
  record['images_per_second'] = images_per_second(ev, given, timing_runs)
  record['images_per_second_runs'] = timing_runs
  return record


def summary_row(sampler: str, calls: int, num: int, record: dict) -> dict:
  """The figures of one setting for the table."""
  coherence = record['results']['coherence']
  return {
      'sampler': sampler, 'network_calls': calls if sampler != 'ddpm' else None, 'num': num,
      'fid': record['results']['fid']['unconditional'],
      'coherence_given': coherence['conditional']['by_num_given'],
      'coherence_unconditional': coherence.get('unconditional'),
      'images_per_second': record['images_per_second'],
  }


def markdown(rows: list) -> str:
  names = sorted(rows[0]['fid'])
  lines = ['| sampler | calls | N | ' + ' | '.join(f'FID {n}' for n in names)
           + ' | coherence given 1 | unconditional coherence | images/s |',
           '|---' * (len(names) + 6) + '|']
  for r in rows:
    given = r['coherence_given'].get('1', next(iter(r['coherence_given'].values()), None))
    lines.append(
        f"| {r['sampler']} | {r['network_calls'] or 'all T'} | {r['num']} | "
        + ' | '.join(f"{r['fid'][n]:.1f}" for n in names)
        + f" | {100 * given:.1f} % | {100 * (r['coherence_unconditional'] or 0):.1f} % | "
        f"{r['images_per_second']:.1f} |")
  return '\n'.join(lines)


def main(argv):
  del argv
  given = tuple(s for s in FLAGS.given.split(',') if s)
  fid_cache = FLAGS.fid_cache_dir or os.path.join(FLAGS.out, 'fid_stats')
  rows = []
  for sampler, calls in parse_settings(FLAGS.settings):
    num = FLAGS.ddpm_num if sampler == 'ddpm' and FLAGS.ddpm_num > 0 else FLAGS.num
    tag = f'{sampler}_{calls}_n{num}'
    path = os.path.join(FLAGS.out, f'{tag}.json')
    if os.path.exists(path):
      with open(path) as f:
        record = json.load(f)
    else:
      start = time.perf_counter()
      config = setting_config(FLAGS.config, sampler, calls, num, FLAGS.classifier_dir,
                              fid_cache)
      runs = FLAGS.ddpm_timing_runs if sampler == 'ddpm' else 3
      record = run_setting(config, FLAGS.workdir, os.path.join(FLAGS.out, tag), given, runs)
      record['wall_seconds'] = time.perf_counter() - start
      with open(path, 'w') as f:
        json.dump(record, f, indent=2, sort_keys=True)
    rows.append(summary_row(sampler, calls, num, record))
    print(markdown(rows[-1:]).splitlines()[-1], flush=True)
  with open(os.path.join(FLAGS.out, 'summary.json'), 'w') as f:
    json.dump({'given': list(given), 'rows': rows}, f, indent=2, sort_keys=True)
  print(markdown(rows))


if __name__ == '__main__':
  define_flags()
  app.run(main)
