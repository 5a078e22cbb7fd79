"""The z-conditioned epsilon U-Net: shapes, zero init, conditioning paths, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffmvae_jax.models.unet import UNet, timestep_embedding

SMALL = dict(base_channels=8, num_res_blocks=1, num_groups=4, num_heads=2)
# Compiling `init` with the default threefry PRNG costs ~20 s on a small CPU (one threefry
# graph per parameter); the counter-based rbg generator compiles ~3x faster, and the PRNG
# implementation is irrelevant to what these tests check. (A function, so that importing
# this module does not initialise the JAX backend.)


def _init_key():
  return jax.random.key(0, impl='unsafe_rbg')


def _inputs(batch, size, channels, latent=6, seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  x = jax.random.normal(k1, (batch, size, size, channels))
  t = jnp.arange(batch, dtype=jnp.int32) * 37
  z = jax.random.normal(k2, (batch, latent))
  return x, t, z


def _activate_zero_convs(params, seed=1):
  """Replaces all-zero conv kernels (the zero-initialised last conv) by random values."""
  leaves, treedef = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  leaves = [0.1 * jax.random.normal(k, p.shape) if p.ndim == 4 and not np.any(p) else p
            for k, p in zip(keys, leaves)]
  return jax.tree_util.tree_unflatten(treedef, leaves)


def _random_params(model, *args):
  """Random parameters of the right shapes without compiling `init` (eval_shape only)."""
  shapes = jax.eval_shape(model.init, _init_key(), *args)['params']
  rng = np.random.default_rng(0)
  fill = lambda path, s: jnp.asarray(
      (path[-1].key == 'scale') + 0.1 * rng.standard_normal(s.shape), jnp.float32)
  return jax.tree_util.tree_map_with_path(fill, shapes)


@functools.lru_cache(maxsize=None)
def _model_28x28():
  """UNet for 28x28x3 (28 -> 14 -> 7, attention at 7), its params and jitted apply, once."""
  model = UNet(out_channels=3, channel_mults=(1, 2, 2), attention_resolutions=(7,), **SMALL)
  x, t, z = _inputs(2, 28, 3)
  params = jax.jit(model.init)(_init_key(), x, t, z)['params']
  apply = jax.jit(lambda p, x, t, z: model.apply({'params': p}, x, t, z))
  return params, apply


def test_timestep_embedding():
  emb = timestep_embedding(jnp.array([0, 5]), 8)
  assert emb.shape == (2, 8) and emb.dtype == jnp.float32
  np.testing.assert_allclose(emb[0], [1, 1, 1, 1, 0, 0, 0, 0])
  np.testing.assert_allclose(emb[1, 0], np.cos(5.0), rtol=1e-6)


def test_shape_and_zero_init_28x28x3():
  params, apply = _model_28x28()
  out = apply(params, *_inputs(2, 28, 3))
  assert out.shape == (2, 28, 28, 3) and out.dtype == jnp.float32
  np.testing.assert_array_equal(out, 0.0)
  assert any('AttentionBlock' in name for name in params)


def test_z_and_t_change_the_output_once_last_conv_is_nonzero():
  params, apply = _model_28x28()
  params = _activate_zero_convs(params)
  x, t, z = _inputs(2, 28, 3)
  base = apply(params, x, t, z)  # same shapes as above: no new compilation
  assert np.abs(base).max() > 0.0
  assert not np.allclose(base, apply(params, x, t + 1, z))
  assert not np.allclose(base, apply(params, x, t, z + 1.0))


def test_gradient_wrt_z_is_nonzero():
  model = UNet(out_channels=1, channel_mults=(1, 2), attention_resolutions=(4,), **SMALL)
  x, t, z = _inputs(2, 8, 1)
  params = _random_params(model, x, t, z)
  grad_z = jax.jit(jax.grad(
      lambda z: jnp.sum(model.apply({'params': params}, x, t, z) ** 2)))(z)
  assert np.all(np.isfinite(grad_z)) and np.abs(grad_z).min() > 0.0


def test_shape_32x32x1_without_attention():
  model = UNet(out_channels=1, channel_mults=(1, 2), attention_resolutions=(), **SMALL)
  x, t, z = _inputs(3, 32, 1, latent=4)
  params = _random_params(model, x, t, z)
  assert not any('AttentionBlock' in name for name in params)
  out = jax.jit(model.apply)({'params': params}, x, t, z)
  assert out.shape == (3, 32, 32, 1) and np.all(np.isfinite(out)) and np.any(out != 0.0)


@pytest.mark.parametrize('size,mults', [(64, (1, 2, 2)), (128, (1, 1, 2, 2, 4))])
def test_larger_images_shapes_only(size, mults):
  model = UNet(out_channels=3, channel_mults=mults, attention_resolutions=(16,), **SMALL)
  x, t, z = _inputs(1, size, 3)
  out = jax.eval_shape(lambda x: model.init_with_output(_init_key(), x, t, z)[0], x)
  assert out.shape == (1, size, size, 3) and out.dtype == jnp.float32


def test_modality_embedding_and_dropout():
  model = UNet(out_channels=1, channel_mults=(1, 2), attention_resolutions=(8,),
               num_modalities=3, dropout=0.1, **SMALL)
  x, t, z = _inputs(2, 16, 1)
  modality = jnp.array([0, 2], jnp.int32)
  params = _random_params(model, x, t, z, modality)
  assert params['modality_embed']['embedding'].shape == (3, 4 * SMALL['base_channels'])
  apply = jax.jit(lambda m: model.apply({'params': params}, x, t, z, m))
  assert not np.allclose(apply(modality), apply(jnp.array([1, 1], jnp.int32)))
  eval_out = apply(modality)
  train_out = jax.jit(lambda k: model.apply({'params': params}, x, t, z, modality, train=True,
                                            rngs={'dropout': k}))(jax.random.key(5))
  assert train_out.shape == eval_out.shape and not np.allclose(train_out, eval_out)
  with pytest.raises(ValueError, match='modality_id'):
    jax.eval_shape(model.apply, {'params': params}, x, t, z)


def test_errors():
  x, t, z = _inputs(1, 30, 1)
  with pytest.raises(ValueError, match='divisible by 4'):
    jax.eval_shape(UNet(out_channels=1, **SMALL).init, _init_key(), x, t, z)
  x, t, z = _inputs(1, 8, 1)
  with pytest.raises(ValueError, match='modality_id'):
    jax.eval_shape(UNet(out_channels=1, **SMALL).init, _init_key(), x, t, z,
                   jnp.zeros((1,), jnp.int32))
  with pytest.raises(ValueError, match='num_groups'):
    jax.eval_shape(UNet(out_channels=1, base_channels=8, num_groups=3).init, _init_key(), x, t, z)


def test_bfloat16_compute_keeps_float32_params_and_output_and_the_same_parameter_tree():
  """dtype=bfloat16: same parameter names, shapes and float32 dtypes (checkpoints load
  either way); float32 output within bfloat16 rounding of the float32 model's; finite
  float32 gradients."""
  params, apply = _model_28x28()
  params = _activate_zero_convs(params)
  model = UNet(out_channels=3, channel_mults=(1, 2, 2), attention_resolutions=(7,),
               dtype=jnp.bfloat16, **SMALL)
  x, t, z = _inputs(2, 28, 3)
  shapes = jax.eval_shape(model.init, _init_key(), x, t, z)['params']
  assert (jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(params))
  assert all(s.dtype == jnp.float32 and s.shape == p.shape for s, p in zip(
      jax.tree_util.tree_leaves(shapes), jax.tree_util.tree_leaves(params)))
  out32 = np.asarray(apply(params, x, t, z))
  out16 = jax.jit(lambda p: model.apply({'params': p}, x, t, z))(params)
  assert out16.dtype == jnp.float32
  err = np.abs(np.asarray(out16) - out32).max() / np.abs(out32).max()
  assert 0.0 < err < 0.05, err    # bfloat16 has 8 bits of mantissa (~0.4 % a rounding).
  grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({'params': p}, x, t, z) ** 2)))(params)
  assert all(g.dtype == jnp.float32 and np.isfinite(g).all()
             for g in jax.tree_util.tree_leaves(grads))
