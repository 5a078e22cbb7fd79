"""The composed model: modality resolution, ELBO terms, masks, generation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test_tiny
from diffmvae_jax import generate
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import modalities as modalities_lib


@dataclasses.dataclass
class Spec:
  name: str
  kind: str
  shape: tuple
  dtype: str = 'float32'
  num_classes: int = 0


SPECS = {f'm{i}': Spec(f'm{i}', 'image', (28, 28, 3)) for i in range(3)}
SPECS['caption'] = Spec('caption', 'caption', (32,), 'int32', 20)
SPECS['label'] = Spec('label', 'label', (), 'int32', 10)


def _config(**data):
  config = test_tiny.get_config()
  for k, v in data.items():
    config.data[k] = v
  return config


def _batch(modalities, batch_size=4, seed=0):
  rng = np.random.default_rng(seed)
  batch = {}
  for m in modalities:
    if m.kind == 'image':
      batch[m.name] = rng.uniform(-1, 1, (batch_size,) + m.shape).astype(np.float32)
    else:
      batch[m.name] = rng.integers(3 if m.kind == 'caption' else 0, m.num_classes,
                                   (batch_size,) + m.shape).astype(np.int32)
  return batch


def test_resolve_defaults_to_image_modalities():
  mods = modalities_lib.resolve_modalities(_config(), SPECS)
  assert [m.name for m in mods] == ['m0', 'm1', 'm2']
  assert all(m.decoder == 'diffusion' and m.weight == 1.0 for m in mods)


def test_resolve_overrides():
  config = _config(modalities='m0,caption,label')
  config.model.decoder_overrides = 'm0=laplace'
  config.loss.weight_overrides = 'caption=2.5'
  mods = {m.name: m for m in modalities_lib.resolve_modalities(config, SPECS)}
  assert mods['m0'].decoder == 'laplace'
  assert mods['caption'].weight == 2.5 and mods['caption'].num_classes == 20


@pytest.mark.parametrize('overrides,match', [
    ({'data.modalities': 'm0,m7'}, 'Unknown modality'),
    ({'model.decoder_overrides': 'm0=wavelet'}, 'Unknown decoder'),
    ({'data.modalities': 'm0,caption', 'model.decoder_overrides': 'caption=laplace'},
     'Unknown decoder'),
    ({'model.decoder_overrides': 'label=categorical'}, 'does not use'),
    ({'model.decoder_overrides': 'm0'}, 'name=value'),
    ({'loss.weight_overrides': 'm0=heavy'}, 'not a number'),
    ({'data.modalities': 'm0,m0'}, 'twice'),
])
def test_resolve_errors(overrides, match):
  config = _config()
  for field, value in overrides.items():
    section, key = field.split('.')
    config[section][key] = value
  with pytest.raises(ConfigError, match=match):
    modalities_lib.resolve_modalities(config, SPECS)


def _model(config):
  mods = modalities_lib.resolve_modalities(config, SPECS)
  model = diffmvae.model_from_config(config, mods)
  params = jax.jit(lambda k: model.init(k, diffmvae.dummy_batch(mods), k,
                                        method=diffmvae.DiffMVAE.init_all))(jax.random.PRNGKey(0))
  return model, params, mods


def test_loss_terms_and_total():
  config = _config(modalities='m0,m1,caption,label')
  config.model.decoder_overrides = 'm1=laplace'
  config.loss.weight_overrides = 'label=3.0'
  config.loss.beta = 0.5
  model, params, mods = _model(config)
  terms = jax.jit(model.apply)(params, _batch(mods), jax.random.PRNGKey(2))
  for name in ('m0', 'm1', 'caption', 'label'):
    assert np.isfinite(terms[f'nll/{name}']) and terms[f'nll/{name}'] > 0
  expected = (terms['nll/m0'] + terms['nll/m1'] + terms['nll/caption'] + 3.0 * terms['nll/label']
              + 0.5 * terms['kl'])
  np.testing.assert_allclose(terms['loss'], expected, rtol=1e-5)
  np.testing.assert_allclose(-terms['elbo'], expected - 2 * terms['nll/label'] + 0.5 * terms['kl'],
                             rtol=1e-5)


def test_missing_modalities_do_not_contribute():
  config = _config(modalities='m0,m1,label')
  model, params, mods = _model(config)
  batch = _batch(mods)
  batch['available'] = np.array([[True, False, True]] * 4)
  apply = jax.jit(model.apply)
  terms = apply(params, batch, jax.random.PRNGKey(2))
  assert terms['nll/m1'] == 0.0
  # The missing modality's data must not matter at all.
  batch2 = dict(batch, m1=np.full_like(batch['m1'], np.nan))
  terms2 = apply(params, batch2, jax.random.PRNGKey(2))
  for k in terms:
    np.testing.assert_allclose(terms[k], terms2[k], rtol=1e-6)


def test_kl_estimators_both_run():
  for estimator in ('subset_average', 'mixture_mc'):
    config = _config()
    config.loss.kl_estimator = estimator
    model, params, mods = _model(config)
    terms = jax.jit(model.apply)(params, _batch(mods), jax.random.PRNGKey(3))
    assert np.isfinite(terms['kl'])


def test_modality_subsample_is_unbiased():
  """E[subsampled estimate] = full denoising loss (same t/noise per image in expectation)."""
  config = _config()
  config.model.diffusion.num_timesteps = 2   # Small variance across t.
  model, params, mods = _model(config)
  batch = _batch(mods, batch_size=64)
  keys = jax.random.split(jax.random.PRNGKey(0), 30)
  def mean_nll(m):
    return np.mean(jax.jit(jax.vmap(lambda k: m.apply(params, batch, k)['nll/m0']))(keys))
  full = mean_nll(model)
  config.model.diffusion.modality_subsample = 1
  sub = mean_nll(diffmvae.model_from_config(config, mods))
  np.testing.assert_allclose(sub, full, rtol=0.05)


def test_gradients_reach_encoders_through_diffusion_decoder():
  config = _config(modalities='m0')
  model, params, mods = _model(config)
  batch = _batch(mods)
  # Make the U-Net's last conv non-zero so eps depends on z.
  params = jax.tree.map(lambda x: x + 0.01, params)
  def nll(p):
    return model.apply(p, batch, jax.random.PRNGKey(0))['nll/m0']
  grads = jax.jit(jax.grad(nll))(params)
  enc = grads['params']['encoders_m0']
  assert float(jnp.max(jnp.abs(enc['heads']['mu']['kernel']))) > 0


def test_conditional_generation_shapes_and_determinism():
  config = _config(modalities='m0,m1,caption,label')
  config.model.decoder_overrides = 'm1=bernoulli'
  model, params, mods = _model(config)
  batch = _batch(mods, batch_size=2)
  fn = jax.jit(generate.make_conditional_generate_fn(model, config.sample, ('m0', 'caption')))
  a = fn(params, {k: batch[k] for k in ('m0', 'caption')}, jax.random.PRNGKey(5))
  b = fn(params, {k: batch[k] for k in ('m0', 'caption')}, jax.random.PRNGKey(5))
  c = fn(params, {k: batch[k] for k in ('m0', 'caption')}, jax.random.PRNGKey(6))
  assert a['m0'].shape == (2, 28, 28, 3) and a['m1'].shape == (2, 28, 28, 3)
  assert a['caption'].shape == (2, 32) and a['label'].shape == (2,)
  assert float(jnp.max(jnp.abs(a['m0']))) <= 1.0 + 1e-6
  np.testing.assert_array_equal(a['m0'], b['m0'])
  assert not np.array_equal(a['m0'], c['m0'])


def test_parse_given_unknown():
  config = _config()
  model, _, _ = _model(config)
  assert generate.parse_given('', model) == ('m0',)
  with pytest.raises(ConfigError, match='unknown modalities'):
    generate.parse_given('m0,caption', model)
