"""Feed-forward decoders p_m(x_m | z) and their negative log-likelihoods.

Every decoder maps z (B, D) to the parameters of a distribution; the matching
``*_nll`` function returns -log p(x | z) summed over the modality's dimensions,
shape (B,). These decoders are what makes the same model the MoPoE-VAE baseline
when they are chosen for the image modalities.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffmvae_jax.models import patch_conv


def upsampling_sizes(size: int, num_layers: int) -> list:
  """Spatial sizes of a stride-2 transposed-conv stack that ends exactly at `size`.

  Ceil-halving from the target, so each layer maps s -> 2s (even target) or 2s - 1 (odd
  target, one row/column cropped): 28 with 3 layers -> [4, 7, 14, 28]; 64 with 4 ->
  [4, 8, 16, 32, 64]; 128 with 5 -> [4, 8, 16, 32, 64, 128]. These are the sizes the
  ImageEncoder's stride-2 convs produce on the way down.

  Args:
    size: target height or width.
    num_layers: number of stride-2 layers.

  Returns:
    num_layers + 1 ints, from the first feature map to `size`.
  """
  sizes = [size]
  for _ in range(num_layers):
    sizes.append(math.ceil(sizes[-1] / 2))
  return sizes[::-1]


class ImageDecoder(nn.Module):
  """[Dense hidden] -> Dense (h0 x w0 x C0) -> 3x3 stride-2 transposed convs -> (H, W, C).

  With out_shape (28, 28, 3), channels (128, 64, 32) and hidden 0 (no hidden layer)
  this is the MoPoE PolyMNIST decoder (z -> 2048 -> 4x4x128 -> 7 -> 14 -> 28). The
  intermediate sizes come from the target by ceil-halving (`upsampling_sizes`), one
  transposed conv per entry of `channels` (4 for 64x64, 5 for 128x128 down to 4x4), so the
  output has exactly out_shape. The output is unbounded: the location of the likelihood
  for images scaled to [0, 1] (Laplace, Gaussian) or its logits (Bernoulli images, masks
  with out_shape (H, W, 1)).

  Attributes:
    out_shape: (H, W, C) of one example.
    channels: channels of the first feature map, then of each transposed conv but the
      last (whose output has C channels).
    hidden: width of a dense ReLU layer before the projection (0 = none).
  """
  out_shape: tuple
  channels: Sequence[int] = (128, 64, 32)
  hidden: int = 512

  @nn.compact
  def __call__(self, z):
    """Args: z float32 (B, D). Returns: float32 (B, H, W, C) location or logits."""
    height, width, out_c = self.out_shape
    heights = upsampling_sizes(height, len(self.channels))   # e.g. [4, 7, 14, 28]
    widths = upsampling_sizes(width, len(self.channels))
    h = nn.relu(nn.Dense(self.hidden, name='hidden')(z)) if self.hidden else z
    h = nn.relu(nn.Dense(heights[0] * widths[0] * self.channels[0], name='project')(h))
    h = h.reshape((z.shape[0], heights[0], widths[0], self.channels[0]))
    out_channels = list(self.channels[1:]) + [out_c]
    for i, c in enumerate(out_channels):
      h = patch_conv.ConvTranspose3x3Stride2(c, name=f'deconv{i}')(h)
      h = h[:, :heights[i + 1], :widths[i + 1], :]   # SAME doubles; crop 8 -> 7 etc.
      if i < len(out_channels) - 1:
        h = nn.relu(h)
    assert h.shape[1:] == (height, width, out_c), (h.shape, self.out_shape)
    return h


class CaptionDecoder(nn.Module):
  """Dense -> (L/2^k x C) -> transposed 1-D convs -> per-token logits (B, L, V)."""
  length: int
  vocab_size: int
  channels: Sequence[int] = (128, 64)
  hidden: int = 256

  @nn.compact
  def __call__(self, z):
    """Args: z (B, D). Returns: logits (B, L, vocab_size)."""
    steps = len(self.channels)
    if self.length % (2 ** steps):
      raise ValueError(f'Caption length {self.length} must be divisible by {2 ** steps}.')
    base = self.length // (2 ** steps)
    h = nn.relu(nn.Dense(self.hidden, name='hidden')(z))
    h = nn.relu(nn.Dense(base * self.channels[0], name='project')(h))
    h = h.reshape((z.shape[0], base, self.channels[0]))
    for i, c in enumerate(self.channels):
      h = nn.relu(nn.ConvTranspose(c, (4,), strides=(2,), padding='SAME', name=f'deconv{i}')(h))
    return nn.Dense(self.vocab_size, name='logits')(h)


class LabelDecoder(nn.Module):
  """MLP -> class logits (B, num_classes)."""
  num_classes: int
  hidden: int = 128

  @nn.compact
  def __call__(self, z):
    h = nn.relu(nn.Dense(self.hidden, name='hidden0')(z))
    h = nn.relu(nn.Dense(self.hidden, name='hidden1')(h))
    return nn.Dense(self.num_classes, name='logits')(h)


class AttributesDecoder(nn.Module):
  """MLP -> one Bernoulli logit per attribute (B, num_attributes)."""
  num_attributes: int
  hidden: int = 128

  @nn.compact
  def __call__(self, z):
    """Args: z float32 (B, D). Returns: logits float32 (B, num_attributes)."""
    h = nn.relu(nn.Dense(self.hidden, name='hidden0')(z))
    h = nn.relu(nn.Dense(self.hidden, name='hidden1')(h))
    return nn.Dense(self.num_attributes, name='logits')(h)


def _sum_per_example(x):
  return jnp.sum(x.reshape((x.shape[0], -1)), axis=-1)


def image_nll(kind: str, location, x, scale: float):
  """-log p(x | z) for a feed-forward image decoder, summed over pixels.

  Args:
    kind: 'laplace' | 'gaussian' (fixed scale) | 'bernoulli' (location = logits).
    location: (B, H, W, C) decoder output.
    x: (B, H, W, C) images in [-1, 1]; the likelihood is on (x + 1) / 2 in [0, 1].
    scale: the fixed Laplace b / Gaussian sigma.

  Returns:
    (B,) float32.
  """
  x01 = (x + 1.0) / 2.0
  if kind == 'laplace':
    nll = jnp.abs(x01 - location) / scale + jnp.log(2.0 * scale)
  elif kind == 'gaussian':
    nll = 0.5 * jnp.square((x01 - location) / scale) + jnp.log(scale) + 0.5 * jnp.log(2 * jnp.pi)
  elif kind == 'bernoulli':
    nll = -(x01 * jax.nn.log_sigmoid(location) + (1 - x01) * jax.nn.log_sigmoid(-location))
  else:
    raise ValueError(f'Unknown image likelihood {kind!r}.')
  return _sum_per_example(nll)


def image_mean(kind: str, location):
  """The decoder's mean image in [-1, 1] (what generation shows)."""
  x01 = jax.nn.sigmoid(location) if kind == 'bernoulli' else jnp.clip(location, 0.0, 1.0)
  return x01 * 2.0 - 1.0


def bernoulli_nll(logits, targets):
  """Bernoulli -log p(x | z) from logits, summed over every non-batch dimension.

  The likelihood of binary masks (pixels) and attribute vectors (attributes).

  Args:
    logits: float32 (B, ...) decoder output.
    targets: float32 (B, ...) of the same shape, in {0, 1} (values in [0, 1] give the
      cross-entropy).

  Returns:
    (B,) float32.
  """
  targets = targets.astype(logits.dtype)
  nll = -(targets * jax.nn.log_sigmoid(logits) + (1.0 - targets) * jax.nn.log_sigmoid(-logits))
  return _sum_per_example(nll)


def caption_nll(logits, tokens, pad_id: int = 0):
  """Categorical -log p(tokens | z) summed over non-padding tokens (<eos> counts).

  Args: logits (B, L, V); tokens (B, L) int32. Returns: (B,).
  """
  logp = jax.nn.log_softmax(logits)
  token_logp = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
  return -jnp.sum(jnp.where(tokens != pad_id, token_logp, 0.0), axis=-1)


def label_nll(logits, labels):
  """Categorical -log p(label | z). Args: logits (B, K); labels (B,). Returns: (B,)."""
  logp = jax.nn.log_softmax(logits)
  return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
