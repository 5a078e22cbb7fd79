"""The nearest-class-mean probe (metrics/latent_probe.py) on synthetic latents.

  python -m pytest -q tests/test_latent_probe.py
"""

import numpy as np

from diffmvae_jax.metrics import latent_probe


def test_separable_classes_score_one_and_noise_scores_chance():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, size=4000)
  centres = rng.normal(size=(10, 16)) * 10.0
  separable = centres[labels] + rng.normal(size=(4000, 16))
  assert latent_probe.nearest_class_mean_accuracy(separable, labels) > 0.99
  noise = rng.normal(size=(4000, 16))
  assert abs(latent_probe.nearest_class_mean_accuracy(noise, labels) - 0.1) < 0.03


def test_scored_only_on_the_held_out_half():
  # Labels of the second half are unrelated to the first half's class means: chance.
  rng = np.random.default_rng(1)
  labels = np.concatenate([np.arange(1000) % 10, rng.integers(0, 10, size=1000)])
  z = np.eye(10)[np.arange(2000) % 10] * 5.0
  assert latent_probe.nearest_class_mean_accuracy(z, labels) < 0.2
