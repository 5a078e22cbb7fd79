"""Classifier-free guidance on z: model.diffusion.z_dropout (training) and sample.guidance.

Run: pytest tests/test_guidance.py
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import test_tiny
from diffmvae_jax import config_checks
from diffmvae_jax import evaluate
from diffmvae_jax import generate
from diffmvae_jax.diffusion import schedules
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.models import diffmvae
from tests import perturbed_model

EPS = diffmvae.DiffMVAE.eps_prediction


def _config(shared_unet=True, z_dropout=0.5, coarse=True):
  config = test_tiny.get_config()
  config.data.modalities = 'm0,m1,label'
  d = config.model.diffusion
  d.shared_unet = shared_unet
  d.z_dropout = z_dropout
  d.coarse_condition = d.residual = coarse
  d.prediction = 'v'
  return config


_model = perturbed_model.build


def _inputs(model, num=3):
  z = jax.random.normal(jax.random.PRNGKey(1), (num, model.model_config.latent_dim))
  x_t = jax.random.normal(jax.random.PRNGKey(2), (num, 28, 28, 3))
  t = jnp.array([0, 20, 49], jnp.int32)[:num]      # test_tiny: T = 50.
  return z, x_t, t


@pytest.mark.parametrize('shared_unet', [True, False])
def test_the_unconditional_branch_does_not_see_z(shared_unet):
  """z_keep 0: the output is the same for any z (z's conditioning term and the coarse image of
  z are left out); z_keep 1: the plain conditional prediction, which does depend on z."""
  model, params, _ = _model(_config(shared_unet))
  z, x_t, t = _inputs(model)
  other_z = z[::-1] + 1.0
  eps = lambda z, keep=None: np.asarray(model.apply(params, 'm1', x_t, t, z, z_keep=keep,
                                                    method=EPS))
  zeros, ones = jnp.zeros((3,)), jnp.ones((3,))
  np.testing.assert_allclose(eps(z, zeros), eps(other_z, zeros), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(eps(z, ones), eps(z), rtol=1e-6, atol=1e-7)
  assert np.max(np.abs(eps(z) - eps(other_z))) > 1e-3
  mixed = jnp.array([1.0, 0.0, 1.0])
  got = eps(z, mixed)
  np.testing.assert_allclose(got[0], eps(z)[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got[1], eps(z, zeros)[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('shared_unet', [True, False])
def test_z_dropout_rows_by_brute_force(shared_unet):
  """In training each row's U-Net sees z with probability 1 - z_dropout (the draw of
  DiffMVAE._z_keep); the image term of a dropped row is the unconditional branch's loss.
  Without train (evaluation) every row sees z."""
  model, params, mods = _model(_config(shared_unet))
  rng = np.random.default_rng(0)
  batch = {m.name: rng.uniform(-1, 1, (8,) + m.shape).astype(np.float32)
           for m in mods if m.kind == 'image'}
  z = jax.random.normal(jax.random.PRNGKey(3), (8, model.model_config.latent_dim))
  key = jax.random.PRNGKey(4)
  schedule = diffmvae.make_diffusion_schedule(model.model_config)
  T = model.model_config.diffusion.num_timesteps

  def rows(module, train):
    locs = {n: module.coarse_location(n, z) for n in module.diffusion_names}
    return module._diffusion_nll_rows(batch, z, key, train, locs)
  got = np.asarray(model.apply(params, True, method=rows))
  plain = np.asarray(model.apply(params, False, method=rows))

  _, key_t, key_noise = jax.random.split(key, 3)
  key_keep = jax.random.fold_in(key, 7)
  names = ('m0', 'm1')
  if shared_unet:   # All modalities of every example, in one call of 2 * 8 rows.
    keep = jax.random.bernoulli(key_keep, 0.5, (16,)).astype(jnp.float32).reshape(8, 2)
    t = schedules.sample_t(key_t, T, (16,)).reshape(8, 2)
    noise = jax.random.normal(key_noise, (16, 28, 28, 3)).reshape(8, 2, 28, 28, 3)
  assert_dropped = []
  for i, name in enumerate(names):
    if shared_unet:
      keep_i, t_i, noise_i = keep[:, i], t[:, i], noise[:, i]
    else:
      keep_i = jax.random.bernoulli(jax.random.fold_in(key_keep, i), 0.5, (8,)).astype(
          jnp.float32)
      t_i = schedules.sample_t(jax.random.fold_in(key_t, i), T, (8,))
      noise_i = jax.random.normal(jax.random.fold_in(key_noise, i), (8, 28, 28, 3))
    x0 = batch[name] - model.apply(params, name, z, method=diffmvae.DiffMVAE.residual_offset)
    x_t = schedules.q_sample(schedule, x0, t_i, noise_i)
    # eps_prediction of a v model is eps_from_v(out); undo it to get the U-Net's v output.
    eps = model.apply(params, name, x_t, t_i, z, z_keep=keep_i, method=EPS)
    abar = schedule.alphas_cumprod[t_i][:, None, None, None]
    v_out = (eps - jnp.sqrt(1 - abar) * x_t) / jnp.sqrt(abar)
    want = np.sum((np.asarray(schedules.v_target(schedule, x0, t_i, noise_i)) -
                   np.asarray(v_out)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(got[:, i], want, rtol=2e-3, atol=1e-2)
    assert_dropped.append(np.asarray(keep_i))
  dropped = np.concatenate(assert_dropped) == 0
  assert 0 < dropped.sum() < dropped.size        # Some rows of each kind, so the test bites.
  differs = np.abs(got - plain).T.reshape(-1) > 1e-3
  np.testing.assert_array_equal(differs, dropped)


def test_guided_eps_by_brute_force():
  """make_eps_fn with guidance w is (1 + w) eps(z) - w eps(no z); w = 0 is eps(z)."""
  model, params, _ = _model(_config())
  z, x_t, t = _inputs(model)
  cond = np.asarray(model.apply(params, 'm0', x_t, t, z, method=EPS))
  uncond = np.asarray(model.apply(params, 'm0', x_t, t, z, z_keep=jnp.zeros((3,)), method=EPS))
  guided = np.asarray(generate.make_eps_fn(model, params, 'm0', z, 2.0)(x_t, t))
  np.testing.assert_allclose(guided, 3.0 * cond - 2.0 * uncond, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(generate.make_eps_fn(model, params, 'm0', z)(x_t, t)),
                             cond, rtol=1e-6, atol=1e-7)


def test_guided_generation():
  """Guidance changes the images, not their shape or range; guidance 0 is the unguided
  sampler exactly, and a config without the key is guidance 0."""
  model, params, _ = _model(_config())
  z, _, _ = _inputs(model, 2)
  sample = ml_collections.ConfigDict(
      {'sampler': 'ddim', 'steps': 5, 'eta': 0.0, 'guidance': 0.0})
  images = lambda cfg: generate.make_decode_fn(model, cfg, ('m0',))(
      params, z, jax.random.PRNGKey(5))['m0']
  base = np.asarray(images(sample))
  without_key = ml_collections.ConfigDict({'sampler': 'ddim', 'steps': 5, 'eta': 0.0})
  np.testing.assert_array_equal(np.asarray(images(without_key)), base)
  sample.guidance = 3.0
  guided = np.asarray(images(sample))
  assert guided.shape == base.shape and np.all(np.isfinite(guided))
  assert np.max(np.abs(guided - base)) > 1e-3


def test_guidance_needs_z_dropout():
  """A model trained without z_dropout has no unconditional branch: guidance is refused, by
  the generator (library users) and by the config check (the command line)."""
  model, _, _ = _model(_config(z_dropout=0.0))
  sample = ml_collections.ConfigDict({'sampler': 'ddim', 'steps': 5, 'eta': 0.0,
                                      'guidance': 1.0})
  with pytest.raises(ConfigError, match='z_dropout'):
    generate.make_decode_fn(model, sample)
  config = _config(z_dropout=0.0)
  config.sample.guidance = 1.0
  with pytest.raises(ConfigError, match='z_dropout'):
    config_checks.check_config(config)
  config.model.diffusion.z_dropout = 0.1
  config_checks.check_config(config)


def test_a_guided_evaluation_has_its_own_metrics_file():
  """Guided figures never overwrite the unguided ones of the same checkpoint and prior."""
  name = lambda prior, w: evaluate.metrics_file_name(
      ml_collections.ConfigDict({'prior': prior, 'guidance': w}))
  assert name('gaussian', 0.0) == 'metrics_gaussian.json'
  assert name('sde', 2.0) == 'metrics_sde_guidance2.json'
  assert name('gaussian', 0.5) == 'metrics_gaussian_guidance0.5.json'
