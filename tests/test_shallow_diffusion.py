"""Shallow diffusion (sample.t_start < 1): samplers that start from a noised x_0 estimate.

Run: pytest tests/test_shallow_diffusion.py
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import test_tiny
from diffmvae_jax import config_checks
from diffmvae_jax import evaluate
from diffmvae_jax import generate
from diffmvae_jax.diffusion import samplers
from diffmvae_jax.diffusion import schedules
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.models import diffmvae
from tests import gaussian_oracle
from tests import perturbed_model

T = 1000
MEAN, STD = 0.3, 0.5
SHAPE = (64, 8, 8, 1)                 # 4096 independent samples per run.


def _oracle(schedule, mean, std):
  """E[eps | x_t] for data x0 ~ N(mean, std^2) per pixel."""
  def eps_fn(x_t, t):
    abar = schedules.gather(schedule.alphas_cumprod, t, x_t.ndim)
    return jnp.sqrt(1 - abar) * (x_t - jnp.sqrt(abar) * mean) / (abar * std ** 2 + 1 - abar)
  return eps_fn


def _dpm_slope(abar, ts, std):
  """d(output)/d(first x) of DPM-Solver++ 2M with the oracle of N(0, std^2) data (float64)."""
  alpha, sigma = np.sqrt(abar), np.sqrt(1.0 - abar)
  lam = np.log(alpha) - np.log(sigma)
  x, x0_before = 1.0, None
  for i, t in enumerate(ts):
    x0 = alpha[t] * std ** 2 / (abar[t] * std ** 2 + 1 - abar[t]) * x
    if i == len(ts) - 1:
      return x0
    h = lam[ts[i + 1]] - lam[t]
    d = x0 if i == 0 else x0 + (x0 - x0_before) / (2 * (lam[t] - lam[ts[i - 1]]) / h)
    x, x0_before = sigma[ts[i + 1]] / sigma[t] * x - alpha[ts[i + 1]] * np.expm1(-h) * d, x0


def test_shallow_timesteps_and_their_errors():
  for fn in (samplers.ddim_timesteps, samplers.dpm_solver_timesteps):
    ts = fn(T, 20, 499)
    assert ts.shape == (20,) and ts[0] == 499 and ts[-1] == 0 and np.all(np.diff(ts) < 0)
    np.testing.assert_array_equal(fn(T, 20, T - 1), fn(T, 20))
    np.testing.assert_array_equal(fn(T, 10, 9), np.arange(9, -1, -1))
    with pytest.raises(ValueError, match='t_start'):
      fn(T, 11, 9)                                   # More steps than timesteps left.
    with pytest.raises(ValueError, match='t_start'):
      fn(T, 10, T)


def test_initial_sample_is_pure_noise_or_the_forward_process():
  schedule = schedules.make_schedule('linear', T)
  key = jax.random.key(4)
  np.testing.assert_array_equal(samplers.initial_sample(schedule, key, SHAPE),
                                jax.random.normal(key, SHAPE))
  x = np.asarray(samplers.initial_sample(schedule, key, SHAPE, 300, jnp.full(SHAPE, MEAN)))
  abar = float(schedule.alphas_cumprod[300])
  n = x.size
  assert abs(x.mean() - np.sqrt(abar) * MEAN) < 4 * np.sqrt(1 - abar) / np.sqrt(n)
  assert abs(x.std() - np.sqrt(1 - abar)) < 4 * np.sqrt(1 - abar) / np.sqrt(2 * n)
  zero = np.asarray(samplers.initial_sample(schedule, key, SHAPE, 300))   # x0_start = 0.
  np.testing.assert_allclose(zero, np.sqrt(1 - abar) * np.asarray(jax.random.normal(key, SHAPE)),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name,steps,eta', [('ddim', 151, 0.0), ('ddim', 25, 0.0),
                                             ('ddim', 25, 1.0), ('ddpm', None, 1.0),
                                             ('dpmpp_2m', 20, 0.0)])
def test_shallow_samplers_against_closed_forms(name, steps, eta):
  """Data N(MEAN, STD^2), the oracle eps, the start q(x_k | x0 = MEAN) at k = 150: the output
  has mean MEAN and the std of each sampler's exact recursion (float64). That std is below
  STD, since the start lacks the data's spread; the probability-flow ODE (DDIM at every
  timestep) gives STD sqrt((1 - abar_k) / (abar_k STD^2 + 1 - abar_k)) exactly."""
  schedule = schedules.make_schedule('linear', T)
  k = 150
  abar = np.asarray(schedule.alphas_cumprod, np.float64)
  run = jax.jit(lambda key: samplers.sample(
      name, _oracle(schedule, MEAN, STD), schedule, key, SHAPE, steps or 1, eta=eta,
      clip_x0=False, t_start=k, x0_start=jnp.full(SHAPE, MEAN)))
  x = np.asarray(run(jax.random.key(11))).ravel()
  if name == 'dpmpp_2m':
    want = abs(_dpm_slope(abar, samplers.dpm_solver_timesteps(T, steps, k), STD)) * np.sqrt(
        1 - abar[k])
  else:
    ts = np.arange(k, -1, -1) if name == 'ddpm' else samplers.ddim_timesteps(T, steps, k)
    want = gaussian_oracle.ddim_output_std(abar, ts, eta, STD, 1 - abar[k])
  ode = STD * np.sqrt((1 - abar[k]) / (abar[k] * STD ** 2 + 1 - abar[k]))
  if steps == k + 1:
    assert abs(want - ode) < 0.01 * ode, (want, ode)
  assert want < 0.9 * STD
  n = x.size
  assert abs(x.mean() - MEAN) < 4 * STD / np.sqrt(n) + 1e-3, x.mean()
  assert abs(x.std() - want) < 4 * want / np.sqrt(2 * n) + 1e-3, (x.std(), want)


def test_a_point_mass_start_stays_put():
  """Started from its own x_0 with the perfect noise predictor, every sampler returns it."""
  schedule = schedules.make_schedule('linear', T)
  x0 = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)

  def eps_fn(x_t, t):
    return ((x_t - schedules.gather(schedule.sqrt_alphas_cumprod, t, 4) * x0)
            / schedules.gather(schedule.sqrt_one_minus_alphas_cumprod, t, 4))
  for name in samplers.SAMPLER_NAMES:
    out = jax.jit(lambda key: samplers.sample(name, eps_fn, schedule, key, x0.shape, 10,
                                              t_start=300, x0_start=x0))(jax.random.key(1))
    np.testing.assert_allclose(out, x0, atol=2e-3)


def _model(coarse_weight, residual):
  config = test_tiny.get_config()
  config.data.modalities = 'm0,m1,label'
  d = config.model.diffusion
  d.coarse_weight, d.coarse_condition, d.residual = coarse_weight, True, residual
  model, params, _ = perturbed_model.build(config)
  return config, model, params


@pytest.mark.parametrize('residual', [True, False])
def test_shallow_decoding_starts_from_the_coarse_image(residual):
  """t_start = 1 is the full sampler (the default, bit for bit); small t_start keeps the
  sample near the coarse mean image c(z), for the residual and the plain image decoder."""
  config, model, params = _model(1.0, residual)
  z = jax.random.normal(jax.random.PRNGKey(1), (4, config.model.latent_dim))
  sample = lambda **kw: ml_collections.ConfigDict({'sampler': 'ddim', 'steps': 5, 'eta': 0.0,
                                                   **kw})
  decode = lambda s: np.asarray(jax.jit(generate.make_decode_fn(model, s, ['m0']))(
      params, z, jax.random.key(2))['m0'])
  full = decode(sample())
  np.testing.assert_array_equal(decode(sample(t_start=1.0)), full)
  coarse = np.asarray(model.apply(params, 'm0', z, method=diffmvae.DiffMVAE.coarse_mean))
  shallow = decode(sample(t_start=0.1))          # test_tiny's T = 50: starts at t = 5.
  assert shallow.shape == full.shape and np.all(np.abs(shallow) <= 1.0)
  assert np.abs(shallow - coarse).mean() < 0.5 * np.abs(full - coarse).mean()


def test_t_start_errors_and_metrics_file():
  _, model, _ = _model(0.0, False)
  with pytest.raises(ConfigError, match='coarse'):
    generate.make_decode_fn(model, ml_collections.ConfigDict(
        {'sampler': 'ddim', 'steps': 5, 'eta': 0.0, 't_start': 0.5}))
  for bad in (0.0, 1.5):
    with pytest.raises(ConfigError, match='t_start'):
      generate.start_timestep(model, bad)
  config = test_tiny.get_config()
  config.sample.t_start = 0.5
  with pytest.raises(ConfigError, match='coarse_weight'):
    config_checks.check_config(config)
  config.model.diffusion.coarse_weight = 1.0
  config.sample.steps = 26           # test_tiny's T = 50: t_start 0.5 is t = 24, 25 steps left.
  with pytest.raises(ConfigError, match='sample.steps'):
    config_checks.check_config(config)
  config.sample.steps = 10
  config_checks.check_config(config)
  name = lambda t: evaluate.metrics_file_name(ml_collections.ConfigDict(
      {'prior': 'gaussian', 'guidance': 2.0, 't_start': t}))
  assert name(1.0) == 'metrics_gaussian_guidance2.json'
  assert name(0.5) == 'metrics_gaussian_guidance2_tstart0.5.json'
  # Sample grids carry the same tag (sample_grid.GridWriter, sample.sample_from_checkpoint).
  assert generate.shallow_tag(ml_collections.ConfigDict({'t_start': 0.15})) == '_tstart0.15'
  assert generate.shallow_tag(ml_collections.ConfigDict({'t_start': 1.0})) == ''
  assert generate.shallow_tag(ml_collections.ConfigDict({})) == ''
