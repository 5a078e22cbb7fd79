"""metrics/f1.py against a brute-force per-example computation in plain Python."""

import numpy as np
import pytest

from diffmvae_jax.metrics import f1


def _brute_f1(pred_row, true_row, empty_score=1.0):
  """F1 of one example from plain Python lists of floats (threshold 0.5, >=)."""
  tp = fp = fn = 0
  for p, t in zip(pred_row, true_row):
    p_on, t_on = p >= 0.5, t >= 0.5
    if p_on and t_on:
      tp += 1
    elif p_on:
      fp += 1
    elif t_on:
      fn += 1
  if tp + fp + fn == 0:
    return empty_score
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _brute_mean(pred, true, empty_score=1.0):
  rows = [_brute_f1(p.reshape(-1).tolist(), t.reshape(-1).tolist(), empty_score)
          for p, t in zip(pred, true)]
  return sum(rows) / len(rows), rows


@pytest.mark.parametrize('seed', range(5))
def test_attribute_f1_matches_brute_force(seed):
  rng = np.random.default_rng(seed)
  true = (rng.uniform(size=(40, 18)) < rng.uniform(0.0, 0.5)).astype(np.float32)
  pred = rng.uniform(size=(40, 18)).astype(np.float32)
  pred[:3] = 0.0      # Some examples predict nothing ...
  true[:2] = 0.0      # ... two of them correctly (empty), one not.
  expected, rows = _brute_mean(pred, true)
  np.testing.assert_allclose(f1.per_example_f1(pred, true), rows, rtol=1e-12)
  np.testing.assert_allclose(f1.attribute_f1(pred, true), expected, rtol=1e-12)


@pytest.mark.parametrize('shape', [(6, 16, 16, 1), (6, 9, 7)])
def test_mask_f1_matches_brute_force_per_example(shape):
  rng = np.random.default_rng(1)
  true = (rng.uniform(size=shape) < 0.3).astype(np.float32)
  pred = np.clip(true * 0.7 + rng.uniform(-0.4, 0.4, size=shape), 0, 1).astype(np.float32)
  expected, _ = _brute_mean(pred, true)
  np.testing.assert_allclose(f1.mask_f1(pred, true), expected, rtol=1e-12)


def test_mask_f1_is_per_example_not_pooled():
  true = np.zeros((2, 10, 10, 1), np.float32)
  true[0, 0, 0] = 1.0          # One pixel, found: F1 1.
  true[1] = 1.0                # 100 pixels, none found: F1 0.
  pred = true.copy()
  pred[1] = 0.0
  assert f1.mask_f1(pred, true) == pytest.approx(0.5)
  pooled = _brute_f1(pred.reshape(-1).tolist(), true.reshape(-1).tolist())
  assert pooled == pytest.approx(2 / 102)


def test_empty_example_convention():
  none = np.zeros((1, 5), np.float32)
  assert f1.attribute_f1(none, none) == 1.0                  # Right about "nothing on".
  assert f1.attribute_f1(none, none, empty_score=0.0) == 0.0  # sklearn's default.
  one = np.array([[0, 1, 0, 0, 0]], np.float32)
  assert f1.attribute_f1(none, one) == 0.0   # Missed the only positive.
  assert f1.attribute_f1(one, none) == 0.0   # Predicted a positive that is not there.
  assert f1.attribute_f1(one, one) == 1.0


def test_threshold_is_inclusive_at_one_half():
  truth = np.array([[1.0, 0.0]])
  assert f1.attribute_f1(np.array([[0.5, 0.4999]]), truth) == 1.0
  assert f1.attribute_f1(np.array([[0.4999, 0.0]]), truth) == 0.0
  # Precision 1/2, recall 1 -> F1 2/3.
  assert f1.attribute_f1(np.array([[0.9, 0.6]]), truth) == pytest.approx(2 / 3)


def test_accumulator_skips_padding_and_equals_one_shot():
  rng = np.random.default_rng(3)
  true = (rng.uniform(size=(10, 8, 8, 1)) < 0.4).astype(np.float32)
  pred = rng.uniform(size=(10, 8, 8, 1)).astype(np.float32)
  acc = f1.F1Accumulator()
  acc.update(pred[:4], true[:4])
  padded_pred = np.concatenate([pred[4:], np.zeros_like(pred[:2])])
  padded_true = np.concatenate([true[4:], np.ones_like(true[:2])])
  acc.update(padded_pred, padded_true, valid=np.array([True] * 6 + [False] * 2))
  result = acc.result()
  assert result['num_examples'] == 10 and result['empty_score'] == 1.0
  assert result['threshold'] == 0.5
  np.testing.assert_allclose(result['f1'], f1.mask_f1(pred, true), rtol=1e-12)
  np.testing.assert_allclose(result['f1_std'], np.std(_brute_mean(pred, true)[1]), rtol=1e-9)
  assert np.isnan(f1.F1Accumulator().result()['f1'])


def test_shape_errors():
  with pytest.raises(ValueError, match='differ'):
    f1.per_example_f1(np.zeros((2, 3)), np.zeros((2, 4)))
  with pytest.raises(ValueError, match='attribute F1'):
    f1.attribute_f1(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)))
  with pytest.raises(ValueError, match='mask F1'):
    f1.mask_f1(np.zeros((2, 3)), np.zeros((2, 3)))
