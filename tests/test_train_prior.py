"""The latent score prior (second stage): training, exact resume, sampling, errors, latent gap."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import loop
from diffmvae_jax import parallel
from diffmvae_jax import train
from diffmvae_jax import train_prior
from diffmvae_jax.errors import CheckpointError, ConfigError, NonFiniteLossError
from diffmvae_jax.tasks import score_prior
from diffmvae_jax.tasks import vae

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIOR_STEPS = 6


def _tiny_prior_config(data_dir):
  """configs/test_tiny.py with feed-forward decoders (cheap to compile) and a tiny prior."""
  from configs import test_tiny
  config = test_tiny.get_config()
  config.data.data_dir = data_dir
  config.model.decoders.image = 'laplace'
  config.train.num_steps = 2
  config.train.checkpoint_every = 2
  p = config.prior
  p.width, p.depth, p.embed_dim = 16, 1, 8
  p.num_steps, p.batch_size, p.warmup_steps = PRIOR_STEPS, 8, 2
  p.checkpoint_every, p.log_every = 3, 1
  p.sampler_steps = 5
  return config


def _records(workdir):
  """step -> record of prior_metrics.jsonl."""
  with open(os.path.join(workdir, train_prior.METRICS_FILE)) as f:
    return {r['step']: r for r in map(json.loads, f)}


@pytest.fixture(scope='module')
def vae_workdir(tiny_data_dir, tmp_path_factory):
  """A workdir holding a VAE trained for 2 steps (copy it before adding a prior)."""
  workdir = str(tmp_path_factory.mktemp('prior') / 'vae')
  train.train_and_evaluate(_tiny_prior_config(tiny_data_dir), workdir)
  return workdir


@pytest.fixture(scope='module')
def prior_workdir(vae_workdir, tiny_data_dir):
  """The VAE workdir plus a prior trained for PRIOR_STEPS steps without interruption."""
  workdir = vae_workdir + '_prior'
  shutil.copytree(vae_workdir, workdir)
  metrics = train_prior.train_prior(_tiny_prior_config(tiny_data_dir), workdir)
  assert set(metrics) == {'loss', 'grad_norm', 'learning_rate'}
  return workdir


@pytest.fixture
def config(tiny_data_dir):
  return _tiny_prior_config(tiny_data_dir)


def test_checkpoints_metrics_and_finished_rerun(prior_workdir, config):
  assert checkpoint_lib.Checkpointer(prior_workdir, subdir='prior_checkpoints').all_steps() == [
      3, 6]
  records = _records(prior_workdir)
  assert sorted(records) == list(range(1, PRIOR_STEPS + 1))
  for record in records.values():
    assert all(np.isfinite(record[k]) for k in ('loss', 'grad_norm', 'learning_rate'))
  # The VAE's checkpoints are untouched; a finished prior reruns as a no-op.
  assert checkpoint_lib.Checkpointer(prior_workdir).all_steps() == [2]
  assert train_prior.train_prior(config, prior_workdir) == {}
  assert sorted(_records(prior_workdir)) == list(range(1, PRIOR_STEPS + 1))


def test_resume_equals_uninterrupted(prior_workdir, vae_workdir, config, tmp_path):
  workdir = str(tmp_path / 'resumed')
  shutil.copytree(vae_workdir, workdir)
  config.prior.num_steps = 3
  train_prior.train_prior(config, workdir)
  assert sorted(_records(workdir)) == [1, 2, 3]
  config.prior.num_steps = PRIOR_STEPS
  train_prior.train_prior(config, workdir)
  ref, resumed = _records(prior_workdir), _records(workdir)
  assert sorted(resumed) == list(range(1, PRIOR_STEPS + 1))
  for step in ref:
    for key in ('loss', 'grad_norm'):
      assert resumed[step][key] == ref[step][key], (step, key)


def test_preemption_saves_then_resumes_and_nan_stops(prior_workdir, vae_workdir, config,
                                                     tmp_path, monkeypatch):
  """A stop request (SIGTERM's flag) saves off-interval; a non-finite step saves nothing."""
  workdir = str(tmp_path / 'preempted')
  shutil.copytree(vae_workdir, workdir)
  with monkeypatch.context() as m:
    m.setattr(loop.PreemptionWatcher, 'should_stop', lambda self, step: step == 2)
    train_prior.train_prior(config, workdir)
  checkpointer = checkpoint_lib.Checkpointer(workdir, subdir='prior_checkpoints')
  assert checkpointer.all_steps() == [2]
  checkpointer.close()
  train_prior.train_prior(config, workdir)
  ref, resumed = _records(prior_workdir), _records(workdir)
  assert [resumed[s]['loss'] for s in ref] == [ref[s]['loss'] for s in ref]

  workdir = str(tmp_path / 'nan')
  shutil.copytree(vae_workdir, workdir)
  config.prior.learning_rate = float('nan')
  with pytest.raises(NonFiniteLossError,
                     match=r'latent prior at step 1 .*no checkpoint had been written'):
    train_prior.train_prior(config, workdir)
  assert not os.listdir(os.path.join(workdir, 'prior_checkpoints'))


def test_stats_sampler_shape_and_determinism(prior_workdir, config):
  state, step = score_prior.restore_prior_state(config, prior_workdir)
  assert step == PRIOR_STEPS and int(state.step) == PRIOR_STEPS
  # The stored standardisation is that of the full-set PoE means of the training split.
  model, vae_state, _ = vae.restore_vae(config, prior_workdir)
  mesh = parallel.make_mesh()
  latents = score_prior.encode_training_latents(config, model, vae_state.ema_params, mesh)
  assert latents.shape == (64, config.model.latent_dim)
  np.testing.assert_allclose(state.latent_mean, latents.mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state.latent_std, latents.std(0), rtol=1e-5, atol=1e-6)
  config.prior.latents = 'sample'
  sampled = score_prior.encode_training_latents(config, model, vae_state.ema_params, mesh)
  assert sampled.shape == latents.shape and not np.allclose(sampled, latents)

  config.prior.latents = 'mean'
  sample, stats, step = score_prior.restore_prior(config, prior_workdir)
  assert step == PRIOR_STEPS and stats['mean'].shape == (config.model.latent_dim,)
  key = jax.random.PRNGKey(3)
  z = np.asarray(sample(key, 5))
  assert z.shape == (5, config.model.latent_dim) and np.all(np.isfinite(z))
  np.testing.assert_array_equal(z, np.asarray(sample(key, 5)))
  assert not np.allclose(z, np.asarray(sample(jax.random.PRNGKey(4), 5)))
  for name in ('euler_maruyama', 'ode_heun'):
    config.prior.sampler = name
    z = np.asarray(score_prior.make_prior_latent_sampler(config, state)(key, 3))
    assert z.shape == (3, config.model.latent_dim) and np.all(np.isfinite(z)), name


def test_missing_vae_checkpoint_is_a_clear_error(config, tmp_path):
  with pytest.raises(CheckpointError, match='No VAE checkpoint.*train it first'):
    train_prior.train_prior(config, str(tmp_path / 'empty'))


@pytest.mark.parametrize('key,value,match', [
    ('joint', True, 'inside --mode=train'),
    ('sde', 'cld', 'prior.sde'),
    ('sampler', 'ddim', 'prior.sampler'),
    ('embed_dim', 7, 'even'),
])
def test_config_errors(config, tmp_path, key, value, match):
  config.prior[key] = value
  with pytest.raises(ConfigError, match=match):
    train_prior.train_prior(config, str(tmp_path / 'run'))


SHARDED_SCRIPT = r'''
import os, sys
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_force_host_platform_device_count=4')
sys.path.insert(0, os.getcwd())
import jax, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from configs import test_tiny
from diffmvae_jax.tasks import score_prior

config = test_tiny.get_config()
config.prior.width, config.prior.depth, config.prior.embed_dim = 16, 1, 8
config.prior.warmup_steps = 1
net = score_prior.make_score_net(config)
optimizer = score_prior.make_prior_optimizer(config.prior)
z0 = np.random.default_rng(0).normal(size=(8, config.model.latent_dim)).astype(np.float32)
dim = config.model.latent_dim
assert jax.device_count() == 4
results = []
for n in (4, 1):
  mesh = jax.make_mesh((n,), ('data',), axis_types=(AxisType.Auto,), devices=jax.devices()[:n])
  rep, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  state = score_prior.init_prior_state(config, net, optimizer, mesh, np.zeros(dim), np.ones(dim))
  step = jax.jit(score_prior.make_prior_train_step(net, optimizer, config),
                 in_shardings=(rep, shard), out_shardings=(rep, rep))
  batch = jax.device_put(z0, shard)
  assert len(batch.sharding.device_set) == n
  state, metrics = step(state, batch)
  state, metrics = step(state, batch)
  results.append((jax.device_get(metrics), jax.device_get(state.params)))
(m4, p4), (m1, p1) = results
for k in m1:
  np.testing.assert_allclose(m4[k], m1[k], rtol=2e-5, atol=1e-6, err_msg=k)
jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p4, p1)
print('SHARDED_OK', float(m4['loss']), float(m1['loss']))
'''


def test_sharded_dsm_step_equals_single_device():
  """Two DSM steps on 4 fake CPU devices give the loss and parameters of 1 device."""
  result = subprocess.run([sys.executable, '-c', SHARDED_SCRIPT], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
  assert 'SHARDED_OK' in result.stdout, result.stderr[-4000:]
