"""Fréchet Inception Distance: statistics of pool3 features, the distance, a stats cache.

FID = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), in float64, with
``scipy.linalg.sqrtm``. Features must come from ``inception.make_feature_fn`` with the
verified weights (sha256 in ``torchscript_weights.INCEPTION_SHA256``): a number computed
from other features must never be reported as FID.
"""

import dataclasses
import hashlib
import json
import os
import re
from typing import NamedTuple

import numpy as np
import scipy.linalg

# Offset added to both covariance diagonals when S1 S2 is singular (sqrtm not finite), as
# pytorch-fid does; the resulting FID is then biased by O(eps * dim), i.e. negligible.
SQRTM_EPS = 1e-6
# Largest |imaginary part| on the diagonal of sqrtm(S1 S2) accepted as numerical noise.
IMAG_TOL = 1e-3


class FeatureStats(NamedTuple):
  mu: np.ndarray      # (D,) float64
  sigma: np.ndarray   # (D, D) float64
  n: int


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=SQRTM_EPS):
  """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as a Python float.

  sqrtm of the (non-symmetric) product S1 S2 can come back with a tiny imaginary part from
  rounding: it is dropped if below IMAG_TOL on the diagonal, else ValueError. If S1 S2 is
  singular (e.g. fewer samples than dimensions) and sqrtm is not finite, eps * I is added
  to both covariances and sqrtm is retried.
  """
  mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
  s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
  if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
    raise ValueError(f'shape mismatch: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}')
  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.isfinite(covmean).all():
    offset = np.eye(s1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  if np.iscomplexobj(covmean):
    imag = np.max(np.abs(np.diagonal(covmean).imag))
    if imag > IMAG_TOL:
      raise ValueError(f'sqrtm(S1 S2) has an imaginary component {imag:.3g}')
    covmean = covmean.real
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def frechet_distance_psd(mu1, sigma1, mu2, sigma2):
  """Fréchet distance of two Gaussian fits whose covariances may be singular (N <= D).

  The same distance as ``frechet_distance``, with Tr((S1 S2)^(1/2)) computed as
  Tr((A S2 A)^(1/2)), A = S1^(1/2): A S2 A is symmetric positive semi-definite and has the
  eigenvalues of S1 S2, so the trace is a sum of square roots of real eigenvalues (rounding
  negatives clipped to 0) and no imaginary part can arise. For fits of fewer samples than
  dimensions (a latent of 512 from 250 samples) sqrtm of the non-symmetric S1 S2 comes back
  with imaginary parts far above rounding; this form is exact there. FID keeps
  ``frechet_distance`` (pytorch-fid's numerics); the latent gap uses this one.
  """
  mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
  s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
  if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
    raise ValueError(f'shape mismatch: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}')
  sym = lambda m: 0.5 * (m + m.T)
  eigval, eigvec = np.linalg.eigh(sym(s1))
  root1 = (eigvec * np.sqrt(np.clip(eigval, 0.0, None))) @ eigvec.T
  middle = np.linalg.eigvalsh(sym(root1 @ s2 @ root1))
  trace_covmean = float(np.sum(np.sqrt(np.clip(middle, 0.0, None))))
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_covmean)


def feature_statistics(features):
  """(N, D) features -> (mu, sigma) in float64 (sigma with the N - 1 normalisation)."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f'need (N >= 2, D) features, got {f.shape}')
  return f.mean(axis=0), np.cov(f, rowvar=False)


class StatsAccumulator:
  """Streams batches of features into float64 mean / covariance without keeping them."""

  def __init__(self):
    self.n, self._shift, self._s1, self._s2 = 0, None, None, None

  def update(self, features):
    f = np.asarray(features, np.float64)
    if self._shift is None:   # shift by the first batch mean: no cancellation in S2 - n mu mu'
      self._shift = f.mean(axis=0)
      self._s1 = np.zeros_like(self._shift)
      self._s2 = np.zeros((f.shape[1],) * 2)
    f = f - self._shift
    self.n += f.shape[0]
    self._s1 += f.sum(axis=0)
    self._s2 += f.T @ f

  def result(self):
    if self.n < 2:
      raise ValueError(f'need at least 2 feature vectors, got {self.n}')
    m = self._s1 / self.n
    sigma = (self._s2 - self.n * np.outer(m, m)) / (self.n - 1)
    return FeatureStats(m + self._shift, sigma, self.n)


def compute_statistics(feature_fn, images_iter, limit=None):
  """Features of every batch of ``images_iter`` (images in [0, 1], (B, H, W, C)) -> stats."""
  acc = StatsAccumulator()
  for images in images_iter:
    if limit is not None and acc.n >= limit:
      break
    f = np.asarray(feature_fn(images))
    if limit is not None:
      f = f[:limit - acc.n]
    acc.update(f)
  return acc.result()


def compute_fid(feature_fn, images_iter, stats_ref, limit=None):
  """FID between the images of ``images_iter`` and reference stats (FeatureStats or (mu, sigma))."""
  stats = compute_statistics(feature_fn, images_iter, limit)
  return frechet_distance(stats.mu, stats.sigma, stats_ref[0], stats_ref[1])


@dataclasses.dataclass(frozen=True)
class StatsKey:
  """What reference statistics depend on; all of it is checked before a cached file is used."""
  dataset: str
  split: str
  resolution: int
  preprocessing: str
  weights_sha256: str

  def to_json(self):
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  def filename(self):
    slug = re.sub(r'[^A-Za-z0-9._-]+', '-', f'{self.dataset}_{self.split}_{self.resolution}')
    digest = hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
    return f'fidstats_{slug}_{self.weights_sha256[:12]}_{digest}.npz'


class FeatureStatsCache:
  """Reference statistics stored as ``<directory>/<StatsKey.filename()>`` with the key inside."""

  def __init__(self, directory):
    self.directory = directory

  def path(self, key):
    return os.path.join(self.directory, key.filename())

  def load(self, key):
    """The cached FeatureStats for exactly ``key``, or None (absent or written for another key)."""
    path = self.path(key)
    if not os.path.isfile(path):
      return None
    with np.load(path, allow_pickle=False) as z:
      if 'key' not in z or str(z['key']) != key.to_json():
        return None
      return FeatureStats(z['mu'], z['sigma'], int(z['n']))

  def save(self, key, stats):
    os.makedirs(self.directory, exist_ok=True)
    path = self.path(key)
    tmp = path + '.tmp.npz'
    np.savez(tmp, key=np.array(key.to_json()), mu=np.asarray(stats.mu, np.float64),
             sigma=np.asarray(stats.sigma, np.float64), n=np.array(stats.n))
    os.replace(tmp, path)
    return path

  def get_or_compute(self, key, compute):
    """Cached stats for ``key``, else ``compute()`` (-> FeatureStats), saved, then returned."""
    stats = self.load(key)
    if stats is None:
      stats = compute()
      self.save(key, stats)
    return stats
