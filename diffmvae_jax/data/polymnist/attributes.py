"""PolyMNIST's 15 binary attributes of modality 0's digit (ATTRIBUTE_NAMES).

Each is a deterministic function of the digit and the full MNIST train split; see the
package docstring for what each attribute means and how often it holds.
"""

from __future__ import annotations

import numpy as np

from diffmvae_jax.data.polymnist.source import BINARISE_THRESHOLD

ATTRIBUTE_NAMES = tuple(f"digit_{d}" for d in range(10)) + (
    "even", "ge_5", "closed_loop", "thick", "slant_right")
NUM_ATTRIBUTES = len(ATTRIBUTE_NAMES)
CLOSED_LOOP_DIGITS = (0, 6, 8, 9)


def ink_counts(digits: np.ndarray) -> np.ndarray:
  """Stroke-mask pixel counts. Args: uint8 (N, 28, 28). Returns: int64 (N,)."""
  masks = np.asarray(digits) > BINARISE_THRESHOLD
  return masks.reshape(len(masks), -1).sum(axis=1, dtype=np.int64)


def ink_medians(train_digits: np.ndarray, train_labels: np.ndarray) -> np.ndarray:
  """Per-class median ink count of the train split, the `thick` attribute's thresholds.

  Args:
    train_digits: uint8 (N, 28, 28) the full MNIST train split.
    train_labels: int (N,) its classes.

  Returns:
    float64 (10,); a class absent from the split gets the median over all digits.
  """
  counts = ink_counts(train_digits)
  labels = np.asarray(train_labels)
  overall = float(np.median(counts)) if counts.size else 0.0
  return np.array([float(np.median(counts[labels == c])) if np.any(labels == c) else overall
                   for c in range(10)], dtype=np.float64)


def slants(digits: np.ndarray) -> np.ndarray:
  """Horizontal shear of each stroke mask: columns per row, > 0 when the top leans right.

  slant = -mu11 / mu02 from the mask's central moments, mu11 = mean((r - r_bar)(c - c_bar))
  and mu02 = mean((r - r_bar)^2) over the mask pixels (row r grows downwards, column c
  rightwards); the usual MNIST deskewing shear. 0 for an empty or one-row mask.

  Args:
    digits: uint8 (N, 28, 28).

  Returns:
    float64 (N,).
  """
  masks = (np.asarray(digits) > BINARISE_THRESHOLD).reshape(len(digits), -1)
  rows, cols = np.divmod(np.arange(28 * 28), 28)
  basis = np.stack([np.ones_like(rows), rows, cols, rows * cols, rows * rows], axis=1)
  # Raw moments are integer sums below 2^24: exact in a float32 matmul, then exact int64
  # arithmetic, so the sign of the shear (the attribute) has no rounding error.
  m = np.rint(masks.astype(np.float32) @ basis.astype(np.float32)).astype(np.int64)
  n, m_r, m_c, m_rc, m_rr = m.T
  cov = n * m_rc - m_r * m_c      # n^2 mu11
  var = n * m_rr - m_r * m_r      # n^2 mu02
  return np.where(var > 0, -cov / np.maximum(var, 1), 0.0).astype(np.float64)


def digit_attributes(digits: np.ndarray, labels: np.ndarray,
                     thick_thresholds: np.ndarray) -> np.ndarray:
  """The attribute vectors of digits (ATTRIBUTE_NAMES; see the package docstring).

  Args:
    digits: uint8 (N, 28, 28) MNIST digits.
    labels: int (N,) their classes.
    thick_thresholds: float (10,) per-class ink-count medians (`ink_medians` of the
      full train split).

  Returns:
    uint8 (N, NUM_ATTRIBUTES) in {0, 1}.
  """
  labels = np.asarray(labels).astype(np.int64)
  n = len(labels)
  out = np.zeros((n, NUM_ATTRIBUTES), np.uint8)
  out[np.arange(n), labels] = 1
  index = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}
  out[:, index["even"]] = labels % 2 == 0
  out[:, index["ge_5"]] = labels >= 5
  out[:, index["closed_loop"]] = np.isin(labels, CLOSED_LOOP_DIGITS)
  out[:, index["thick"]] = ink_counts(digits) > np.asarray(thick_thresholds)[labels]
  out[:, index["slant_right"]] = slants(digits) > 0
  return out
