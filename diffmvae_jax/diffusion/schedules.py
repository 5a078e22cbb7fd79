"""DDPM noise schedules, the forward process and the denoising loss (DESIGN §2.4).

Discrete time t = 0..T-1; x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with
abar_t = prod_{s <= t} (1 - beta_s). All schedule arrays are computed in float64 numpy and
stored as float32 jnp arrays of length T.
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np

SCHEDULE_KINDS = ('linear', 'cosine')
# How the image term of the ELBO is estimated (model.diffusion.loss): 'simple', DESIGN §2.4's
# sum over pixels of (eps - eps_theta)^2 at one uniform t; 'elbo', the discrete-time
# variational bound itself (vlb_nll), in nats.
DIFFUSION_LOSSES = ('simple', 'elbo')
# How t is drawn for the 'elbo' loss (model.diffusion.t_sampling): 'uniform' on [0, T), the
# estimate T * L_t; 'importance', t with probability w_t / sum_s w_s (the bound's own
# weights, vlb_weights), the estimate L_t / p(t). Both are unbiased for the same bound; the
# second gives every example the same weight sum_s w_s on its squared error instead of
# weights T * w_t spanning 5-600 (linear T = 1000), so one small-t draw no longer dominates a
# batch's gradient.
T_SAMPLINGS = ('uniform', 'importance')
# What the U-Net's output is read as (model.diffusion.prediction): 'eps', the noise; 'v', the
# velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022), turned back into
# eps by eps_from_v so every sampler and the bound are unchanged. With the simple loss, an
# x_0 error costs SNR(t) times its squared size as an eps error and SNR(t) + 1 times as a v
# error: v keeps teaching the U-Net x_0 at high noise, where SNR(t) -> 0.
PREDICTIONS = ('eps', 'v')


@flax.struct.dataclass
class DiffusionSchedule:
  """Per-timestep DDPM quantities, each float32 (T,). A pytree: pass it into jit freely.

  Attributes:
    betas: beta_t.
    alphas_cumprod: abar_t = prod_{s<=t} (1 - beta_s).
    alphas_cumprod_prev: abar_{t-1}, with abar_{-1} = 1.
    sqrt_alphas_cumprod: sqrt(abar_t).
    sqrt_one_minus_alphas_cumprod: sqrt(1 - abar_t).
    posterior_variance: variance of q(x_{t-1} | x_t, x_0),
      beta_t (1 - abar_{t-1}) / (1 - abar_t) (0 at t = 0).
    posterior_log_variance_clipped: its log, with the t = 0 entry replaced by t = 1's.
    posterior_mean_coef1: coefficient of x_0 in the posterior mean,
      beta_t sqrt(abar_{t-1}) / (1 - abar_t).
    posterior_mean_coef2: coefficient of x_t, (1 - abar_{t-1}) sqrt(1 - beta_t) / (1 - abar_t).
    vlb_weights: w_t with the bound's term L_t = w_t ||eps - eps_theta(x_t, t)||^2 (vlb_nll):
      beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)), sigma_t^2 the posterior variance for
      t >= 1 (Ho et al. 2020) and beta_0 for the t = 0 decoder, where it is 1 / (2 alpha_0).
  """
  betas: jnp.ndarray
  alphas_cumprod: jnp.ndarray
  alphas_cumprod_prev: jnp.ndarray
  sqrt_alphas_cumprod: jnp.ndarray
  sqrt_one_minus_alphas_cumprod: jnp.ndarray
  posterior_variance: jnp.ndarray
  posterior_log_variance_clipped: jnp.ndarray
  posterior_mean_coef1: jnp.ndarray
  posterior_mean_coef2: jnp.ndarray
  vlb_weights: jnp.ndarray

  @property
  def num_timesteps(self) -> int:
    """T, static (an array shape)."""
    return self.betas.shape[0]


def _betas(kind, num_timesteps, beta_start, beta_end, cosine_s):
  """Float64 betas (T,) of a named schedule."""
  if kind == 'linear':
    return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)
  if kind == 'cosine':
    # Nichol & Dhariwal 2021: abar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi/2).
    steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    f = np.cos((steps + cosine_s) / (1.0 + cosine_s) * np.pi / 2.0) ** 2
    abar = f / f[0]
    return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)
  raise ValueError(f'Unknown noise schedule {kind!r}; valid kinds: {", ".join(SCHEDULE_KINDS)}.')


def make_schedule(kind: str, num_timesteps: int, beta_start: float = 1e-4,
                  beta_end: float = 0.02, cosine_s: float = 0.008) -> DiffusionSchedule:
  """Builds a DDPM schedule.

  Args:
    kind: 'linear' (betas evenly spaced from beta_start to beta_end) or 'cosine'
      (Nichol & Dhariwal 2021 with offset cosine_s, betas clipped at 0.999).
    num_timesteps: T >= 2.
    beta_start, beta_end: linear schedule endpoints (ignored by 'cosine').
    cosine_s: cosine schedule offset (ignored by 'linear').

  Returns:
    DiffusionSchedule of float32 (T,) arrays.

  Raises:
    ValueError: unknown kind, or T < 2.
  """
  if num_timesteps < 2:
    raise ValueError(f'num_timesteps must be >= 2, got {num_timesteps}.')
  betas = _betas(kind, num_timesteps, beta_start, beta_end, cosine_s)
  alphas = 1.0 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
  f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)
  return DiffusionSchedule(
      betas=f32(betas),
      alphas_cumprod=f32(abar),
      alphas_cumprod_prev=f32(abar_prev),
      sqrt_alphas_cumprod=f32(np.sqrt(abar)),
      sqrt_one_minus_alphas_cumprod=f32(np.sqrt(1.0 - abar)),
      posterior_variance=f32(post_var),
      posterior_log_variance_clipped=f32(np.log(np.concatenate([post_var[1:2], post_var[1:]]))),
      posterior_mean_coef1=f32(betas * np.sqrt(abar_prev) / (1.0 - abar)),
      posterior_mean_coef2=f32((1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar)),
      vlb_weights=f32(betas ** 2 / (2.0 * np.concatenate([betas[:1], post_var[1:]]) * alphas
                                    * (1.0 - abar))),
  )


def gather(values, t, ndim: int):
  """values[t] reshaped to broadcast against a (B, ...) array of rank ndim.

  Args:
    values: (T,) schedule array.
    t: int32 (B,) timesteps.
    ndim: rank of the array it multiplies.

  Returns:
    float32 (B, 1, ..., 1) of rank ndim.
  """
  return values[t].reshape(t.shape + (1,) * (ndim - t.ndim))


def q_sample(schedule: DiffusionSchedule, x0, t, noise):
  """Samples the forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).

  Args:
    schedule: DiffusionSchedule.
    x0: float32 (B, H, W, C) clean data (images in [-1, 1]).
    t: int32 (B,) in [0, T).
    noise: float32 like x0, standard normal.

  Returns:
    x_t float32 like x0.
  """
  return (gather(schedule.sqrt_alphas_cumprod, t, x0.ndim) * x0
          + gather(schedule.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise)


def predict_x0_from_eps(schedule: DiffusionSchedule, x_t, t, eps):
  """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).

  Args:
    schedule: DiffusionSchedule.
    x_t: float32 (B, ...).
    t: int32 (B,).
    eps: float32 like x_t.

  Returns:
    float32 like x_t.
  """
  return ((x_t - gather(schedule.sqrt_one_minus_alphas_cumprod, t, x_t.ndim) * eps)
          / gather(schedule.sqrt_alphas_cumprod, t, x_t.ndim))


def v_target(schedule: DiffusionSchedule, x0, t, noise):
  """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0, the velocity a 'v' U-Net is trained on.

  Args:
    schedule: DiffusionSchedule.
    x0: float32 (B, ...) clean data.
    t: int32 (B,).
    noise: float32 like x0, the eps that made x_t.

  Returns:
    float32 like x0.
  """
  return (gather(schedule.sqrt_alphas_cumprod, t, x0.ndim) * noise
          - gather(schedule.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * x0)


def eps_from_v(schedule: DiffusionSchedule, x_t, t, v):
  """eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t (exact, since abar_t + (1 - abar_t) = 1).

  Args:
    schedule: DiffusionSchedule.
    x_t: float32 (B, ...) the noised input.
    t: int32 (B,).
    v: (B, ...) like x_t, a predicted velocity.

  Returns:
    float32 like x_t.
  """
  return (gather(schedule.sqrt_alphas_cumprod, t, x_t.ndim) * v
          + gather(schedule.sqrt_one_minus_alphas_cumprod, t, x_t.ndim) * x_t)


def denoising_loss(eps, eps_pred):
  """Squared error summed over all non-batch axes (the image term of the ELBO, DESIGN §2.4).

  Args:
    eps: float32 (B, ...) true noise.
    eps_pred: float32 (B, ...) predicted noise.

  Returns:
    float32 (B,).
  """
  sq = jnp.square(eps - eps_pred)
  return jnp.sum(sq.reshape(sq.shape[0], -1), axis=-1)


def t_proposal(schedule: DiffusionSchedule, kind: str):
  """The distribution t is drawn from for the bound (T_SAMPLINGS).

  Args:
    schedule: DiffusionSchedule (T steps).
    kind: 'uniform' or 'importance'.

  Returns:
    None for 'uniform'; for 'importance' float32 (T,) probabilities w_t / sum_s w_s.
  """
  if kind == 'uniform':
    return None
  if kind == 'importance':
    return schedule.vlb_weights / jnp.sum(schedule.vlb_weights)
  raise ValueError(f'Unknown t sampling {kind!r}; use one of {T_SAMPLINGS}.')


def sample_t(key, num_timesteps: int, shape, proposal=None):
  """Draws timesteps: int32 of `shape`, uniform on [0, T) or from `proposal` (T,)."""
  if proposal is None:
    return jax.random.randint(key, shape, 0, num_timesteps)
  return jax.random.categorical(key, jnp.log(proposal), shape=shape).astype(jnp.int32)


def vlb_nll(schedule: DiffusionSchedule, x0, t, eps, eps_pred, proposal=None):
  """One-sample estimate of -ELBO(x_0) in nats: L_t / p(t), plus the exact constant terms.

  The bound L_T + sum_{t>=1} L_t + L_0 of the discrete-time diffusion model: L_t =
  schedule.vlb_weights[t] ||eps - eps_pred||^2; L_0 = -log N(x_0; mu_theta, beta_0) adds
  (D / 2) log(2 pi beta_0) (a density of the continuous pixel values on the model's [-1, 1]
  scale); L_T = KL(q(x_{T-1} | x_0) || N(0, I)), exact. Only the squared-error part of each
  L_t is sampled: L_0's constant (D / 2) log(2 pi beta_0) (no parameter in it) is added
  exactly to every example rather than through the draws of t = 0, where it is -8.7e3 nats
  for a 28x28x3 image and, divided by p(0), made the logged bound swing by 1e4-1e7 nats
  without changing any gradient. E_t[w_t ||.||^2 / p(t)] = sum_t w_t ||.||^2, so the estimate
  is unbiased. With t uniform (p = 1 / T) its terms span orders of magnitude over t
  (the simple loss weighs every t as 1), so its variance is high; t_proposal('importance')
  evens the weights out.

  Args:
    schedule: DiffusionSchedule (T steps).
    x0: float32 (B, ...) clean data.
    t: int32 (B,) drawn from `proposal` (sample_t).
    eps: float32 like x0, the noise that made x_t.
    eps_pred: float32 like x0, eps_theta(x_t, t).
    proposal: None when t is uniform on [0, T); else float32 (T,), the probabilities t was
      drawn with (t_proposal).

  Returns:
    float32 (B,).
  """
  num_t = schedule.num_timesteps
  dim = np.prod(x0.shape[1:])
  sq = jnp.sum(jnp.square(eps - eps_pred).reshape(eps.shape[0], -1), axis=-1)
  log_const = 0.5 * dim * jnp.log(2.0 * np.pi * schedule.betas[0])
  abar_last = schedule.alphas_cumprod[-1]
  x0_sq = jnp.sum(jnp.square(x0).reshape(x0.shape[0], -1), axis=-1)
  prior = 0.5 * (abar_last * x0_sq + dim * (-abar_last - jnp.log1p(-abar_last)))
  inv_p = num_t if proposal is None else 1.0 / proposal[t]
  return inv_p * schedule.vlb_weights[t] * sq + log_const + prior

