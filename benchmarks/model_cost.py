"""Parameters and XLA-counted FLOPs of a config's train step and DDIM step, without data.

  python benchmarks/model_cost.py --config=configs/cub.py
  python benchmarks/model_cost.py --config=configs/celebamask_hq.py --batch_size=8

For configs whose data is not on this machine (CUB, CelebAMask-HQ): the modalities come
from nominal specs of the dataset (NOMINAL_SPECS; CUB's vocabulary size is that of the
real captions at min count 3, ~1,590 words per the MMVAE release), so nothing is read or
built. Shapes only: the step is traced and lowered on abstract values (jax.eval_shape),
never compiled or run, so this costs seconds and little memory even for paper-sized
models. FLOPs are XLA's cost analysis of the lowered HLO (before fusion), per step of
`batch_size` and per example. Prints JSON.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffmvae_jax import generate as generate_lib  # pylint: disable=g-import-not-at-top
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.data.dataset_api import ModalitySpec
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import modalities as modalities_lib
from diffmvae_jax.tasks import vae

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', 'configs/cub.py', 'Config to measure.')
flags.DEFINE_integer('batch_size', 8, 'Batch of the lowered step (FLOPs scale linearly).')
flags.DEFINE_integer('vocab_size', 1590, 'Caption vocabulary size (nominal specs).')


def nominal_specs(config, vocab_size: int) -> dict:
  """The modality specs a built dataset of this config would report."""
  data = config.data
  if data.dataset == 'cub':
    s = int(data.image_size)
    return {'image': ModalitySpec('image', 'image', (s, s, 3), 'float32'),
            'caption': ModalitySpec('caption', 'caption', (32,), 'int32', vocab_size),
            'label': ModalitySpec('label', 'label', (), 'int32', 200)}
  if data.dataset == 'celebamask_hq':
    s = int(data.image_size)
    return {'image': ModalitySpec('image', 'image', (s, s, 3), 'float32'),
            'mask': ModalitySpec('mask', 'mask', (s, s, 1), 'float32'),
            'attributes': ModalitySpec('attributes', 'attributes', (18,), 'float32', 18)}
  from diffmvae_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.modality_specs(config.data)   # PolyMNIST: built offline if needed.


def flops_of(lowered) -> float:
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get('flops', float('nan')))


def main(argv):
  del argv
  config = FLAGS.config
  b = FLAGS.batch_size
  modalities = modalities_lib.resolve_modalities(config, nominal_specs(config, FLAGS.vocab_size))
  model = diffmvae.model_from_config(config, modalities)
  optimizer = train_state_lib.make_optimizer(config.train)
  init, init_key = vae.make_init_fn(config, model, optimizer)
  state = jax.eval_shape(init, init_key)
  batch = {m.name: jax.ShapeDtypeStruct(
      (b,) + tuple(m.shape), jnp.float32 if m.kind in modalities_lib.FLOAT_KINDS else jnp.int32)
           for m in modalities}
  step = jax.jit(vae.make_train_step(model, optimizer, config))
  train_flops = flops_of(step.lower(state, batch))
  result = {
      'config': FLAGS['config'].config_filename,
      'modalities': [(m.name, m.kind, list(m.shape), m.decoder) for m in modalities],
      'params': int(sum(x.size for x in jax.tree.leaves(state.params))),
      'train_step': {'batch_size': b, 'flops_xla': train_flops,
                     'flops_per_example': train_flops / b},
  }
  if model.diffusion_names:
    config.sample.sampler, config.sample.steps = 'ddim', 1
    decode = jax.jit(generate_lib.make_decode_fn(model, config.sample,
                                                 model.diffusion_names[:1]))
    z = jax.ShapeDtypeStruct((b, config.model.latent_dim), jnp.float32)
    flops = flops_of(decode.lower({'params': state.params}, z, jax.random.PRNGKey(0)))
    result['denoiser_forward'] = {'flops_per_image': flops / b,
                                  'ddim_50_flops_per_image': 50 * flops / b}
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  app.run(main)
