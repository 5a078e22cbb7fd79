"""patch_conv's slice + matmul convolutions equal flax's Conv / ConvTranspose exactly."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffmvae_jax.models import patch_conv


def _close(a, b):
  # Equal up to float32 summation order: kernel gradients sum thousands of products and
  # reach |g| ~ 50, and CPUs with other vector widths (AVX-512 vs AVX2) add them in another
  # order, so the absolute tolerance scales with the largest entry (a wrong tap or stride
  # gives O(1) differences).
  b = np.asarray(b)
  atol = 1e-5 * max(1.0, float(np.max(np.abs(b), initial=0.0)))
  np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=atol)


@pytest.mark.parametrize('size,c_in,c_out,strides,padding', [
    (28, 3, 8, (2, 2), ((1, 1), (1, 1))), (7, 5, 4, (2, 2), ((1, 1), (1, 1))),
    (28, 4, 6, (1, 1), 'SAME'), (28, 4, 6, (2, 2), 'SAME'), (9, 3, 2, (1, 1), 'VALID'),
    (8, 2, 3, (1, 1), ((0, 0), (0, 0)))])
def test_conv_matches_flax_conv_values_and_gradients(size, c_in, c_out, strides, padding):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, c_in))
  kernel_size = (1, 1) if padding == ((0, 0), (0, 0)) else (3, 3)
  ours = patch_conv.Conv(c_out, kernel_size, strides=strides, padding=padding)
  ref = nn.Conv(c_out, kernel_size, strides=strides, padding=padding)
  params = ref.init(jax.random.PRNGKey(1), x)
  # Same parameter tree and the same initial values (checkpoints restore unchanged).
  ours_params = ours.init(jax.random.PRNGKey(1), x)
  jax.tree.map(_close, ours_params, params)
  params = jax.tree.map(lambda p: p + 0.1, params)    # A non-zero bias too.
  _close(ours.apply(params, x), ref.apply(params, x))
  loss = lambda mod: lambda p, x: jnp.sum(jnp.sin(mod.apply(p, x)))
  g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  g_ref = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  jax.tree.map(_close, g_ours, g_ref)


@pytest.mark.parametrize('size,c_in,c_out', [(4, 6, 5), (7, 4, 3), (14, 3, 2)])
def test_conv_transpose_matches_flax_values_and_gradients(size, c_in, c_out):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, c_in))
  ours = patch_conv.ConvTranspose3x3Stride2(c_out)
  ref = nn.ConvTranspose(c_out, (3, 3), strides=(2, 2), padding='SAME')
  params = ref.init(jax.random.PRNGKey(1), x)
  jax.tree.map(_close, ours.init(jax.random.PRNGKey(1), x), params)
  params = jax.tree.map(lambda p: p + 0.1, params)
  out = ours.apply(params, x)
  assert out.shape == (2, 2 * size, 2 * size, c_out)
  _close(out, ref.apply(params, x))
  loss = lambda mod: lambda p, x: jnp.sum(jnp.sin(mod.apply(p, x)))
  jax.tree.map(_close, jax.grad(loss(ours), argnums=(0, 1))(params, x),
               jax.grad(loss(ref), argnums=(0, 1))(params, x))


def test_mopoe_losses_and_gradients_equal_the_flax_layer_model(monkeypatch):
  """A fixed batch's loss terms and gradients equal those of the pre-patch_conv model."""
  from configs import compare_polymnist  # pylint: disable=g-import-not-at-top
  from diffmvae_jax.models import diffmvae  # pylint: disable=g-import-not-at-top
  from diffmvae_jax.models import modalities as modalities_lib  # pylint: disable=g-import-not-at-top
  from diffmvae_jax.data.dataset_api import ModalitySpec as Spec  # pylint: disable=g-import-not-at-top

  config = compare_polymnist.get_config('mopoe')
  specs = {f'm{i}': Spec(f'm{i}', 'image', (28, 28, 3)) for i in range(3)}
  mods = modalities_lib.resolve_modalities(config, specs)
  rng = np.random.default_rng(0)
  batch = {m.name: rng.uniform(-1, 1, (4, 28, 28, 3)).astype(np.float32) for m in mods}
  key = jax.random.PRNGKey(3)

  def terms_and_grads():
    model = diffmvae.model_from_config(config, mods)
    params = model.init(jax.random.PRNGKey(0), diffmvae.dummy_batch(mods), key,
                        method=diffmvae.DiffMVAE.init_all)
    loss = lambda p: (lambda t: (t['loss'], t))(model.apply(p, batch, key))
    (_, terms), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return params, terms, grads

  params, terms, grads = terms_and_grads()
  flax_conv = lambda features, kernel_size, strides, padding, name: nn.Conv(
      features, kernel_size, strides=strides, padding=padding, name=name)
  flax_deconv = lambda features, name: nn.ConvTranspose(
      features, (3, 3), strides=(2, 2), padding='SAME', name=name)
  monkeypatch.setattr(patch_conv, 'Conv', flax_conv)
  monkeypatch.setattr(patch_conv, 'ConvTranspose3x3Stride2', flax_deconv)
  ref_params, ref_terms, ref_grads = terms_and_grads()
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), params, ref_params)
  for name in ('loss', 'kl', 'nll/m0', 'nll/m1', 'nll/m2'):
    np.testing.assert_allclose(terms[name], ref_terms[name], rtol=1e-5, err_msg=name)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
               grads, ref_grads)
