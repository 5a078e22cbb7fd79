"""The loop driver's bookkeeping: train_seconds in the JSONL rows (loop.run_loop)."""

import json
import time

import jax.numpy as jnp
import numpy as np

from diffmvae_jax import loop


def _step(state, step):
  time.sleep(0.05)
  return state + 1, {'loss': jnp.float32(step)}


def _rows(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_train_seconds_exclude_after_step_and_add_up_over_a_resume(tmp_path):
  path = str(tmp_path / 'metrics.jsonl')
  settings = loop.LoopSettings(num_steps=6, log_every=1, metrics_path=path,
                               handle_sigterm=False)
  loop.run_loop(settings, 0, 0, _step, after_step=lambda step, state: time.sleep(0.3))
  rows = _rows(path)
  seconds = [r['train_seconds'] for r in rows]
  assert [r['step'] for r in rows] == list(range(1, 7))
  assert np.all(np.diff(seconds) >= 0)  # Written one step late: the last two together.
  # Six steps of 0.05 s; the 6 x 0.3 s in after_step are not training.
  assert 0.3 <= seconds[-1] < 1.2, seconds

  # A rerun resumed from step 4 (steps 5 and 6 were never saved) counts on from step 4's
  # time, not from step 6's and not from zero.
  settings = loop.LoopSettings(num_steps=8, log_every=1, metrics_path=path,
                               handle_sigterm=False)
  loop.run_loop(settings, 4, 4, _step)
  resumed = _rows(path)[6:]
  assert [r['step'] for r in resumed] == [5, 6, 7, 8]
  assert seconds[3] < resumed[0]['train_seconds'] < seconds[3] + 0.5
  assert loop.resumed_train_seconds(path, 8) == resumed[-1]['train_seconds']
  assert loop.resumed_train_seconds(path, 0) == 0.0
  assert loop.resumed_train_seconds(str(tmp_path / 'none.jsonl'), 5) == 0.0
