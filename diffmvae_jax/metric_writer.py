"""The metric writer every mode uses: clu's where it imports, else a TensorFlow-free one.

    writer = metric_writer.create_writer(workdir, just_logging=not is_lead)
    writer.write_scalars(step, {'loss': 1.0}); writer.write_images(step, {'grid': batch})
    writer.write_hparams({...}); writer.flush()

With TensorFlow installed (clu.metric_writers imports it), this is exactly
`clu.metric_writers.create_default_writer`: log lines, and TensorBoard summaries through
TensorFlow. Without it (a bare JAX image, the lent accelerator machine) `EventWriter` does
the same job with no TensorFlow: the same log lines, and TensorBoard event files written by
the `tensorboard` package's own `EventFileWriter` (scalars as simple values, images as PNG;
hparams go to `hparams.json` in the log directory, since TensorBoard's hparams plugin
summary needs TensorFlow). `tensorboard --logdir` reads either.
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import Any, Mapping

from absl import logging
import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

try:  # clu's writers import TensorFlow (their SummaryWriter).
  from clu import metric_writers as clu_writers  # pylint: disable=g-import-not-at-top
except ImportError:
  clu_writers = None

HPARAMS_FILE = 'hparams.json'


def clu_available() -> bool:
  """Whether clu's writers (and so TensorFlow) import here."""
  return clu_writers is not None


def create_writer(logdir: str, *, just_logging: bool = False):
  """The metric writer for `logdir` (clu's default writer, or EventWriter without TF).

  Args:
    logdir: where TensorBoard files go (created if needed).
    just_logging: True on non-lead processes: log lines only, no files.

  Returns:
    An object with write_scalars / write_images / write_texts / write_hparams / flush /
    close (clu's MetricWriter interface).
  """
  if clu_writers is not None:
    return clu_writers.create_default_writer(logdir, just_logging=just_logging)
  return EventWriter(None if just_logging else logdir)


def _format(value) -> str:
  return f'{value:.6g}' if isinstance(value, float) else f'{value}'


def _png(image: np.ndarray) -> tuple[bytes, int, int, int]:
  """(PNG bytes, height, width, channels) of one (H, W, C) image, uint8 or float in [0, 1]."""
  array = np.asarray(image)
  if array.dtype != np.uint8:
    array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
  if array.ndim == 2:
    array = array[..., None]
  height, width, channels = array.shape
  buffer = io.BytesIO()
  Image.fromarray(array[..., 0] if channels == 1 else array).save(buffer, format='PNG')
  return buffer.getvalue(), height, width, channels


class EventWriter:
  """clu's default writer without TensorFlow: absl log lines + TensorBoard event files.

  Log lines read as clu's LoggingWriter's ('[step] name=value, ...'). Scalars go to the
  event file as simple values, images (N, H, W, C) as PNG summaries named '<key>/<i>' (as
  clu's, for N > 1), texts as log lines only, hparams to `logdir/hparams.json`.
  """

  def __init__(self, logdir: str | None):
    """Opens an event file in `logdir` (None: log lines only)."""
    self._logdir = logdir
    self._events = None
    if logdir is not None:
      os.makedirs(logdir, exist_ok=True)
      self._events = EventFileWriter(logdir)

  def _add(self, step: int, values: list) -> None:
    if self._events is None or not values:
      return
    self._events.add_event(event_pb2.Event(
        wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=values)))

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Logs and records scalars (numbers, numpy or JAX scalars) at `step`."""
    scalars = {k: (v.item() if hasattr(v, 'item') else v) for k, v in scalars.items()}
    logging.info('[%d] %s', step, ', '.join(f'{k}={_format(v)}'
                                            for k, v in sorted(scalars.items())))
    self._add(step, [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                     for k, v in sorted(scalars.items())])

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Records images: each value (N, H, W, C), uint8 or float in [0, 1]."""
    logging.info('[%d] Got images: %s.', step, {k: np.shape(v) for k, v in images.items()})
    values = []
    for key, batch in sorted(images.items()):
      batch = np.asarray(batch)
      for i, image in enumerate(batch):
        encoded, height, width, channels = _png(image)
        tag = key if len(batch) == 1 else f'{key}/{i}'
        values.append(summary_pb2.Summary.Value(tag=tag, image=summary_pb2.Summary.Image(
            height=height, width=width, colorspace=channels, encoded_image_string=encoded)))
    self._add(step, values)

  def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
    """Logs texts (not recorded in the event file)."""
    logging.info('[%d] Got texts: %s.', step, dict(texts))

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Logs hparams and writes them to `logdir/hparams.json` (values as JSON or str)."""
    logging.info('[hparams] %s', ', '.join(f'{k}={v}' for k, v in sorted(hparams.items())))
    if self._logdir is None:
      return
    safe = {k: (v if isinstance(v, (bool, int, float, str)) or v is None else str(v))
            for k, v in hparams.items()}
    with open(os.path.join(self._logdir, HPARAMS_FILE), 'w') as f:
      json.dump(safe, f, indent=1, sort_keys=True)

  def flush(self) -> None:
    if self._events is not None:
      self._events.flush()

  def close(self) -> None:
    if self._events is not None:
      self._events.close()
      self._events = None
