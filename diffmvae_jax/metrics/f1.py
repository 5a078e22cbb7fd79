"""Attribute F1 and mask F1 (the CelebAMask-HQ protocol, DESIGN.md §4), on the host in numpy.

Definition. Predictions (generated probabilities in [0, 1], generate.py) and targets (data
in {0, 1}) are binarised at `threshold` = 0.5: a value is positive when value >= 0.5 (so a
logit of exactly 0 counts as positive). For each example separately, over its K
attributes or its H x W mask pixels,

  F1 = 2 TP / (2 TP + FP + FN)        (= 2 precision recall / (precision + recall)),

and the reported figure is the mean of the per-example F1 over examples ("samples"
averaging, as sklearn's `f1_score(average='samples')`); masks are compared pixel-wise
per example, never pooled over the batch.

Empty examples. When an example has no positive in either the prediction or the target,
2 TP + FP + FN = 0 and F1 is 0/0. We score such an example `empty_score` = 1.0: predicting
"nothing is on" when nothing is on is a perfect answer, and scoring it 0 would penalise a
model for being right (a CelebA face with none of the 18 attributes, a mask that is empty at
this resolution). sklearn's default (`zero_division='warn'`) scores it 0 with a warning; pass
`empty_score=0.0` to reproduce that convention (sklearn >= 1.3's `zero_division=1.0` is ours).
Every result records which convention was used.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5
EMPTY_SCORE = 1.0


def binarise(values, threshold: float = THRESHOLD) -> np.ndarray:
  """values >= threshold, as bool (NaN counts as negative)."""
  return np.asarray(values) >= threshold


def per_example_f1(predictions, targets, threshold: float = THRESHOLD,
                   empty_score: float = EMPTY_SCORE) -> np.ndarray:
  """F1 of each example over all its non-batch entries (attributes or pixels).

  Args:
    predictions: float (N, ...) probabilities in [0, 1] (or any scores: binarised at
      `threshold`).
    targets: (N, ...) of the same shape, in {0, 1} (binarised at `threshold` too).
    threshold: a value is positive when >= threshold.
    empty_score: the F1 of an example with no positive in prediction and target.

  Returns:
    float64 (N,) in [0, 1].

  Raises:
    ValueError: shapes differ or there is no batch dimension.
  """
  predictions, targets = np.asarray(predictions), np.asarray(targets)
  if predictions.shape != targets.shape:
    raise ValueError(f'predictions {predictions.shape} and targets {targets.shape} differ '
                     'in shape.')
  if predictions.ndim < 1:
    raise ValueError('F1 needs a leading batch dimension.')
  n = predictions.shape[0]
  pred = binarise(predictions, threshold).reshape(n, -1)
  true = binarise(targets, threshold).reshape(n, -1)
  tp = np.sum(pred & true, axis=1, dtype=np.int64)
  fp = np.sum(pred & ~true, axis=1, dtype=np.int64)
  fn = np.sum(~pred & true, axis=1, dtype=np.int64)
  denominator = 2 * tp + fp + fn
  safe = np.maximum(denominator, 1)
  return np.where(denominator > 0, 2.0 * tp / safe, float(empty_score)).astype(np.float64)


def attribute_f1(predictions, targets, threshold: float = THRESHOLD,
                 empty_score: float = EMPTY_SCORE) -> float:
  """Mean over examples of the per-example F1 over attributes.

  Args:
    predictions: float (N, K) attribute probabilities in [0, 1].
    targets: (N, K) in {0, 1}.
    threshold, empty_score: as per_example_f1.

  Returns:
    The mean F1 (float); NaN for N = 0.
  """
  if np.ndim(predictions) != 2:
    raise ValueError(f'attribute F1 expects (N, K) arrays, got shape {np.shape(predictions)}.')
  return _mean(per_example_f1(predictions, targets, threshold, empty_score))


def mask_f1(predictions, targets, threshold: float = THRESHOLD,
            empty_score: float = EMPTY_SCORE) -> float:
  """Mean over examples of the pixel-wise F1 of each example's mask.

  Args:
    predictions: float (N, H, W, 1) or (N, H, W) mask probabilities in [0, 1].
    targets: same shape, in {0, 1}.
    threshold, empty_score: as per_example_f1.

  Returns:
    The mean F1 (float); NaN for N = 0.
  """
  if np.ndim(predictions) not in (3, 4):
    raise ValueError(f'mask F1 expects (N, H, W[, 1]) arrays, got shape '
                     f'{np.shape(predictions)}.')
  return _mean(per_example_f1(predictions, targets, threshold, empty_score))


def _mean(scores: np.ndarray) -> float:
  return float(np.mean(scores)) if scores.size else float('nan')


class F1Accumulator:
  """Per-example F1 over a stream of (padded) batches; the mean and std at the end.

  Usage:
    acc = F1Accumulator()
    for batch ...: acc.update(generated['mask'], batch['mask'], valid=batch['valid'])
    acc.result()  # {'f1': mean, 'f1_std': std, 'num_examples': n, 'threshold', ...}
  """

  def __init__(self, threshold: float = THRESHOLD, empty_score: float = EMPTY_SCORE):
    self.threshold = threshold
    self.empty_score = empty_score
    self._scores = []

  def update(self, predictions, targets, valid=None) -> np.ndarray:
    """Adds a batch; returns its per-example F1 (float64 (n_valid,)).

    Args:
      predictions, targets: (B, ...) as per_example_f1.
      valid: optional bool (B,); False rows (evaluation padding) are skipped.
    """
    scores = per_example_f1(predictions, targets, self.threshold, self.empty_score)
    if valid is not None:
      scores = scores[np.asarray(valid, bool)]
    self._scores.append(scores)
    return scores

  @property
  def scores(self) -> np.ndarray:
    """float64 (n,) every per-example F1 so far, in order."""
    return np.concatenate(self._scores) if self._scores else np.zeros((0,), np.float64)

  def result(self) -> dict:
    """{'f1', 'f1_std' (over examples), 'num_examples', 'threshold', 'empty_score'}."""
    scores = self.scores
    return {'f1': _mean(scores),
            'f1_std': float(np.std(scores)) if scores.size else float('nan'),
            'num_examples': int(scores.size),
            'threshold': float(self.threshold),
            'empty_score': float(self.empty_score)}
