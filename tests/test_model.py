"""The composed model: modality resolution, ELBO terms, masks, generation, image sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import polymnist_mopoe
from configs import test_tiny
from diffmvae_jax import generate
from diffmvae_jax.diffusion import samplers
from diffmvae_jax.diffusion import schedules
from diffmvae_jax.data.dataset_api import ModalitySpec
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.models import decoders as decoders_lib
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import encoders as encoders_lib
from diffmvae_jax.models import modalities as modalities_lib
from diffmvae_jax.models import unet as unet_lib
from diffmvae_jax.tasks import score_prior



SPECS = {f'm{i}': ModalitySpec(f'm{i}', 'image', (28, 28, 3)) for i in range(3)}
SPECS['caption'] = ModalitySpec('caption', 'caption', (32,), 'int32', 20)
SPECS['label'] = ModalitySpec('label', 'label', (), 'int32', 10)
SPECS['mask'] = ModalitySpec('mask', 'mask', (28, 28, 1))
SPECS['attributes'] = ModalitySpec('attributes', 'attributes', (15,), 'float32', 15)


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
    elif m.kind in ('mask', 'attributes'):
      batch[m.name] = (rng.uniform(size=(batch_size,) + m.shape) < 0.3).astype(np.float32)
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
  _check_unavailable_expert_content_is_never_read(model, params, mods)


def _check_unavailable_expert_content_is_never_read(model, params, mods):
  """An unavailable modality's expert holding NaN changes no term, gradient or prior latent.

  Not jitted: an interceptor acts at trace time, and a cached trace would hide it.
  """
  import flax.linen as nn
  batch = _batch(mods)
  batch['available'] = np.array([[True, False, True], [True, False, True],   # m1 never there
                                 [True, False, False], [False, False, True]])

  def loss(p):
    terms = model.apply(p, batch, jax.random.PRNGKey(4))
    return terms['loss'], terms

  encode = score_prior.make_encode_fn(model, 'sample')
  clean = jax.value_and_grad(loss, has_aux=True)(params)
  z_clean = encode(params['params'], batch, jax.random.PRNGKey(5))
  with nn.intercept_methods(_poison_heads(np.nan, 'm1')):
    dirty = jax.value_and_grad(loss, has_aux=True)(params)
    z_dirty = encode(params['params'], batch, jax.random.PRNGKey(5))
    everything = model.apply(params, dict(batch, available=np.ones((4, 3), bool)),
                             jax.random.PRNGKey(4))
  assert np.isnan(everything['loss'])   # The poison does reach m1's expert.
  assert np.isfinite(clean[0][0]) and np.all(np.isfinite(z_clean))
  for k in clean[0][1]:
    np.testing.assert_array_equal(dirty[0][1][k], clean[0][1][k], err_msg=k)
  for a, b in zip(jax.tree_util.tree_leaves(dirty[1]), jax.tree_util.tree_leaves(clean[1])):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(z_dirty, z_clean)


def _poison_heads(value, name):
  """An interceptor making modality `name`'s encoder heads emit `value` for mu and logvar."""
  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if (isinstance(module, encoders_lib.GaussianHeads) and context.method_name == '__call__'
        and any(name in str(p) for p in module.path)):
      return tuple(jnp.full_like(o, value) for o in out)
    return out
  return interceptor


def test_kl_estimators_both_run():
  for estimator in ('subset_average', 'mixture_mc'):
    config = _config()
    config.loss.kl_estimator = estimator
    model, params, mods = _model(config)
    terms = jax.jit(model.apply)(params, _batch(mods), jax.random.PRNGKey(3))
    assert np.isfinite(terms['kl'])


def test_subset_sampling_options():
  """Stratified subsets give the same KL (it does not depend on z) and a finite loss;
  an unknown name fails with the allowed ones."""
  terms = {}
  for sampling in ('per_example', 'stratified'):
    config = _config()
    config.loss.subset_sampling = sampling
    model, params, mods = _model(config)
    terms[sampling] = jax.jit(model.apply)(params, _batch(mods, batch_size=14),
                                           jax.random.PRNGKey(3))
    assert np.isfinite(terms[sampling]['loss'])
  np.testing.assert_allclose(terms['stratified']['kl'], terms['per_example']['kl'], rtol=1e-6)
  config = _config()
  config.loss.subset_sampling = 'chunks'
  with pytest.raises(ValueError, match='per_example'):
    _model(config)


def _mean_nll_m0(model, params, batch, keys):
  """Mean over keys of the model's 'nll/m0' on one batch."""
  return np.mean(jax.jit(jax.vmap(lambda k: model.apply(params, batch, k)['nll/m0']))(keys))


def test_modality_subsample_is_unbiased():
  """E[subsampled estimate] = full denoising loss (same t/noise per image in expectation)."""
  config = _config()
  config.model.diffusion.num_timesteps = 2   # Small variance across t.
  model, params, mods = _model(config)
  batch = _batch(mods, batch_size=64)
  keys = jax.random.split(jax.random.PRNGKey(0), 30)
  full = _mean_nll_m0(model, params, batch, keys)
  config.model.diffusion.modality_subsample = 1
  sub = _mean_nll_m0(diffmvae.model_from_config(config, mods), params, batch, keys)
  np.testing.assert_allclose(sub, full, rtol=0.05)


@pytest.mark.parametrize('shared_unet', [True, False])
def test_example_subsample_is_unbiased(shared_unet):
  """E[denoising term on e of B examples, scaled by B / e] = the term on all B."""
  config = _config()
  config.model.diffusion.num_timesteps = 2   # Small variance across t.
  config.model.diffusion.shared_unet = shared_unet
  model, params, mods = _model(config)
  batch = _batch(mods, batch_size=16)
  keys = jax.random.split(jax.random.PRNGKey(0), 40)
  full = _mean_nll_m0(model, params, batch, keys)
  config.model.diffusion.example_subsample = 4
  sub_model = diffmvae.model_from_config(config, mods)
  np.testing.assert_allclose(_mean_nll_m0(sub_model, params, batch, keys), full, rtol=0.05)
  # Per call: 4 examples carry 4x their loss, the other 12 carry 0.
  per_example = jax.jit(lambda k: sub_model.apply(
      params, batch, k, method=lambda mdl, b, k: mdl._diffusion_nll(
          b, mdl.posterior(b)[0], k, False, None)))(keys[0])
  assert per_example.shape == (16, 3)
  assert int(np.sum(np.all(np.asarray(per_example) == 0.0, axis=1))) == 12


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


# ----------------------------------------------------------------- masks and attributes


def test_resolve_mask_and_attributes():
  config = _config(modalities='m0,mask,attributes')
  config.loss.weight_overrides = 'mask=0.5'
  mods = {m.name: m for m in modalities_lib.resolve_modalities(config, SPECS)}
  assert mods['mask'].decoder == 'bernoulli' and mods['mask'].weight == 0.5
  assert mods['attributes'].decoder == 'bernoulli' and mods['attributes'].num_classes == 15
  del config.model.decoders['mask']   # A config from before masks existed: kind default.
  assert modalities_lib.resolve_modalities(config, SPECS)[1].decoder == 'bernoulli'
  config.model.decoder_overrides = 'mask=laplace'
  with pytest.raises(ConfigError, match='Unknown decoder'):
    modalities_lib.resolve_modalities(config, SPECS)


def test_bernoulli_nll_matches_formula():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4, 5, 1)).astype(np.float32) * 3
  x = (rng.uniform(size=logits.shape) < 0.5).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  expected = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
  np.testing.assert_allclose(decoders_lib.bernoulli_nll(jnp.asarray(logits), x), expected,
                             rtol=1e-5)


def test_mask_and_attribute_terms_and_generation():
  config = _config(modalities='m0,mask,attributes')
  config.loss.weight_overrides = 'attributes=2.0'
  model, params, mods = _model(config)
  assert set(params['params']['encoders_mask']) == {'conv0', 'conv1', 'conv2', 'hidden', 'heads'}
  batch = _batch(mods)
  terms = jax.jit(model.apply)(params, batch, jax.random.PRNGKey(2))
  assert terms['nll/mask'] > 0 and terms['nll/attributes'] > 0
  expected = terms['nll/m0'] + terms['nll/mask'] + 2.0 * terms['nll/attributes'] + terms['kl']
  np.testing.assert_allclose(terms['loss'], expected, rtol=1e-5)
  # The mask decoder gives one channel of logits of the mask's shape.
  mu, _ = model.apply(params, batch, ('mask',), method=diffmvae.DiffMVAE.encode)
  logits = model.apply(params, 'mask', mu[:, 0], method=diffmvae.DiffMVAE.decode_feedforward)
  assert logits.shape == (4, 28, 28, 1)
  fn = jax.jit(generate.make_conditional_generate_fn(model, config.sample, ('m0',)))
  out = fn(params, {'m0': batch['m0']}, jax.random.PRNGKey(5))
  assert out['mask'].shape == (4, 28, 28, 1) and out['attributes'].shape == (4, 15)
  for name in ('mask', 'attributes'):
    assert out[name].dtype == jnp.float32
    assert float(jnp.min(out[name])) >= 0.0 and float(jnp.max(out[name])) <= 1.0
  # Given the mask and the attributes only.
  fn2 = jax.jit(generate.make_conditional_generate_fn(model, config.sample,
                                                       ('mask', 'attributes')))
  out2 = fn2(params, {k: batch[k] for k in ('mask', 'attributes')}, jax.random.PRNGKey(5))
  assert out2['m0'].shape == (4, 28, 28, 3)


# ----------------------------------------------------------------- image sizes


def test_mopoe_polymnist_parameter_count_is_unchanged():
  """configs/polymnist_mopoe.py: 5 x (encoder + feed-forward decoder) = 14,056,975."""
  config = polymnist_mopoe.get_config()
  specs = {f'm{i}': ModalitySpec(f'm{i}', 'image', (28, 28, 3)) for i in range(5)}
  mods = modalities_lib.resolve_modalities(config, specs)
  model = diffmvae.model_from_config(config, mods)
  shapes = jax.eval_shape(lambda k: model.init(k, diffmvae.dummy_batch(mods), k,
                                               method=diffmvae.DiffMVAE.init_all),
                          jax.random.PRNGKey(0))
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == 14_056_975
  dec = shapes['params']['ff_decoders_m0']
  assert dec['project']['kernel'].shape == (512, 4 * 4 * 128)
  assert [dec[f'deconv{i}']['kernel'].shape[-1] for i in range(3)] == [64, 32, 3]


@pytest.mark.parametrize('shape,enc_channels,dec_channels,first', [
    ((28, 28, 3), (32, 64, 128), (128, 64, 32), 4),          # 28->14->7->4, 4->7->14->28
    ((28, 28, 1), (8, 16, 16), (16, 16, 8), 4),              # PolyMNIST mask
    ((64, 64, 3), (32, 64, 128, 256), (256, 128, 64, 32), 4),       # CUB
    ((128, 128, 1), (8, 8, 16, 16, 32), (32, 16, 16, 8, 8), 4),     # CelebAMask-HQ mask
    ((128, 128, 3), (32, 64, 128, 256, 256), (256, 256, 128, 64, 32), 4),
    ((48, 40, 3), (8, 16, 16), (16, 16, 8), 6),              # Non-square: 6x5 first map.
])
def test_image_encoder_and_decoder_shapes(shape, enc_channels, dec_channels, first):
  x = jnp.zeros((2,) + shape, jnp.float32)
  encoder = encoders_lib.ImageEncoder(16, enc_channels, 32, binary_input=shape[-1] == 1)
  (mu, logvar), _ = jax.eval_shape(
      lambda: encoder.init_with_output(jax.random.PRNGKey(0), x))
  assert mu.shape == logvar.shape == (2, 16)
  decoder = decoders_lib.ImageDecoder(shape, dec_channels, 32)
  out, variables = jax.eval_shape(
      lambda: decoder.init_with_output(jax.random.PRNGKey(0), jnp.zeros((2, 16))))
  assert out.shape == (2,) + shape and out.dtype == jnp.float32
  width_first = decoders_lib.upsampling_sizes(shape[1], len(dec_channels))[0]
  assert variables['params']['project']['kernel'].shape[-1] == (
      first * width_first * dec_channels[0])


def test_upsampling_sizes():
  assert decoders_lib.upsampling_sizes(28, 3) == [4, 7, 14, 28]
  assert decoders_lib.upsampling_sizes(64, 4) == [4, 8, 16, 32, 64]
  assert decoders_lib.upsampling_sizes(128, 5) == [4, 8, 16, 32, 64, 128]


def test_image_decoder_runs_at_64x64():
  """A real forward pass (not only shapes) at 64x64, and the mask encoder on it."""
  decoder = decoders_lib.ImageDecoder((64, 64, 1), (8, 8, 8, 4), 0)
  z = jax.random.normal(jax.random.PRNGKey(1), (2, 6))
  params = jax.jit(decoder.init)(jax.random.PRNGKey(0), z)
  logits = jax.jit(decoder.apply)(params, z)
  assert logits.shape == (2, 64, 64, 1) and bool(jnp.all(jnp.isfinite(logits)))
  encoder = encoders_lib.ImageEncoder(6, (4, 8, 8, 8), 16, binary_input=True)
  masks = (jax.nn.sigmoid(logits) > 0.5).astype(jnp.float32)
  enc_params = jax.jit(encoder.init)(jax.random.PRNGKey(0), masks)
  mu, _ = jax.jit(encoder.apply)(enc_params, masks)
  assert mu.shape == (2, 6) and bool(jnp.all(jnp.isfinite(mu)))


@pytest.mark.parametrize('size,mults,attention', [
    (64, (1, 2, 2, 2), (16, 8)), (128, (1, 1, 2, 2, 4), (16,))])
def test_unet_shapes_at_64_and_128(size, mults, attention):
  model = unet_lib.UNet(out_channels=3, base_channels=8, channel_mults=mults, num_res_blocks=1,
                        attention_resolutions=attention, num_groups=4, num_heads=2)
  x = jnp.zeros((1, size, size, 3))
  out = jax.eval_shape(lambda: model.init_with_output(
      jax.random.PRNGKey(0), x, jnp.zeros((1,), jnp.int32), jnp.zeros((1, 6)))[0])
  assert out.shape == (1, size, size, 3)


def _coarse_model(shared_unet=True, weight=0.5, condition=True):
  config = _config(modalities='m0,m1,label')
  config.model.diffusion.shared_unet = shared_unet
  config.model.diffusion.coarse_weight = weight
  config.model.diffusion.coarse_condition = condition
  config.loss.beta = 0.5
  return _model(config)


@pytest.mark.parametrize('shared_unet', [True, False])
def test_coarse_term_is_in_the_loss_not_the_elbo(shared_unet):
  model, params, mods = _coarse_model(shared_unet)
  assert set(params['params']) >= {'coarse_decoders_m0', 'coarse_decoders_m1'}
  terms = jax.jit(model.apply)(params, _batch(mods), jax.random.PRNGKey(2))
  assert terms['coarse_nll/m0'] > 0 and terms['coarse_nll/m1'] > 0
  assert 'coarse_nll/label' not in terms
  data = terms['nll/m0'] + terms['nll/m1'] + terms['nll/label']
  coarse = terms['coarse_nll/m0'] + terms['coarse_nll/m1']
  np.testing.assert_allclose(terms['loss'], data + 0.5 * coarse + 0.5 * terms['kl'], rtol=1e-5)
  np.testing.assert_allclose(-terms['elbo'], data + terms['kl'], rtol=1e-5)


def test_without_coarse_settings_there_is_no_coarse_decoder():
  model, params, mods = _coarse_model(weight=0.0, condition=False)
  assert not any(k.startswith('coarse') for k in params['params'])
  terms = jax.jit(model.apply)(params, _batch(mods), jax.random.PRNGKey(2))
  assert not any(k.startswith('coarse') for k in terms)


@pytest.mark.parametrize('shared_unet', [True, False])
def test_coarse_condition_feeds_the_unet(shared_unet):
  """With coarse_condition the denoising term (weight 0: no coarse NLL) trains the coarse
  decoder through the U-Net's input, and eps_prediction changes with its parameters; without
  it the coarse decoder gets no gradient from the denoising term."""
  batch = None
  for condition in (True, False):
    model, params, mods = _coarse_model(shared_unet, weight=0.0 if condition else 1.0,
                                        condition=condition)
    batch = batch or _batch(mods)
    params = jax.tree.map(lambda x: x + 0.01, params)   # eps depends on its inputs.
    def denoising(p):
      terms = model.apply(p, batch, jax.random.PRNGKey(0))
      return terms['nll/m0'] + terms['nll/m1']
    grads = jax.jit(jax.grad(denoising))(params)['params']['coarse_decoders_m0']
    largest = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads))
    assert (largest > 0) == condition, (condition, largest)
  model, params, mods = _coarse_model(shared_unet, weight=0.0, condition=True)
  params = jax.tree.map(lambda x: x + 0.01, params)
  x_t, t = batch['m0'], jnp.full((4,), 500, jnp.int32)
  z = jnp.ones((4, model.model_config.latent_dim))
  eps = lambda p: model.apply(p, 'm0', x_t, t, z, method=diffmvae.DiffMVAE.eps_prediction)
  moved = jax.tree.map(lambda x: x, params)
  moved['params']['coarse_decoders_m0'] = jax.tree.map(
      lambda x: x + 0.1, params['params']['coarse_decoders_m0'])
  assert float(jnp.max(jnp.abs(eps(params) - eps(moved)))) > 1e-4


def test_generation_with_coarse_condition():
  model, params, mods = _coarse_model()
  config = _config(modalities='m0,m1,label')
  fn = jax.jit(generate.make_conditional_generate_fn(model, config.sample, ('label',)))
  out = fn(params, {'label': _batch(mods, batch_size=2)['label']}, jax.random.PRNGKey(5))
  assert out['m0'].shape == (2, 28, 28, 3) and np.all(np.isfinite(out['m1']))


def _residual_models(shared_unet):
  """(plain, residual) models with the same parameters: coarse decoders, coarse_condition."""
  out = []
  for residual in (False, True):
    config = _config(modalities='m0,m1,label')
    config.model.diffusion.shared_unet = shared_unet
    config.model.diffusion.coarse_condition = True
    config.model.diffusion.residual = residual
    config.model.diffusion.loss = 'elbo'
    out.append(_model(config))
  return out


@pytest.mark.parametrize('shared_unet', [True, False])
def test_residual_diffusion_is_the_diffusion_of_x_minus_the_coarse_mean(shared_unet):
  """Brute force: the residual model's bound on x equals the plain model's bound on
  x - c(z) for the same z, t and noise (the shift has Jacobian 1)."""
  (plain, params, mods), (residual, params_r, _) = _residual_models(shared_unet)
  assert jax.tree.structure(params) == jax.tree.structure(params_r)
  params = jax.tree.map(lambda x: x + 0.01, params)
  batch = _batch(mods)
  z = jax.random.normal(jax.random.PRNGKey(3), (4, plain.model_config.latent_dim))
  key = jax.random.PRNGKey(4)

  def rows(model, images):
    def fn(module):
      locs = {n: module.coarse_location(n, z) for n in module.diffusion_names}
      return module._diffusion_nll_rows(images, z, key, False, locs)
    return model.apply(params, method=fn)

  offsets = {n: residual.apply(params, n, z, method=diffmvae.DiffMVAE.residual_offset)
             for n in ('m0', 'm1')}
  assert float(jnp.max(jnp.abs(offsets['m0']))) > 0
  shifted = {n: batch[n] - offsets[n] for n in ('m0', 'm1')}
  np.testing.assert_allclose(rows(residual, batch), rows(plain, shifted), rtol=1e-5)
  assert not np.allclose(rows(plain, batch), rows(residual, batch))
  zero = plain.apply(params, 'm0', z, method=diffmvae.DiffMVAE.residual_offset)
  assert zero.shape == (4, 28, 28, 3) and not np.any(zero)


def test_residual_trains_the_coarse_decoder_through_the_bound():
  """coarse_weight 0, no coarse_condition: only the residual's bound reaches the coarse
  decoder, and it does."""
  config = _config(modalities='m0,m1,label')
  config.model.diffusion.residual = True
  config.model.diffusion.loss = 'elbo'
  model, params, mods = _model(config)
  assert 'coarse_decoders_m0' in params['params']
  batch = _batch(mods)
  def data_term(p):
    terms = model.apply(p, batch, jax.random.PRNGKey(0))
    return terms['nll/m0'] + terms['nll/m1']
  grads = jax.jit(jax.grad(data_term))(params)['params']['coarse_decoders_m0']
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) > 0
  terms = jax.jit(model.apply)(params, batch, jax.random.PRNGKey(0))
  data = terms['nll/m0'] + terms['nll/m1'] + terms['nll/label']   # coarse_weight 0: no term.
  np.testing.assert_allclose(terms['loss'], data + config.loss.beta * terms['kl'], rtol=1e-5)


def test_residual_generation_adds_the_coarse_mean():
  """A residual model's image is c(z) plus the sampler's residual, clipped about c(z)."""
  config = _config(modalities='m0,m1,label')
  config.model.diffusion.residual = True
  model, params, mods = _model(config)
  params = jax.tree.map(lambda x: x + 0.01, params)
  z = jax.random.normal(jax.random.PRNGKey(1), (2, model.model_config.latent_dim))
  key = jax.random.PRNGKey(2)
  out = jax.jit(generate.make_decode_fn(model, config.sample, ('m0',)))(params, z, key)
  offset = model.apply(params, 'm0', z, method=diffmvae.DiffMVAE.residual_offset)
  schedule = diffmvae.make_diffusion_schedule(model.model_config)
  eps_fn = lambda x_t, t: model.apply(params, 'm0', x_t, t, z,
                                      method=diffmvae.DiffMVAE.eps_prediction)
  residual = samplers.sample(config.sample.sampler, eps_fn, schedule, jax.random.fold_in(key, 0),
                             (2, 28, 28, 3), config.sample.steps, eta=config.sample.eta,
                             x0_offset=offset)
  np.testing.assert_allclose(out['m0'], offset + residual, atol=1e-5)
  assert float(jnp.max(jnp.abs(out['m0']))) <= 1.0 + 1e-5


def _v_models(shared_unet, loss='simple'):
  """(eps, v) models with the same parameters (coarse_condition + residual, as the coarse
  arm's variants)."""
  out = []
  for prediction in ('eps', 'v'):
    config = _config(modalities='m0,m1,label')
    config.model.diffusion.shared_unet = shared_unet
    config.model.diffusion.coarse_condition = True
    config.model.diffusion.residual = True
    config.model.diffusion.loss = loss
    config.model.diffusion.prediction = prediction
    out.append(_model(config))
  return out


@pytest.mark.parametrize('shared_unet', [True, False])
def test_v_prediction_reads_the_unet_output_as_v(shared_unet):
  """eps_prediction of a v model is sqrt(abar) out + sqrt(1 - abar) x_t, where out is the same
  U-Net's raw output (the eps model's eps_prediction with the same parameters)."""
  (eps_model, params, _), (v_model, params_v, _) = _v_models(shared_unet)
  assert jax.tree.structure(params) == jax.tree.structure(params_v)
  params = jax.tree.map(lambda x: x + 0.01, params)
  z = jax.random.normal(jax.random.PRNGKey(1), (3, eps_model.model_config.latent_dim))
  x_t = jax.random.normal(jax.random.PRNGKey(2), (3, 28, 28, 3))
  t = jnp.array([0, 20, 49], jnp.int32)    # test_tiny: T = 50.
  fn = lambda m: m.apply(params, 'm1', x_t, t, z, method=diffmvae.DiffMVAE.eps_prediction)
  out, eps = np.asarray(fn(eps_model)), np.asarray(fn(v_model))
  abar = np.asarray(diffmvae.make_diffusion_schedule(v_model.model_config).alphas_cumprod)
  abar = abar[np.asarray(t)][:, None, None, None]
  np.testing.assert_allclose(eps, np.sqrt(abar) * out + np.sqrt(1 - abar) * np.asarray(x_t),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('loss', ['simple', 'elbo'])
def test_v_prediction_loss_by_brute_force(loss):
  """Per-modality U-Nets: the v model's image term is the squared v error (simple) or the
  bound of eps_from_v (elbo), with t and noise drawn as _diffusion_nll_rows draws them."""
  (eps_model, params, mods), (v_model, _, _) = _v_models(False, loss)
  params = jax.tree.map(lambda x: x + 0.01, params)
  batch = _batch(mods)
  z = jax.random.normal(jax.random.PRNGKey(3), (4, v_model.model_config.latent_dim))
  key = jax.random.PRNGKey(4)
  schedule = diffmvae.make_diffusion_schedule(v_model.model_config)
  T = v_model.model_config.diffusion.num_timesteps

  def rows(module):
    locs = {n: module.coarse_location(n, z) for n in module.diffusion_names}
    return module._diffusion_nll_rows(batch, z, key, False, locs)
  got = np.asarray(v_model.apply(params, method=rows))

  _, key_t, key_noise = jax.random.split(key, 3)
  for i, name in enumerate(('m0', 'm1')):
    offset = v_model.apply(params, name, z, method=diffmvae.DiffMVAE.residual_offset)
    x0 = batch[name] - offset
    t = schedules.sample_t(jax.random.fold_in(key_t, i), T, (4,))
    noise = jax.random.normal(jax.random.fold_in(key_noise, i), x0.shape)
    x_t = schedules.q_sample(schedule, x0, t, noise)
    out = eps_model.apply(params, name, x_t, t, z, method=diffmvae.DiffMVAE.eps_prediction)
    if loss == 'simple':
      want = np.sum((np.asarray(schedules.v_target(schedule, x0, t, noise)) - np.asarray(out))
                    ** 2, axis=(1, 2, 3))
    else:
      eps = schedules.eps_from_v(schedule, x_t, t, out)
      want = np.asarray(schedules.vlb_nll(schedule, x0, t, noise, eps))
    np.testing.assert_allclose(got[:, i], want, rtol=1e-4)
