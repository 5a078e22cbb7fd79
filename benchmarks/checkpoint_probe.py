"""What the benchmarks that probe one trained checkpoint share: flags, restore, report.

benchmarks/curve_point.py, x0_trajectory.py and sample_agreement.py each restore a VAE
checkpoint of a workdir, measure it on the learning curves' ``train.curve_num`` test examples
with the saved digit classifiers (curves.CurveLogger), and print one JSON object. This module
holds those shared steps, so each benchmark keeps only its own measurement:

  define_flags()   --config, --workdir, --step (-1 = the latest) and --out;
  restore()        model, EMA/sampling parameters, restored step and the curves' logger;
  classify()       digit predictions of a batch of images of one modality;
  given_target_pairs()  each diffusion-decoded, classified modality given each other one;
  report()         prints the result and writes it to --out.
"""

import json
from typing import Any, NamedTuple

from absl import flags
import numpy as np
from ml_collections import config_flags

from diffmvae_jax import curves as curves_lib
from diffmvae_jax import eval_tasks
from diffmvae_jax import parallel
from diffmvae_jax.models.diffmvae import DiffMVAE
from diffmvae_jax.tasks import vae

FLAGS = flags.FLAGS


def define_flags(out_help: str = 'Also write the result to this JSON file.'):
  """Defines --config, --workdir, --step and --out (call only when run as a script)."""
  config_flags.DEFINE_config_file('config', None, 'Config of the checkpoint.', lock_config=False)
  flags.DEFINE_string('workdir', None, 'Workdir with the VAE checkpoint.', required=True)
  flags.DEFINE_integer('step', -1, 'Checkpoint step (-1 = the latest).')
  flags.DEFINE_string('out', '', out_help)
  flags.mark_flags_as_required(['config'])


def flag_step() -> int | None:
  """--step as restore() takes it: None for the latest checkpoint."""
  return None if FLAGS.step < 0 else FLAGS.step


class Restored(NamedTuple):
  """A restored checkpoint, ready to sample and score.

  model: the DiffMVAE of the config.
  params: the parameters the eval samples with (EMA when train.ema_decay > 0).
  step: the checkpoint's training step.
  logger: the curves' CurveLogger: its test inputs (``inputs``), labels, ``valid`` mask,
    classifiers and ``classified`` modality names.
  """
  model: DiffMVAE
  params: Any
  step: int
  logger: curves_lib.CurveLogger


def restore(config, workdir: str, step: int | None = None) -> Restored:
  """Restores a workdir's checkpoint (the latest, or `step`) with the curves' test examples.

  Raises what vae.restore_vae and CurveLogger raise: no checkpoint, missing classifiers.
  """
  model, state, restored = vae.restore_vae(config, workdir, step)
  logger = curves_lib.CurveLogger(model, config, workdir, parallel.make_mesh())
  return Restored(model, vae.sampling_params(config, state), int(restored), logger)


def classify(logger: curves_lib.CurveLogger, name: str, images) -> np.ndarray:
  """int (B,): the digit the saved classifier of modality `name` reads in each image."""
  return np.argmax(np.asarray(eval_tasks.fetch(logger.classify(name, images))), -1)


def given_target_pairs(model: DiffMVAE, logger: curves_lib.CurveLogger) -> list[tuple[str, str]]:
  """(given, target) for each diffusion-decoded target with a classifier, each other given.

  Raises:
    ValueError: no diffusion-decoded modality has a classifier (nothing to sample).
  """
  pairs = [(given, target) for target in model.diffusion_names if target in logger.classified
           for given in model.names if given != target]
  if not pairs:
    raise ValueError('No diffusion-decoded modality with a classifier: nothing to sample. '
                     'Train the classifiers (--mode=train_classifiers) for the image modalities.')
  return pairs


def report(result: dict, workdir: str, out: str = '', sort_keys: bool = False) -> None:
  """Adds the workdir to `result`, prints it as JSON and, with `out`, writes it there."""
  result['workdir'] = workdir
  print(json.dumps(result, indent=1, sort_keys=sort_keys))
  if out:
    with open(out, 'w') as f:
      json.dump(result, f, indent=1, sort_keys=sort_keys)
