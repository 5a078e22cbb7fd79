"""Score network over latents and its denoising score matching loss (DESIGN §2.5).

`ScoreNet` is a residual MLP conditioned on t through a sinusoidal embedding of 1000 t
(the DDPM-style embedding used by score_sde for VP/sub-VP models: 1000 t spans the same range
as a 1000-step DDPM's integer timesteps, so the fixed frequencies cover the whole of [0, 1]).
Inputs are scaled by c_in(t) = 1 / sqrt(mean_coeff^2 + std^2), the inverse marginal scale of
unit-variance (standardised) latents, so VE inputs stay O(1). With `output_scaling` the network
predicts the noise, and the score is returned as -net(z, t) / std(t).
"""

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffmvae_jax.diffusion.sde import SDE


def sinusoidal_embedding(t, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
  """Sinusoidal features of scale * t.

  Args:
    t: float32 (B,).
    dim: even embedding size.
    scale: multiplies t before embedding.
    max_period: longest period of the geometric frequency ladder.

  Returns:
    float32 (B, dim): [sin(scale t w_k), cos(scale t w_k)], w_k = max_period^(-k / (dim/2)).
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = (scale * t)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


class ResidualBlock(nn.Module):
  """h + Dense(SiLU(Dense(SiLU(h)) + Dense(temb))); the last Dense starts at zero."""
  width: int

  @nn.compact
  def __call__(self, h, temb):
    """Args: h (B, width), temb (B, E). Returns: (B, width)."""
    y = nn.Dense(self.width, name='dense0')(nn.silu(h))
    y = y + nn.Dense(self.width, name='time_shift')(temb)
    y = nn.Dense(self.width, kernel_init=nn.initializers.zeros, name='dense1')(nn.silu(y))
    return h + y


class ScoreNet(nn.Module):
  """Residual MLP score model s_theta(z, t) for latents z (B, D).

  Attributes:
    sde: the forward SDE (static; gives mean_coeff(t) and std(t)).
    width: hidden width.
    depth: number of residual blocks.
    embed_dim: size of the sinusoidal time embedding (even).
    output_scaling: return -net(z, t) / std(t) (net predicts the noise); False returns the
      raw network output.
    gaussian_residual: the net predicts the noise's residual about E[noise | z_t] for
      z_0 ~ N(0, I), std(t) z_t / (mean(t)^2 + std(t)^2): a zero net is then the exact score
      of N(0, I) data (LSGM's mixed score), so training starts from that score, not from 0.
  """
  sde: SDE
  width: int = 512
  depth: int = 4
  embed_dim: int = 128
  output_scaling: bool = True
  gaussian_residual: bool = False

  @nn.compact
  def __call__(self, z, t):
    """Args: z float32 (B, D), t float32 (B,) with t > 0 (std(0) = 0).

    Returns: score float32 (B, D).
    """
    mean, std = self.sde.marginal(t)
    c_in = jax.lax.rsqrt(jnp.square(mean) + jnp.square(std))
    temb = sinusoidal_embedding(t, self.embed_dim)
    temb = nn.Dense(self.width, name='time_dense0')(temb)
    temb = nn.Dense(self.width, name='time_dense1')(nn.silu(temb))
    h = nn.Dense(self.width, name='input')(z * c_in[:, None])
    for i in range(self.depth):
      h = ResidualBlock(self.width, name=f'block{i}')(h, temb)
    out = nn.Dense(z.shape[-1], name='output')(nn.silu(h))
    if self.gaussian_residual:
      out = out + (std * jnp.square(c_in))[:, None] * z
    if self.output_scaling:
      out = -out / std[:, None]
    return out


def make_score_fn(module: nn.Module, variables) -> Callable:
  """Closes a score module over its variables.

  Args:
    module: a ScoreNet (or any module mapping (z (B, D), t (B,)) -> (B, D)).
    variables: its variables, e.g. {'params': params}.

  Returns:
    score_fn(z (B, D), t (B,)) -> score (B, D), a pure function.
  """
  def score_fn(z, t):
    return module.apply(variables, z, t)
  return score_fn


def dsm_loss(score_apply: Callable, params, sde: SDE, key, z0, eps: float = 1e-5):
  """Denoising score matching with the std(t)^2 weighting.

  mean_b sum_d (s_theta(z_t, t) std_t + noise)^2, z_t = mean_coeff_t z0 + std_t noise,
  t ~ U(eps, T), noise ~ N(0, I).

  Args:
    score_apply: (params, z (B, D), t (B,)) -> score (B, D), e.g.
      lambda p, z, t: net.apply({'params': p}, z, t).
    params: its parameters.
    sde: the forward SDE.
    key: PRNG key (t and noise).
    z0: float32 (B, D) data latents.
    eps: smallest t.

  Returns:
    float32 scalar.
  """
  t_key, noise_key = jax.random.split(key)
  batch = z0.shape[0]
  t = jax.random.uniform(t_key, (batch,), jnp.float32, eps, sde.T)
  noise = jax.random.normal(noise_key, z0.shape, jnp.float32)
  mean, std = sde.marginal(t)
  z_t = mean[:, None] * z0 + std[:, None] * noise
  score = score_apply(params, z_t, t)
  return jnp.mean(jnp.sum(jnp.square(score * std[:, None] + noise), axis=-1))
