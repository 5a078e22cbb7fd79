"""Ancestral DDPM and DDIM samplers for the diffusion decoder (DESIGN §2.6).

Both run in-graph (`lax.fori_loop`), are jit-able with static `shape`/`num_steps`, and are
deterministic for a given PRNG key: the initial noise uses one split of the key and step i
uses `fold_in(step_key, i)`. `eps_fn(x_t, t)` maps float32 (B, H, W, C) and int32 (B,) to the
predicted noise; close over parameters and the conditioning latent z to build it.
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from diffmvae_jax.diffusion.schedules import DiffusionSchedule, gather, predict_x0_from_eps

EpsFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


def ddpm_sample(eps_fn: EpsFn, schedule: DiffusionSchedule, key, shape: Sequence[int],
                clip_x0: bool = True):
  """Ancestral sampling through all T steps of p(x_{t-1} | x_t).

  x_{t-1} = coef1_t x0_hat + coef2_t x_t + [t > 0] exp(logvar_clipped_t / 2) z, with
  x0_hat predicted from eps_fn (clipped to [-1, 1] when clip_x0). The last step (t = 0) adds
  no noise and returns x0_hat exactly (coef1_0 = 1, coef2_0 = 0).

  Args:
    eps_fn: (x_t float32 (B, ...), t int32 (B,)) -> eps float32 (B, ...).
    schedule: DiffusionSchedule with T steps.
    key: PRNG key.
    shape: static (B, H, W, C).
    clip_x0: clip the predicted x_0 to [-1, 1].

  Returns:
    x_0 float32 `shape`.
  """
  num_timesteps = schedule.num_timesteps
  init_key, step_key = jax.random.split(key)
  x_init = jax.random.normal(init_key, tuple(shape), jnp.float32)

  def body(i, x):
    t = jnp.full((shape[0],), num_timesteps - 1 - i, jnp.int32)
    x0 = predict_x0_from_eps(schedule, x, t, eps_fn(x, t))
    if clip_x0:
      x0 = jnp.clip(x0, -1.0, 1.0)
    mean = (gather(schedule.posterior_mean_coef1, t, x.ndim) * x0
            + gather(schedule.posterior_mean_coef2, t, x.ndim) * x)
    noise = jax.random.normal(jax.random.fold_in(step_key, i), x.shape, x.dtype)
    std = jnp.exp(0.5 * gather(schedule.posterior_log_variance_clipped, t, x.ndim))
    return mean + jnp.where(t[0] > 0, 1.0, 0.0) * std * noise

  return jax.lax.fori_loop(0, num_timesteps, body, x_init)


def ddim_timesteps(num_timesteps: int, num_steps: int) -> np.ndarray:
  """Evenly spaced timesteps for DDIM, descending, static.

  Args:
    num_timesteps: T.
    num_steps: k in [1, T].

  Returns:
    np.ndarray int32 (k,), strictly decreasing from T-1 (k > 1) down to 0;
    num_steps = T gives T-1, ..., 0.
  """
  if not 1 <= num_steps <= num_timesteps:
    raise ValueError(f'num_steps must be in [1, {num_timesteps}], got {num_steps}.')
  ts = np.floor(np.linspace(0.0, num_timesteps - 1, num_steps) + 0.5).astype(np.int32)
  return ts[::-1].copy()


def ddim_coefficients(schedule: DiffusionSchedule, t, t_prev, eta: float):
  """Coefficients of the DDIM update x_prev = c_x0 x0_hat + c_eps eps_hat + sigma z.

  With abar = abar_t and abar' = abar_{t_prev} (abar_{-1} = 1):
    sigma = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar'),
    c_x0 = sqrt(abar'),  c_eps = sqrt(1 - abar' - sigma^2).
  For eta = 1 and t_prev = t - 1, sigma^2 is the DDPM posterior variance
  beta_t (1 - abar_{t-1}) / (1 - abar_t), and with eps_hat = (x_t - sqrt(abar) x0_hat) /
  sqrt(1 - abar) the mean equals the DDPM posterior mean coef1 x0_hat + coef2 x_t.

  Args:
    schedule: DiffusionSchedule.
    t: int32 (B,) current timesteps.
    t_prev: int32 (B,) next (smaller) timesteps; -1 means the clean data.
    eta: 0 = deterministic DDIM, 1 = DDPM-like stochasticity.

  Returns:
    (c_x0, c_eps, sigma): float32 (B,) each.
  """
  abar = schedule.alphas_cumprod[t]
  abar_prev = jnp.where(t_prev >= 0, schedule.alphas_cumprod[jnp.maximum(t_prev, 0)], 1.0)
  sigma = eta * jnp.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
  c_eps = jnp.sqrt(jnp.maximum(1.0 - abar_prev - jnp.square(sigma), 0.0))
  return jnp.sqrt(abar_prev), c_eps, sigma


def ddim_sample(eps_fn: EpsFn, schedule: DiffusionSchedule, key, shape: Sequence[int],
                num_steps: int, eta: float = 0.0, clip_x0: bool = True):
  """DDIM sampling (Song et al. 2021) over `num_steps` evenly spaced timesteps.

  When clip_x0, eps_hat is recomputed from the clipped x0_hat, so that eta = 1 with
  num_steps = T is exactly ancestral DDPM (same mean and variance at every step).

  Args:
    eps_fn: (x_t float32 (B, ...), t int32 (B,)) -> eps float32 (B, ...).
    schedule: DiffusionSchedule with T steps.
    key: PRNG key.
    shape: static (B, H, W, C).
    num_steps: static k in [1, T].
    eta: stochasticity (0 = deterministic given the initial noise).
    clip_x0: clip the predicted x_0 to [-1, 1].

  Returns:
    x_0 float32 `shape`.
  """
  ts = ddim_timesteps(schedule.num_timesteps, num_steps)
  ts_prev = np.concatenate([ts[1:], [-1]]).astype(np.int32)
  ts, ts_prev = jnp.asarray(ts), jnp.asarray(ts_prev)
  init_key, step_key = jax.random.split(key)
  x_init = jax.random.normal(init_key, tuple(shape), jnp.float32)
  batch = shape[0]

  def body(i, x):
    t = jnp.full((batch,), ts[i], jnp.int32)
    t_prev = jnp.full((batch,), ts_prev[i], jnp.int32)
    eps = eps_fn(x, t)
    x0 = predict_x0_from_eps(schedule, x, t, eps)
    if clip_x0:
      x0 = jnp.clip(x0, -1.0, 1.0)
      eps = ((x - gather(schedule.sqrt_alphas_cumprod, t, x.ndim) * x0)
             / gather(schedule.sqrt_one_minus_alphas_cumprod, t, x.ndim))
    c_x0, c_eps, sigma = ddim_coefficients(schedule, t, t_prev, eta)
    noise = jax.random.normal(jax.random.fold_in(step_key, i), x.shape, x.dtype)
    expand = lambda c: c.reshape((batch,) + (1,) * (x.ndim - 1))
    return expand(c_x0) * x0 + expand(c_eps) * eps + expand(sigma) * noise

  return jax.lax.fori_loop(0, num_steps, body, x_init)
