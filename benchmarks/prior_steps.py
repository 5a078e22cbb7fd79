"""The latent SDE prior's samplers against their step counts: latent gap and samples/s.

For each setting (prior.sampler:steps) draws N latents from the trained prior of a workdir
and measures the latent gap (Fréchet distance and MMD² to posterior samples of N test
examples, `Evaluator.latent_gap`, the figure --mode=eval reports), next to N(0, I) as the
baseline; samples/s is timed on one jitted call after compilation (median of 3).

  .venv/bin/python benchmarks/prior_steps.py --config=configs/compare_polymnist.py:diffusion \
      --workdir=runs/compare/diffusion_s0 --num=1000 \
      --settings=pc:500,pc:100,ode_heun:10,ode_heun:20,ode_heun:50,euler_maruyama:100 \
      --out=runs/prior_steps

Needs `--mode=train_prior` on the workdir first. A few minutes on a 2-core CPU.
"""

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
from diffmvae_jax.tasks import score_prior

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', None, "The run's config.", lock_config=False)
  flags.DEFINE_string('workdir', None, 'Workdir with the VAE and its latent prior.')
  flags.DEFINE_string('settings', 'pc:500,pc:100,ode_heun:10,ode_heun:20,ode_heun:50,'
                      'euler_maruyama:100', 'Comma-separated prior.sampler:steps.')
  flags.DEFINE_integer('num', 1000, 'Test examples (posterior) and prior samples.')
  flags.DEFINE_string('out', 'runs/prior_steps', 'Output folder (summary.json).')
  flags.mark_flags_as_required(['config', 'workdir'])


def parse_settings(text: str) -> list:
  """'pc:500,ode_heun:20' -> [('pc', 500), ('ode_heun', 20)]."""
  out = []
  for item in filter(None, (s.strip() for s in text.split(','))):
    name, _, steps = item.partition(':')
    if not steps.isdigit() or int(steps) < 1:
      raise app.UsageError(f'--settings item {item!r}: expected sampler:steps, e.g. pc:500.')
    out.append((name, int(steps)))
  return out


def setting_config(config, prior: str, sampler: str = 'pc', steps: int = 500, num: int = 1000):
  """The run's config drawing z from `prior` ('gaussian' or 'sde' with sampler:steps)."""
  c = config.copy_and_resolve_references()
  c.sample.prior = prior
  c.prior.sampler, c.prior.sampler_steps = sampler, steps
  c.eval.num_examples = c.eval.unconditional_num = num
  return c


def samples_per_second(config, workdir: str, num: int) -> float | None:
  """Latents/s of the prior's sampler (one call of `num`, median of 3 after compiling);
  None for N(0, I), which has no sampler to time (JSON null, not NaN)."""
  sampler = score_prior.latent_sampler_for(config, workdir)
  if sampler is None:
    return None
  jax.block_until_ready(sampler(jax.random.PRNGKey(0), num))
  times = []
  for i in range(3):
    start = time.perf_counter()
    jax.block_until_ready(sampler(jax.random.PRNGKey(i + 1), num))
    times.append(time.perf_counter() - start)
  return num / float(np.median(times))


def main(argv):
  del argv
  os.makedirs(FLAGS.out, exist_ok=True)
  rows = []
  settings = [('gaussian', None, None)] + [('sde', s, k) for s, k in
                                          parse_settings(FLAGS.settings)]
  for prior, sampler, steps in settings:
    config = (setting_config(FLAGS.config, prior, num=FLAGS.num) if prior == 'gaussian' else
              setting_config(FLAGS.config, prior, sampler, steps, FLAGS.num))
    gap = evaluate.Evaluator(config, FLAGS.workdir).latent_gap()
    row = {'prior': prior, 'sampler': sampler, 'steps': steps, 'num': FLAGS.num,
           'frechet': gap['frechet'], 'mmd2': gap['mmd2'],
           'samples_per_second': samples_per_second(config, FLAGS.workdir, FLAGS.num)}
    rows.append(row)
    rate = row['samples_per_second']
    print(f"{prior:8s} {sampler or '-':15s} {steps or '-':>5} FD {row['frechet']:8.3f} "
          f"MMD2 {row['mmd2']:.4f} " + (f'{rate:10.1f} latents/s' if rate else '         -'),
          flush=True)
  with open(os.path.join(FLAGS.out, 'summary.json'), 'w') as f:
    json.dump({'rows': rows}, f, indent=2, sort_keys=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
