"""patch_conv's slice + matmul convolutions equal flax's Conv / ConvTranspose exactly."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffmvae_jax.models import patch_conv


def _close(a, b):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


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
