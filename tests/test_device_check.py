"""benchmarks/device_check.sh --dry-run on a simulated accelerator machine: TensorFlow, TFDS
and clu made unimportable (tests/import_blocker), so the numpy PolyMNIST build, the
TensorFlow-free writer and progress reporter, throughput, FID features and both
compare_polymnist arms all run, and every figure of summary.json is finite.

Slow (a few minutes of CPU compilation): pytest -m slow tests/test_device_check.py
"""
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKED = 'tensorflow,tensorflow_datasets,clu'


def _no_tf_env(**extra):
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      [os.path.join(ROOT, 'tests', 'import_blocker'), ROOT]
      + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
  env['DIFFMVAE_BLOCK_IMPORTS'] = BLOCKED
  env.pop('DIFFMVAE_DATA_BACKEND', None)
  env.update(extra)
  return env


def test_blocked_imports_select_the_tensorflow_free_paths():
  code = ('import importlib.util, sys\n'
          'assert importlib.util.find_spec("tensorflow") is None\n'
          'from diffmvae_jax import metric_writer, progress, loop, train, evaluate\n'
          'from diffmvae_jax.data import pipeline, storage_backend\n'
          'assert not metric_writer.clu_available() and progress.periodic_actions is None\n'
          'assert storage_backend.backend() == "numpy"\n'
          'bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "clu", '
          '"tensorflow_datasets")]\n'
          'assert not bad, bad\n'
          'print("ok")\n')
  out = subprocess.run([sys.executable, '-c', code], env=_no_tf_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and 'ok' in out.stdout, out.stderr[-3000:]


@pytest.mark.slow
def test_dry_run_writes_finite_figures(tmp_path):
  out_dir = tmp_path / 'out'
  env = _no_tf_env(PYTHON=sys.executable, DEVICE_CHECK_WORK=str(tmp_path / 'work'),
                   )
  env.pop('OUT', None)
  run = subprocess.run(['bash', os.path.join(ROOT, 'benchmarks', 'device_check.sh'),
                        '--dry-run', f'--out={out_dir}'],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=2700)
  assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
  summary = json.loads((out_dir / 'summary.json').read_text())
  assert summary['data_storage_backend'] == 'numpy'
  assert summary['metric_writer'].startswith('EventWriter')
  for name, value in summary['figures'].items():
    assert isinstance(value, (int, float)) and math.isfinite(value), (name, value)
  for name in ('env', 'build_data', 'throughput_polymnist_mopoe', 'throughput_polymnist',
               'throughput_polymnist_bf16', 'fid_features', 'train_diffusion', 'train_mopoe'):
    assert (out_dir / f'{name}.json').exists(), name
  assert all(s['rc'] == 0 for s in summary['steps']), summary['steps']
  for arm in ('diffusion', 'mopoe'):
    assert (out_dir / f'train_{arm}.png').exists()
    events = [f for f in os.listdir(tmp_path / 'work' / f'compare_{arm}')
              if f.startswith('events.out.tfevents')]
    assert events, f'no TensorBoard event file from the {arm} run'
