"""Closed forms for the samplers' tests: DDIM on N(mean, std^2) data with the exact eps.

With the oracle eps every DDIM update is linear in d_t = x_t - sqrt(abar_t) mean:
d_prev = k_t d_t + sigma_t n with
k_t = (sqrt(abar_prev abar_t) std^2 + c_eps sqrt(1 - abar_t)) / (abar_t std^2 + 1 - abar_t),
so Var d_prev = k_t^2 Var d_t + sigma_t^2. Used by tests/test_diffusion.py (from pure noise)
and tests/test_shallow_diffusion.py (from a noised x_0).
"""

import numpy as np


def ddim_output_std(abar, ts, eta, std, var_first=1.0):
  """Exact std of DDIM's output for N(mean, std^2) data with the oracle eps (float64).

  Args:
    abar: [T] cumulative alphas of the schedule.
    ts: the sampler's timesteps, descending (samplers.ddim_timesteps).
    eta: DDIM's stochasticity (0 deterministic, 1 DDPM-like).
    std: the data's standard deviation.
    var_first: Var d at ts[0]; 1 from pure noise, 1 - abar[ts[0]] from a noised x_0 = mean.

  Returns:
    The output's standard deviation (few-step DDIM shrinks it below std).
  """
  abar = np.asarray(abar, np.float64)
  var = var_first
  for i, t in enumerate(ts):
    a, a_prev = abar[t], (abar[ts[i + 1]] if i + 1 < len(ts) else 1.0)
    sigma = eta * np.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
    c_eps = np.sqrt(max(1 - a_prev - sigma ** 2, 0.0))
    k = (np.sqrt(a_prev * a) * std ** 2 + c_eps * np.sqrt(1 - a)) / (a * std ** 2 + 1 - a)
    var = k * k * var + sigma ** 2
  return np.sqrt(var)
