"""Multi-host rehearsal: 2 CPU processes (gloo on 127.0.0.1) train like 1 process.

Each process reads its half of every global batch; the global batch, and so the
losses, must equal a single-process run of the same config.

Marked slow (`pytest -m slow`): two processes compiling the model on a 2-core machine take
~2-3 minutes per test, a quarter of the default suite's budget.
"""

import json
import os
import subprocess
import sys

import pytest

from diffmvae_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return {r['step']: r for r in map(json.loads, f)}


@pytest.mark.slow
def test_two_processes_match_one(tiny_config, tiny_data_dir, tmp_path):
  reference = str(tmp_path / 'single')
  train.train_and_evaluate(tiny_config, reference)

  workdir = str(tmp_path / 'multi')
  env = dict(os.environ, PYTHON=sys.executable)
  result = subprocess.run(
      ['bash', 'launch/local_multiprocess.sh', '2', 'configs/test_tiny.py', workdir,
       f'--config.data.data_dir={tiny_data_dir}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  logs = ''.join(open(os.path.join(workdir, f'process_{i}.log')).read()[-3000:]
                 for i in range(2) if os.path.exists(os.path.join(workdir, f'process_{i}.log')))
  assert result.returncode == 0, result.stdout + logs
  assert '2 processes' in open(os.path.join(workdir, 'process_0.log')).read()
  single, multi = _losses(reference), _losses(workdir)
  assert sorted(multi) == sorted(single)
  for step in single:
    assert multi[step]['loss'] == pytest.approx(single[step]['loss'], rel=1e-5), step


@pytest.mark.slow
def test_two_process_evaluation_matches_one(tiny_config, tiny_data_dir, tmp_path):
  """--mode=eval on 2 processes (gathered batches, lead-only files) = 1 process."""
  from diffmvae_jax import evaluate  # pylint: disable=g-import-not-at-top
  config = tiny_config
  config.data.modalities = 'm0,mask,attributes'
  config.train.num_steps = 2
  config.eval.metrics = 'f1'
  config.eval.num_examples = 10     # Padded to 3 global batches of 4, 2 rows per process.
  config.eval.batch_size = 4
  config.eval.unconditional_num = 4
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config, workdir)
  single = evaluate.evaluate(config, workdir)
  os.rename(os.path.join(workdir, 'eval'), os.path.join(workdir, 'eval_single'))

  overrides = [f'--config.data.data_dir={tiny_data_dir}', '--config.data.modalities=m0,mask,attributes',
               '--config.train.num_steps=2', '--config.eval.metrics=f1',
               '--config.eval.num_examples=10', '--config.eval.batch_size=4',
               '--config.eval.unconditional_num=4', '--mode=eval']
  env = dict(os.environ, PYTHON=sys.executable)
  result = subprocess.run(
      ['bash', 'launch/local_multiprocess.sh', '2', 'configs/test_tiny.py', workdir, *overrides],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  logs = ''.join(open(os.path.join(workdir, f'process_{i}.log')).read()[-3000:]
                 for i in range(2) if os.path.exists(os.path.join(workdir, f'process_{i}.log')))
  assert result.returncode == 0, result.stdout + logs
  with open(os.path.join(workdir, 'eval', 'step_2', 'metrics_gaussian.json')) as f:
    multi = json.load(f)
  assert multi['provenance']['num_examples'] == 10
  f1_single, f1_multi = single['results']['f1'], multi['results']['f1']
  assert f1_multi['per_subset'].keys() == f1_single['per_subset'].keys()
  for subset, row in f1_single['per_subset'].items():
    for name, value in row.items():
      assert f1_multi['per_subset'][subset][name] == pytest.approx(value, abs=1e-6), (subset, name)
  gap_single, gap_multi = single['results']['latent_gap'], multi['results']['latent_gap']
  assert gap_multi['num_posterior'] == gap_single['num_posterior'] == 10
  assert gap_multi['frechet'] == pytest.approx(gap_single['frechet'], rel=1e-4)
