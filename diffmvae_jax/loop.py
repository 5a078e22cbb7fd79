"""The one training-loop driver: every task (the VAE, the latent score prior, the coherence
classifiers) trains through `run_loop`.

A task supplies a step function and, if it checkpoints, a save function; the driver owns
what every loop needs, so a fix to it lands once:

- metrics fetched one step late: step s's device metrics are read after step s + 1 is
  dispatched, so dispatch stays asynchronous while every step is still checked;
- several steps per dispatch (``steps_per_call`` K > 1 with a ``multi_step_fn``, e.g. a
  lax.scan over K batches): calls of K steps that never cross a multiple of
  checkpoint_every or any of ``boundaries``, so saves and after_step land on the same steps
  as with K = 1 (single steps fill the gaps); every step's metrics are still checked and
  logged on their own step (``train_seconds`` of a row inside a call is read when the call's
  metrics are), SIGTERM is seen at the end of a call;
- a NaN/Inf guard (`check_finite`): a non-finite metric stops the run naming the step and
  every bad term; before any save the current step is checked too, so no checkpoint ever
  holds a state produced by a non-finite step, and the last good one is kept;
- saves every ``checkpoint_every`` steps, at the end and on SIGTERM (`PreemptionWatcher`,
  synced across hosts), then a clean stop that a rerun resumes;
- progress and ETA (clu's ReportProgress, or progress.py's equivalent without clu: log
  lines and a steps/s scalar);
- scalars: the mean over each ``log_every`` window to the clu writer (prefixed, e.g.
  'prior/'), and the window's last values to a JSONL file (lead process only), each row with
  ``train_seconds``: wall-clock seconds of training when the row was written (one step
  late, like the metrics; compilation included), summed over resumed
  runs (read back from the file's last row at or before the resumed step) and excluding
  the time spent in ``after_step`` (sample grids, learning curves), so budgets such as
  "60 minutes of training" are read from the file.

    result = loop.run_loop(settings, state, start_step, step_fn, writer=writer,
                           save_fn=save_fn)
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from typing import Any, Callable

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from diffmvae_jax import progress
from diffmvae_jax.errors import NonFiniteLossError

DEFAULT_ADVICE = ('Lower train.learning_rate, tighten train.grad_clip_norm or check the data')


def resumed_train_seconds(metrics_path: str | None, start_step: int) -> float:
  """``train_seconds`` of the last JSONL row at or before `start_step` (0 if none).

  Rows after the resumed step come from steps whose state was never saved: they are
  retrained, so their time does not count twice.
  """
  if start_step <= 0 or not metrics_path or not os.path.exists(metrics_path):
    return 0.0
  best_step, seconds = -1, 0.0
  with open(metrics_path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line cut short by a kill.
      step = row.get('step', -1)
      if 'train_seconds' in row and best_step <= step <= start_step:
        best_step, seconds = step, float(row['train_seconds'])
  return seconds


class PreemptionWatcher:
  """Turns SIGTERM into a flag the loop polls (and syncs across hosts)."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread (e.g. some notebook runners).
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint and stopping.')
    self.requested = True

  def should_stop(self, step: int) -> bool:
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step) or self.requested
    return self.requested

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def check_finite(step: int, metrics: dict, last_saved: int | None, directory: str,
                 what: str = 'Non-finite value', advice: str = DEFAULT_ADVICE) -> None:
  """Raises NonFiniteLossError naming the step and every non-finite metric.

  Args:
    step: the (1-based) step the metrics came from.
    metrics: name -> host value (scalar or array).
    last_saved: the step of the last checkpoint written, None if none.
    directory: where that checkpoint is kept (named in the message).
    what: the message's opening words.
    advice: what to change before rerunning.
  """
  bad = sorted(k for k, v in metrics.items() if not np.all(np.isfinite(v)))
  if bad:
    kept = (f'the last good checkpoint (step {last_saved}) is kept' if last_saved is not None
            else 'no checkpoint had been written yet')
    raise NonFiniteLossError(
        f'{what} at step {step} in {bad} (loss={metrics.get("loss")}); {kept} in '
        f'{directory}. {advice}, then rerun the same command to resume from that checkpoint.')


class _PrefixedWriter:
  """Forwards write_scalars with prefixed keys (also for ReportProgress's steps/s)."""

  def __init__(self, writer, prefix: str):
    self._writer, self._prefix = writer, prefix

  def write_scalars(self, step, scalars):
    self._writer.write_scalars(step, {f'{self._prefix}{k}': v for k, v in scalars.items()})


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """How one task's loop runs.

  Attributes:
    num_steps: train until this (global) step.
    log_every: write scalars every this many steps (and at the last step).
    checkpoint_every: call save_fn every this many steps (and at the end and on SIGTERM);
      ignored without a save_fn.
    checkpoint_dir: where the task's checkpoints live (named by the NaN guard).
    name: the profiler's step annotation and the log lines' subject.
    scalar_prefix: prepended to every scalar name in the writer ('prior/').
    metrics_path: JSONL file for each window's last values; None writes none.
    nonfinite_what, nonfinite_advice: the NaN guard's message (check_finite).
    handle_sigterm: stop and save on SIGTERM; False for tasks with nothing to resume.
    steps_per_call: K > 1 runs multi_step_fn(state, step, K) wherever K steps fit before
      the next boundary (see the module docstring), step_fn elsewhere.
    boundaries: more step intervals a multi-step call must not cross (the task's
      after_step events, e.g. sample_every); zeros are ignored.
  """
  num_steps: int
  log_every: int
  checkpoint_every: int = 0
  checkpoint_dir: str = ''
  name: str = 'train'
  scalar_prefix: str = ''
  metrics_path: str | None = None
  nonfinite_what: str = 'Non-finite value'
  nonfinite_advice: str = DEFAULT_ADVICE
  handle_sigterm: bool = True
  steps_per_call: int = 1
  boundaries: tuple[int, ...] = ()

  def steps_in_call(self, step: int, saving: bool) -> int:
    """How many steps the call after `step` steps takes: steps_per_call or 1."""
    k = self.steps_per_call
    if k <= 1 or step + k > self.num_steps:
      return 1
    intervals = (self.checkpoint_every if saving else 0,) + tuple(self.boundaries)
    for every in intervals:
      if every > 0 and (step // every + 1) * every < step + k:
        return 1  # A multiple of `every` falls strictly inside the call.
    return k


@dataclasses.dataclass
class LoopResult:
  """What run_loop ends with.

  Attributes:
    state: the task's state after the last step run.
    step: that step (== num_steps unless stopped by SIGTERM).
    last_metrics: the last step's metrics as floats (empty if no step ran).
    last_saved: the step of the last save (None if none).
    preempted: True if SIGTERM stopped the loop early.
  """
  state: Any
  step: int
  last_metrics: dict
  last_saved: int | None
  preempted: bool


class _NoWatcher:
  requested = False

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return None

  def should_stop(self, step: int) -> bool:
    del step
    return False


def run_loop(settings: LoopSettings, state, start_step: int,
             step_fn: Callable[[Any, int], tuple[Any, dict]], *, writer=None,
             save_fn: Callable[[int, Any], None] | None = None,
             after_step: Callable[[int, Any], None] | None = None,
             last_saved: int | None = None,
             multi_step_fn: Callable[[Any, int, int], tuple[Any, dict]] | None = None
             ) -> LoopResult:
  """Runs step_fn from start_step to settings.num_steps (see the module docstring).

  Args:
    settings: LoopSettings.
    state: the task's state before step start_step + 1.
    start_step: the number of steps already taken (the resumed step).
    step_fn: (state, step) -> (state, device metrics dict): takes the 0-based step
      start_step, start_step + 1, ...; reads its own batch; must not block on the device.
    writer: a metric writer (metric_writer.create_writer), or None (log lines only).
    save_fn: (step, state) -> None, starts a (possibly async) save of `state` after `step`
      steps; None for tasks that keep nothing between runs.
    after_step: (step, state) -> None, run after each step's save (e.g. sample grids).
    last_saved: the step of the checkpoint the run resumed from (for the NaN message).
    multi_step_fn: (state, step, n) -> (state, device metrics with a leading axis n): takes
      the 0-based steps step .. step + n - 1 in one call; required when
      settings.steps_per_call > 1.

  Returns:
    LoopResult.

  Raises:
    NonFiniteLossError: a non-finite metric; nothing is saved after the step before it.
  """
  s = settings
  if s.steps_per_call > 1 and multi_step_fn is None:
    raise ValueError(f'steps_per_call={s.steps_per_call} needs a multi_step_fn')
  is_lead = jax.process_index() == 0
  scalar_writer = (writer if writer is None or not s.scalar_prefix
                   else _PrefixedWriter(writer, s.scalar_prefix))
  report_progress = progress.make_reporter(num_train_steps=s.num_steps, writer=scalar_writer,
                                           every_secs=30)
  history, last_metrics = [], {}
  saved = last_saved
  seconds_before = resumed_train_seconds(s.metrics_path if is_lead else None, start_step)
  started = time.perf_counter()
  outside = 0.0  # Seconds spent in after_step, not training.

  def train_seconds():
    return seconds_before + time.perf_counter() - started - outside

  def consume(last_step, device_metrics, n):
    """Checks and logs the metrics of steps last_step - n + 1 .. last_step."""
    stacked = jax.device_get(device_metrics)
    for i in range(n):
      host = stacked if n == 1 else {k: v[i] for k, v in stacked.items()}
      record(last_step - n + 1 + i, host)

  def record(step, host):
    nonlocal last_metrics
    check_finite(step, host, saved, s.checkpoint_dir, what=s.nonfinite_what,
                 advice=s.nonfinite_advice)
    last_metrics = {k: float(v) for k, v in host.items()}
    history.append(last_metrics)
    if step % s.log_every == 0 or step == s.num_steps:
      means = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
      if scalar_writer is not None:
        scalar_writer.write_scalars(step, means)
      else:
        logging.info('%s: step %d/%d, %s', s.name, step, s.num_steps,
                     ', '.join(f'{k} {v:.4g}' for k, v in sorted(means.items())))
      if is_lead and s.metrics_path:
        with open(s.metrics_path, 'a') as f:
          row = {'step': step, **last_metrics, 'train_seconds': round(train_seconds(), 3)}
          f.write(json.dumps(row) + '\n')
      history.clear()

  logging.info('%s: from step %d to %d.', s.name, start_step, s.num_steps)
  pending = None  # (last step, device metrics, steps), fetched one call late.
  step, preempted = start_step, False
  with PreemptionWatcher() if s.handle_sigterm else _NoWatcher() as preemption:
    while step < s.num_steps:
      n = s.steps_in_call(step, saving=save_fn is not None)
      with jax.profiler.StepTraceAnnotation(s.name, step_num=step):
        state, metrics = (step_fn(state, step) if n == 1
                          else multi_step_fn(state, step, n))
      step += n
      if pending is not None:
        consume(*pending)
      pending = (step, metrics, n)
      report_progress(step)
      stop = preemption.should_stop(step)
      if save_fn is not None and (step % s.checkpoint_every == 0 or step == s.num_steps
                                  or stop):
        consume(*pending)  # Never save a state that came from a non-finite step.
        pending = None
        save_fn(step, state)
        saved = step
      if after_step is not None:
        before = time.perf_counter()
        after_step(step, state)
        outside += time.perf_counter() - before
      if stop:
        logging.warning('%s stopped at step %d on preemption; rerun to resume.', s.name, step)
        preempted = True
        break
    if pending is not None:
      consume(*pending)
  return LoopResult(state=state, step=step, last_metrics=last_metrics, last_saved=saved,
                    preempted=preempted)
