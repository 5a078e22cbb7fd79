"""launch/protocol_device.sh --dry-run on a simulated accelerator machine (TensorFlow, TFDS
and clu unimportable, tests/import_blocker): classifiers, both arms with per-arm STEPS under
TRAIN_TIMEOUT, evaluation under both priors, the table and curves; only small result files
come back to --out, never checkpoints.

Slow (3-4 minutes of CPU compilation): pytest -m slow tests/test_protocol_device.py
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_dry_run_trains_evaluates_and_returns_small_files(tmp_path):
  out_dir = tmp_path / 'out'
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      [os.path.join(ROOT, 'tests', 'import_blocker'), ROOT]
      + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
  env.update(DIFFMVAE_BLOCK_IMPORTS='tensorflow,tensorflow_datasets,clu',
             PYTHON=sys.executable, PROTOCOL_DEVICE_WORK=str(tmp_path / 'work'),
             STEPS='mopoe=3', TRAIN_TIMEOUT='1200')
  for name in ('OUT', 'DIFFMVAE_DATA_BACKEND', 'ARMS', 'SHALLOW'):
    env.pop(name, None)
  env['XLA_FLAGS'] = env.get('XLA_FLAGS', '') + ' --xla_backend_optimization_level=0'
  run = subprocess.run(['bash', os.path.join(ROOT, 'launch', 'protocol_device.sh'),
                        '--dry-run', f'--out={out_dir}'],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=2700)
  logs = (out_dir / 'protocol.log').read_text() if (out_dir / 'protocol.log').exists() else ''
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + logs[-3000:]
  # The guided arm's evaluation files name its guidance weight (sample.guidance = 2), and it
  # is also evaluated shallow (SHALLOW's default 0.08; MoPoE has no diffusion to start).
  for arm, steps, suffixes in (('mopoe', 3, ('',)), ('diffusion_residual_v_guided_c16', 2,
                                                     ('_guidance2', '_guidance2_tstart0.08'))):
    with open(out_dir / f'{arm}_s0' / 'metrics.jsonl') as f:
      assert json.loads(f.readlines()[-1])['step'] == steps, arm
    eval_dir = out_dir / f'{arm}_s0' / 'eval' / f'step_{steps}'
    assert len([p for p in os.listdir(eval_dir) if p.startswith('metrics_')]) == 2 * len(suffixes)
    for prior, suffix in ((p, s) for p in ('gaussian', 'sde') for s in suffixes):
      with open(eval_dir / f'metrics_{prior}{suffix}.json') as f:
        coherence = json.load(f)['results']['coherence']
      assert 0.0 <= coherence['conditional']['by_num_given']['1'] <= 1.0
  assert (out_dir / 'table.md').exists() and (out_dir / 'curves.png').exists()
  returned = [os.path.join(d, f) for d, _, files in os.walk(out_dir) for f in files]
  assert not [p for p in returned if 'checkpoints' in p], 'checkpoints must stay on the device'
  assert sum(os.path.getsize(p) for p in returned) < 5 * 2 ** 20
  # The TensorFlow-free writer and the numpy build were the ones used.
  assert (tmp_path / 'work' / 'data' / 'poly_mnist_numpy').exists()
