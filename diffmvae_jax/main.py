"""Command line entry point: parses flags and dispatches; no logic lives here.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=/tmp/demo
  python -m diffmvae_jax.main --config=configs/polymnist.py --workdir=DIR --mode=sample \
      --config.sample.given=m0,m1

Modes: train (default; resumes from the workdir); sample (conditional and
unconditional grids from the latest checkpoint); eval (coherence, FID, F1, caption
NLL and the latent gap of a checkpoint, see evaluate.py); train_classifiers (the digit classifiers coherence
uses); train_prior (the latent score-based prior, a second stage). Any config
value can be overridden with --config.<section>.<key>=<value>.
"""

import logging as std_logging
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Path to a config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and samples.')
flags.DEFINE_enum('mode', 'train',
                  ['train', 'sample', 'eval', 'train_classifiers', 'train_prior'],
                  'What to do (see the module docstring).')
flags.DEFINE_bool('distributed', False,
                  'Call jax.distributed.initialize() (multi-host; also automatic on SLURM).')
flags.DEFINE_string('coordinator_address', '',
                    'host:port of process 0 for a multi-process run without a cluster manager.')
flags.DEFINE_integer('num_processes', 0, 'Process count (with --coordinator_address).')
flags.DEFINE_integer('process_id', -1, 'This process id (with --coordinator_address).')
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietLibraries:
  """Drops the libraries' per-operation INFO chatter (Orbax saves, TFDS config notes)."""

  def filter(self, record) -> bool:
    if '/orbax/' in record.pathname and record.levelno < std_logging.WARNING:
      return False
    return not record.getMessage().startswith('Using custom data configuration')


def run_mode(mode: str, config, workdir: str):
  """Dispatches one mode; every mode is an importable library function."""
  if mode == 'train':
    from diffmvae_jax import train
    return train.train_and_evaluate(config, workdir)
  if mode == 'sample':
    from diffmvae_jax import sample
    return sample.sample_from_checkpoint(config, workdir)
  if mode == 'eval':
    from diffmvae_jax import evaluate
    return evaluate.evaluate(config, workdir)
  if mode == 'train_classifiers':
    import os
    from diffmvae_jax.tasks import classifiers
    return classifiers.train_classifiers(
        config.data, config.eval.classifier_dir or os.path.join(workdir, 'classifiers'),
        num_steps=config.eval.classifier_steps, seed=config.seed)
  if mode == 'train_prior':
    from diffmvae_jax import train_prior
    return train_prior.train_prior(config, workdir)
  raise ValueError(f'Unknown mode {mode!r}.')


def parse_flags(argv):
  """absl's flag parsing, with every mistake in a --config flag answered in one line.

  A --config path that does not exist, a config argument get_config refuses
  (configs/x.py:bogus), an override of a key the config does not have
  (--config.train.nokey=1) or of the wrong type exits with status 1 and one line, instead
  of a traceback from ml_collections.
  """
  try:
    remaining = FLAGS(argv)
    FLAGS.config.keys()   # A config that failed to load raises only when first used.
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    message = lines[0] if len(lines) == 1 else f'{lines[0].split(": ")[0]}: {lines[-1]}'
    sys.exit(f'error (flags): {message} (--helpshort lists the flags)')
  except (AttributeError, KeyError) as e:
    arg = next((a for a in argv[1:] if a.startswith('--config.')), '--config.<key>')
    sys.exit(f'error (ConfigError): {arg.split("=")[0]}: no such config key ({e}); '
             'configs/default.py lists every key.')
  except (IOError, ImportError, SyntaxError) as e:
    path = FLAGS['config'].serialize() if 'config' in FLAGS else '--config'
    reason = str(e.__cause__ or e).strip().splitlines()[-1].strip()
    sys.exit(f'error (ConfigError): {path}: cannot load this config file ({reason}); give '
             'the path of a config module such as configs/demo.py.')
  return remaining


def check_inputs(config, workdir: str) -> None:
  """Every config value and --workdir checked before anything expensive (ConfigError)."""
  from diffmvae_jax import config_checks
  config_checks.check_workdir(workdir)
  config_checks.check_config(config)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  from diffmvae_jax import errors
  try:
    check_inputs(FLAGS.config, FLAGS.workdir)
  except errors.ConfigError as e:
    sys.exit(f'error (ConfigError): {e}')
  # Imported here so jax.distributed can be initialised before any other JAX use.
  from diffmvae_jax import parallel
  parallel.maybe_initialize_distributed(FLAGS.distributed, FLAGS.coordinator_address,
                                        FLAGS.num_processes, FLAGS.process_id)
  import jax
  logging.info('JAX %s: process %d of %d, %d local / %d global devices (%s).', jax.__version__,
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.devices()[0].platform)
  try:
    run_mode(FLAGS.mode, FLAGS.config, FLAGS.workdir)
  except errors.DiffMVAEError as e:
    sys.exit(f'error ({type(e).__name__}): {e}')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
