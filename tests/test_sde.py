"""Latent score-based prior: SDE marginals, reverse-SDE / PC / probability-flow samplers, DSM."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from diffmvae_jax.diffusion import sde as sde_lib
from diffmvae_jax.diffusion import sde_samplers
from diffmvae_jax.models import latent_prior

SDES = {'vp': sde_lib.VPSDE(), 'subvp': sde_lib.SubVPSDE(), 've': sde_lib.VESDE()}

# Gaussian data N(M, diag(S^2)) whose perturbed marginals have an analytic score.
M = np.array([1.0, -0.5], np.float32)
S = np.array([0.5, 1.5], np.float32)


def gaussian_score_fn(sde):
  """Exact score of p_t for data N(M, diag(S^2)): -(z - a M) / (a^2 S^2 + std^2)."""
  def score_fn(z, t):
    mean, std = sde.marginal(t)
    var = jnp.square(mean[:, None] * S) + jnp.square(std[:, None])
    return -(z - mean[:, None] * M) / var
  return score_fn


# ---------------------------------------------------------------------------------------------
# SDE definitions.


def test_marginals_against_closed_form():
  t = np.linspace(1e-3, 1.0, 50)
  bmin, bmax = 0.1, 20.0
  mean = np.exp(-0.25 * t ** 2 * (bmax - bmin) - 0.5 * t * bmin)
  tj = jnp.asarray(t, jnp.float32)
  vp_mean, vp_std = SDES['vp'].marginal(tj)
  np.testing.assert_allclose(vp_mean, mean, rtol=1e-5)
  np.testing.assert_allclose(vp_std, np.sqrt(1 - mean ** 2), rtol=1e-4)
  sub_mean, sub_std = SDES['subvp'].marginal(tj)
  np.testing.assert_allclose(sub_mean, mean, rtol=1e-5)
  np.testing.assert_allclose(sub_std, 1 - mean ** 2, rtol=1e-4)
  ve_mean, ve_std = SDES['ve'].marginal(tj)
  sigma = 0.01 * (50.0 / 0.01) ** t
  np.testing.assert_allclose(ve_mean, np.ones_like(t))
  np.testing.assert_allclose(ve_std, np.sqrt(sigma ** 2 - 0.01 ** 2), rtol=1e-4)
  for sde in SDES.values():
    assert sde.T == 1.0
    for x in sde.marginal(tj):
      assert x.shape == (50,) and x.dtype == jnp.float32
  assert sde_lib.make_sde('vp', beta_max=10.0) == sde_lib.VPSDE(beta_max=10.0)
  assert hash(sde_lib.make_sde('ve')) == hash(sde_lib.VESDE())


@pytest.mark.parametrize('name', list(SDES))
def test_drift_and_diffusion_consistent_with_marginal(name):
  """Linear SDE f = a(t) z: d log mean/dt = a and d var/dt = 2 a var + g^2."""
  sde = SDES[name]
  ts = jnp.linspace(0.05, 1.0, 20)
  dlogmean = jax.vmap(jax.grad(lambda t: jnp.log(sde.marginal(t[None])[0][0])))(ts)
  dvar = jax.vmap(jax.grad(lambda t: jnp.square(sde.marginal(t[None])[1][0])))(ts)
  f, g = sde.drift_and_diffusion(jnp.ones((20, 3)), ts)
  assert f.shape == (20, 3) and g.shape == (20,)
  a = f[:, 0]
  _, std = sde.marginal(ts)
  np.testing.assert_allclose(dlogmean, a, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(dvar, 2 * a * std ** 2 + g ** 2, rtol=2e-3)


@pytest.mark.parametrize('name', list(SDES))
def test_marginal_matches_forward_euler_maruyama(name):
  sde = SDES[name]
  n_paths, n_steps, z0 = 2000, 1000, 1.5
  dt = sde.T / n_steps

  @jax.jit
  def simulate(key):
    def step(z, inp):
      i, k = inp
      f, g = sde.drift_and_diffusion(z, jnp.full((n_paths,), i * dt))
      z = z + f * dt + g[:, None] * jnp.sqrt(dt) * jax.random.normal(k, z.shape)
      return z, z[:, 0]
    keys = jax.random.split(key, n_steps)
    _, path = jax.lax.scan(step, jnp.full((n_paths, 1), z0), (jnp.arange(n_steps), keys))
    return path

  path = np.asarray(simulate(jax.random.key(0)))
  for t in (0.1, 0.3, 1.0):
    zt = path[int(round(t / dt)) - 1]
    mean, std = (float(x[0]) for x in sde.marginal(jnp.array([t])))
    assert abs(zt.mean() - mean * z0) < 4.5 * std / np.sqrt(n_paths) + 1e-2 * std, (t, zt.mean())
    np.testing.assert_allclose(zt.std(), std, rtol=0.06)


def test_prior_logp_and_sample():
  z = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
  for sde, scale in ((SDES['vp'], 1.0), (SDES['subvp'], 1.0), (SDES['ve'], 50.0)):
    expected = stats.norm.logpdf(z, scale=scale).sum(-1)
    np.testing.assert_allclose(sde.prior_logp(jnp.asarray(z)), expected, rtol=1e-5)
    x = sde.prior_sample(jax.random.key(0), (5000, 2))
    assert x.shape == (5000, 2) and x.dtype == jnp.float32
    np.testing.assert_allclose(np.std(x), scale, rtol=0.05)


def test_reverse_drift():
  sde = SDES['vp']
  z, t = jnp.ones((2, 3)), jnp.full((2,), 0.5)
  f, g = sde.drift_and_diffusion(z, t)
  score = lambda z, t: 2.0 * z  # pylint: disable=unnecessary-lambda-assignment
  sde_drift = sde_lib.reverse_drift(sde, score, z, t, probability_flow=False)
  ode_drift = sde_lib.reverse_drift(sde, score, z, t, probability_flow=True)
  np.testing.assert_allclose(sde_drift, f - g[:, None] ** 2 * 2.0, rtol=1e-6)
  np.testing.assert_allclose(ode_drift, f - 0.5 * g[:, None] ** 2 * 2.0, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Samplers with the exact score of a Gaussian.


@pytest.mark.parametrize('name,sampler', [('vp', 'euler_maruyama'), ('vp', 'pc'),
                                          ('subvp', 'euler_maruyama'), ('ve', 'pc'),
                                          ('vp', 'ode_heun')])
def test_reverse_process_recovers_gaussian(name, sampler):
  sde = SDES[name]
  sample = sde_samplers.make_sampler(sampler, sde, num_steps=500)
  x = np.asarray(jax.jit(lambda k: sample(gaussian_score_fn(sde), k, (4000, 2)))(
      jax.random.key(1)))
  assert np.all(np.isfinite(x))
  np.testing.assert_allclose(x.mean(0), M, atol=0.08)
  cov = np.cov(x.T)
  np.testing.assert_allclose(np.sqrt(np.diag(cov)), S, rtol=0.06)
  assert abs(cov[0, 1]) < 0.06


def test_probability_flow_deterministic_and_reversible():
  sde = SDES['vp']
  score_fn = gaussian_score_fn(sde)
  eps = 1e-3
  z0 = jnp.asarray(M + S * np.random.default_rng(0).normal(size=(64, 2)), jnp.float32)

  @jax.jit
  def roundtrip(z0, key):
    z_t = sde_samplers.probability_flow_encode(sde, score_fn, z0, 200, 'heun', eps)
    back = sde_samplers.probability_flow_ode(sde, score_fn, key, z0.shape, 200, 'heun', eps,
                                             z_init=z_t)
    return z_t, back

  z_t, back = roundtrip(z0, jax.random.key(0))
  z_t2, back2 = roundtrip(z0, jax.random.key(7))  # key unused with z_init
  np.testing.assert_array_equal(z_t, z_t2)
  np.testing.assert_array_equal(back, back2)
  np.testing.assert_allclose(back, z0, atol=2e-3)
  # For Gaussian data the flow is affine per dimension:
  # z_t = a_t M + sqrt(v_t / v_eps) (z_eps - a_eps M), v = a^2 S^2 + std^2.
  (a_e, a_t), (s_e, s_t) = (np.asarray(x) for x in sde.marginal(jnp.array([eps, 1.0])))
  v_e, v_t = a_e ** 2 * S ** 2 + s_e ** 2, a_t ** 2 * S ** 2 + s_t ** 2
  expected = a_t * M + np.sqrt(v_t / v_e) * (np.asarray(z0) - a_e * M)
  np.testing.assert_allclose(z_t, expected, atol=2e-3)


def test_sampler_shapes_and_determinism():
  sde = SDES['vp']
  score_fn = lambda z, t: -z  # noqa: E731  (exact for N(0, I) data under VP)
  for name in sde_samplers.SAMPLER_NAMES:
    sample = jax.jit(functools.partial(sde_samplers.make_sampler(name, sde, num_steps=8),
                                       score_fn, shape=(3, 5)))
    a, b, c = sample(jax.random.key(0)), sample(jax.random.key(0)), sample(jax.random.key(1))
    assert a.shape == (3, 5) and a.dtype == jnp.float32, name
    assert np.all(np.isfinite(a)), name
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c), name


def test_unknown_names_raise():
  with pytest.raises(ValueError, match='vp, subvp, ve'):
    sde_lib.make_sde('ddpm')
  with pytest.raises(ValueError, match='euler_maruyama, pc, ode_euler, ode_heun'):
    sde_samplers.make_sampler('ancestral', SDES['vp'])
  with pytest.raises(TypeError):
    sde_samplers.make_sampler('euler_maruyama', SDES['vp'], snr=0.1)
  score_fn = lambda z, t: -z  # noqa: E731
  with pytest.raises(ValueError, match='heun'):
    sde_samplers.probability_flow_ode(SDES['vp'], score_fn, jax.random.key(0), (2, 2), 4,
                                      method='rk45')
  with pytest.raises(ValueError, match='reverse_diffusion'):
    sde_samplers.predictor_corrector(SDES['vp'], score_fn, jax.random.key(0), (2, 2), 4,
                                     predictor='langevin')


# ---------------------------------------------------------------------------------------------
# ScoreNet and DSM.

MODES = np.array([[1.5, 1.5], [-1.5, 1.5], [1.5, -1.5], [-1.5, -1.5]], np.float32)


def test_score_net_output_scaling_and_loss():
  sde = SDES['vp']
  net = latent_prior.ScoreNet(sde, width=16, depth=2, embed_dim=8)
  raw = latent_prior.ScoreNet(sde, width=16, depth=2, embed_dim=8, output_scaling=False)
  z, t = jnp.ones((3, 2)), jnp.array([0.1, 0.5, 1.0])
  variables = net.init(jax.random.key(0), z, t)
  score = latent_prior.make_score_fn(net, variables)(z, t)
  assert score.shape == (3, 2) and score.dtype == jnp.float32
  _, std = sde.marginal(t)
  np.testing.assert_allclose(score, -raw.apply(variables, z, t) / std[:, None], rtol=1e-5)
  apply = lambda p, z, t: net.apply({'params': p}, z, t)  # noqa: E731
  exact = lambda p, z, t: gaussian_score_fn(sde)(z, t)  # noqa: E731
  zero = lambda p, z, t: jnp.zeros_like(z)  # noqa: E731
  z0 = jnp.asarray(M + S * np.random.default_rng(0).normal(size=(4096, 2)), jnp.float32)

  @jax.jit
  def losses(params, key):
    return [latent_prior.dsm_loss(fn, params, sde, key, z0) for fn in (apply, zero, exact)]

  loss, zero_loss, best = losses(variables['params'], jax.random.key(1))
  assert loss.shape == () and np.isfinite(loss)
  # A zero score gives E||noise||^2 = D; the exact score of Gaussian data does far better.
  np.testing.assert_allclose(zero_loss, 2.0, rtol=0.05)
  assert best < 0.8 * zero_loss, (best, zero_loss)


def _train_and_sample(num_train_steps, width, samplers, num_samples=1000):
  """Trains ScoreNet on the 4-mode toy mixture with Adam; returns losses and one array of
  samples per sampler in `samplers`."""
  sde = SDES['vp']
  net = latent_prior.ScoreNet(sde, width=width, depth=2, embed_dim=32)
  opt = optax.adam(2e-3)
  apply = lambda p, z, t: net.apply({'params': p}, z, t)  # noqa: E731
  modes = jnp.asarray(MODES)

  @jax.jit
  def run(key):
    init_key, train_key, sample_key = jax.random.split(key, 3)
    params = net.init(init_key, jnp.zeros((1, 2)), jnp.ones((1,)))['params']

    def step(carry, k):
      params, opt_state = carry
      idx_key, noise_key, loss_key = jax.random.split(k, 3)
      z0 = (modes[jax.random.randint(idx_key, (256,), 0, 4)]
            + 0.15 * jax.random.normal(noise_key, (256, 2)))
      loss, grads = jax.value_and_grad(latent_prior.dsm_loss, argnums=1)(
          apply, params, sde, loss_key, z0)
      updates, opt_state = opt.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)),
                                       jax.random.split(train_key, num_train_steps))
    score_fn = latent_prior.make_score_fn(net, {'params': params})
    return losses, [sampler(score_fn, sample_key, (num_samples, 2)) for sampler in samplers]

  losses, samples = run(jax.random.key(0))
  return np.asarray(losses), [np.asarray(x) for x in samples]


def _mode_stats(samples):
  """Fraction of samples within 0.5 of a mode, and the fraction of all samples at each mode."""
  dist = np.linalg.norm(samples[:, None] - MODES[None], axis=-1)
  near = dist.min(1) < 0.5
  counts = np.bincount(dist.argmin(1)[near], minlength=len(MODES))
  return near.mean(), counts / len(samples)


def test_dsm_training_on_toy_mixture():
  sampler = sde_samplers.make_sampler('euler_maruyama', SDES['vp'], num_steps=200)
  losses, (samples,) = _train_and_sample(400, 64, [sampler])
  assert losses[-50:].mean() < 0.7 * losses[:50].mean(), (losses[:50].mean(), losses[-50:].mean())
  near, fractions = _mode_stats(samples)
  assert near > 0.8, near
  assert fractions.min() > 0.1, fractions


@pytest.mark.slow
def test_dsm_training_on_toy_mixture_long():
  names = ('euler_maruyama', 'pc', 'ode_heun')
  samplers = [sde_samplers.make_sampler(name, SDES['vp'], num_steps=500) for name in names]
  losses, samples = _train_and_sample(2000, 128, samplers, num_samples=4000)
  assert losses[-200:].mean() < 0.5 * losses[:20].mean(), (losses[:20].mean(),
                                                           losses[-200:].mean())
  for name, x in zip(names, samples):
    near, fractions = _mode_stats(x)
    assert near > 0.9, (name, near)
    assert fractions.min() > 0.15, (name, fractions)


@pytest.mark.parametrize('name', ['vp', 'subvp', 've'])
def test_gaussian_residual_score_net_is_the_standard_normal_score_when_zero(name):
  """prior.gaussian_residual: with its output layer zeroed, the net's score is exactly that of
  z_0 ~ N(0, I) perturbed by the SDE, -z / (mean^2 + std^2) (gaussian_score_fn with M = 0,
  S = 1); without the option the zeroed net's score is 0."""
  sde = SDES[name]
  z = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)) * 3.0, jnp.float32)
  t = jnp.array([0.02, 0.1, 0.4, 0.7, 1.0])
  for residual in (True, False):
    net = latent_prior.ScoreNet(sde, width=16, depth=2, embed_dim=8, gaussian_residual=residual)
    params = net.init(jax.random.key(0), z, t)['params']
    params['output'] = jax.tree.map(jnp.zeros_like, params['output'])
    score = latent_prior.make_score_fn(net, {'params': params})(z, t)
    mean, std = sde.marginal(t)
    expected = (-z / (jnp.square(mean) + jnp.square(std))[:, None] if residual
                else jnp.zeros_like(z))
    np.testing.assert_allclose(score, expected, rtol=1e-5, atol=1e-6)
