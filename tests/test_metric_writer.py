"""The TensorFlow-free metric writer (metric_writer.EventWriter) and progress reporter
(progress.ProgressReporter), used where clu / TensorFlow do not import."""
import glob
import json
import os

import numpy as np
from tensorboard.backend.event_processing import event_file_loader

from diffmvae_jax import metric_writer
from diffmvae_jax import progress


def _events(logdir):
  (path,) = glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))
  return list(event_file_loader.EventFileLoader(path).Load())


def test_event_writer_scalars_images_hparams(tmp_path):
  logdir = str(tmp_path / 'logs')
  writer = metric_writer.EventWriter(logdir)
  writer.write_scalars(3, {'loss': np.float32(1.5), 'lr': 0.25, 'count': 7})
  writer.write_images(4, {'grid': np.zeros((1, 6, 5, 3), np.uint8),
                          'pair': np.ones((2, 4, 4, 1), np.float32)})
  writer.write_texts(4, {'caption': 'a handwritten seven'})
  writer.write_hparams({'train.lr': 0.1, 'model.name': 'x', 'dims': (1, 2)})
  writer.flush()
  writer.close()
  values = {}
  for event in _events(logdir):
    for value in event.summary.value:
      values[value.tag] = (event.step, value)
  # EventFileLoader turns simple values into tensors (as TensorBoard's data loader does).
  assert values['loss'][0] == 3 and values['loss'][1].tensor.float_val == [1.5]
  assert values['count'][1].tensor.float_val == [7.0]
  assert values['grid'][0] == 4
  assert {'pair/0', 'pair/1'} <= set(values)
  with open(os.path.join(logdir, metric_writer.HPARAMS_FILE)) as f:
    assert json.load(f) == {'train.lr': 0.1, 'model.name': 'x', 'dims': '(1, 2)'}


def test_logging_only_writer_writes_no_files(tmp_path):
  writer = metric_writer.EventWriter(None)
  writer.write_scalars(1, {'loss': 1.0})
  writer.write_hparams({'a': 1})
  writer.flush()
  assert os.listdir(tmp_path) == []


def test_create_writer_keeps_clu_when_it_imports(tmp_path):
  writer = metric_writer.create_writer(str(tmp_path), just_logging=True)
  assert metric_writer.clu_available()  # TensorFlow is installed in this venv.
  assert not isinstance(writer, metric_writer.EventWriter)


class _Recorder:
  def __init__(self):
    self.rows = []

  def write_scalars(self, step, scalars):
    self.rows.append((step, dict(scalars)))


def test_progress_reporter_reports_rate_and_last_step():
  writer = _Recorder()
  report = progress.ProgressReporter(num_train_steps=5, writer=writer, every_secs=3600)
  assert not report(0)          # Starts the clock.
  assert not report(1)          # Not due yet.
  assert report(5)              # The last step always reports.
  assert [r[0] for r in writer.rows] == [5, 5]
  assert writer.rows[0][1]['steps_per_sec'] > 0 and 'uptime' in writer.rows[1][1]
  every = progress.ProgressReporter(num_train_steps=None, writer=None, every_secs=0.0)
  assert not every(10) and every(11) and not every(11)
  assert progress.format_seconds(123456.7) == '1d10h17m'
  assert progress.format_seconds(59) == '0m'
