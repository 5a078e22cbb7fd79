"""Epsilon-predicting U-Net conditioned on the shared latent z (DESIGN §2.4).

Conditioning vector c = MLP(sinusoidal(t)) + k MLP(z) [+ modality embedding], k = 1 unless
the caller drops z for classifier-free guidance (k = 0: the unconditional branch); every residual
block applies adaptive group norm, GroupNorm without affine followed by (1 + scale) h + shift
with (scale, shift) = Dense(silu(c)). Downsampling halves the spatial size between levels
(28 -> 14 -> 7 with three levels); self-attention runs at the sizes in attention_resolutions.

Mixed precision (``dtype``, model.diffusion.compute_dtype): convolutions, dense layers and
attention compute in ``dtype`` (e.g. bfloat16) with float32 parameters; group norms, the
residual stream and the output stay float32.
"""

import math
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

# model.diffusion.compute_dtype values.
COMPUTE_DTYPES = ('float32', 'bfloat16')

def timestep_embedding(t, dim: int, max_period: float = 10000.0):
  """Sinusoidal embedding of integer timesteps (Transformer / DDPM style).

  Args:
    t: int32 or float32 (B,).
    dim: even embedding size.
    max_period: the longest wavelength.

  Returns:
    float32 (B, dim): [cos(t w_0..), sin(t w_0..)] with w_i = max_period^(-i / (dim/2)).
  """
  if dim % 2:
    raise ValueError(f'timestep embedding dim must be even, got {dim}.')
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = t.astype(jnp.float32)[:, None] * freqs[None]
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class AdaGroupNorm(nn.Module):
  """GroupNorm without affine, then (1 + scale) h + shift from the conditioning vector."""
  num_groups: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, cond):
    channels = h.shape[-1]
    if channels % self.num_groups:
      raise ValueError(f'num_groups={self.num_groups} must divide the channel count {channels}.')
    h = nn.GroupNorm(num_groups=self.num_groups, use_bias=False, use_scale=False,
                     dtype=jnp.float32)(h)
    scale, shift = jnp.split(nn.Dense(2 * channels, dtype=self.dtype)(nn.silu(cond)), 2, axis=-1)
    return h * (1.0 + scale[:, None, None, :]) + shift[:, None, None, :]


class ResBlock(nn.Module):
  """Two 3x3 convolutions with adaptive group norm; 1x1 skip when the width changes."""
  channels: int
  num_groups: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cond, train: bool):
    h = nn.silu(AdaGroupNorm(self.num_groups, self.dtype)(x, cond))
    h = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(h)
    h = nn.silu(AdaGroupNorm(self.num_groups, self.dtype)(h, cond))
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    h = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(h)
    if x.shape[-1] != self.channels:
      x = nn.Conv(self.channels, (1, 1), dtype=self.dtype)(x)
    return x.astype(jnp.float32) + h.astype(jnp.float32)


class AttentionBlock(nn.Module):
  """Residual multi-head self-attention over the H*W positions."""
  num_heads: int
  num_groups: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, height, width, channels = x.shape
    h = nn.GroupNorm(num_groups=self.num_groups, dtype=jnp.float32)(x)
    h = h.reshape(b, height * width, channels)
    h = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype)(h)
    return x + h.reshape(b, height, width, channels).astype(jnp.float32)


class UNet(nn.Module):
  """eps_theta(x_t, t, z): the diffusion decoder's noise predictor.

  Attributes:
    out_channels: channels of the predicted noise (= image channels).
    base_channels: width of the first level; level i has base_channels * channel_mults[i].
    channel_mults: per-level width multipliers; len - 1 downsamplings by 2.
    num_res_blocks: residual blocks per level on the way down (one more on the way up).
    attention_resolutions: spatial sizes (height) with self-attention; may be empty.
    num_groups: GroupNorm groups; must divide every level's width.
    dropout: dropout rate inside residual blocks (active when train=True; needs a 'dropout' rng).
    num_modalities: > 0 adds a learned modality embedding to the conditioning (one U-Net
      shared by several image modalities); modality_id is then required.
    num_heads: attention heads; must divide the width where attention runs.
    dtype: compute dtype of convolutions, dense layers and attention (parameters stay
      float32; norms, the residual stream and the output are float32).
  """
  out_channels: int
  base_channels: int = 64
  channel_mults: Tuple[int, ...] = (1, 2, 2)
  num_res_blocks: int = 2
  attention_resolutions: Tuple[int, ...] = (7,)
  num_groups: int = 8
  dropout: float = 0.0
  num_modalities: int = 0
  num_heads: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_t, t, z, modality_id: Optional[jnp.ndarray] = None,
               train: bool = False, z_keep: Optional[jnp.ndarray] = None):
    """Predicts the noise in x_t.

    Args:
      x_t: float32 (B, H, W, C) noisy images; H, W divisible by 2^(len(channel_mults) - 1).
      t: int32 (B,) timesteps.
      z: float32 (B, D) shared latent.
      modality_id: int32 (B,) in [0, num_modalities) when num_modalities > 0, else None.
      train: enables dropout.
      z_keep: float32 (B,) of 1 (z conditions the row) or 0 (z's term is left out of the
        conditioning: the unconditional branch of classifier-free guidance); None = all 1.

    Returns:
      float32 (B, H, W, out_channels); exactly zero at initialisation (zero-init last conv).
    """
    factor = 2 ** (len(self.channel_mults) - 1)
    if x_t.shape[1] % factor or x_t.shape[2] % factor:
      raise ValueError(
          f'U-Net input size {x_t.shape[1]}x{x_t.shape[2]} must be divisible by {factor} '
          f'(2^(len(channel_mults) - 1) with channel_mults={self.channel_mults}).')
    if (self.num_modalities > 0) != (modality_id is not None):
      raise ValueError(f'modality_id must be given iff num_modalities > 0 '
                       f'(num_modalities={self.num_modalities}).')
    cond_dim = 4 * self.base_channels
    dense = lambda features, name: nn.Dense(features, dtype=self.dtype, name=name)
    mlp = lambda h, name: dense(cond_dim, f'{name}_1')(nn.silu(dense(cond_dim, f'{name}_0')(h)))
    cond = mlp(timestep_embedding(t, self.base_channels), 'time_mlp')
    z_term = mlp(z.astype(jnp.float32), 'z_mlp')
    if z_keep is not None:
      z_term = z_term * z_keep.astype(z_term.dtype)[:, None]
    cond = cond + z_term
    if self.num_modalities > 0:
      cond = cond + nn.Embed(self.num_modalities, cond_dim, name='modality_embed')(modality_id)
    cond = cond.astype(jnp.float32)
    conv = lambda features, **kw: nn.Conv(features, (3, 3), dtype=self.dtype, **kw)

    res_block = lambda mult: ResBlock(self.base_channels * mult, self.num_groups, self.dropout,
                                      self.dtype)
    attend = lambda h: (AttentionBlock(self.num_heads, self.num_groups, self.dtype)(h)
                        if h.shape[1] in self.attention_resolutions else h)

    h = conv(self.base_channels)(x_t).astype(jnp.float32)
    skips = [h]
    for level, mult in enumerate(self.channel_mults):
      for _ in range(self.num_res_blocks):
        h = attend(res_block(mult)(h, cond, train))
        skips.append(h)
      if level != len(self.channel_mults) - 1:
        h = conv(h.shape[-1], strides=(2, 2))(h).astype(jnp.float32)
        skips.append(h)

    h = attend(res_block(self.channel_mults[-1])(h, cond, train))
    h = res_block(self.channel_mults[-1])(h, cond, train)

    for level, mult in reversed(list(enumerate(self.channel_mults))):
      for _ in range(self.num_res_blocks + 1):
        h = attend(res_block(mult)(jnp.concatenate([h, skips.pop()], axis=-1), cond, train))
      if level != 0:
        b, height, width, channels = h.shape
        h = jax.image.resize(h, (b, 2 * height, 2 * width, channels), 'nearest')
        h = conv(channels)(h).astype(jnp.float32)

    h = nn.silu(nn.GroupNorm(num_groups=self.num_groups, dtype=jnp.float32)(h))
    out = conv(self.out_channels, kernel_init=nn.initializers.zeros,
               bias_init=nn.initializers.zeros)(h)
    return out.astype(jnp.float32)
