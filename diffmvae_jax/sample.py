"""``--mode=sample``: grids from the latest checkpoint of a workdir.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=/tmp/demo --mode=sample \
      --config.sample.given=m0,m1 --config.sample.num=16

Writes a conditional grid (given ``sample.given``) and an unconditional grid
(z from ``sample.prior``: N(0, I), or the latent SDE prior trained by
--mode=train_prior) to ``<workdir>/samples`` using the EMA parameters by default.
"""

import os

from absl import logging
import jax

from diffmvae_jax import generate as generate_lib
from diffmvae_jax import rng
from diffmvae_jax import sample_grid
from diffmvae_jax import visualise
from diffmvae_jax.tasks import score_prior
from diffmvae_jax.tasks import vae


def sample_from_checkpoint(config, workdir: str) -> dict:
  """Writes conditional and unconditional grids of the latest checkpoint.

  Args:
    config: the run's config (sample.* chooses the given set, count, sampler and prior).
    workdir: the training workdir.

  Returns:
    {'conditional': path, 'unconditional': path (when the model has image modalities)}.

  Raises:
    CheckpointError: no (compatible) checkpoint, or sample.prior='sde' without a prior.
  """
  model, state, step = vae.restore_vae(config, workdir)
  params = vae.sampling_params(config, state)
  paths = {'conditional': sample_grid.GridWriter(model, config, workdir).write(params, step)}
  generate = jax.jit(generate_lib.make_unconditional_generate_fn(
      model, config.sample, score_prior.latent_sampler_for(config, workdir)), static_argnums=2)
  samples = jax.device_get(generate({'params': params}, rng.key_for(config.seed, 'sample'),
                                    config.sample.num))
  columns = [visualise.to_uint8(samples[m.name]) for m in model.modalities if m.kind == 'image']
  if columns and jax.process_index() == 0:
    paths['unconditional'] = visualise.save_png(
        visualise.grid(columns),
        os.path.join(workdir, 'samples', f'step_{step:07d}_unconditional_{config.sample.prior}'
                     f'{generate_lib.shallow_tag(config.sample)}.png'))
  logging.info('Wrote %s', paths)
  return paths
