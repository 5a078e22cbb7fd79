"""In-graph samplers for the latent score-based prior (DESIGN §2.5).

All samplers integrate the reverse process on the uniform grid t_i = T + i (eps - T) / N,
i = 0..N (N = num_steps, static), from t_0 = T down to t_N = eps, inside `lax.fori_loop`.
They are jit-able with static `sde`, `shape`, `num_steps` and method names, and deterministic
for a given PRNG key: the prior sample uses one split of the key and step i uses
`fold_in(step_key, i)`. `score_fn(z, t)` maps float32 (B, D) and float32 (B,) to the score
(B, D); close over parameters to build it (see `models.latent_prior.make_score_fn`).

`denoise=True` ends with one noise-free Tweedie step from t = eps to t = 0:
z_0 = (z_eps + std(eps)^2 s(z_eps, eps)) / mean_coeff(eps), the posterior mean E[z_0 | z_eps].
"""

import functools
import inspect
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from diffmvae_jax.diffusion.sde import SDE, ScoreFn, discretize, reverse_drift

SAMPLER_NAMES = ('euler_maruyama', 'pc', 'ode_euler', 'ode_heun')
PREDICTORS = ('reverse_diffusion', 'euler_maruyama')
ODE_METHODS = ('euler', 'heun')


def _time(sde: SDE, i, num_steps: int, eps: float, batch: int):
  """t_i on the uniform grid from T (i = 0) to eps (i = num_steps), broadcast to (B,)."""
  t = sde.T + i * ((eps - sde.T) / num_steps)
  return jnp.full((batch,), t, jnp.float32)


def _tweedie(sde: SDE, score_fn: ScoreFn, z, t):
  """E[z_0 | z_t] = (z + std^2 s) / mean_coeff."""
  mean, std = sde.marginal(t)
  return (z + jnp.square(std)[:, None] * score_fn(z, t)) / mean[:, None]


def _em_step(sde: SDE, score_fn: ScoreFn, z, t, dt, noise):
  """One reverse Euler–Maruyama step from t to t - dt (dt > 0)."""
  drift = reverse_drift(sde, score_fn, z, t, probability_flow=False)
  _, g = sde.drift_and_diffusion(z, t)
  return z - drift * dt + (g * jnp.sqrt(dt))[:, None] * noise


def _reverse_diffusion_step(sde: SDE, score_fn: ScoreFn, z, t, dt, noise):
  """One reverse-diffusion (ancestral-style) step from t to t - dt with the exact forward kernel.

  z <- z - f_i + G_i^2 s(z, t) + G_i noise, (f_i, G_i) = discretize(sde, z, t, dt).
  """
  f, g = discretize(sde, z, t, dt)
  return z - f + jnp.square(g)[:, None] * score_fn(z, t) + g[:, None] * noise


def _langevin_step(sde: SDE, score_fn: ScoreFn, z, t, dt, snr: float, noise):
  """One Langevin corrector step with the score_sde step size rule.

  step = 2 alpha (snr ||noise|| / ||score||)^2 with the norms per example averaged over the
  batch, alpha = a^2 the squared one-step mean coefficient (1 - beta_i for VP, 1 for VE).
  """
  score = score_fn(z, t)
  grad_norm = jnp.mean(jnp.linalg.norm(score, axis=-1))
  noise_norm = jnp.mean(jnp.linalg.norm(noise, axis=-1))
  mean_t, _ = sde.marginal(t)
  mean_s, _ = sde.marginal(t - dt)
  alpha = jnp.square(mean_t / mean_s)
  step = 2.0 * alpha * jnp.square(snr * noise_norm / jnp.maximum(grad_norm, 1e-12))
  return z + step[:, None] * score + jnp.sqrt(2.0 * step)[:, None] * noise


def euler_maruyama(sde: SDE, score_fn: ScoreFn, key, shape: Sequence[int], num_steps: int,
                   eps: float = 1e-3, denoise: bool = True) -> jnp.ndarray:
  """Reverse-SDE Euler–Maruyama: z <- z - (f - g^2 s) dt + g sqrt(dt) noise, T -> eps.

  Args:
    sde: the forward SDE (static).
    score_fn: (z (B, D), t (B,)) -> score (B, D).
    key: PRNG key.
    shape: static (B, D).
    num_steps: static number of steps N >= 1.
    eps: final time.
    denoise: end with the noise-free Tweedie step to t = 0.

  Returns:
    float32 `shape`.
  """
  batch = shape[0]
  dt = (sde.T - eps) / num_steps
  init_key, step_key = jax.random.split(key)
  z = sde.prior_sample(init_key, shape)

  def body(i, z):
    t = _time(sde, i, num_steps, eps, batch)
    noise = jax.random.normal(jax.random.fold_in(step_key, i), z.shape, z.dtype)
    return _em_step(sde, score_fn, z, t, dt, noise)

  z = jax.lax.fori_loop(0, num_steps, body, z)
  if denoise:
    z = _tweedie(sde, score_fn, z, jnp.full((batch,), eps, jnp.float32))
  return z


def predictor_corrector(sde: SDE, score_fn: ScoreFn, key, shape: Sequence[int], num_steps: int,
                        snr: float = 0.16, num_corrector_steps: int = 1, eps: float = 1e-3,
                        denoise: bool = True,
                        predictor: str = 'reverse_diffusion') -> jnp.ndarray:
  """Predictor–corrector sampling (Song et al. 2021, Algorithms 2–3).

  At each grid time t_i, i < N: `num_corrector_steps` Langevin corrector steps at t_i, then
  one predictor step t_i -> t_{i+1}.

  Args:
    sde: the forward SDE (static).
    score_fn: (z (B, D), t (B,)) -> score (B, D).
    key: PRNG key.
    shape: static (B, D).
    num_steps: static number of predictor steps N >= 1.
    snr: signal-to-noise ratio of the Langevin step size rule.
    num_corrector_steps: static Langevin steps per grid time (0 gives the predictor alone).
    eps: final time.
    denoise: end with the noise-free Tweedie step to t = 0.
    predictor: 'reverse_diffusion' (exact forward kernel, DDPM-like for VP) or
      'euler_maruyama'.

  Returns:
    float32 `shape`.

  Raises:
    ValueError: unknown predictor.
  """
  if predictor not in PREDICTORS:
    raise ValueError(f'Unknown predictor {predictor!r}; valid: {", ".join(PREDICTORS)}.')
  predictor_step = _reverse_diffusion_step if predictor == 'reverse_diffusion' else _em_step
  batch = shape[0]
  dt = (sde.T - eps) / num_steps
  init_key, step_key = jax.random.split(key)
  z = sde.prior_sample(init_key, shape)

  def body(i, z):
    t = _time(sde, i, num_steps, eps, batch)
    keys = jax.random.split(jax.random.fold_in(step_key, i), num_corrector_steps + 1)
    for j in range(num_corrector_steps):
      noise = jax.random.normal(keys[j], z.shape, z.dtype)
      z = _langevin_step(sde, score_fn, z, t, dt, snr, noise)
    noise = jax.random.normal(keys[-1], z.shape, z.dtype)
    return predictor_step(sde, score_fn, z, t, dt, noise)

  z = jax.lax.fori_loop(0, num_steps, body, z)
  if denoise:
    z = _tweedie(sde, score_fn, z, jnp.full((batch,), eps, jnp.float32))
  return z


def _integrate_ode(sde: SDE, score_fn: ScoreFn, z, t_start: float, t_end: float,
                   num_steps: int, method: str):
  """Integrates the probability-flow ODE from t_start to t_end (either direction)."""
  if method not in ODE_METHODS:
    raise ValueError(f'Unknown ODE method {method!r}; valid: {", ".join(ODE_METHODS)}.')
  batch = z.shape[0]
  h = (t_end - t_start) / num_steps
  drift = functools.partial(reverse_drift, sde, score_fn, probability_flow=True)

  def body(i, z):
    t = jnp.full((batch,), t_start + i * h, jnp.float32)
    d1 = drift(z, t)
    if method == 'euler':
      return z + h * d1
    t_next = jnp.full((batch,), t_start + (i + 1) * h, jnp.float32)
    d2 = drift(z + h * d1, t_next)
    return z + 0.5 * h * (d1 + d2)

  return jax.lax.fori_loop(0, num_steps, body, z)


def probability_flow_ode(sde: SDE, score_fn: ScoreFn, key, shape: Sequence[int],
                         num_steps: int, method: str = 'heun', eps: float = 1e-3,
                         z_init: Optional[jnp.ndarray] = None,
                         denoise: bool = False) -> jnp.ndarray:
  """Decodes with the probability-flow ODE dz = (f - 1/2 g^2 s) dt from T to eps.

  Deterministic given z_init; otherwise z_init is a prior sample from `key`.

  Args:
    sde: the forward SDE (static).
    score_fn: (z (B, D), t (B,)) -> score (B, D).
    key: PRNG key (unused when z_init is given).
    shape: static (B, D).
    num_steps: static number of steps N >= 1.
    method: 'heun' (2nd order, 2 score calls per step) or 'euler'.
    eps: final time.
    z_init: optional float32 `shape`, the state at t = T.
    denoise: end with the noise-free Tweedie step to t = 0 (off by default so that
      decoding inverts `probability_flow_encode`).

  Returns:
    float32 `shape`, the state at t = eps (or t = 0 with denoise).

  Raises:
    ValueError: unknown method.
  """
  if z_init is None:
    z_init = sde.prior_sample(key, shape)
  z = _integrate_ode(sde, score_fn, jnp.asarray(z_init, jnp.float32), sde.T, eps, num_steps,
                     method)
  if denoise:
    z = _tweedie(sde, score_fn, z, jnp.full((shape[0],), eps, jnp.float32))
  return z


def probability_flow_encode(sde: SDE, score_fn: ScoreFn, z0, num_steps: int,
                            method: str = 'heun', eps: float = 1e-3) -> jnp.ndarray:
  """Encodes with the probability-flow ODE forward from eps to T (inverse of decoding).

  Args:
    sde: the forward SDE (static).
    score_fn: (z (B, D), t (B,)) -> score (B, D).
    z0: float32 (B, D), the state at t = eps.
    num_steps: static number of steps N >= 1.
    method: 'heun' or 'euler'.
    eps: start time.

  Returns:
    float32 (B, D), the state at t = T.

  Raises:
    ValueError: unknown method.
  """
  return _integrate_ode(sde, score_fn, jnp.asarray(z0, jnp.float32), eps, sde.T, num_steps,
                        method)


def make_sampler(name: str, sde: SDE, **kwargs):
  """Binds a sampler by name to an SDE and its settings.

  Args:
    name: 'euler_maruyama', 'pc' (predictor_corrector), 'ode_euler' or 'ode_heun'
      (probability_flow_ode with that method).
    sde: the forward SDE.
    **kwargs: the sampler's keyword settings (num_steps, eps, denoise, snr, ...);
      num_steps defaults to 1000.

  Returns:
    sampler(score_fn, key, shape) -> float32 `shape`, a pure function.

  Raises:
    ValueError: unknown name.
    TypeError: a setting the sampler does not take.
  """
  if name not in SAMPLER_NAMES:
    raise ValueError(f'Unknown sampler {name!r}; valid names: {", ".join(SAMPLER_NAMES)}.')
  fn = {'euler_maruyama': euler_maruyama, 'pc': predictor_corrector,
        'ode_euler': probability_flow_ode, 'ode_heun': probability_flow_ode}[name]
  kwargs = dict(kwargs)
  kwargs.setdefault('num_steps', 1000)
  if name.startswith('ode_'):
    if 'method' in kwargs or 'z_init' in kwargs:
      raise TypeError(f'{name} fixes method and takes no z_init.')
    kwargs['method'] = name[len('ode_'):]
  allowed = set(inspect.signature(fn).parameters) - {'sde', 'score_fn', 'key', 'shape'}
  unknown = set(kwargs) - allowed
  if unknown:
    raise TypeError(f'{name} takes no {sorted(unknown)}; valid settings: {sorted(allowed)}.')

  def sampler(score_fn: ScoreFn, key, shape: Sequence[int]) -> jnp.ndarray:
    return fn(sde, score_fn, key, tuple(shape), **kwargs)

  return sampler
