"""Prints README's results table from the evaluation JSON files of launch/compare_polymnist.sh.

  python benchmarks/results_table.py --out=runs/compare

Reads <out>/<arm>_s<seed>/eval/step_<N>/metrics_<prior>[_guidance<w>][_tstart<s>].json (the
latest step of each workdir), groups them by (arm, prior, guidance w, sample.t_start s), and
prints one markdown row per group (a 'guidance' column only when some evaluation was guided,
a 't_start' column only when some was shallow): conditional
coherence by number of given modalities, unconditional coherence and its independence
baseline (coherence.unconditional_independence_baseline), unconditional FID per
image modality and the latent gap, as mean ± std over seeds (std omitted for one seed),
with N and the sampler. When the runs were scored by different coherence classifiers (e.g.
retrained on another machine, where the same recipe gave other weights), a note lists
each set's hashes and accuracies and the runs it scored. Also copies each JSON to
results/compare_polymnist/ when --copy_to is given, so the raw figures can live in the
repository.
"""

import collections
import glob
import json
import os
import re
import shutil

from absl import app
from absl import flags
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_string('out', 'runs/compare', 'Output folder of launch/compare_polymnist.sh.')
flags.DEFINE_string('copy_to', '', 'Copy the metric JSON files here (e.g. results/compare_polymnist).')


def latest_metrics(workdir: str) -> dict:
  """prior -> path of metrics_<prior>.json of the latest evaluated step of `workdir`."""
  steps = []
  for path in glob.glob(os.path.join(workdir, 'eval', 'step_*')):
    match = re.fullmatch(r'step_(\d+)', os.path.basename(path))
    if match:
      steps.append(int(match.group(1)))
  if not steps:
    return {}
  step_dir = os.path.join(workdir, 'eval', f'step_{max(steps)}')
  return {os.path.basename(p)[len('metrics_'):-len('.json')]: p
          for p in sorted(glob.glob(os.path.join(step_dir, 'metrics_*.json')))}


def fmt(values, scale: float = 1.0, digits: int = 1) -> str:
  values = [scale * v for v in values if v is not None]
  if not values:
    return '–'
  if len(values) == 1:
    return f'{values[0]:.{digits}f}'
  return f'{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}'


def main(argv):
  del argv
  groups = collections.defaultdict(list)
  for workdir in sorted(glob.glob(os.path.join(FLAGS.out, '*_s*'))):
    match = re.fullmatch(r'(.+)_s(\d+)', os.path.basename(workdir))
    if not match:
      continue
    for name, path in latest_metrics(workdir).items():
      with open(path) as f:
        record = json.load(f)
      prov = record['provenance']
      key = (match.group(1), prov.get('prior', name), float(prov.get('guidance', 0.0)),
             float(prov.get('t_start', 1.0)))
      groups[key].append((int(match.group(2)), record))
      if FLAGS.copy_to:
        os.makedirs(FLAGS.copy_to, exist_ok=True)
        shutil.copy(path, os.path.join(FLAGS.copy_to,
                                       f'{os.path.basename(workdir)}_{os.path.basename(path)}'))
  if not groups:
    raise SystemExit(f'No metrics_*.json under {FLAGS.out}/*_s*/eval/: run the evaluations first.')
  sizes = sorted({k for runs in groups.values() for _, r in runs
                  for k in r['results'].get('coherence', {}).get('conditional', {})
                  .get('by_num_given', {})}, key=int)
  images = sorted({m for runs in groups.values() for _, r in runs
                   for m in r['results'].get('fid', {}).get('unconditional', {})})
  guided = any(w for _, _, w, _ in groups)
  shallow = any(t < 1.0 for _, _, _, t in groups)
  header = (['model', 'z prior'] + (['guidance'] if guided else []) +
            (['t_start'] if shallow else []) + ['seeds', 'step'] +
            [f'coherence given {k} (%)' for k in sizes] +
            ['uncond. coherence (%)', 'its independence baseline (%)'] +
            [f'FID {m}' for m in images] +
            ['latent FD', 'latent MMD²'])
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  for (arm, prior, guidance, t_start), runs in sorted(groups.items(), key=lambda kv: (
      kv[0][:3], -kv[0][3])):
    results = [r['results'] for _, r in runs]
    coh = [r.get('coherence', {}) for r in results]
    steps = sorted({r['provenance']['checkpoint_step'] for _, r in runs})
    row = ([arm, prior] + ([f'{guidance:g}'] if guided else []) +
           ([f'{t_start:g}'] if shallow else []) + [','.join(str(s) for s, _ in runs), ','.join(str(s) for s in steps)])
    row += [fmt([c.get('conditional', {}).get('by_num_given', {}).get(k) for c in coh], 100)
            for k in sizes]
    row.append(fmt([c.get('unconditional') for c in coh], 100))
    row.append(fmt([c.get('unconditional_independence_baseline') for c in coh], 100))
    row += [fmt([r.get('fid', {}).get('unconditional', {}).get(m) for r in results])
            for m in images]
    row.append(fmt([r.get('latent_gap', {}).get('frechet') for r in results], digits=2))
    row.append(fmt([r.get('latent_gap', {}).get('mmd2') for r in results], digits=3))
    print('| ' + ' | '.join(row) + ' |')
  prov = next(iter(groups.values()))[0][1]['provenance']
  print(f"\nN = {prov['num_examples']} {prov['split']} examples per conditioning subset, "
        f"{prov['unconditional_num']} unconditional samples; sampler {prov['sampler']}"
        f"{'-' + str(prov['sampler_steps']) if prov.get('sampler_steps') else ''}, "
        f"EMA {prov['ema']}; step: the evaluated checkpoints.")
  classifier_sets = collections.defaultdict(set)
  for (arm, _, _, _), runs in groups.items():
    for seed, record in runs:
      found = record['provenance'].get('classifiers')
      if found:
        described = ', '.join(f"{m} {c['sha256'][:8]} ({100 * c['test_accuracy']:.2f} %)"
                              for m, c in sorted(found.items()))
        classifier_sets[described].add(f'{arm}_s{seed}')
  if len(classifier_sets) > 1:
    print('\nCoherence was scored by different classifier sets (name, sha256 prefix, test '
          'accuracy):')
    for described, names in sorted(classifier_sets.items()):
      print(f"- {described}: {', '.join(sorted(names))}")


if __name__ == '__main__':
  app.run(main)
