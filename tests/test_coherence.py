"""Coherence metrics on synthetic predictions (no model, no classifier training)."""

import itertools

import numpy as np
import pytest

from diffmvae_jax import coherence

NAMES = ('m0', 'm1', 'm2', 'm3', 'm4')


def _subsets(names):
  for k in range(1, len(names)):
    yield from itertools.combinations(names, k)


def test_perfect_generator_scores_one():
  labels = np.random.default_rng(0).integers(0, 10, size=100)
  predicted = {s: {m: labels.copy() for m in NAMES if m not in s} for s in _subsets(NAMES)}
  out = coherence.conditional_coherence(predicted, labels)
  assert out['by_num_given'] == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}
  assert len(out['per_subset']) == 30
  assert all(v == 1.0 for accs in out['per_subset'].values() for v in accs.values())
  assert coherence.unconditional_coherence({m: labels for m in NAMES}) == 1.0


def test_reconstructing_generator_scores_classifier_accuracy():
  # A generator that returns the true images: each generated modality is classified as the
  # classifier classifies the true test image, so coherence = the classifier's accuracy.
  rng = np.random.default_rng(1)
  n = 200
  labels = rng.integers(0, 10, size=n)
  clf_pred, clf_acc = {}, {}
  for i, m in enumerate(NAMES):
    pred = labels.copy()
    wrong = rng.choice(n, size=4 * i + 2, replace=False)
    pred[wrong] = (pred[wrong] + 1 + rng.integers(0, 9, size=wrong.size)) % 10
    clf_pred[m], clf_acc[m] = pred, np.mean(pred == labels)
  predicted = {s: {m: clf_pred[m] for m in NAMES if m not in s} for s in _subsets(NAMES)}
  out = coherence.conditional_coherence(predicted, labels)
  for key, accs in out['per_subset'].items():
    for m, acc in accs.items():
      if m != 'mean':
        assert acc == clf_acc[m]
    missing = [m for m in NAMES if m not in key.split(',')]
    assert accs['mean'] == pytest.approx(np.mean([clf_acc[m] for m in missing]), abs=1e-12)
  # Every modality is missing equally often among subsets of one size, so each entry of
  # by_num_given is the mean classifier accuracy.
  for k, acc in out['by_num_given'].items():
    assert acc == pytest.approx(np.mean(list(clf_acc.values())), abs=1e-12), k


def test_by_num_given_hand_computed():
  labels = np.array([0, 1, 2, 3])
  right, half, none = labels, np.array([0, 1, 9, 9]), np.array([9, 9, 9, 9])
  predicted = {
      ('a',): {'b': right, 'c': half},   # mean 0.75
      ('b',): {'a': none, 'c': half},    # mean 0.25
      ('c',): {'a': right, 'b': right},  # mean 1.0
      ('a', 'b'): {'c': half},           # 0.5
      ('b', 'c'): {'a': none},           # 0.0
  }
  out = coherence.conditional_coherence(predicted, labels)
  assert out['per_subset']['a'] == {'b': 1.0, 'c': 0.5, 'mean': 0.75}
  assert out['per_subset']['b,c'] == {'a': 0.0, 'mean': 0.0}
  # Size 1: mean of the subset means (0.75 + 0.25 + 1) / 3, not the mean of the six
  # accuracies pooled; size 2: (0.5 + 0) / 2.
  assert out['by_num_given'] == {1: pytest.approx(2 / 3), 2: 0.25}
  assert list(out['by_num_given']) == [1, 2]


def test_conditional_rejects_bad_input():
  labels = np.zeros(3, int)
  with pytest.raises(ValueError, match='shape'):
    coherence.conditional_coherence({('a',): {'b': np.zeros(4, int)}}, labels)
  with pytest.raises(ValueError, match='given'):
    coherence.conditional_coherence({('a',): {'a': labels}}, labels)
  with pytest.raises(ValueError):
    coherence.conditional_coherence({}, labels)


def test_unconditional_hand_example():
  predicted = {'m0': np.array([1, 2, 3, 4, 5]),
               'm1': np.array([1, 2, 0, 4, 5]),
               'caption': np.array([1, 7, 3, 4, 5])}
  # Samples 0, 3 and 4 agree across all three modalities.
  assert coherence.unconditional_coherence(predicted) == pytest.approx(0.6)
  with pytest.raises(ValueError):
    coherence.unconditional_coherence({'m0': np.array([1])})


def test_independence_baseline_matches_brute_force():
  rng = np.random.default_rng(3)
  predicted = {'m0': rng.integers(0, 4, size=40), 'm1': rng.choice([0, 0, 0, 2], size=40),
               'm2': rng.integers(1, 3, size=40)}
  # Brute force: over every triple of samples (one per modality), how often all agree.
  a, b, c = predicted.values()
  agree = (a[:, None, None] == b[None, :, None]) & (b[None, :, None] == c[None, None, :])
  assert coherence.unconditional_independence_baseline(predicted) == pytest.approx(
      agree.mean())
  uniform = {m: np.tile(np.arange(10), 10) for m in ('m0', 'm1', 'm2')}
  uniform['m1'] = np.roll(uniform['m1'], 3)   # Same marginals, samples never agree.
  assert coherence.unconditional_independence_baseline(uniform) == pytest.approx(0.01)
  assert coherence.unconditional_coherence(uniform) == 0.0
  with pytest.raises(ValueError):
    coherence.unconditional_independence_baseline({'m0': np.array([1])})
