"""Continuous-time SDEs over latent vectors for the score-based latent prior (DESIGN §2.5).

Each SDE is a forward diffusion dz = f(z, t) dt + g(t) dw on t in [0, T], T = 1, with a
Gaussian perturbation kernel z_t = mean_coeff(t) z_0 + std(t) eps, eps ~ N(0, I):

  VP     (Song et al. 2021): f = -1/2 beta(t) z, g = sqrt(beta(t)),
         beta(t) = beta_min + t (beta_max - beta_min);
         mean_coeff = exp(-1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min),
         std = sqrt(1 - mean_coeff^2).
  sub-VP f as VP, g = sqrt(beta(t) (1 - mean_coeff(t)^4)); mean_coeff as VP,
         std = 1 - mean_coeff^2.
  VE     f = 0, g = sigma(t) sqrt(2 log(sigma_max / sigma_min)),
         sigma(t) = sigma_min (sigma_max / sigma_min)^t; mean_coeff = 1,
         std = sqrt(sigma(t)^2 - sigma_min^2). This is the exact marginal of the SDE from z_0
         (score_sde uses sigma(t), i.e. treats z_0 as already perturbed by sigma_min).

The SDE classes are frozen dataclasses: hashable, so they can be static arguments of
`jax.jit` and static fields of Flax modules. Their methods are pure jnp functions of arrays:
z float32 (B, D), t float32 (B,).
"""

import dataclasses
import math
from typing import Callable, Sequence, Tuple

import jax
import jax.numpy as jnp

ScoreFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]

SDE_NAMES = ('vp', 'subvp', 've')


def _gaussian_logp(z, std):
  """Log density of N(0, std^2 I) summed over the last axis: z (B, D) -> (B,)."""
  dim = z.shape[-1]
  return (-0.5 * jnp.sum(jnp.square(z), axis=-1) / std ** 2
          - dim * (math.log(std) + 0.5 * math.log(2.0 * math.pi)))


@dataclasses.dataclass(frozen=True)
class VPSDE:
  """Variance-preserving SDE with a linear beta(t). Prior N(0, I)."""
  beta_min: float = 0.1
  beta_max: float = 20.0

  @property
  def T(self) -> float:  # pylint: disable=invalid-name
    return 1.0

  def _log_mean_coeff(self, t):
    return -0.25 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  def drift_and_diffusion(self, z, t) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Args: z (B, D), t (B,). Returns: f (B, D) = -1/2 beta(t) z, g (B,) = sqrt(beta(t))."""
    beta = self.beta_min + t * (self.beta_max - self.beta_min)
    return -0.5 * beta[:, None] * z, jnp.sqrt(beta)

  def marginal(self, t) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Args: t (B,). Returns: mean_coeff (B,), std (B,) of z_t given z_0."""
    log_mean = self._log_mean_coeff(t)
    return jnp.exp(log_mean), jnp.sqrt(-jnp.expm1(2.0 * log_mean))

  def prior_sample(self, key, shape: Sequence[int]) -> jnp.ndarray:
    """Returns: float32 `shape` from N(0, I)."""
    return jax.random.normal(key, tuple(shape), jnp.float32)

  def prior_logp(self, z) -> jnp.ndarray:
    """Args: z (B, D). Returns: (B,) log N(z; 0, I)."""
    return _gaussian_logp(z, 1.0)


@dataclasses.dataclass(frozen=True)
class SubVPSDE(VPSDE):
  """Sub-VP SDE (variance bounded by the VP one): the VP drift, a discounted diffusion.

  Shares beta(t), the mean coefficient and the N(0, I) prior with VPSDE.
  """

  def drift_and_diffusion(self, z, t) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Args: z (B, D), t (B,). Returns: f (B, D), g (B,) = sqrt(beta (1 - mean_coeff^4))."""
    beta = self.beta_min + t * (self.beta_max - self.beta_min)
    discount = -jnp.expm1(4.0 * self._log_mean_coeff(t))
    return -0.5 * beta[:, None] * z, jnp.sqrt(beta * discount)

  def marginal(self, t) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Args: t (B,). Returns: mean_coeff (B,), std (B,) = 1 - mean_coeff^2."""
    log_mean = self._log_mean_coeff(t)
    return jnp.exp(log_mean), -jnp.expm1(2.0 * log_mean)


@dataclasses.dataclass(frozen=True)
class VESDE:
  """Variance-exploding SDE with a geometric sigma(t). Prior N(0, sigma_max^2 I)."""
  sigma_min: float = 0.01
  sigma_max: float = 50.0

  @property
  def T(self) -> float:  # pylint: disable=invalid-name
    return 1.0

  def _sigma(self, t):
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

  def drift_and_diffusion(self, z, t) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Args: z (B, D), t (B,). Returns: f (B, D) = 0, g (B,) = sigma(t) sqrt(2 log ratio)."""
    g = self._sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))
    return jnp.zeros_like(z), g

  def marginal(self, t) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """Args: t (B,). Returns: mean_coeff (B,) = 1, std (B,) = sqrt(sigma(t)^2 - sigma_min^2)."""
    log_ratio = math.log(self.sigma_max / self.sigma_min)
    std = self.sigma_min * jnp.sqrt(jnp.expm1(2.0 * t * log_ratio))
    return jnp.ones_like(t), std

  def prior_sample(self, key, shape: Sequence[int]) -> jnp.ndarray:
    """Returns: float32 `shape` from N(0, sigma_max^2 I)."""
    return self.sigma_max * jax.random.normal(key, tuple(shape), jnp.float32)

  def prior_logp(self, z) -> jnp.ndarray:
    """Args: z (B, D). Returns: (B,) log N(z; 0, sigma_max^2 I)."""
    return _gaussian_logp(z, self.sigma_max)


SDE = VPSDE | SubVPSDE | VESDE


def make_sde(name: str, **kwargs) -> SDE:
  """Builds an SDE by name.

  Args:
    name: 'vp', 'subvp' or 've'.
    **kwargs: the class's fields (beta_min/beta_max, or sigma_min/sigma_max).

  Returns:
    The SDE instance (frozen, hashable).

  Raises:
    ValueError: unknown name.
  """
  classes = {'vp': VPSDE, 'subvp': SubVPSDE, 've': VESDE}
  if name not in classes:
    raise ValueError(f'Unknown SDE {name!r}; valid names: {", ".join(SDE_NAMES)}.')
  return classes[name](**kwargs)


def reverse_drift(sde: SDE, score_fn: ScoreFn, z, t, probability_flow: bool) -> jnp.ndarray:
  """Drift of the reverse-time process, to be integrated with dt < 0.

  Args:
    sde: the forward SDE.
    score_fn: (z (B, D), t (B,)) -> grad_z log p_t(z), (B, D).
    z: float32 (B, D).
    t: float32 (B,).
    probability_flow: False gives the reverse SDE drift f - g^2 s (diffusion g);
      True gives the probability-flow ODE drift f - 1/2 g^2 s (no diffusion).

  Returns:
    float32 (B, D).
  """
  f, g = sde.drift_and_diffusion(z, t)
  weight = 0.5 if probability_flow else 1.0
  return f - weight * jnp.square(g)[:, None] * score_fn(z, t)


def discretize(sde: SDE, z, t, dt) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Exact one-step forward transition from t - dt to t: z_t = z + f_i + G_i eps.

  All three SDEs are linear, so the kernel follows from the marginals:
  a = mean_coeff(t) / mean_coeff(t - dt), G^2 = std(t)^2 - a^2 std(t - dt)^2, f_i = (a - 1) z.
  For VP this is the DDPM step (a = sqrt(1 - beta_i), G^2 = beta_i).

  Args:
    sde: the forward SDE.
    z: float32 (B, D).
    t: float32 (B,), the later time.
    dt: positive step (scalar or (B,)).

  Returns:
    f_i (B, D) and G_i (B,).
  """
  mean_t, std_t = sde.marginal(t)
  mean_s, std_s = sde.marginal(t - dt)
  a = mean_t / mean_s
  g2 = jnp.maximum(jnp.square(std_t) - jnp.square(a * std_s), 0.0)
  return (a - 1.0)[:, None] * z, jnp.sqrt(g2)
