"""Multi-host rehearsal: 2 CPU processes (gloo on 127.0.0.1) train like 1 process.

Each process reads its half of every global batch; the global batch, and so the
losses, must equal a single-process run of the same config.
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
