"""The latent gap (metrics/latent_gap.py): Fréchet distance and MMD² between latent sets."""

import numpy as np

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
