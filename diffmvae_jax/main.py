"""Command line entry point: parses flags and dispatches; no logic lives here.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=/tmp/demo
  python -m diffmvae_jax.main --config=configs/polymnist.py --workdir=DIR --mode=sample \
      --config.sample.given=m0,m1

Modes: train (default; resumes from the workdir), sample (conditional and
unconditional grids from the latest checkpoint). Any config value can be
overridden with --config.<section>.<key>=<value>.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Path to a config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and samples.')
flags.DEFINE_enum('mode', 'train', ['train', 'sample'], 'What to do.')
flags.DEFINE_bool('distributed', False,
                  'Call jax.distributed.initialize() (multi-host; also automatic on SLURM).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Imported here so jax.distributed can be initialised before any other JAX use.
  from diffmvae_jax import parallel
  parallel.maybe_initialize_distributed(FLAGS.distributed)
  import jax
  logging.info('JAX %s: process %d of %d, %d local / %d global devices (%s).', jax.__version__,
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.devices()[0].platform)
  from diffmvae_jax import errors
  from diffmvae_jax.data.errors import DataError
  try:
    if FLAGS.mode == 'train':
      from diffmvae_jax import train
      train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    elif FLAGS.mode == 'sample':
      from diffmvae_jax import sample
      sample.sample_from_checkpoint(FLAGS.config, FLAGS.workdir)
  except (errors.ConfigError, errors.CheckpointError, errors.NonFiniteLossError, DataError) as e:
    logging.error('%s: %s', type(e).__name__, e)
    sys.exit(f'error ({type(e).__name__}): {e}')


if __name__ == '__main__':
  app.run(main)
