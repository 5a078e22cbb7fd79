"""benchmarks/z_usage.py: the nats a decoder gets out of the right z, against a shuffled z."""

import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))
import random_inputs  # pylint: disable=g-import-not-at-top
import z_usage  # pylint: disable=g-import-not-at-top

from configs import test_tiny
from diffmvae_jax import parallel
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.diffusion import schedules
from diffmvae_jax.tasks import vae


def test_conditioning_sets_and_shuffle():
  sets = z_usage.conditioning_sets(('m0', 'm1', 'm2'), 'm1')
  assert sets == {'self': [('m1',)], 'cross': [('m0',), ('m2',)], 'all': [('m0', 'm1', 'm2')]}
  z = np.arange(6.0).reshape(3, 2)
  np.testing.assert_array_equal(z_usage.shuffled(z), [[2, 3], [4, 5], [0, 1]])


def _zero_z_inputs(params):
  """Zeroes every kernel that reads z: the image decoders' first dense layer, the U-Net's z MLP."""
  def visit(path, leaf):
    name = jax.tree_util.keystr(path)
    reads_z = 'z_mlp_0' in name or ('ff_decoders' in name and "['hidden']" in name)
    return np.zeros_like(leaf) if reads_z and name.endswith("['kernel']") else leaf
  return jax.tree_util.tree_map_with_path(visit, params)


@pytest.mark.parametrize('decoder', [
    pytest.param('diffusion', marks=pytest.mark.slow),  # ~2-3 min of compilation.
    'laplace'])
def test_gaps_are_finite_and_zero_when_the_decoder_ignores_z(decoder):
  config = test_tiny.get_config()
  if decoder == 'laplace':
    config.model.decoder_overrides = 'm0=laplace,m1=laplace,m2=laplace'
  model = vae.build_model(config)
  state = vae.init_state(config, model, train_state_lib.make_optimizer(config.train),
                         parallel.make_mesh())
  batch = random_inputs.random_batch(model, 4, np.random.default_rng(0))
  scorers = z_usage.make_scorers(model, config)
  key = jax.random.PRNGKey(0)
  gaps, grid = z_usage.batch_gaps(state.params, scorers, model, batch, key, num_t=2)
  images = [m.name for m in model.modalities if m.kind == 'image']
  assert set(gaps) == set(images)
  for target in images:
    assert set(gaps[target]) == {'self', 'cross', 'all'}
    for values in gaps[target].values():
      assert values.shape == (4,) and np.all(np.isfinite(values))
    if decoder == 'diffusion':
      assert grid[target]['self'].shape == (len(z_usage.T_GRID), 4)
    else:
      assert not grid[target]
  # The same parameters with z cut off from every decoder: no nats from z, to rounding.
  cut = _zero_z_inputs(state.params)
  gaps, grid = z_usage.batch_gaps(cut, scorers, model, batch, key, num_t=2)
  for target in images:
    for values in gaps[target].values():
      np.testing.assert_allclose(values, 0.0, atol=1e-3)
  summary = z_usage.summarise([gaps], [grid], np.ones(1000))
  assert summary[images[0]]['self']['nats'] == pytest.approx(0.0, abs=1e-3)


def test_diffusion_scorer_scores_the_residual_about_c_z():
  """Under model.diffusion.residual the scorer's squared error is that of x0 - c(z)."""
  config = test_tiny.get_config()
  config.model.diffusion.residual = True
  model = vae.build_model(config)
  state = vae.init_state(config, model, train_state_lib.make_optimizer(config.train),
                         parallel.make_mesh())
  params = jax.tree.map(lambda x: x + 0.01, state.params)
  _, _, diffusion_sq, schedule = z_usage.make_scorers(model, config)
  name = model.diffusion_names[0]
  shape = (2,) + next(m.shape for m in model.modalities if m.name == name)
  rng = np.random.default_rng(0)
  x0 = rng.uniform(-1, 1, shape).astype(np.float32)
  noise = rng.normal(size=shape).astype(np.float32)
  z = rng.normal(size=(2, config.model.latent_dim)).astype(np.float32)
  t = np.array([10, 500], np.int32)
  offset = model.apply({'params': params}, name, z, method=type(model).residual_offset)
  assert float(np.max(np.abs(offset))) > 0
  x_t = schedules.q_sample(schedule, x0 - offset, t, noise)
  eps = model.apply({'params': params}, name, x_t, t, z, method=type(model).eps_prediction)
  expected = np.sum(np.square(noise - eps).reshape(2, -1), axis=-1)
  np.testing.assert_allclose(diffusion_sq(params, name, x0, t, noise, z), expected, rtol=1e-5)
