"""benchmarks/results_table.py: README's table from evaluation JSON files.

  python -m pytest -q tests/test_results_table.py
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'benchmarks', 'results_table.py')


def _write_metrics(out, arm, seed, step, prior, given1, uncond, fid_m0, frechet):
  record = {
      'results': {
          'coherence': {'conditional': {'by_num_given': {'1': given1, '2': given1 + 0.1}},
                        'unconditional': uncond,
                        'unconditional_independence_baseline': uncond / 2},
          'fid': {'unconditional': {'m0': fid_m0}},
          'latent_gap': {'frechet': frechet, 'mmd2': 0.5},
      },
      'provenance': {'split': 'test', 'num_examples': 250, 'unconditional_num': 250,
                     'sampler': 'ddim', 'sampler_steps': 50, 'ema': True,
                     'checkpoint_step': step},
  }
  step_dir = os.path.join(out, f'{arm}_s{seed}', 'eval', f'step_{step}')
  os.makedirs(step_dir, exist_ok=True)
  with open(os.path.join(step_dir, f'metrics_{prior}.json'), 'w') as f:
    json.dump(record, f)


def _run(*args):
  return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                        cwd=ROOT, timeout=120)


def test_table_averages_seeds_uses_latest_step_and_copies(tmp_path):
  out = str(tmp_path / 'compare')
  # An older step of seed 0 must be ignored in favour of the latest.
  _write_metrics(out, 'diffusion', 0, 100, 'gaussian', 0.0, 0.0, 999.0, 9.0)
  _write_metrics(out, 'diffusion', 0, 200, 'gaussian', 0.5, 0.2, 100.0, 2.0)
  _write_metrics(out, 'diffusion', 1, 200, 'gaussian', 0.7, 0.4, 120.0, 4.0)
  _write_metrics(out, 'diffusion', 0, 200, 'sde', 0.5, 0.6, 80.0, 1.0)
  copy_to = str(tmp_path / 'results')
  result = _run(f'--out={out}', f'--copy_to={copy_to}')
  assert result.returncode == 0, result.stderr
  rows = {tuple(cell.strip() for cell in line.strip('|').split('|')[:2]): line
          for line in result.stdout.splitlines() if line.startswith('| diffusion')}
  gaussian = [c.strip() for c in rows[('diffusion', 'gaussian')].strip('|').split('|')]
  # seeds, step, given 1 (%), given 2 (%), unconditional (%), its baseline (%), FID m0,
  # latent FD, latent MMD².
  assert gaussian[2:] == ['0,1', '200', '60.0 ± 14.1', '70.0 ± 14.1', '30.0 ± 14.1', '15.0 ± 7.1',
                          '110.0 ± 14.1', '3.00 ± 1.41', '0.500 ± 0.000']
  sde = [c.strip() for c in rows[('diffusion', 'sde')].strip('|').split('|')]
  assert sde[2:] == ['0', '200', '50.0', '60.0', '60.0', '30.0', '80.0', '1.00', '0.500']
  assert 'N = 250 test examples' in result.stdout
  assert sorted(os.listdir(copy_to)) == ['diffusion_s0_metrics_gaussian.json',
                                         'diffusion_s0_metrics_sde.json',
                                         'diffusion_s1_metrics_gaussian.json']


def test_no_metrics_is_a_clear_error(tmp_path):
  result = _run(f'--out={tmp_path}')
  assert result.returncode != 0
  assert 'run the evaluations first' in result.stderr


def test_guided_rows_and_differing_classifiers(tmp_path):
  """Guided evaluations (metrics_<prior>_guidance<w>.json) get their own rows under a
  'guidance' column, grouped by the provenance's prior and w; runs scored by different
  classifier sets are listed in a note."""
  out = str(tmp_path / 'compare')
  for seed, sha in ((0, 'a' * 64), (1, 'b' * 64)):
    for name, guidance in (('gaussian', 0.0), ('gaussian_guidance2', 2.0)):
      _write_metrics(out, 'guided', seed, 300, name, 0.3 + 0.1 * guidance, 0.1, 50.0, 1.0)
      path = os.path.join(out, f'guided_s{seed}', 'eval', 'step_300', f'metrics_{name}.json')
      with open(path) as f:
        record = json.load(f)
      record['provenance'].update(prior='gaussian', guidance=guidance, classifiers={
          'm0': {'sha256': sha, 'test_accuracy': 0.965 + 0.001 * seed}})
      with open(path, 'w') as f:
        json.dump(record, f)
  result = _run(f'--out={out}')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert [c.strip() for c in lines[0].strip('|').split('|')][:5] == [
      'model', 'z prior', 'guidance', 'seeds', 'step']
  rows = [[c.strip() for c in line.strip('|').split('|')] for line in lines
          if line.startswith('| guided')]
  assert [r[:6] for r in rows] == [['guided', 'gaussian', '0', '0,1', '300', '30.0 ± 0.0'],
                                   ['guided', 'gaussian', '2', '0,1', '300', '50.0 ± 0.0']]
  assert 'different classifier sets' in result.stdout
  assert '- m0 aaaaaaaa (96.50 %): guided_s0' in result.stdout
  assert '- m0 bbbbbbbb (96.60 %): guided_s1' in result.stdout


def test_shallow_rows(tmp_path):
  """Shallow evaluations (metrics_<prior>_tstart<s>.json) get their own rows under a
  't_start' column, the full sampler (1) first."""
  out = str(tmp_path / 'compare')
  for seed in (0, 1):
    for name, t_start in (('gaussian', None), ('gaussian_tstart0.15', 0.15)):
      _write_metrics(out, 'coarse', seed, 300, name, 0.6 if t_start else 0.4, 0.1, 50.0, 1.0)
      path = os.path.join(out, f'coarse_s{seed}', 'eval', 'step_300', f'metrics_{name}.json')
      with open(path) as f:
        record = json.load(f)
      record['provenance'].update(prior='gaussian')
      if t_start is not None:
        record['provenance']['t_start'] = t_start
      with open(path, 'w') as f:
        json.dump(record, f)
  result = _run(f'--out={out}')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert [c.strip() for c in lines[0].strip('|').split('|')][:5] == [
      'model', 'z prior', 't_start', 'seeds', 'step']
  rows = [[c.strip() for c in line.strip('|').split('|')] for line in lines
          if line.startswith('| coarse')]
  assert [r[:6] for r in rows] == [['coarse', 'gaussian', '1', '0,1', '300', '40.0 ± 0.0'],
                                   ['coarse', 'gaussian', '0.15', '0,1', '300', '60.0 ± 0.0']]
