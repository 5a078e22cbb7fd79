"""DDPM schedules, forward process, loss and the DDPM/DDIM samplers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffmvae_jax.diffusion import samplers
from diffmvae_jax.diffusion import schedules
from tests import gaussian_oracle

T = 100  # Small T keeps the sampler tests fast; betas scaled so that abar_{T-1} ~ 0.


def _small_schedule(kind='linear'):
  return schedules.make_schedule(kind, T, beta_start=1e-3, beta_end=0.2)


def test_linear_schedule_against_formulas():
  s = schedules.make_schedule('linear', 1000)
  betas = np.linspace(1e-4, 0.02, 1000)
  abar = np.cumprod(1.0 - betas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  assert s.num_timesteps == 1000
  for field in ('betas', 'alphas_cumprod', 'posterior_variance', 'posterior_mean_coef1'):
    assert getattr(s, field).dtype == jnp.float32 and getattr(s, field).shape == (1000,)
  np.testing.assert_allclose(s.betas, betas, rtol=1e-6)
  np.testing.assert_allclose(s.alphas_cumprod, abar, rtol=1e-5)
  np.testing.assert_allclose(s.alphas_cumprod_prev, abar_prev, rtol=1e-5)
  np.testing.assert_allclose(s.sqrt_alphas_cumprod, np.sqrt(abar), rtol=1e-5)
  np.testing.assert_allclose(s.sqrt_one_minus_alphas_cumprod, np.sqrt(1 - abar), rtol=1e-5)
  post_var = betas * (1 - abar_prev) / (1 - abar)
  np.testing.assert_allclose(s.posterior_variance, post_var, rtol=1e-5)
  assert s.posterior_variance[0] == 0.0
  np.testing.assert_allclose(s.posterior_log_variance_clipped[1:], np.log(post_var[1:]),
                             rtol=1e-5)
  np.testing.assert_allclose(s.posterior_log_variance_clipped[0], np.log(post_var[1]),
                             rtol=1e-5)
  np.testing.assert_allclose(s.posterior_mean_coef1, betas * np.sqrt(abar_prev) / (1 - abar),
                             rtol=1e-5)
  np.testing.assert_allclose(s.posterior_mean_coef2,
                             (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar), rtol=1e-5)


def test_cosine_schedule_against_formula():
  s = schedules.make_schedule('cosine', 1000)
  f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2
  t = np.arange(1000)
  # abar_t = f(t + 1) / f(0) wherever the 0.999 clip is inactive (all but the end).
  np.testing.assert_allclose(s.alphas_cumprod[:990], (f(t + 1) / f(0))[:990], rtol=1e-4,
                             atol=1e-7)
  betas = np.clip(1 - f(t + 1) / f(t), 0, 0.999)
  np.testing.assert_allclose(s.betas, betas, rtol=1e-5)
  assert float(s.betas.max()) <= 0.999 + 1e-6
  np.testing.assert_allclose(s.alphas_cumprod, np.cumprod(1 - betas), rtol=1e-4, atol=1e-9)


def test_unknown_schedule_kind():
  with pytest.raises(ValueError, match='linear, cosine'):
    schedules.make_schedule('quadratic', 10)


def test_q_sample_closed_form_and_loss():
  s = _small_schedule()
  k1, k2 = jax.random.split(jax.random.key(0))
  x0 = jax.random.uniform(k1, (3, 4, 4, 2), minval=-1, maxval=1)
  noise = jax.random.normal(k2, x0.shape)
  t = jnp.array([0, 50, 99], jnp.int32)
  x_t = schedules.q_sample(s, x0, t, noise)
  abar = np.cumprod(1 - np.linspace(1e-3, 0.2, T))[np.asarray(t)][:, None, None, None]
  np.testing.assert_allclose(x_t, np.sqrt(abar) * x0 + np.sqrt(1 - abar) * noise, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(schedules.predict_x0_from_eps(s, x_t, t, noise), x0, atol=2e-3)
  loss = schedules.denoising_loss(noise, jnp.zeros_like(noise))
  assert loss.shape == (3,)
  np.testing.assert_allclose(loss, np.sum(np.asarray(noise) ** 2, axis=(1, 2, 3)), rtol=1e-5)


def test_v_parameterisation_against_numpy():
  """v and eps_from_v against their float64 formulas; eps_from_v inverts v exactly; and a v
  error is (SNR + 1) times the x0 error it implies, an eps error SNR times (per pixel)."""
  s = _small_schedule()
  k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
  x0 = jax.random.uniform(k1, (3, 4, 4, 2), minval=-1, maxval=1)
  noise = jax.random.normal(k2, x0.shape)
  t = jnp.array([0, 50, 99], jnp.int32)
  x_t = schedules.q_sample(s, x0, t, noise)
  abar = np.cumprod(1 - np.linspace(1e-3, 0.2, T))[np.asarray(t)][:, None, None, None]
  a, sd = np.sqrt(abar), np.sqrt(1 - abar)
  v = schedules.v_target(s, x0, t, noise)
  np.testing.assert_allclose(v, a * np.asarray(noise) - sd * np.asarray(x0), atol=1e-5)
  np.testing.assert_allclose(schedules.eps_from_v(s, x_t, t, v), noise, atol=1e-5)
  v_hat = v + 0.1 * jax.random.normal(k3, v.shape)
  eps_hat = np.asarray(schedules.eps_from_v(s, x_t, t, v_hat), np.float64)
  np.testing.assert_allclose(eps_hat, a * np.asarray(v_hat) + sd * np.asarray(x_t), atol=1e-5)
  x0_hat = (np.asarray(x_t, np.float64) - sd * eps_hat) / a
  snr = (abar / (1 - abar))[:, 0, 0, 0]
  x0_err = np.sum((x0_hat - np.asarray(x0)) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(schedules.denoising_loss(v, v_hat), (snr + 1) * x0_err, rtol=1e-3)
  np.testing.assert_allclose(schedules.denoising_loss(noise, eps_hat), snr * x0_err, rtol=1e-3)


def test_schedule_is_a_pytree_under_jit():
  s = _small_schedule()
  out = jax.jit(lambda s, t: s.betas[t])(s, jnp.array([3]))
  np.testing.assert_allclose(out, s.betas[3])


def test_ddim_timesteps():
  np.testing.assert_array_equal(samplers.ddim_timesteps(10, 10), np.arange(9, -1, -1))
  ts = samplers.ddim_timesteps(1000, 50)
  assert ts.shape == (50,) and ts[0] == 999 and ts[-1] == 0 and np.all(np.diff(ts) < 0)
  assert len(set(samplers.ddim_timesteps(100, 99))) == 99
  with pytest.raises(ValueError):
    samplers.ddim_timesteps(10, 11)


def test_ddim_eta1_coefficients_equal_ddpm_posterior():
  s = _small_schedule('cosine')
  t = jnp.arange(T, dtype=jnp.int32)
  c_x0, c_eps, sigma = samplers.ddim_coefficients(s, t, t - 1, eta=1.0)
  np.testing.assert_allclose(np.square(sigma), s.posterior_variance, rtol=1e-4, atol=1e-7)
  # Mean: c_x0 x0 + c_eps eps(x0, x_t) == coef1 x0 + coef2 x_t for any x0, x_t.
  rng = np.random.default_rng(0)
  x0, x_t = rng.normal(size=T), rng.normal(size=T)
  sa, s1a = np.asarray(s.sqrt_alphas_cumprod), np.asarray(s.sqrt_one_minus_alphas_cumprod)
  eps = (x_t - sa * x0) / s1a
  ddim_mean = np.asarray(c_x0) * x0 + np.asarray(c_eps) * eps
  ddpm_mean = np.asarray(s.posterior_mean_coef1) * x0 + np.asarray(s.posterior_mean_coef2) * x_t
  np.testing.assert_allclose(ddim_mean, ddpm_mean, rtol=1e-3, atol=1e-4)
  # eta = 0 is deterministic; the last step (t_prev = -1) returns x0.
  _, _, sigma0 = samplers.ddim_coefficients(s, t, t - 1, eta=0.0)
  np.testing.assert_array_equal(sigma0, 0.0)
  last = samplers.ddim_coefficients(s, jnp.array([0]), jnp.array([-1]), eta=1.0)
  np.testing.assert_allclose([float(c[0]) for c in last], [1.0, 0.0, 0.0], atol=1e-6)


def _gaussian_oracle(schedule, mean, std):
  """Optimal eps for data x0 ~ N(mean, std^2) per pixel: E[eps | x_t]."""
  def eps_fn(x_t, t):
    abar = schedules.gather(schedule.alphas_cumprod, t, x_t.ndim)
    return jnp.sqrt(1 - abar) * (x_t - jnp.sqrt(abar) * mean) / (abar * std ** 2 + 1 - abar)
  return eps_fn


@functools.lru_cache(maxsize=None)
def _jitted_samplers():
  s = _small_schedule('cosine')
  ddpm = jax.jit(lambda key, mean, std, clip: samplers.ddpm_sample(
      _gaussian_oracle(s, mean, std), s, key, (64, 8, 8, 1), clip_x0=clip),
                 static_argnums=3)
  ddim = jax.jit(lambda key, mean, std, steps, eta, clip: samplers.ddim_sample(
      _gaussian_oracle(s, mean, std), s, key, (64, 8, 8, 1), steps, eta=eta, clip_x0=clip),
                 static_argnums=(3, 5))
  return ddpm, ddim


def test_sampler_shapes_and_determinism():
  ddpm, ddim = _jitted_samplers()
  for sample in (lambda k: ddpm(k, 0.0, 0.5, True), lambda k: ddim(k, 0.0, 0.5, 10, 0.5, True)):
    a, b, c = sample(jax.random.key(0)), sample(jax.random.key(0)), sample(jax.random.key(1))
    assert a.shape == (64, 8, 8, 1) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.all(np.abs(a) <= 1.0)  # clip_x0


def test_ddim_eta1_all_steps_is_ddpm():
  ddpm, ddim = _jitted_samplers()
  key = jax.random.key(7)
  for clip in (False, True):
    np.testing.assert_allclose(ddim(key, 0.3, 0.5, T, 1.0, clip), ddpm(key, 0.3, 0.5, clip),
                               atol=2e-3)


@pytest.mark.parametrize('which', ['ddpm', 'ddim'])
def test_samplers_recover_point_mass(which):
  ddpm, ddim = _jitted_samplers()
  key = jax.random.key(3)
  x = ddpm(key, 0.4, 0.0, True) if which == 'ddpm' else ddim(key, 0.4, 0.0, 10, 0.0, True)
  np.testing.assert_allclose(x, 0.4, atol=1e-4)


def _expected_std(schedule, steps, eta, std):
  """Exact std of the sampler's output for N(mean, std^2) data with the oracle eps, from
  pure noise (tests/gaussian_oracle.py). Few-step DDIM shrinks the variance
  (Cauchy-Schwarz), which is why the samplers are compared with this and not with std itself.
  """
  return gaussian_oracle.ddim_output_std(schedule.alphas_cumprod,
                                         samplers.ddim_timesteps(T, steps), eta, std)


@pytest.mark.parametrize('which,steps,eta', [('ddpm', T, 1.0), ('ddim', 25, 0.0),
                                              ('ddim', 25, 1.0)])
def test_samplers_recover_gaussian(which, steps, eta):
  ddpm, ddim = _jitted_samplers()
  key = jax.random.key(11)
  x = ddpm(key, 0.3, 0.5, False) if which == 'ddpm' else ddim(key, 0.3, 0.5, steps, eta, False)
  x = np.asarray(x).ravel()  # 4096 independent samples, ideally of N(0.3, 0.5^2)
  expected_std = _expected_std(_small_schedule('cosine'), steps, eta, 0.5)
  assert abs(expected_std - 0.5) < 0.07  # discretisation error of T=100 / 25 steps
  assert abs(x.mean() - 0.3) < 0.03, x.mean()            # ~4 standard errors
  assert abs(x.std() - expected_std) < 0.025, (x.std(), expected_std)


def test_dpm_solver_timesteps():
  for num_steps in (1, 2, 5, 10, 20, 50, 200, 1000):
    ts = samplers.dpm_solver_timesteps(1000, num_steps)
    assert ts.dtype == np.int32 and ts.shape == (num_steps,)
    assert ts[0] == 999 and (num_steps == 1 or ts[-1] == 0)
    assert np.all(np.diff(ts) < 0)  # distinct, descending (no zero-length step)
  np.testing.assert_array_equal(samplers.dpm_solver_timesteps(1000, 1000), np.arange(999, -1, -1))
  # Denser near t = 0 than DDIM's uniform spacing.
  assert samplers.dpm_solver_timesteps(1000, 20)[-2] < samplers.ddim_timesteps(1000, 20)[-2]
  for bad in (0, 1001):
    with pytest.raises(ValueError, match='num_steps'):
      samplers.dpm_solver_timesteps(1000, bad)


def _dpm_affine_map(schedule, steps, mean, std):
  """Exact (offset, slope) of DPM-Solver++ 2M's output as a function of x_T, in float64.

  With the oracle eps of N(mean, std^2) data every update is affine in x_T, so running the
  recursion from x_T = 0 and x_T = 1 gives the output's exact mean and standard deviation.
  """
  abar = np.asarray(schedule.alphas_cumprod, np.float64)
  alpha, sigma = np.sqrt(abar), np.sqrt(1.0 - abar)
  lam = np.log(alpha) - np.log(sigma)
  ts = samplers.dpm_solver_timesteps(len(abar), steps)
  x, x0_before = np.array([0.0, 1.0]), None
  for i, t in enumerate(ts):
    x0 = mean + alpha[t] * std ** 2 / (abar[t] * std ** 2 + 1 - abar[t]) * (x - alpha[t] * mean)
    if i == len(ts) - 1:
      return x0[0], x0[1] - x0[0]
    t_next = ts[i + 1]
    h = lam[t_next] - lam[t]
    d = x0 if i == 0 else x0 + (x0 - x0_before) / (2 * (lam[t] - lam[ts[i - 1]]) / h)
    x, x0_before = sigma[t_next] / sigma[t] * x - alpha[t_next] * np.expm1(-h) * d, x0


@pytest.mark.parametrize('kind', ['linear', 'cosine'])
def test_dpm_solver_recovers_known_x0(kind):
  """With the perfect noise predictor for a fixed x0 every step stays on its path: x0 back."""
  schedule = schedules.make_schedule(kind, 1000)
  x0 = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)

  def eps_fn(x_t, t):  # The noise that takes x0 to x_t, from the schedule's own sqrt arrays.
    return ((x_t - schedules.gather(schedule.sqrt_alphas_cumprod, t, 4) * x0)
            / schedules.gather(schedule.sqrt_one_minus_alphas_cumprod, t, 4))
  # (One call would return the x0 prediction at T-1, where the cosine schedule's
  # sqrt(abar) is 5e-5: float32 cancellation alone costs ~1e-3 there.)
  for steps in (2, 10, 20):
    for clip in (False, True):
      out = jax.jit(lambda k: samplers.dpm_solver_pp_2m_sample(eps_fn, schedule, k, x0.shape,
                                                               steps, clip_x0=clip))(
          jax.random.key(steps))
      np.testing.assert_allclose(out, x0, atol=1e-4)


@pytest.mark.parametrize('kind,num_timesteps', [('linear', 1000), ('cosine', T)])
def test_dpm_solver_recovers_gaussian(kind, num_timesteps):
  schedule = (schedules.make_schedule('linear', 1000) if kind == 'linear'
              else _small_schedule('cosine'))
  mean, std, steps, shape = 0.3, 0.5, 20, (256, 8, 8, 1)
  sample = jax.jit(lambda k: samplers.sample('dpmpp_2m', _gaussian_oracle(schedule, mean, std),
                                             schedule, k, shape, steps, clip_x0=False))
  x = np.asarray(sample(jax.random.key(11))).ravel()   # 16384 independent samples
  want_mean, want_std = _dpm_affine_map(schedule, steps, mean, std)
  n = x.size
  assert abs(x.mean() - want_mean) < 4 * want_std / np.sqrt(n), (x.mean(), want_mean)
  assert abs(x.std() - want_std) < 4 * want_std / np.sqrt(2 * n), (x.std(), want_std)
  # The solver itself: within 2.5 % of the data's moments at 20 calls, where DDIM at the same
  # 20 calls is 7-14 % off (measured by the same exact recursion, `_expected_std` for T=100).
  assert abs(want_mean - mean) < 1e-3 and abs(want_std - std) < 0.025 * std, want_std
  np.testing.assert_allclose(x.mean(), mean, atol=4 * std / np.sqrt(n) + 1e-3)
  np.testing.assert_allclose(x.std(), std, atol=4 * std / np.sqrt(2 * n) + 0.025 * std)


def test_dpm_solver_determinism_and_first_step_is_ddim():
  schedule = _small_schedule('cosine')
  eps_fn = _gaussian_oracle(schedule, 0.1, 0.4)
  run = lambda name, k, steps: samplers.sample(name, eps_fn, schedule, k, (8, 4, 4, 1), steps)
  a, b, c = (run('dpmpp_2m', jax.random.key(i), 10) for i in (0, 0, 1))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  assert np.all(np.abs(a) <= 1.0)  # clip_x0
  # Two calls (t = T-1, then 0): the first step is first order, i.e. DDIM's, from the same x_T.
  np.testing.assert_allclose(run('dpmpp_2m', jax.random.key(2), 2),
                             run('ddim', jax.random.key(2), 2), atol=1e-6)
  with pytest.raises(ValueError, match='Unknown sampler'):
    run('euler', jax.random.key(0), 10)


def _gaussian_kl(m1, v1, m2, v2):
  """KL(N(m1, v1) || N(m2, v2)) summed over the last axis, float64 numpy."""
  return 0.5 * np.sum(np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0, axis=-1)


@pytest.mark.parametrize('kind', ['linear', 'cosine'])
def test_vlb_terms_equal_the_gaussian_kls_of_the_bound(kind):
  """vlb_nll's T * L_t + L_T, term by term, against the bound computed from its Gaussians."""
  num_t, dim = 12, 5
  sched = schedules.make_schedule(kind, num_t)
  betas = np.asarray(sched.betas, np.float64)
  abar = np.asarray(sched.alphas_cumprod, np.float64)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  rng = np.random.default_rng(0)
  x0 = rng.uniform(-1, 1, (1, dim))
  eps = rng.normal(size=(1, dim))
  eps_pred = eps + 0.3 * rng.normal(size=(1, dim))
  l_t_expected = 0.5 * np.sum(abar[-1] * x0 ** 2 + (1 - abar[-1]) - 1 - np.log(1 - abar[-1]))
  total, bound = 0.0, 0.0
  for t in range(num_t):
    x_t = np.sqrt(abar[t]) * x0 + np.sqrt(1 - abar[t]) * eps
    # p's mean from the predicted noise; q's posterior mean from the true x0.
    mean_p = (x_t - betas[t] / np.sqrt(1 - abar[t]) * eps_pred) / np.sqrt(1 - betas[t])
    if t == 0:   # The decoder: -log N(x0; mean_p, beta_0).
      expected = (np.sum((x0 - mean_p) ** 2) / (2 * betas[0])
                  + 0.5 * dim * np.log(2 * np.pi * betas[0]))
    else:
      var = betas[t] * (1 - abar_prev[t]) / (1 - abar[t])
      mean_q = (betas[t] * np.sqrt(abar_prev[t]) / (1 - abar[t]) * x0
                + (1 - abar_prev[t]) * np.sqrt(1 - betas[t]) / (1 - abar[t]) * x_t)
      expected = _gaussian_kl(mean_q, var, mean_p, var)[0]
    # Jitted with the schedule as an argument, as inside a train step. L_0's constant is
    # added exactly to every t's estimate; the sampled part is T times the rest of L_t.
    got = jax.jit(schedules.vlb_nll)(
        sched, jnp.asarray(x0, jnp.float32), jnp.asarray([t], jnp.int32),
        jnp.asarray(eps, jnp.float32), jnp.asarray(eps_pred, jnp.float32))
    log_const = 0.5 * dim * np.log(2 * np.pi * betas[0])
    sampled = num_t * (expected - (log_const if t == 0 else 0.0))
    np.testing.assert_allclose(float(got[0]), sampled + log_const + l_t_expected, rtol=2e-4,
                               atol=1e-4, err_msg=f't={t}')
    total += float(got[0]) / num_t
    bound += expected
  # The mean over t is the whole bound, sum_t L_t + L_T.
  np.testing.assert_allclose(total, bound + l_t_expected, rtol=2e-4)



@pytest.mark.parametrize('kind', ['linear', 'cosine'])
def test_importance_sampled_bound_has_the_uniform_bound_as_its_mean(kind):
  """Summed exactly over t with its probabilities, the importance estimate equals the
  uniform one (both the bound); every t then carries the same weight sum_s w_s."""
  num_t, dim = 50, 6
  sched = schedules.make_schedule(kind, num_t)
  proposal = schedules.t_proposal(sched, 'importance')
  assert schedules.t_proposal(sched, 'uniform') is None
  p = np.asarray(proposal, np.float64)
  np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-5)
  rng = np.random.default_rng(1)
  x0 = jnp.asarray(np.repeat(rng.uniform(-1, 1, (1, dim)), num_t, 0), jnp.float32)
  eps = jnp.asarray(np.repeat(rng.normal(size=(1, dim)), num_t, 0), jnp.float32)
  eps_pred = eps + 0.3 * jnp.asarray(rng.normal(size=(num_t, dim)), jnp.float32)
  t = jnp.arange(num_t, dtype=jnp.int32)
  uniform = np.asarray(schedules.vlb_nll(sched, x0, t, eps, eps_pred), np.float64)
  importance = np.asarray(schedules.vlb_nll(sched, x0, t, eps, eps_pred, proposal), np.float64)
  np.testing.assert_allclose(np.sum(p * importance), np.mean(uniform), rtol=1e-4)
  # Per-t coefficients of the squared error: T * w_t (uniform) vs sum_s w_s (importance).
  zero = schedules.vlb_nll(sched, x0, t, eps, eps, proposal)
  sq = np.sum(np.square(np.asarray(eps_pred - eps, np.float64)), axis=1)
  coef = (np.asarray(importance, np.float64) - np.asarray(zero, np.float64)) / sq
  np.testing.assert_allclose(coef, np.sum(np.asarray(sched.vlb_weights, np.float64)),
                             rtol=1e-3)
  with pytest.raises(ValueError, match='Unknown t sampling'):
    schedules.t_proposal(sched, 'stratified')


def test_sample_t_draws_from_the_proposal():
  """Frequencies of 200k draws match the proposal within 5 standard errors; uniform is
  jax.random.randint itself (the existing runs' numerics)."""
  sched = schedules.make_schedule('linear', 20)
  proposal = schedules.t_proposal(sched, 'importance')
  key = jax.random.PRNGKey(3)
  n = 200_000
  t = np.asarray(schedules.sample_t(key, 20, (n,), proposal))
  assert t.dtype == np.int32 and t.min() >= 0 and t.max() < 20
  freq = np.bincount(t, minlength=20) / n
  p = np.asarray(proposal, np.float64)
  np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-9)
  np.testing.assert_array_equal(schedules.sample_t(key, 20, (7,)),
                                jax.random.randint(key, (7,), 0, 20))


def test_vlb_weights_of_the_default_schedule_against_the_simple_loss():
  """DESIGN's linear T = 1000 schedule: the bound weighs each t 5-600x more than the simple
  loss (weight 1), small t most (the reconstruction end)."""
  weights = 1000 * np.asarray(schedules.make_schedule('linear', 1000).vlb_weights)
  assert 4.0 < weights.min() and weights.max() < 700.0
  assert weights[:10].mean() > 20 * weights[-100:].mean()   # 237 vs 9.7


def test_elbo_loss_option_in_the_model(tiny_config):
  """model.diffusion.loss='elbo' changes the image terms, and only them."""
  from diffmvae_jax.models import diffmvae
  from diffmvae_jax.models import modalities as modalities_lib
  from diffmvae_jax.data.dataset_api import ModalitySpec
  specs = {f'm{i}': ModalitySpec(f'm{i}', 'image', (28, 28, 3)) for i in range(2)}
  config = tiny_config
  config.data.modalities = 'm0,m1'
  terms = {}
  for loss in ('simple', 'elbo'):
    config.model.diffusion.loss = loss
    model = diffmvae.model_from_config(config, modalities_lib.resolve_modalities(config, specs))
    batch = diffmvae.dummy_batch(model.modalities, batch_size=4)
    key = jax.random.PRNGKey(0)
    variables = model.init(key, batch, key, method=diffmvae.DiffMVAE.init_all)
    terms[loss] = jax.device_get(jax.jit(model.apply)(variables, batch, key))
  assert terms['simple']['kl'] == terms['elbo']['kl']
  for name in ('nll/m0', 'nll/m1'):
    assert np.isfinite(terms['elbo'][name]) and terms['elbo'][name] != terms['simple'][name]
  # t_sampling='importance' (elbo only) draws other t, so other image terms, same KL.
  config.model.diffusion.t_sampling = 'importance'
  model = diffmvae.model_from_config(config, modalities_lib.resolve_modalities(config, specs))
  importance = jax.device_get(jax.jit(model.apply)(variables, batch, key))
  assert importance['kl'] == terms['elbo']['kl']
  for name in ('nll/m0', 'nll/m1'):
    assert np.isfinite(importance[name]) and importance[name] != terms['elbo'][name]


@pytest.mark.parametrize('name,steps', [('ddpm', 1000), ('ddim', 20), ('dpmpp_2m', 20)])
def test_samplers_recover_a_residual_outside_unit_range(name, steps):
  """With x0_offset c every sampler clips r + c, not r, to [-1, 1]: a residual r with
  |r| > 1 and r + c inside [-1, 1] comes back whole from its perfect noise predictor, and
  without the offset it is clipped to [-1, 1]."""
  schedule = schedules.make_schedule('linear', 1000)
  rng = np.random.default_rng(1)
  offset = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
  image = np.clip(-offset + rng.uniform(-0.2, 0.2, offset.shape), -1, 1).astype(np.float32)
  residual = image - offset                     # Up to +-2, so often outside [-1, 1].
  assert np.max(np.abs(residual)) > 1.2

  def eps_fn(x_t, t):
    return ((x_t - schedules.gather(schedule.sqrt_alphas_cumprod, t, 4) * residual)
            / schedules.gather(schedule.sqrt_one_minus_alphas_cumprod, t, 4))
  run = jax.jit(lambda k, off: samplers.sample(name, eps_fn, schedule, k, residual.shape,
                                               steps, x0_offset=off))
  np.testing.assert_allclose(run(jax.random.key(0), offset), residual, atol=2e-3)
  clipped = jax.jit(lambda k: samplers.sample(name, eps_fn, schedule, k, residual.shape,
                                              steps))(jax.random.key(0))
  assert np.max(np.abs(clipped)) <= 1.0 + 1e-6
