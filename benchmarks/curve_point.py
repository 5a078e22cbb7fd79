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

import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
import checkpoint_probe  # benchmarks/ is on sys.path (the script's own folder).

FLAGS = flags.FLAGS


def curve_point(config, workdir: str, step: int | None = None) -> dict:
  """{'step': checkpoint step, <curves.py's metrics>} of a workdir's checkpoint."""
  restored = checkpoint_probe.restore(config, workdir, step)
  return {'step': restored.step, **restored.logger.measure(restored.params)}


def main(argv):
  del argv
  row = curve_point(FLAGS.config, FLAGS.workdir, checkpoint_probe.flag_step())
  row['guidance'] = float(FLAGS.config.sample.get('guidance', 0.0))
  checkpoint_probe.report(row, FLAGS.workdir, FLAGS.out, sort_keys=True)


if __name__ == '__main__':
  checkpoint_probe.define_flags('Also write the row to this JSON file.')
  flags.adopt_module_key_flags(checkpoint_probe)   # --help lists them.
  app.run(main)
