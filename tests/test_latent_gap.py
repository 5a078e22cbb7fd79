"""The latent gap (metrics/latent_gap.py): Fréchet distance and MMD² between latent sets."""

import numpy as np
import pytest

from diffmvae_jax.metrics import fid as fid_lib
from diffmvae_jax.metrics import latent_gap as latent_gap_lib


def test_latent_gap():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(400, 4))
  same = latent_gap_lib.latent_gap(x, x)
  assert abs(same['frechet']) < 1e-6 and abs(same['mmd2']) < 1e-2
  near = latent_gap_lib.latent_gap(x, rng.normal(size=(400, 4)))
  far = latent_gap_lib.latent_gap(x, rng.normal(size=(400, 4)) + 1.0)
  assert abs(near['mmd2']) < 0.01 and near['frechet'] < 0.5
  assert far['mmd2'] > 0.1 and far['frechet'] > 3.0   # |shift|^2 = 4.
  assert far['mmd_bandwidth'] > 0


def _commuting_covariances(rng, dim, rank1, rank2):
  """S1 = Q diag(a) Q', S2 = Q diag(b) Q' of ranks rank1, rank2: Tr((S1 S2)^(1/2)) is
  sum_i sqrt(a_i b_i) in closed form."""
  q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
  a = np.zeros(dim)
  b = np.zeros(dim)
  a[:rank1] = rng.uniform(0.5, 2.0, rank1)
  b[dim - rank2:] = rng.uniform(0.5, 2.0, rank2)
  return (q * a) @ q.T, (q * b) @ q.T, a, b


def test_frechet_distance_psd_matches_the_closed_form_and_sqrtm():
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  s1, s2, a, b = _commuting_covariances(rng, 6, 6, 6)   # full rank: sqrtm is fine too
  closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert abs(fid_lib.frechet_distance_psd(mu1, s1, mu2, s2) - closed) < 1e-9
  assert abs(fid_lib.frechet_distance(mu1, s1, mu2, s2) - closed) < 1e-6
  # Singular and overlapping only in part (ranks 40 and 30 of 64 share 6 directions).
  s1, s2, a, b = _commuting_covariances(rng, 64, 40, 30)
  zero = np.zeros(64)
  closed = np.sum(a) + np.sum(b) - 2.0 * np.sum(np.sqrt(a * b))
  # Square roots of rounding-level eigenvalues (~1e-16 each) leave ~1e-8 apiece.
  assert abs(fid_lib.frechet_distance_psd(zero, s1, zero, s2) - closed) < 1e-5
  # Non-commuting general fits: the same value as sqrtm where sqrtm is well conditioned.
  x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))
  stats = (*fid_lib.feature_statistics(x), *fid_lib.feature_statistics(y))
  assert abs(fid_lib.frechet_distance_psd(*stats) - fid_lib.frechet_distance(*stats)) < 1e-8
  with pytest.raises(ValueError, match='shape mismatch'):
    fid_lib.frechet_distance_psd(zero, s1, zero[:3], s2)


def test_latent_gap_of_a_diverged_prior_with_fewer_samples_than_dimensions():
  """A latent of 512 from 250 samples, the prior's samples 1e3-1e5 times wider than the
  posterior's (as the published MoPoE recipe's latent SDE prior gave, 2026-12-07): sqrtm of
  the non-symmetric S1 S2 comes back complex far beyond rounding, so the eval crashed; the
  latent gap now reports a finite distance inside the trace bounds, and zero for a set
  against itself."""
  rng = np.random.default_rng(0)
  posterior = rng.normal(size=(250, 512))
  scale = np.exp(rng.uniform(np.log(3e3), np.log(3e5), 512))
  prior = (rng.normal(size=(250, 8)) @ rng.normal(size=(8, 512)) * scale / 3
           + rng.normal(size=(250, 512)) * scale * 0.1)
  stats = (*fid_lib.feature_statistics(posterior), *fid_lib.feature_statistics(prior))
  with pytest.raises(ValueError, match='imaginary'):
    fid_lib.frechet_distance(*stats)
  gap = latent_gap_lib.latent_gap(posterior, prior)['frechet']
  mu1, s1, mu2, s2 = stats
  # 0 <= Tr((S1 S2)^(1/2)) <= sqrt(Tr S1 Tr S2) bounds the distance on both sides.
  upper = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
  lower = upper - 2.0 * np.sqrt(np.trace(s1) * np.trace(s2))
  assert np.isfinite(gap) and lower <= gap <= upper
  scale_self = 2.0 * np.trace(s2)
  assert abs(latent_gap_lib.latent_gap(prior, prior)['frechet']) < 1e-6 * scale_self
