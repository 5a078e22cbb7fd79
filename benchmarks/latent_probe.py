"""How much digit identity a trained VAE's latents carry: a nearest-class-mean probe.

  python benchmarks/latent_probe.py --config=configs/compare_polymnist.py:mopoe \
      --workdir=runs/compare/mopoe_s0 [--num=2000]

Encodes the first `num` test examples with the checkpoint's EMA encoders and prints one JSON
object: for each unimodal posterior mean (mu of q(z | m)) and for the full-set PoE mean, the
accuracy of a nearest-class-mean classifier fitted on the first half and scored on the second
half (chance 10 %). A latent that carries the digit scores high even when cross-modal
coherence is at chance (then the decoders ignore it, or the digit code is not shared across
modalities); a latent that scores near chance carries no digit, whatever the decoders do.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffmvae_jax import parallel  # pylint: disable=g-import-not-at-top
from diffmvae_jax.data import pipeline
from diffmvae_jax.metrics.latent_probe import nearest_class_mean_accuracy
from diffmvae_jax.models import diffmvae
from diffmvae_jax.tasks import vae

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', 'configs/demo.py', 'Config of the checkpoint.')
  flags.DEFINE_string('workdir', None, 'Workdir with the VAE checkpoint.', required=True)
  flags.DEFINE_integer('num', 2000, 'Test examples (half to fit class means, half to score).')


def main(argv):
  del argv
  config = FLAGS.config
  model, state, step = vae.restore_vae(config, FLAGS.workdir)
  mesh = parallel.make_mesh()
  names = tuple(model.names)

  @jax.jit
  def encode(params, batch):
    mu, _ = model.apply({'params': params}, batch, method=diffmvae.DiffMVAE.encode)
    mu_s, _ = model.apply({'params': params}, batch, method=diffmvae.DiffMVAE.posterior)
    return mu, mu_s

  iterator = pipeline.make_eval_iterator(
      config.data, split='test', global_batch_size=250,
      process_index=jax.process_index(), process_count=jax.process_count())
  unimodal, joint, labels = [], [], []
  for local in iterator:
    batch = parallel.global_batch({k: local[k] for k in names}, mesh)
    mu, mu_s = jax.device_get(encode(state.ema_params, batch))
    valid = np.asarray(local['valid'], bool)
    unimodal.append(np.asarray(mu)[valid])
    joint.append(np.asarray(mu_s)[valid])
    labels.append(np.asarray(local['label'])[valid])
    if sum(len(l) for l in labels) >= FLAGS.num:
      break
  unimodal = np.concatenate(unimodal)[:FLAGS.num]
  joint = np.concatenate(joint)[:FLAGS.num]
  labels = np.concatenate(labels)[:FLAGS.num]
  report = {'workdir': FLAGS.workdir, 'checkpoint_step': int(step), 'num': int(len(labels)),
            'probe': 'nearest class mean, fit on half, scored on the other half'}
  for i, name in enumerate(names):
    report[f'q(z|{name})'] = nearest_class_mean_accuracy(unimodal[:, i], labels)
  report['q(z|all)'] = nearest_class_mean_accuracy(joint, labels)
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  define_flags()
  app.run(main)
