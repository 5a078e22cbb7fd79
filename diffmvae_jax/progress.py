"""Progress and ETA reporting for the loop driver: clu's ReportProgress where clu imports,
else `ProgressReporter`, the same behaviour without TensorFlow.

    report = progress.make_reporter(num_train_steps=1000, writer=writer, every_secs=30)
    report(step)   # after every step

clu.periodic_actions imports clu.metric_writers, which imports TensorFlow; where that fails
(a bare JAX image) `ProgressReporter` logs the same line ('12.3 steps/s, 40.0% (400/1000),
ETA: 1m') at most every `every_secs` seconds and at the last step, and writes the same
'steps_per_sec' and 'uptime' scalars.
"""

from __future__ import annotations

import time

from absl import logging

try:  # Imports clu.metric_writers, hence TensorFlow.
  from clu import periodic_actions  # pylint: disable=g-import-not-at-top
except ImportError:
  periodic_actions = None


def format_seconds(seconds: float) -> str:
  """123456.7 -> '1d10h17m' (clu's format: days and hours when non-zero, then minutes)."""
  days, rest = divmod(int(seconds), 24 * 3600)
  hours, rest = divmod(rest, 3600)
  return (f'{days}d' if days else '') + (f'{hours}h' if hours else '') + f'{rest // 60}m'


class ProgressReporter:
  """clu's ReportProgress (without its timed() parts), for machines without clu."""

  def __init__(self, *, num_train_steps: int | None, writer=None, every_secs: float = 60.0):
    """Creates the reporter.

    Args:
      num_train_steps: the last step (reported whatever the time), None if unknown.
      writer: a metric writer for 'steps_per_sec' and 'uptime', or None.
      every_secs: the least time between two reports.
    """
    self._num_train_steps = num_train_steps if num_train_steps and num_train_steps > 0 else None
    self._writer = writer
    self._every_secs = every_secs
    self._t0 = time.monotonic()
    self._previous_step = None
    self._previous_time = None

  def __call__(self, step: int) -> bool:
    """Reports after `step` if due.

    Returns:
      Whether a report was made (the first call only starts the clock).
    """
    now = time.monotonic()
    if self._previous_step is None:
      self._previous_step, self._previous_time = step, now
      return False
    due = (now - self._previous_time >= self._every_secs or step == self._num_train_steps)
    if step == self._previous_step or not due:
      return False
    steps_per_sec = (step - self._previous_step) / max(now - self._previous_time, 1e-9)
    message = f'{steps_per_sec:.1f} steps/s'
    if self._num_train_steps:
      eta = (self._num_train_steps - step) / max(steps_per_sec, 1e-9)
      message += (f', {100 * step / self._num_train_steps:.1f}% '
                  f'({step}/{self._num_train_steps}), ETA: {format_seconds(eta)}')
    logging.info('Setting work unit notes: %s', message)
    if self._writer is not None:
      self._writer.write_scalars(step, {'steps_per_sec': steps_per_sec})
      self._writer.write_scalars(step, {'uptime': now - self._t0})
    self._previous_step, self._previous_time = step, now
    return True


def make_reporter(*, num_train_steps: int | None, writer=None, every_secs: float = 60.0):
  """clu's ReportProgress with these arguments, or a ProgressReporter without clu.

  Args:
    num_train_steps: the last step, None if unknown.
    writer: a metric writer for the steps/s and uptime scalars, or None.
    every_secs: the least time between two reports.

  Returns:
    A callable `report(step)` to call after every step.
  """
  if periodic_actions is not None:
    return periodic_actions.ReportProgress(num_train_steps=num_train_steps, writer=writer,
                                           every_secs=every_secs)
  return ProgressReporter(num_train_steps=num_train_steps, writer=writer,
                          every_secs=every_secs)
