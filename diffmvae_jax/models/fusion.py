"""Product of experts and the MoPoE mixture over subsets of modalities (DESIGN §2.2, §2.3).

Conventions: M modalities, K subsets (rows of a static boolean (K, M) matrix), latent size D,
batch B. Every Gaussian is diagonal and parameterised by (mu, logvar), float32. Masks are
boolean; an unavailable modality or an invalid subset is switched off with a -inf logit, so
partially observed batches need no special cases.

Finiteness contract: every function here selects with `jnp.where` *before* any arithmetic
on what a mask switches off, so an unavailable expert or an invalid component may hold
anything (NaN, inf, +-1e30) and values and gradients are exactly those of the clean case
(`tests/test_fusion.py` puts NaN, inf and extreme values there). What is switched on must
be finite and in range: log-variances within +-LOGVAR_BOUND (the encoders' heads apply
`bound_logvar`; beyond about +-88 exp overflows in float32) and |mu| below ~1e18 (so that
squares stay finite in float32).
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

_LOG_2PI = math.log(2.0 * math.pi)

# Encoders emit log-variances in [-LOGVAR_BOUND, LOGVAR_BOUND]: standard deviations from
# 3e-7 to 3e6, far beyond anything a trained model uses, and exp(+-30) is finite in float32.
LOGVAR_BOUND = 30.0


def bound_logvar(logvar):
  """Clips log-variances to [-LOGVAR_BOUND, LOGVAR_BOUND] (identity inside the range).

  Args:
    logvar: float array, any shape.

  Returns:
    float array of the same shape and dtype.
  """
  return jnp.clip(logvar, -LOGVAR_BOUND, LOGVAR_BOUND)


def mask_experts(mu, logvar, available):
  """Replaces unavailable experts by the placeholder (mu 0, logvar 0), without arithmetic.

  Args:
    mu, logvar: float32 (B, M, D).
    available: bool (B, M).

  Returns:
    (mu, logvar): float32 (B, M, D); an unavailable expert's content (NaN, inf, anything)
    reaches neither the values nor the gradients (it gets exactly zero gradient).
  """
  keep = jnp.asarray(available, bool)[..., None]
  return jnp.where(keep, mu, 0.0), jnp.where(keep, logvar, 0.0)


def _keep_components(mu_S, logvar_S, valid):
  """Invalid mixture components replaced by (0, 0) before any arithmetic reads them."""
  keep = jnp.asarray(valid, bool)[..., None]
  return jnp.where(keep, mu_S, 0.0), jnp.where(keep, logvar_S, 0.0)


def subset_matrix(num_modalities: int) -> np.ndarray:
  """All non-empty subsets of `num_modalities` modalities as a static membership matrix.

  Rows are ordered by subset size, then lexicographically by member indices, e.g. for M = 3:
  {0}, {1}, {2}, {0,1}, {0,2}, {1,2}, {0,1,2}.

  Args:
    num_modalities: M >= 1.

  Returns:
    np.ndarray bool (K, M) with K = 2^M - 1; row k marks the members of subset k.
  """
  if num_modalities < 1:
    raise ValueError(f'num_modalities must be >= 1, got {num_modalities}.')
  rows = []
  for size in range(1, num_modalities + 1):
    for members in itertools.combinations(range(num_modalities), size):
      row = np.zeros((num_modalities,), dtype=bool)
      row[list(members)] = True
      rows.append(row)
  return np.stack(rows)


def _masked_logsumexp(x, mask, axis):
  """logsumexp of x over `axis` restricted to mask; empty sets give a finite placeholder.

  Args:
    x: float array.
    mask: bool array broadcastable to x.shape.
    axis: the axis reduced.

  Returns:
    (lse, nonempty): lse float, x.shape without `axis`, equal to log sum_{mask} exp(x) where
    the set is non-empty and 0 where it is empty; nonempty bool of the same shape. Gradients
    are finite everywhere (masked entries receive exactly zero).
  """
  mask = jnp.broadcast_to(mask, x.shape)
  masked = jnp.where(mask, x, -jnp.inf)
  shift = jax.lax.stop_gradient(jnp.max(masked, axis=axis, keepdims=True))
  shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
  terms = jnp.exp(jnp.where(mask, x - shift, -jnp.inf))
  total = jnp.sum(terms, axis=axis)
  nonempty = jnp.any(mask, axis=axis)
  lse = jnp.log(jnp.where(nonempty, total, 1.0)) + jnp.squeeze(shift, axis)
  return jnp.where(nonempty, lse, 0.0), nonempty


def gaussian_log_density(z, mu, logvar):
  """log N(z; mu, diag(exp(logvar))) summed over the last axis.

  Args:
    z, mu, logvar: float32 arrays broadcastable to (..., D).

  Returns:
    float32 (...).
  """
  return -0.5 * jnp.sum(_LOG_2PI + logvar + jnp.square(z - mu) * jnp.exp(-logvar), axis=-1)


def kl_to_standard_normal(mu, logvar):
  """Closed-form KL(N(mu, diag(exp(logvar))) || N(0, I)) summed over the last axis.

  Args:
    mu, logvar: float32 (..., D).

  Returns:
    float32 (...).
  """
  return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mu) - 1.0 - logvar, axis=-1)


def product_of_experts(mu, logvar, member_mask, use_prior_expert: bool):
  """Precision-weighted product of the Gaussian experts selected by `member_mask`.

  In log space: logvar_S = -logsumexp_{m in S}(-logvar_m) (the prior expert adds a term with
  logvar 0), mu_S = sum_{m in S} exp(logvar_S - logvar_m) mu_m. Stable for tiny or huge
  variances. An empty member set gives N(0, I) with the prior expert; without it, it gives the
  finite placeholder (mu 0, logvar 0), which callers mask out. Non-members may hold anything
  (NaN, inf): they are selected away before any arithmetic.

  Args:
    mu: float32 (..., M, D) expert means.
    logvar: float32 (..., M, D) expert log-variances.
    member_mask: bool or {0,1} float (..., M), broadcastable against mu.shape[:-1].
    use_prior_expert: include the N(0, I) expert in every product.

  Returns:
    (mu_S, logvar_S): float32 (..., D) each, the leading axes broadcast.
  """
  mask = jnp.asarray(member_mask).astype(bool)[..., None]
  shape = jnp.broadcast_shapes(logvar.shape, mask.shape, mu.shape)
  mask = jnp.broadcast_to(mask, shape)
  mu = jnp.where(mask, jnp.broadcast_to(mu, shape), 0.0)
  neg_logvar = jnp.where(mask, -jnp.broadcast_to(logvar, shape), 0.0)
  if use_prior_expert:
    prior_shape = shape[:-2] + (1, shape[-1])
    all_neg_logvar = jnp.concatenate([neg_logvar, jnp.zeros(prior_shape, neg_logvar.dtype)], -2)
    all_mask = jnp.concatenate([mask, jnp.ones(prior_shape, bool)], -2)
  else:
    all_neg_logvar, all_mask = neg_logvar, mask
  log_precision, _ = _masked_logsumexp(all_neg_logvar, all_mask, axis=-2)
  # Normalised precision weights exp(-logvar_m) / T_S in [0, 1]; non-members get exactly 0.
  weights = jnp.exp(jnp.where(mask, neg_logvar - log_precision[..., None, :], -jnp.inf))
  mu_s = jnp.sum(weights * mu, axis=-2)
  return mu_s, -log_precision


def mopoe_components(mu, logvar, subsets, use_prior_expert: bool, available=None):
  """The PoE of every subset: the K components of the MoPoE mixture.

  Args:
    mu: float32 (B, M, D).
    logvar: float32 (B, M, D).
    subsets: bool (K, M) static membership matrix (see `subset_matrix`).
    use_prior_expert: include the N(0, I) expert in every product.
    available: optional bool (B, M). Unavailable experts are replaced by the placeholder
      (0, 0) first (`mask_experts`), so the components of subsets that contain them (invalid
      subsets, see `valid_subsets`) are finite whatever those experts hold.

  Returns:
    (mu_S, logvar_S): float32 (B, K, D) each.
  """
  if available is not None:
    mu, logvar = mask_experts(mu, logvar, available)
  subsets = jnp.asarray(subsets, bool)
  return product_of_experts(mu[:, None], logvar[:, None], subsets[None], use_prior_expert)


def valid_subsets(subsets, available):
  """Which subsets are usable per example: all members must be available.

  Args:
    subsets: bool (K, M).
    available: bool (B, M), modality m present in example b.

  Returns:
    bool (B, K).
  """
  subsets = jnp.asarray(subsets, bool)
  available = jnp.asarray(available, bool)
  return jnp.all(~subsets[None] | available[:, None], axis=-1)


def mixture_log_density(z, mu_S, logvar_S, valid):
  """log q(z|X) = logsumexp_{valid S} log N(z; mu_S, var_S) - log K_valid.

  Args:
    z: float32 (B, D).
    mu_S, logvar_S: float32 (B, K, D) mixture components.
    valid: bool (B, K).

  Returns:
    float32 (B,). An example with no valid subset gets 0 (finite; mask it out).
  """
  mu_S, logvar_S = _keep_components(mu_S, logvar_S, valid)
  component = gaussian_log_density(z[:, None, :], mu_S, logvar_S)  # (B, K)
  lse, nonempty = _masked_logsumexp(component, valid, axis=-1)
  num_valid = jnp.sum(valid, axis=-1).astype(jnp.float32)
  return jnp.where(nonempty, lse - jnp.log(jnp.maximum(num_valid, 1.0)), 0.0)


SUBSET_SAMPLINGS = ('per_example', 'stratified')


def sample_subset_indices(key, valid, stratified: bool = False):
  """Draw one subset per example uniformly among its valid subsets.

  Per example (the default) every example draws on its own. Stratified: example i takes
  u_i = (pi_i + v_i) / B for a random permutation pi of 0..B-1 and v_i ~ U(0, 1), then the
  floor(u_i * K_i)-th of its K_i valid subsets. Each u_i is marginally U(0, 1), so each
  example's subset is still uniform over its valid subsets (the same mixture expectation,
  DESIGN §2.3), but across a fully observed batch every subset gets floor(B/K) or
  ceil(B/K) examples, as the peer's one chunk per subset does.

  Args:
    key: PRNG key.
    valid: bool (B, K).
    stratified: spread the batch evenly over the subsets (see above).

  Returns:
    int32 (B,) indices into the K subsets. An example with no valid subset gets index 0.
  """
  if not stratified:
    logits = jnp.where(valid, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
  batch_size = valid.shape[0]
  perm_key, jitter_key = jax.random.split(key)
  u = (jax.random.permutation(perm_key, batch_size).astype(jnp.float32)
       + jax.random.uniform(jitter_key, (batch_size,))) / batch_size
  num_valid = jnp.sum(valid, axis=-1)
  rank = jnp.minimum(jnp.floor(u * num_valid).astype(jnp.int32), jnp.maximum(num_valid - 1, 0))
  # Index of the (rank + 1)-th valid subset of each row.
  hit = valid & (jnp.cumsum(valid, axis=-1) == (rank + 1)[:, None])
  return jnp.argmax(hit, axis=-1).astype(jnp.int32)


def sample_mixture(key, mu_S, logvar_S, valid, stratified: bool = False):
  """Reparameterised sample of the MoPoE mixture (DESIGN §2.3).

  A valid subset S is drawn uniformly per example (not differentiable), then
  z = mu_S + exp(logvar_S / 2) * eps, so gradients flow into mu_S and logvar_S.

  Args:
    key: PRNG key.
    mu_S, logvar_S: float32 (B, K, D).
    valid: bool (B, K).
    stratified: spread the batch evenly over the subsets (sample_subset_indices).

  Returns:
    (z, subset_index): float32 (B, D) and int32 (B,).
  """
  subset_key, noise_key = jax.random.split(key)
  mu_S, logvar_S = _keep_components(mu_S, logvar_S, valid)
  index = sample_subset_indices(subset_key, valid, stratified)
  take = lambda a: jnp.take_along_axis(a, index[:, None, None], axis=1)[:, 0]
  mu, logvar = take(mu_S), take(logvar_S)
  eps = jax.random.normal(noise_key, mu.shape, mu.dtype)
  return mu + jnp.exp(0.5 * logvar) * eps, index


def kl_subset_average(mu_S, logvar_S, valid):
  """`subset_average` KL: mean over valid S of KL(q_S || N(0, I)), closed form.

  Args:
    mu_S, logvar_S: float32 (B, K, D).
    valid: bool (B, K).

  Returns:
    float32 (B,). 0 for an example with no valid subset.
  """
  mu_S, logvar_S = _keep_components(mu_S, logvar_S, valid)
  kl = kl_to_standard_normal(mu_S, logvar_S)  # (B, K)
  total = jnp.sum(jnp.where(valid, kl, 0.0), axis=-1)
  return total / jnp.maximum(jnp.sum(valid, axis=-1), 1).astype(jnp.float32)


def kl_mixture_mc(z, mu_S, logvar_S, valid):
  """`mixture_mc` KL: single-sample estimate log q(z|X) - log N(z; 0, I) at the given z.

  Args:
    z: float32 (B, D), a sample of the mixture (e.g. from `sample_mixture`).
    mu_S, logvar_S: float32 (B, K, D).
    valid: bool (B, K).

  Returns:
    float32 (B,).
  """
  log_prior = gaussian_log_density(z, jnp.zeros_like(z), jnp.zeros_like(z))
  return mixture_log_density(z, mu_S, logvar_S, valid) - log_prior
