"""Batches per second of the real training input pipeline, without any model.

Times `pipeline.make_train_iterator` for a config's data section and batch size (grain:
shuffled ids, batch, read + decode of the stored examples), so it can be set next to the
train-step time of `benchmarks/throughput.py`: if the pipeline's time per batch is a
sizeable fraction of the step's, the two compete for the same cores in the training loop.

  .venv/bin/python benchmarks/pipeline_rate.py --config=configs/protocol_polymnist.py:mopoe \
      --batches=400          # ~10 s; prints one JSON

Prints: seconds to the first batch (iterator start-up and the first read), then median /
min / max seconds per batch over `--batches` after `--warmup`, batches/s and samples/s.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffmvae_jax.data import pipeline  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', 'configs/demo.py', 'Config whose data to read.')
  flags.DEFINE_integer('batch_size', 0, 'Global batch (0 = the config\'s train.batch_size).')
  flags.DEFINE_integer('batches', 400, 'Timed batches.')
  flags.DEFINE_integer('warmup', 20, 'Untimed batches after the first.')


def time_batches(iterator, batches: int, warmup: int) -> dict:
  """Times `batches` next() calls of `iterator` after a first call and `warmup` more.

  Args:
    iterator: an iterator of batches (dicts of arrays).
    batches: number of timed batches (>= 1).
    warmup: untimed batches after the first.

  Returns:
    {'first_batch_s', 'median_s', 'min_s', 'max_s', 'batches_per_s'} as floats, where
    batches_per_s = batches / (total timed seconds).
  """
  start = time.perf_counter()
  next(iterator)
  first = time.perf_counter() - start
  for _ in range(warmup):
    next(iterator)
  times = []
  for _ in range(batches):
    start = time.perf_counter()
    next(iterator)
    times.append(time.perf_counter() - start)
  return {'first_batch_s': first, 'median_s': float(np.median(times)),
          'min_s': float(np.min(times)), 'max_s': float(np.max(times)),
          'batches_per_s': batches / float(np.sum(times))}


def main(argv):
  del argv
  config = FLAGS.config
  batch_size = FLAGS.batch_size or config.train.batch_size
  pipeline.prepare_dataset(config.data)
  iterator = iter(pipeline.make_train_iterator(config.data, global_batch_size=batch_size,
                                               seed=config.seed))
  report = {'batch_size': int(batch_size), 'batches': FLAGS.batches,
            'cpu_count': os.cpu_count(),
            'affinity': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None}
  report.update(time_batches(iterator, FLAGS.batches, FLAGS.warmup))
  report['samples_per_s'] = report['batches_per_s'] * batch_size
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  define_flags()
  app.run(main)
