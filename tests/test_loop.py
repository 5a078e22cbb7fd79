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


def test_steps_in_call_never_crosses_a_boundary():
  settings = loop.LoopSettings(num_steps=20, log_every=5, checkpoint_every=6,
                               steps_per_call=4, boundaries=(0, 9))
  for step in range(20):
    n = settings.steps_in_call(step, saving=True)
    assert n in (1, 4)
    if n == 4:
      assert step + 4 <= 20
      for every in (6, 9):  # log_every needs no boundary: rows are logged per step.
        assert not any(m % every == 0 for m in range(step + 1, step + 4)), (step, every)
  # Without a save function the checkpoint interval is no boundary.
  assert settings.steps_in_call(4, saving=True) == 1  # 6 inside 5..8.
  assert settings.steps_in_call(4, saving=False) == 4  # 5..8: no 9.
  assert settings.steps_in_call(0, saving=True) == 4  # 1..4 ends before 6.
  assert settings.steps_in_call(17, saving=True) == 1  # 18..21 passes num_steps.
  assert loop.LoopSettings(num_steps=5, log_every=1).steps_in_call(0, True) == 1


def test_multi_step_calls_log_save_and_check_every_step(tmp_path):
  path = str(tmp_path / 'metrics.jsonl')
  calls, saves, afters = [], [], []

  def multi(state, step, n):
    calls.append((step, n))
    return state + n, {'loss': jnp.arange(step, step + n, dtype=jnp.float32)}

  def single(state, step):
    calls.append((step, 1))
    return state + 1, {'loss': jnp.float32(step)}

  settings = loop.LoopSettings(num_steps=14, log_every=2, checkpoint_every=8,
                               metrics_path=path, handle_sigterm=False, steps_per_call=4,
                               boundaries=(6,))
  result = loop.run_loop(settings, 0, 0, single, multi_step_fn=multi,
                         save_fn=lambda step, state: saves.append((step, state)),
                         after_step=lambda step, state: afters.append(step))
  assert result.state == result.step == 14
  # Every step ran exactly once, in order.
  assert [s for c, n in calls for s in range(c, c + n)] == list(range(14))
  assert any(n == 4 for _, n in calls)
  # Logs, saves and after_step are where single steps would put them.
  rows = _rows(path)
  assert [r['step'] for r in rows] == list(range(2, 15, 2))
  assert [r['loss'] for r in rows] == [float(s - 1) for s in range(2, 15, 2)]
  assert np.all(np.diff([r['train_seconds'] for r in rows]) >= 0)
  assert saves == [(8, 8), (14, 14)]
  assert set(range(6, 15, 6)) <= set(afters) and afters == sorted(afters)
  assert result.last_metrics == {'loss': 13.0}


def test_a_nan_inside_a_multi_step_call_names_its_step(tmp_path):
  def multi(state, step, n):
    loss = jnp.arange(step, step + n, dtype=jnp.float32)
    return state + n, {'loss': jnp.where(loss == 5, jnp.nan, loss)}

  settings = loop.LoopSettings(num_steps=8, log_every=4, handle_sigterm=False,
                               steps_per_call=4, checkpoint_dir=str(tmp_path))
  try:
    loop.run_loop(settings, 0, 0, _step, multi_step_fn=multi)
  except loop.NonFiniteLossError as e:
    assert 'at step 6 ' in str(e), e  # 0-based step 5 is the 6th step.
  else:
    raise AssertionError('the NaN was not caught')
