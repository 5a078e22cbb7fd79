"""PoE / MoPoE maths against closed forms and brute-force numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from diffmvae_jax.models import fusion


def _numpy_poe(mu, var, members, prior):
  """Closed-form PoE in float64: mu (M, D), var (M, D), members list of indices."""
  precision = sum(1.0 / var[m] for m in members) + (1.0 if prior else 0.0)
  mean = sum(mu[m] / var[m] for m in members) / precision
  return mean, 1.0 / precision


def _random_experts(seed, batch=3, num_modalities=3, dim=4):
  rng = np.random.default_rng(seed)
  mu = rng.normal(size=(batch, num_modalities, dim)).astype(np.float32)
  logvar = rng.uniform(-2.0, 1.5, size=(batch, num_modalities, dim)).astype(np.float32)
  return mu, logvar


def _mvn_logpdf(z, mu, var):
  return stats.multivariate_normal(mean=mu, cov=np.diag(var)).logpdf(z)


def test_subset_matrix_order():
  s = fusion.subset_matrix(3)
  assert s.dtype == bool and s.shape == (7, 3)
  as_sets = [tuple(np.flatnonzero(row)) for row in s]
  assert as_sets == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
  assert fusion.subset_matrix(5).shape == (31, 5)
  assert len({tuple(r) for r in fusion.subset_matrix(5)}) == 31
  with pytest.raises(ValueError):
    fusion.subset_matrix(0)


@pytest.mark.parametrize('prior', [False, True])
def test_poe_matches_closed_form(prior):
  mu, logvar = _random_experts(0)
  subsets = fusion.subset_matrix(3)
  mu_s, logvar_s = fusion.mopoe_components(jnp.asarray(mu), jnp.asarray(logvar), subsets, prior)
  assert mu_s.shape == (3, 7, 4) and mu_s.dtype == jnp.float32
  var = np.exp(logvar.astype(np.float64))
  for b in range(3):
    for k, row in enumerate(subsets):
      mean, v = _numpy_poe(mu[b].astype(np.float64), var[b], np.flatnonzero(row), prior)
      np.testing.assert_allclose(mu_s[b, k], mean, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(np.exp(logvar_s[b, k]), v, rtol=1e-5)


def test_poe_tiny_and_huge_variances_stable():
  mu = jnp.array([[1.0, -2.0], [3.0, 5.0]])[None]          # (1, M=2, D=2)
  logvar = jnp.array([[-30.0, -30.0], [-30.0, 30.0]])[None]
  mask = jnp.array([[True, True]])
  mu_s, logvar_s = fusion.product_of_experts(mu, logvar, mask, use_prior_expert=True)
  np.testing.assert_allclose(mu_s[0], [2.0, -2.0], rtol=1e-5)
  np.testing.assert_allclose(logvar_s[0], [-30.0 - np.log(2.0), -30.0], rtol=1e-5)
  grads = jax.grad(lambda m, lv: jnp.sum(fusion.product_of_experts(m, lv, mask, True)[0])
                   + jnp.sum(fusion.product_of_experts(m, lv, mask, True)[1]),
                   argnums=(0, 1))(mu, logvar)
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_poe_empty_member_set():
  mu, logvar = _random_experts(1, batch=2)
  empty = jnp.zeros((2, 3), bool)
  mu_s, logvar_s = fusion.product_of_experts(jnp.asarray(mu), jnp.asarray(logvar), empty, True)
  np.testing.assert_array_equal(mu_s, 0.0)
  np.testing.assert_array_equal(logvar_s, 0.0)  # N(0, I)
  f = lambda m, lv: jnp.sum(sum(fusion.product_of_experts(m, lv, empty, False)))
  value, grads = jax.value_and_grad(f, argnums=(0, 1))(jnp.asarray(mu), jnp.asarray(logvar))
  assert np.isfinite(value)
  assert all(np.all(g == 0.0) for g in grads)


def test_valid_subsets():
  subsets = fusion.subset_matrix(3)
  available = jnp.array([[True, True, True], [True, False, True], [False, False, False]])
  valid = np.asarray(fusion.valid_subsets(subsets, available))
  np.testing.assert_array_equal(valid[0], True)
  as_sets = [tuple(np.flatnonzero(row)) for row in subsets]
  assert [s for s, v in zip(as_sets, valid[1]) if v] == [(0,), (2,), (0, 2)]
  assert not valid[2].any()


def _components_and_valid(seed=2):
  mu, logvar = _random_experts(seed)
  subsets = fusion.subset_matrix(3)
  mu_s, logvar_s = fusion.mopoe_components(jnp.asarray(mu), jnp.asarray(logvar), subsets, True)
  available = jnp.array([[True, True, True], [True, False, True], [False, True, False]])
  return mu_s, logvar_s, fusion.valid_subsets(subsets, available)


def test_mixture_log_density_brute_force():
  mu_s, logvar_s, valid = _components_and_valid()
  z = jax.random.normal(jax.random.key(0), (3, 4))
  got = fusion.mixture_log_density(z, mu_s, logvar_s, valid)
  for b in range(3):
    ks = np.flatnonzero(np.asarray(valid[b]))
    dens = [np.exp(_mvn_logpdf(np.asarray(z[b]), np.asarray(mu_s[b, k], np.float64),
                               np.exp(np.asarray(logvar_s[b, k], np.float64)))) for k in ks]
    np.testing.assert_allclose(got[b], np.log(np.mean(dens)), rtol=1e-5, atol=1e-5)
  # Invalid components are ignored: changing them does not change the density.
  garbage = jnp.where(valid[..., None], mu_s, 1e3)
  np.testing.assert_allclose(fusion.mixture_log_density(z, garbage, logvar_s, valid), got)


def test_gaussian_log_density_and_kl_helpers():
  rng = np.random.default_rng(3)
  z, mu = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
  logvar = rng.uniform(-1, 1, size=(2, 5))
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  want = [_mvn_logpdf(z[i], mu[i], np.exp(logvar[i])) for i in range(2)]
  np.testing.assert_allclose(fusion.gaussian_log_density(f32(z), f32(mu), f32(logvar)), want,
                             rtol=1e-5)
  var = np.exp(logvar)
  kl = 0.5 * np.sum(var + mu ** 2 - 1.0 - np.log(var), axis=-1)
  np.testing.assert_allclose(fusion.kl_to_standard_normal(f32(mu), f32(logvar)), kl, rtol=1e-5)


def test_kl_estimators_against_numpy():
  mu_s, logvar_s, valid = _components_and_valid(4)
  mu64, var64 = np.asarray(mu_s, np.float64), np.exp(np.asarray(logvar_s, np.float64))
  kl_k = 0.5 * np.sum(var64 + mu64 ** 2 - 1.0 - np.log(var64), axis=-1)  # (B, K)
  v = np.asarray(valid)
  want = (kl_k * v).sum(-1) / v.sum(-1)
  np.testing.assert_allclose(fusion.kl_subset_average(mu_s, logvar_s, valid), want, rtol=1e-5)

  z, _ = fusion.sample_mixture(jax.random.key(1), mu_s, logvar_s, valid)
  z64 = np.asarray(z, np.float64)
  for b in range(3):
    ks = np.flatnonzero(v[b])
    log_q = np.log(np.mean([np.exp(_mvn_logpdf(z64[b], mu64[b, k], var64[b, k])) for k in ks]))
    log_p = _mvn_logpdf(z64[b], np.zeros(4), np.ones(4))
    np.testing.assert_allclose(fusion.kl_mixture_mc(z, mu_s, logvar_s, valid)[b],
                               log_q - log_p, rtol=1e-5, atol=1e-5)


def test_subset_sampling_is_uniform_over_valid():
  num_draws = 20000
  valid = jnp.array([[True] * 7, [True, False, True, False, True, False, False]])
  valid = jnp.repeat(valid, num_draws // 2, axis=0)
  idx = np.asarray(jax.jit(fusion.sample_subset_indices)(jax.random.key(0), valid))
  assert idx.dtype == np.int32
  for row, allowed in ((idx[: num_draws // 2], range(7)),
                       (idx[num_draws // 2:], (0, 2, 4))):
    counts = np.bincount(row, minlength=7)
    assert set(np.flatnonzero(counts)) == set(allowed)  # invalid subsets never sampled
    observed = counts[list(allowed)]
    chi2 = stats.chisquare(observed).pvalue
    assert chi2 > 1e-3, (observed, chi2)


def test_stratified_subsets_spread_the_batch_evenly():
  """A fully observed batch: every subset gets floor(B/K) or ceil(B/K) examples."""
  for batch_size, seed in ((32, 0), (7, 1), (100, 2)):
    valid = jnp.ones((batch_size, 7), bool)
    idx = np.asarray(jax.jit(fusion.sample_subset_indices, static_argnums=2)(
        jax.random.key(seed), valid, True))
    counts = np.bincount(idx, minlength=7)
    assert counts.min() >= batch_size // 7 and counts.max() <= -(-batch_size // 7), counts


def test_stratified_subsets_are_uniform_over_valid_per_example():
  """Each example's subset is marginally uniform over its own valid subsets (any mask)."""
  rows = jnp.array([[True] * 7, [True, False, True, False, True, False, False],
                    [False, False, False, False, False, False, True], [False] * 7])
  valid = jnp.tile(rows, (8, 1))   # A batch of 32 mixing four masks.
  draw = jax.jit(lambda k: fusion.sample_subset_indices(k, valid, True))
  idx = np.stack([np.asarray(draw(k)) for k in jax.random.split(jax.random.key(5), 1500)])
  idx = idx.reshape(-1, 8, 4)   # (draws, repeat, mask)
  for m, allowed in ((0, range(7)), (1, (0, 2, 4)), (2, (6,)), (3, (0,))):
    counts = np.bincount(idx[:, :, m].ravel(), minlength=7)
    assert set(np.flatnonzero(counts)) == set(allowed)
    if len(allowed) > 1:
      assert stats.chisquare(counts[list(allowed)]).pvalue > 1e-3, counts


def test_stratified_sampling_keeps_gradients_and_is_deterministic():
  mu_s, logvar_s, valid = _components_and_valid(6)
  z1, i1 = fusion.sample_mixture(jax.random.key(3), mu_s, logvar_s, valid, stratified=True)
  z2, i2 = fusion.sample_mixture(jax.random.key(3), mu_s, logvar_s, valid, stratified=True)
  np.testing.assert_array_equal(z1, z2)
  np.testing.assert_array_equal(i1, i2)
  assert np.all(np.asarray(valid)[np.arange(len(i1)), i1])
  g = jax.grad(lambda m: jnp.sum(fusion.sample_mixture(
      jax.random.key(3), m, logvar_s, valid, stratified=True)[0]))(mu_s)
  for b in range(len(i1)):
    np.testing.assert_allclose(g[b, i1[b]], 1.0)


def test_missing_modalities_no_nan():
  mu, logvar = _random_experts(5)
  subsets = fusion.subset_matrix(3)
  available = jnp.array([[True, False, False], [False, False, False], [True, True, False]])

  def loss(mu, logvar):
    mu_s, logvar_s = fusion.mopoe_components(mu, logvar, subsets, False)
    valid = fusion.valid_subsets(subsets, available)
    z, idx = fusion.sample_mixture(jax.random.key(2), mu_s, logvar_s, valid)
    terms = (fusion.kl_subset_average(mu_s, logvar_s, valid)
             + fusion.kl_mixture_mc(z, mu_s, logvar_s, valid))
    return jnp.sum(terms), (z, idx, terms)

  (value, (z, idx, terms)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
      jnp.asarray(mu), jnp.asarray(logvar))
  assert np.isfinite(value) and np.all(np.isfinite(z)) and np.all(np.isfinite(terms))
  assert all(np.all(np.isfinite(g)) for g in grads)
  valid = np.asarray(fusion.valid_subsets(subsets, available))
  assert valid[0, idx[0]] and valid[2, idx[2]]
  # Example 0 only has modality 0: its z comes from the single-expert component {0}.
  # Missing modalities get no gradient.
  np.testing.assert_array_equal(grads[0][0, 1:], 0.0)
  np.testing.assert_array_equal(grads[0][2, 2], 0.0)


def test_gradient_flows_through_sample_mixture():
  mu_s, logvar_s, valid = _components_and_valid(6)

  def f(mu_s, logvar_s):
    z, _ = fusion.sample_mixture(jax.random.key(3), mu_s, logvar_s, valid)
    return jnp.sum(z)

  g_mu, g_lv = jax.grad(f, argnums=(0, 1))(mu_s, logvar_s)
  _, idx = fusion.sample_mixture(jax.random.key(3), mu_s, logvar_s, valid)
  for b in range(3):
    np.testing.assert_allclose(g_mu[b, idx[b]], 1.0)
    assert np.all(g_lv[b, idx[b]] != 0.0)
    others = np.arange(7) != int(idx[b])
    np.testing.assert_array_equal(g_mu[b, others], 0.0)


def test_sample_mixture_moments():
  """With two well-separated components the sample mean matches the mixture mean."""
  mu_s = jnp.array([[[-3.0], [3.0], [100.0]]])
  logvar_s = jnp.log(jnp.array([[[0.25], [0.25], [1.0]]]))
  valid = jnp.array([[True, True, False]])
  n = 4000
  rep = lambda a: jnp.repeat(a, n, axis=0)
  z, idx = jax.jit(fusion.sample_mixture)(jax.random.key(4), rep(mu_s), rep(logvar_s), rep(valid))
  assert set(np.unique(idx)) == {0, 1}
  z = np.asarray(z)[:, 0]
  assert abs(z.mean()) < 0.2
  np.testing.assert_allclose(z.var(), 9.25, rtol=0.1)
  assert np.all(np.isfinite(z))


POISONS = [np.nan, np.inf, -np.inf, 1e30, -1e30]


def _fusion_terms(mu, logvar, available, key=jax.random.key(7)):
  """Every fusion quantity the ELBO uses, as one pytree, from experts (B, M, D)."""
  subsets = fusion.subset_matrix(mu.shape[1])
  mu_s, logvar_s = fusion.mopoe_components(mu, logvar, subsets, True, available)
  valid = fusion.valid_subsets(subsets, available)
  z, index = fusion.sample_mixture(key, mu_s, logvar_s, valid)
  return {'z': z, 'index': index,
          'kl_avg': fusion.kl_subset_average(mu_s, logvar_s, valid),
          'kl_mc': fusion.kl_mixture_mc(z, mu_s, logvar_s, valid),
          'log_q': fusion.mixture_log_density(z, mu_s, logvar_s, valid)}


@pytest.mark.parametrize('poison', POISONS)
def test_unavailable_experts_cannot_poison_values_or_gradients(poison):
  mu, logvar = _random_experts(8, batch=4)
  available = jnp.array([[True, False, True], [False, False, True], [True, True, True],
                         [False, False, False]])
  dirty_mu = np.where(np.asarray(available)[..., None], mu, poison).astype(np.float32)
  dirty_lv = np.where(np.asarray(available)[..., None], logvar, poison).astype(np.float32)

  def loss(mu, logvar):
    t = _fusion_terms(mu, logvar, available)
    return jnp.sum(t['kl_avg'] + t['kl_mc'] + t['log_q'] + jnp.sum(t['z'] ** 2, -1)), t

  (clean, clean_t), clean_g = jax.value_and_grad(loss, (0, 1), has_aux=True)(
      jnp.asarray(mu), jnp.asarray(logvar))
  (dirty, dirty_t), dirty_g = jax.value_and_grad(loss, (0, 1), has_aux=True)(
      jnp.asarray(dirty_mu), jnp.asarray(dirty_lv))
  assert np.isfinite(clean)
  np.testing.assert_array_equal(dirty, clean)
  for k in clean_t:
    np.testing.assert_array_equal(dirty_t[k], clean_t[k], err_msg=k)
  for g_clean, g_dirty in zip(clean_g, dirty_g):
    np.testing.assert_array_equal(g_dirty, g_clean)
    # Unavailable experts get exactly zero gradient.
    np.testing.assert_array_equal(np.asarray(g_dirty)[~np.asarray(available)], 0.0)


@pytest.mark.parametrize('poison', POISONS)
def test_poe_non_members_and_invalid_components_are_never_read(poison):
  mu, logvar = _random_experts(9)
  members = jnp.array([[True, False, True], [False, True, False], [False, False, False]])
  keep = np.asarray(members)[..., None]
  f = lambda m, lv: sum(jnp.sum(o) for o in fusion.product_of_experts(m, lv, members, False))
  clean = jax.value_and_grad(f, (0, 1))(jnp.asarray(mu), jnp.asarray(logvar))
  dirty = jax.value_and_grad(f, (0, 1))(jnp.asarray(np.where(keep, mu, poison), jnp.float32),
                                        jnp.asarray(np.where(keep, logvar, poison), jnp.float32))
  np.testing.assert_array_equal(dirty[0], clean[0])
  for a, b in zip(dirty[1], clean[1]):
    np.testing.assert_array_equal(a, b)
  # The mixture-level functions ignore whatever invalid components hold.
  mu_s, logvar_s, valid = _components_and_valid(10)
  bad = ~np.asarray(valid)[..., None]
  dirty_mu_s = jnp.where(bad, jnp.float32(poison), mu_s)
  dirty_lv_s = jnp.where(bad, jnp.float32(poison), logvar_s)
  z, _ = fusion.sample_mixture(jax.random.key(5), mu_s, logvar_s, valid)
  for fn, args in ((fusion.kl_subset_average, ()), (fusion.mixture_log_density, (z,)),
                   (fusion.kl_mixture_mc, (z,)), (fusion.sample_mixture, (jax.random.key(5),))):
    g = lambda a, b: jnp.sum(jax.tree_util.tree_leaves(fn(*args, a, b, valid))[0])
    want = jax.value_and_grad(g, (0, 1))(mu_s, logvar_s)
    got = jax.value_and_grad(g, (0, 1))(dirty_mu_s, dirty_lv_s)
    np.testing.assert_array_equal(got[0], want[0], err_msg=fn.__name__)
    for a, b in zip(got[1], want[1]):
      np.testing.assert_array_equal(a, b, err_msg=fn.__name__)


def test_extreme_available_experts_stay_finite():
  """At the log-variance bound and with large means every term and gradient is finite."""
  mu, logvar = _random_experts(11, batch=2)
  mu = np.array(mu) * 1e6
  logvar = np.array(logvar)
  logvar[0] = fusion.LOGVAR_BOUND
  logvar[1] = -fusion.LOGVAR_BOUND
  available = jnp.ones((2, 3), bool)

  def loss(mu, logvar):
    t = _fusion_terms(mu, logvar, available)
    return jnp.sum(t['kl_avg'] + t['kl_mc'] + t['log_q']), t

  (value, terms), grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(
      jnp.asarray(mu, jnp.float32), jnp.asarray(logvar, jnp.float32))
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(v)) for v in jax.tree_util.tree_leaves(terms))
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_bound_logvar_and_encoder_heads():
  x = jnp.array([-1e30, -100.0, -30.0, -1.5, 0.0, 2.0, 30.0, 88.0, 1e30])
  np.testing.assert_array_equal(fusion.bound_logvar(x),
                                [-30, -30, -30, -1.5, 0, 2, 30, 30, 30])
  # Gradient is the identity inside the range, zero outside.
  inside = jnp.array([-1e30, -31.0, -29.5, 0.0, 29.5, 31.0])
  np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(fusion.bound_logvar(v)))(inside),
                                [0, 0, 1, 1, 1, 0])
  from diffmvae_jax.models import encoders
  heads = encoders.GaussianHeads(4)
  h = jnp.full((2, 3), 1e6)
  params = heads.init(jax.random.key(0), h)
  mu, logvar = heads.apply(params, h)
  assert np.all(np.abs(logvar) <= fusion.LOGVAR_BOUND) and np.all(np.isfinite(mu))
  assert np.any(np.abs(logvar) == fusion.LOGVAR_BOUND)
