"""The latent prior trained jointly with the VAE (prior.joint=True): steps, resume, sampling."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import parallel
from diffmvae_jax import train
from diffmvae_jax.errors import CheckpointError
from diffmvae_jax.tasks import joint_prior
from diffmvae_jax.tasks import score_prior


def _joint_config(tiny_config):
  config = tiny_config
  config.model.decoders.image = 'laplace'   # Cheap to compile; the prior does not care.
  config.prior.joint = True
  p = config.prior
  p.width, p.depth, p.embed_dim = 16, 1, 8
  p.warmup_steps, p.sampler_steps = 2, 5
  return config


def _prior_params(workdir, config, step):
  checkpointer = checkpoint_lib.Checkpointer(workdir, subdir=score_prior.SUBDIR)
  try:
    state, meta = checkpointer.restore(step, score_prior.abstract_prior_state(
        config, score_prior.make_score_net(config),
        score_prior.make_prior_optimizer(config.prior), parallel.make_mesh()))
  finally:
    checkpointer.close()
  return jax.device_get(state), meta


def test_running_stats_match_numpy():
  rng = np.random.default_rng(0)
  mean, std = jnp.zeros(3), jnp.ones(3)
  m_np, second_np = np.zeros(3), np.ones(3)
  for step in range(30):
    z = rng.normal(2.0, 3.0, size=(16, 3)).astype(np.float32)
    mean, std = joint_prior.update_running_stats(mean, std, jnp.asarray(z), step)
    d = min(joint_prior.STATS_DECAY, (1 + step) / (10 + step))
    m_np = d * m_np + (1 - d) * z.mean(0)
    second_np = d * second_np + (1 - d) * (z * z).mean(0)
  np.testing.assert_allclose(mean, m_np, rtol=1e-4)
  np.testing.assert_allclose(std, np.sqrt(second_np - m_np ** 2), rtol=1e-4)
  assert np.all(np.abs(np.asarray(mean) - 2.0) < 1.0) and np.all(np.abs(np.asarray(std) - 3) < 1)


def test_joint_training_resumes_exactly_and_samples(tiny_config, tmp_path):
  config = _joint_config(tiny_config)
  full, split = str(tmp_path / 'full'), str(tmp_path / 'split')
  metrics = train.train_and_evaluate(config, full)
  assert {'prior/loss', 'prior/grad_norm', 'prior/learning_rate'} <= set(metrics)
  assert np.isfinite(metrics['prior/loss'])
  with open(os.path.join(full, 'metrics.jsonl')) as f:
    assert all('prior/loss' in json.loads(line) for line in f)

  config.train.num_steps = 2
  train.train_and_evaluate(config, split)
  config.train.num_steps = 4
  train.train_and_evaluate(config, split)     # Resumes VAE and prior from step 2.
  a, meta = _prior_params(full, config, 4)
  b, _ = _prior_params(split, config, 4)
  assert meta['joint'] and meta['vae_step'] == 4 and int(a.step) == 4
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)
  assert not np.allclose(a.latent_std, 1.0)   # The running statistics moved.

  sample, stats, step = score_prior.restore_prior(config, full)
  z = np.asarray(sample(jax.random.PRNGKey(0), 3))
  assert step == 4 and z.shape == (3, config.model.latent_dim) and np.all(np.isfinite(z))
  np.testing.assert_allclose(stats['std'], a.latent_std)


def test_switching_joint_on_for_a_run_without_it_is_a_clear_error(tiny_config, tmp_path):
  config = _joint_config(tiny_config)
  config.prior.joint = False
  config.train.num_steps = 2
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config, workdir)
  config.prior.joint = True
  config.train.num_steps = 4
  with pytest.raises(CheckpointError, match='cannot switch it on'):
    train.train_and_evaluate(config, workdir)
