"""benchmarks/throughput.py: several train steps per dispatch (lax.scan) are the same steps."""

import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))
import random_inputs  # pylint: disable=g-import-not-at-top
import throughput  # pylint: disable=g-import-not-at-top

from configs import test_tiny
from diffmvae_jax import parallel
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.tasks import vae


def test_random_batch_shapes_and_ranges():
  model = vae.build_model(test_tiny.get_config())
  batch = random_inputs.random_batch(model, 4, np.random.default_rng(0), leading=(3,))
  for m in model.modalities:
    assert batch[m.name].shape == (3, 4) + tuple(m.shape)
    if m.kind == 'image':
      assert batch[m.name].min() >= -1 and batch[m.name].max() <= 1


@pytest.mark.slow  # ~1-2 min of compilation on 2 cores.
def test_scanned_steps_equal_single_steps():
  config = test_tiny.get_config()
  config.train.batch_size = 4
  model = vae.build_model(config)
  mesh = parallel.make_mesh()
  optimizer = train_state_lib.make_optimizer(config.train)
  k = 3
  result, scanned = throughput.time_scanned_steps(
      model, optimizer, config, vae.init_state(config, model, optimizer, mesh), k, repeats=k)
  assert result['steps_per_dispatch'] == k and result['median_s'] > 0
  # The timing ran the k-step dispatch twice (warm-up + 1 repeat): 2k steps from init.
  batches = random_inputs.random_batch(model, 4, np.random.default_rng(1), leading=(k,))
  step = jax.jit(vae.make_train_step(model, optimizer, config))
  state = vae.init_state(config, model, optimizer, mesh)
  for _ in range(2):
    for i in range(k):
      state, _ = step(state, jax.tree.map(lambda b, i=i: b[i], batches))
  assert int(scanned.step) == int(state.step) == 2 * k
  for a, b in zip(jax.tree.leaves(scanned.params), jax.tree.leaves(state.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
