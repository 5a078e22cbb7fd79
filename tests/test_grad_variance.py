"""benchmarks/grad_variance.py's moments against numpy on known gradient samples."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'benchmarks'))
import grad_variance  # pylint: disable=g-import-not-at-top


def test_moments_per_group_match_numpy():
  rng = np.random.default_rng(0)
  samples = {'encoder_m0': rng.normal(1.0, 2.0, (16, 3)), 'unet': rng.normal(-0.5, 0.1, (16, 5))}
  keys = list(range(16))
  grads_fn = lambda params, k: {name: {'w': s[k]} for name, s in samples.items()}
  got = grad_variance.gradient_moments(
      grads_fn, None, keys, {'enc': lambda m: m.startswith('encoder'), 'all': lambda m: True})
  for group, rows in (('enc', samples['encoder_m0']),
                      ('all', np.concatenate([samples['encoder_m0'], samples['unet']], 1))):
    mean = rows.mean(0)
    variance = np.sum(np.var(rows, axis=0, ddof=1))
    np.testing.assert_allclose(got[group]['variance'], variance, rtol=1e-10)
    np.testing.assert_allclose(got[group]['mean_sq_norm'], np.sum(mean ** 2), rtol=1e-10)
    signal = np.sum(mean ** 2) - variance / 16
    np.testing.assert_allclose(got[group]['signal_sq_norm'], signal, rtol=1e-10)
    np.testing.assert_allclose(got[group]['relative_variance'], variance / signal, rtol=1e-10)


def test_signal_estimate_is_unbiased():
  """Over many repetitions, ||mean||^2 - variance / K averages to the true ||mu||^2 (the
  plain ||mean||^2 overshoots by trace(cov) / K)."""
  rng = np.random.default_rng(1)
  mu, sigma, k = np.array([0.3, -0.2]), 1.5, 8
  estimates, naive = [], []
  for _ in range(4000):
    rows = mu + sigma * rng.standard_normal((k, 2))
    fn = lambda params, i, rows=rows: {'p': {'w': rows[i]}}
    m = grad_variance.gradient_moments(fn, None, range(k), {'all': lambda m: True})['all']
    estimates.append(m['signal_sq_norm'])
    naive.append(m['mean_sq_norm'])
  true = float(np.sum(mu ** 2))
  assert abs(np.mean(estimates) - true) < 0.03
  assert np.mean(naive) - true > 0.5    # trace(cov) / K = 2 * 2.25 / 8 = 0.56
