"""How much class identity latents carry: a nearest-class-mean probe (no training).

A latent that scores high carries the class even when cross-modal coherence is at chance
(then the decoders ignore it, or the code is not shared across modalities); one that
scores near chance (1 / classes) carries none, whatever the decoders do. Used by
benchmarks/latent_probe.py and by the learning curves logged during training (curves.py).
"""

import numpy as np


def nearest_class_mean_accuracy(z: np.ndarray, labels: np.ndarray) -> float:
  """Fits class means on the first half of (z, labels), returns accuracy on the second.

  Args:
    z: (N, D) latents (e.g. posterior means), N >= 2.
    labels: (N,) int class of each row.

  Returns:
    the fraction of the second half whose nearest class mean (Euclidean, after standardising
    each dimension with the first half's mean and std) is its own class.
  """
  z = np.asarray(z, np.float64)
  labels = np.asarray(labels)
  half = len(z) // 2
  mean = z[:half].mean(0)
  std = z[:half].std(0) + 1e-6
  zn = (z - mean) / std
  classes = np.unique(labels[:half])
  centroids = np.stack([zn[:half][labels[:half] == c].mean(0) for c in classes])
  dist = ((zn[half:, None, :] - centroids[None]) ** 2).sum(-1)
  return float(np.mean(classes[dist.argmin(1)] == labels[half:]))
