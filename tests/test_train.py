"""Training end to end: one step, resume after kill, preemption, errors, sharding."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import parallel
from diffmvae_jax import sample
from diffmvae_jax import train
from diffmvae_jax.tasks import vae
from diffmvae_jax.errors import CheckpointError, ConfigError, NonFiniteLossError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _losses(workdir):
  """step -> metrics of the last record of each step in metrics.jsonl."""
  out = {}
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    for line in f:
      record = json.loads(line)
      out[record['step']] = record
  return out


def _cli(workdir, data_dir, *overrides):
  return [sys.executable, '-m', 'diffmvae_jax.main', '--config=configs/test_tiny.py',
          f'--workdir={workdir}', f'--config.data.data_dir={data_dir}', *overrides]


def test_train_writes_checkpoints_logs_and_grid(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  tiny_config.data.modalities = 'm0,m1,caption,label'
  tiny_config.model.decoder_overrides = 'm1=laplace'
  metrics = train.train_and_evaluate(tiny_config, workdir)
  assert np.isfinite(metrics['loss'])
  for key in ('nll/m0', 'nll/m1', 'nll/caption', 'nll/label', 'kl', 'grad_norm', 'learning_rate'):
    assert key in metrics
  assert sorted(_losses(workdir)) == [1, 2, 3, 4]
  assert checkpoint_lib.Checkpointer(workdir).all_steps() == [2, 4]
  samples = os.listdir(os.path.join(workdir, 'samples'))
  assert 'step_0000004_given-m0.png' in samples and 'step_0000004_given-m0.txt' in samples
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  # Rerunning a finished run restores and does nothing more.
  again = train.train_and_evaluate(tiny_config, workdir)
  assert again == {}
  assert sorted(_losses(workdir)) == [1, 2, 3, 4]
  # --mode=sample restores the latest checkpoint and writes both grids.
  tiny_config.sample.given = 'm0,caption'
  paths = sample.sample_from_checkpoint(tiny_config, workdir)
  assert os.path.basename(paths['conditional']) == 'step_0000004_given-m0-caption.png'
  assert os.path.exists(paths['unconditional'])


def test_resume_after_kill_matches_uninterrupted(tiny_config, tmp_path, tiny_data_dir):
  """A run SIGKILLed mid-training and restarted logs the same losses, step for step."""
  steps = 40
  overrides = [f'--config.train.num_steps={steps}', '--config.train.checkpoint_every=10']
  reference = str(tmp_path / 'reference')
  tiny_config.train.num_steps = steps
  tiny_config.train.checkpoint_every = 10
  train.train_and_evaluate(tiny_config, reference)

  killed = str(tmp_path / 'killed')
  proc = subprocess.Popen(_cli(killed, tiny_data_dir, *overrides), cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  first_checkpoint = os.path.join(killed, 'checkpoints', '10')
  deadline = time.time() + 300
  while not os.path.exists(first_checkpoint) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert os.path.exists(first_checkpoint)
  assert max(_losses(killed)) < steps, 'the run finished before it was killed'

  train.train_and_evaluate(tiny_config, killed)
  ref, resumed = _losses(reference), _losses(killed)
  assert sorted(resumed) == list(range(1, steps + 1))
  for step in range(1, steps + 1):
    for key in ('loss', 'kl', 'nll/m0', 'grad_norm'):
      assert resumed[step][key] == ref[step][key], (step, key)


def test_sigterm_saves_and_stops(tiny_data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  proc = subprocess.Popen(_cli(workdir, tiny_data_dir, '--config.train.num_steps=100000',
                               '--config.train.checkpoint_every=100000'),
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  metrics = os.path.join(workdir, 'metrics.jsonl')
  deadline = time.time() + 300
  while not os.path.exists(metrics) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  steps = checkpoint_lib.Checkpointer(workdir).all_steps()
  assert len(steps) == 1 and steps[0] == max(_losses(workdir))


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  tiny_config.train.num_steps = 2
  train.train_and_evaluate(tiny_config, workdir)
  tiny_config.train.num_steps = 6
  # A weight that overflows float32 (1e300 -> inf) makes the loss inf from step 3; loss
  # weights are outside the model config, so the run stays resumable. (A NaN beta is now
  # refused up front by config_checks.)
  tiny_config.loss.weights.image = 1e300
  with pytest.raises(NonFiniteLossError, match=r"step 3 in \[.*'loss'.*\].*step 2\) is kept"):
    train.train_and_evaluate(tiny_config, workdir)
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  assert checkpointer.all_steps() == [2]
  tiny_config.loss.weights.image = 1.0
  assert train.train_and_evaluate(tiny_config, workdir)['loss'] > 0   # Resumes from step 2.


def test_incompatible_checkpoint_is_refused(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  tiny_config.train.num_steps = 2
  train.train_and_evaluate(tiny_config, workdir)
  tiny_config.model.latent_dim = 16
  tiny_config.train.num_steps = 4
  with pytest.raises(CheckpointError, match=r'model.latent_dim: 8 -> 16'):
    train.train_and_evaluate(tiny_config, workdir)


def test_corrupt_checkpoint_gives_clear_error(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  tiny_config.train.num_steps = 2
  train.train_and_evaluate(tiny_config, workdir)
  state_dir = os.path.join(workdir, 'checkpoints', '2', 'state')
  for name in os.listdir(state_dir):
    path = os.path.join(state_dir, name)
    if os.path.isfile(path):
      os.remove(path)
  tiny_config.train.num_steps = 4
  with pytest.raises(CheckpointError, match='move that step directory aside'):
    train.train_and_evaluate(tiny_config, workdir)


def test_half_written_checkpoint_is_ignored(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  tiny_config.train.num_steps = 2
  train.train_and_evaluate(tiny_config, workdir)
  # What Orbax leaves when killed mid-save: a temporary directory that was never renamed.
  os.makedirs(os.path.join(workdir, 'checkpoints', '3.orbax-checkpoint-tmp', 'state'))
  assert checkpoint_lib.Checkpointer(workdir).latest_step() == 2


def test_batch_size_must_divide_devices(monkeypatch):
  monkeypatch.setattr(jax, 'device_count', lambda: 4)
  with pytest.raises(ConfigError, match='not divisible by the 4 devices'):
    parallel.check_batch_size(6)
  assert parallel.check_batch_size(8) == 8


@pytest.mark.parametrize('key,value,match', [
    ('loss.kl_estimator', 'exact', 'kl_estimator'),
    ('train.log_every', 0, 'log_every'),
    ('model.decoder_overrides', 'm0=wavelet', 'Unknown decoder'),
    ('data.modalities', 'm0,m9', 'Unknown modality'),
])
def test_config_errors(tiny_config, tmp_path, key, value, match):
  section, name = key.split('.')
  tiny_config[section][name] = value
  with pytest.raises(ConfigError, match=match):
    train.train_and_evaluate(tiny_config, str(tmp_path / 'run'))


def test_cli_reports_errors_without_traceback(tiny_data_dir, tmp_path):
  result = subprocess.run(_cli(str(tmp_path / 'run'), tiny_data_dir,
                               '--config.model.decoder_overrides=m0=wavelet'),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "error (ConfigError): Unknown decoder 'wavelet'" in result.stderr
  assert 'Traceback' not in result.stderr


SHARDED_SCRIPT = r'''
import os, sys
os.environ['XLA_FLAGS'] = os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=4'
sys.path.insert(0, os.getcwd())
import jax, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from configs import test_tiny
from diffmvae_jax import train_state
from diffmvae_jax.tasks import vae
from diffmvae_jax.data import pipeline
from diffmvae_jax.models import diffmvae

config = test_tiny.get_config()
config.data.data_dir = sys.argv[1]
model = vae.build_model(config)
optimizer = train_state.make_optimizer(config.train)
batch = next(pipeline.make_train_iterator(config.data, global_batch_size=8, seed=0))
batch = {k: batch[k] for k in model.names}
assert jax.device_count() == 4
results = []
for n in (4, 1):
  mesh = jax.make_mesh((n,), ('data',), axis_types=(AxisType.Auto,), devices=jax.devices()[:n])
  rep, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  state = vae.init_state(config, model, optimizer, mesh)
  step = jax.jit(vae.make_train_step(model, optimizer, config), in_shardings=(rep, shard),
                 out_shardings=(rep, rep))
  global_batch = jax.device_put(batch, shard)
  assert len(global_batch['m0'].sharding.device_set) == n
  state, metrics = step(state, global_batch)
  state, metrics = step(state, global_batch)
  results.append((jax.device_get(metrics), jax.device_get(state.params)))
(m4, p4), (m1, p1) = results
for k in m1:
  np.testing.assert_allclose(m4[k], m1[k], rtol=2e-5, atol=1e-6, err_msg=k)
jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p4, p1)

# Generation sharded over the batch equals generation on one device (same key).
from diffmvae_jax import generate
config.sample.steps = 3
gen = generate.make_conditional_generate_fn(model, config.sample, ('m0',))
outs = []
for n in (4, 1):
  mesh = jax.make_mesh((n,), ('data',), axis_types=(AxisType.Auto,), devices=jax.devices()[:n])
  rep, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  fn = jax.jit(gen, in_shardings=(rep, shard, rep), out_shardings=shard)
  outs.append(jax.device_get(fn({'params': p1}, {'m0': batch['m0']}, jax.random.PRNGKey(3))))
jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *outs)
print('SHARDED_OK', float(m4['loss']), float(m1['loss']))
'''


def test_sharded_step_equals_single_device(tiny_data_dir):
  """4 fake CPU devices = 1 device: two train steps (loss, parameters) and generation."""
  result = subprocess.run([sys.executable, '-c', SHARDED_SCRIPT, tiny_data_dir], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
  assert 'SHARDED_OK' in result.stdout, result.stderr[-4000:]


def test_config_keys_added_since_a_checkpoint_are_not_incompatibilities():
  saved = {'model': {'latent_dim': 8, 'decoders': {'image': 'diffusion'}}}
  current = {'model': {'latent_dim': 8, 'decoders': {'image': 'diffusion', 'mask': 'bernoulli'},
                       'attributes_hidden': 128}}
  assert checkpoint_lib.incompatibilities(saved, current) == []
  current['model']['decoders']['image'] = 'laplace'
  assert checkpoint_lib.incompatibilities(saved, current) == [
      "model.decoders.image: 'diffusion' -> 'laplace'"]


def test_steps_per_dispatch_trains_the_same_steps(tiny_config, tmp_path, monkeypatch):
  """train.steps_per_dispatch=4 (lax.scan over 4 batches) logs and saves what 1 does."""
  tiny_config.train.num_steps = 10
  tiny_config.train.checkpoint_every = 6
  tiny_config.train.log_every = 1
  tiny_config.train.sample_every = 0
  tiny_config.model.decoder_overrides = 'm0=laplace,m1=laplace,m2=laplace'
  reference = str(tmp_path / 'one')
  train.train_and_evaluate(tiny_config, reference)
  tiny_config.train.steps_per_dispatch = 4
  scanned = str(tmp_path / 'four')
  traced = []  # The multi-step function is traced (so used) by the K = 4 run.
  make_multi = vae.make_multi_train_step

  def spy(*args):
    multi = make_multi(*args)
    return lambda state, batches: (traced.append(batches['m0'].shape[0]), multi(state, batches))[1]

  monkeypatch.setattr(vae, 'make_multi_train_step', spy)
  train.train_and_evaluate(tiny_config, scanned)
  assert traced and set(traced) == {4}
  ref, got = _losses(reference), _losses(scanned)
  assert sorted(got) == sorted(ref) == list(range(1, 11))
  for step in ref:
    for key in ('loss', 'kl', 'nll/m0', 'grad_norm'):
      np.testing.assert_allclose(got[step][key], ref[step][key], rtol=1e-4, err_msg=(step, key))
  assert (checkpoint_lib.Checkpointer(scanned).all_steps()
          == checkpoint_lib.Checkpointer(reference).all_steps() == [6, 10])
  # A resumed scanned run continues from the step-6 checkpoint to the same end.
  tiny_config.train.num_steps = 14
  train.train_and_evaluate(tiny_config, scanned)
  assert sorted(_losses(scanned)) == list(range(1, 15))


def test_steps_per_dispatch_refuses_the_joint_prior(tiny_config, tmp_path):
  tiny_config.train.steps_per_dispatch = 2
  tiny_config.prior.joint = True
  with pytest.raises(ConfigError, match='steps_per_dispatch=2.*prior.joint'):
    train.train_and_evaluate(tiny_config, str(tmp_path / 'run'))
