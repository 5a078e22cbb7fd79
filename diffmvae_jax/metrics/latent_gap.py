"""How far samples of a latent prior are from the aggregate posterior (DESIGN §4).

`latent_gap` compares two sets of latents: the Fréchet distance between their Gaussian fits
and an unbiased MMD² with an RBF kernel (median-heuristic bandwidth). `--mode=eval` reports
it between test-set posterior samples and samples of N(0, I) or of the latent score prior.
"""

import numpy as np

from diffmvae_jax.metrics import fid as fid_lib


def _squared_distances(a, b):
  d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
  return np.maximum(d, 0.0)


def latent_gap(posterior_latents, prior_samples, max_samples: int = 2000,
               seed: int = 0) -> dict:
  """How far samples of a prior are from the aggregate posterior, in latent space.

  Args:
    posterior_latents: (N, D) latents of data (e.g. encode_training_latents).
    prior_samples: (M, D) samples of the prior (N(0, I) or the score prior).
    max_samples: each set is subsampled (without replacement, fixed seed) to at most this
      many rows for the O(n^2) MMD; the Fréchet distance uses every row.
    seed: subsampling seed.

  Returns:
    {'frechet': Fréchet distance between Gaussian fits (metrics.fid.frechet_distance_psd,
       exact when N or M is below D),
     'mmd2': unbiased MMD^2 with an RBF kernel exp(-|x - y|^2 / (2 h^2)) (can be slightly
       negative when the sets match), 'mmd_bandwidth': h, the median pairwise distance of
       the pooled (subsampled) sets}; floats, computed in float64.
  """
  x = np.asarray(posterior_latents, np.float64)
  y = np.asarray(prior_samples, np.float64)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
    raise ValueError(f'need (N >= 2, D) and (M >= 2, D) arrays, got {x.shape} and {y.shape}')
  frechet = fid_lib.frechet_distance_psd(*fid_lib.feature_statistics(x),
                                         *fid_lib.feature_statistics(y))
  rng = np.random.default_rng(seed)
  if len(x) > max_samples:
    x = x[rng.choice(len(x), max_samples, replace=False)]
  if len(y) > max_samples:
    y = y[rng.choice(len(y), max_samples, replace=False)]
  pooled = np.concatenate([x, y])
  d_all = _squared_distances(pooled, pooled)
  off_diagonal = d_all[~np.eye(len(pooled), dtype=bool)]
  bandwidth = float(np.sqrt(np.median(off_diagonal)))
  gamma = 1.0 / (2.0 * max(bandwidth, 1e-12) ** 2)
  n, m = len(x), len(y)
  k_xx = np.exp(-gamma * d_all[:n, :n])
  k_yy = np.exp(-gamma * d_all[n:, n:])
  k_xy = np.exp(-gamma * d_all[:n, n:])
  mmd2 = ((k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
          + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1)) - 2.0 * k_xy.mean())
  return {'frechet': frechet, 'mmd2': float(mmd2), 'mmd_bandwidth': bandwidth}
