"""2-D convolutions as shifted slices + one matmul, for fast gradients on XLA:CPU.

XLA's CPU backend computes the gradients of small strided convolutions, and above all of
stride-2 transposed convolutions, with slow generic kernels: on 2 cores the backward pass of
the MoPoE PolyMNIST decoder's three transposed convs took 47 ms at batch 32 against 3 ms
forward (benchmarks/peer_compare.sh). Written as "gather the k*k shifted views of the padded
input, concatenate on channels, one (k*k*C_in, C_out) matmul", forward and backward are
slices, pads and GEMMs, which XLA runs at matmul speed: 3-6x faster for those layers.

The modules here are drop-in replacements for ``flax.linen.Conv`` and
``flax.linen.ConvTranspose`` in the uses this project has: same parameter names
('kernel' (kh, kw, C_in, C_out) HWIO, 'bias' (C_out,)), same initialisers, same outputs to
float32 rounding (tests/test_patch_conv.py checks both against lax), so checkpoints written
with the flax layers restore unchanged.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _pads(padding, in_shape, kernel_size, strides):
  if isinstance(padding, str):
    return jax.lax.padtype_to_pads(in_shape, kernel_size, strides, padding)
  return [tuple(p) for p in padding]


def conv2d(x, kernel, strides=(1, 1), padding='SAME'):
  """lax.conv_general_dilated (NHWC, HWIO) as k*k shifted strided slices + one matmul.

  Args:
    x: float (B, H, W, C_in).
    kernel: float (kh, kw, C_in, C_out).
    strides: (sh, sw).
    padding: 'SAME' | 'VALID' | ((top, bottom), (left, right)).

  Returns:
    float (B, H_out, W_out, C_out), the same as the lax convolution (no flipped kernel).
  """
  kh, kw, c_in, c_out = kernel.shape
  sh, sw = strides
  (pt, pb), (pl, pr) = _pads(padding, x.shape[1:3], (kh, kw), strides)
  h_out = (x.shape[1] + pt + pb - kh) // sh + 1
  w_out = (x.shape[2] + pl + pr - kw) // sw + 1
  # Pad enough that every strided slice below has exactly h_out x w_out entries.
  need_h = (h_out - 1) * sh + kh
  need_w = (w_out - 1) * sw + kw
  xp = jnp.pad(x, ((0, 0), (pt, max(need_h - x.shape[1] - pt, 0)),
                   (pl, max(need_w - x.shape[2] - pl, 0)), (0, 0)))
  views = [xp[:, i:i + (h_out - 1) * sh + 1:sh, j:j + (w_out - 1) * sw + 1:sw]
           for i in range(kh) for j in range(kw)]
  patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
  return patches @ kernel.reshape(kh * kw * c_in, c_out)


def _phase_kernel(kernel):
  """The (4 C_in, 4 C_out) matrix of a 3x3 stride-2 'SAME' transposed conv by output phase.

  Output pixel (2p + a, 2q + b) depends on input pixels (p - 1 + i, q - 1 + j), i, j in
  {0, 1}: for an even phase (a = 0) window row i = 0 uses kernel row 0 and i = 1 row 2; for an
  odd phase only i = 1 contributes, with kernel row 1. Rows are ordered (i, j, C_in), columns
  (a, b, C_out).
  """
  zero = jnp.zeros_like(kernel[0, 0])
  taps = ({0: 0, 1: 2}, {0: None, 1: 1})
  columns = []
  for a in (0, 1):
    for b in (0, 1):
      rows = []
      for i in (0, 1):
        for j in (0, 1):
          ki, kj = taps[a][i], taps[b][j]
          rows.append(zero if ki is None or kj is None else kernel[ki, kj])
      columns.append(jnp.concatenate(rows, axis=0))
  return jnp.concatenate(columns, axis=1)


def conv_transpose_3x3_s2(x, kernel):
  """lax.conv_transpose(x, kernel, (2, 2), 'SAME') for a 3x3 HWIO kernel, as one matmul.

  Args:
    x: float (B, H, W, C_in).
    kernel: float (3, 3, C_in, C_out), not flipped (flax's ConvTranspose convention).

  Returns:
    float (B, 2H, 2W, C_out).
  """
  batch, height, width, _ = x.shape
  c_out = kernel.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)))
  patches = jnp.concatenate([xp[:, i:i + height, j:j + width] for i in (0, 1) for j in (0, 1)],
                            axis=-1)                                    # (B, H, W, 4 C_in)
  y = patches @ _phase_kernel(kernel)                                   # (B, H, W, 4 C_out)
  y = y.reshape(batch, height, width, 2, 2, c_out).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(batch, 2 * height, 2 * width, c_out)


class Conv(nn.Module):
  """``nn.Conv`` (2-D, NHWC, no dilation or groups) computed by `conv2d`.

  Attributes: features, kernel_size, strides, padding, use_bias, kernel_init, bias_init as
  in flax.linen.Conv.
  """
  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  padding: str | Sequence = 'SAME'
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    """Args: x float32 (B, H, W, C_in). Returns: float32 (B, H_out, W_out, features)."""
    kernel = self.param('kernel', self.kernel_init,
                        tuple(self.kernel_size) + (x.shape[-1], self.features))
    y = conv2d(x, kernel, tuple(self.strides), self.padding)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,))
    return y


class ConvTranspose3x3Stride2(nn.Module):
  """``nn.ConvTranspose(features, (3, 3), strides=(2, 2), padding='SAME')`` as one matmul.

  Maps (B, H, W, C) to (B, 2H, 2W, features); callers crop to odd sizes.
  """
  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init, (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', self.bias_init, (self.features,))
    return conv_transpose_3x3_s2(x, kernel) + bias
