"""One learning-curve point of a checkpoint, measured after training (curves.py's metrics).

  .venv/bin/python benchmarks/curve_point.py --config=configs/protocol_polymnist.py:diffusion_coarse \
      --workdir=$HOME/runs/p13/diffusion_coarse_s0 --config.eval.classifier_dir=$HOME/runs/p13/classifiers \
      [--out=point.json]

Restores the latest checkpoint (or --step) and measures what ``train.curve_every`` logs during
training, on the same ``train.curve_num`` test examples, keys and DDIM steps: coherence given
1 and 2, the latent probe, and, with coarse decoders, ``coarse_coherence/given_1``. Use it for
checkpoints trained before a metric existed, or to re-measure one point. Prints one JSON row
(with the ``sample.guidance`` it was sampled with: ``--config.sample.guidance=w`` measures a
guided model at another guidance weight).

Cost: one curve point (the protocol's Diff-MVAE at 500 examples, DDIM-10: ~2-3 minutes on
one CPU core; MoPoE seconds).
"""

import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
from diffmvae_jax import curves as curves_lib
from diffmvae_jax import parallel
from diffmvae_jax.tasks import vae

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', None, 'Config of the checkpoint.', lock_config=False)
  flags.DEFINE_string('workdir', None, 'Workdir with the VAE checkpoint.', required=True)
  flags.DEFINE_integer('step', -1, 'Checkpoint step (-1 = the latest).')
  flags.DEFINE_string('out', '', 'Also write the row to this JSON file.')
  flags.mark_flags_as_required(['config'])


def curve_point(config, workdir: str, step: int | None = None) -> dict:
  """{'step': checkpoint step, <curves.py's metrics>} of a workdir's checkpoint."""
  model, state, restored = vae.restore_vae(config, workdir, step)
  logger = curves_lib.CurveLogger(model, config, workdir, parallel.make_mesh())
  return {'step': int(restored), **logger.measure(vae.sampling_params(config, state))}


def main(argv):
  del argv
  row = curve_point(FLAGS.config, FLAGS.workdir, None if FLAGS.step < 0 else FLAGS.step)
  row['workdir'] = FLAGS.workdir
  row['guidance'] = float(FLAGS.config.sample.get('guidance', 0.0))
  print(json.dumps(row, indent=1, sort_keys=True))
  if FLAGS.out:
    with open(FLAGS.out, 'w') as f:
      json.dump(row, f, indent=1, sort_keys=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
