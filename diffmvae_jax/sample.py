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

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import generate as generate_lib
from diffmvae_jax import parallel
from diffmvae_jax import sample_grid
from diffmvae_jax import train
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax import visualise
from diffmvae_jax.errors import CheckpointError, ConfigError


def restore_latest(config, workdir: str, step: int | None = None):
  """Returns (model, state, step) of checkpoint `step` (default: the latest) in workdir."""
  model = train.build_model(config)
  mesh = parallel.make_mesh()
  optimizer = train_state_lib.make_optimizer(config.train)
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  available = checkpointer.all_steps()
  if not available:
    raise CheckpointError(f'No checkpoint in {checkpointer.directory}; train first with '
                          f'--mode=train --workdir={workdir}.')
  if step is None:
    step = max(available)
  elif step not in available:
    raise CheckpointError(f'No checkpoint step {step} in {checkpointer.directory}; '
                          f'available steps: {sorted(available)}.')
  checkpointer.check_compatible(step, train.run_record(config, model))
  state, _ = checkpointer.restore(step, train.abstract_train_state(config, model, optimizer, mesh))
  checkpointer.close()
  return model, state, step


def latent_sampler_for(config, workdir: str):
  """The unconditional z sampler of sample.prior: None (N(0, I)) or the latent SDE prior."""
  if config.sample.prior == 'gaussian':
    return None
  if config.sample.prior == 'sde':
    from diffmvae_jax import train_prior  # pylint: disable=g-import-not-at-top
    sampler, _, _ = train_prior.restore_prior(config, workdir)
    return sampler
  raise ConfigError(f"Unknown sample.prior {config.sample.prior!r}; use 'gaussian' or 'sde'.")


def sample_from_checkpoint(config, workdir: str) -> dict:
  """Writes conditional and unconditional grids; returns their paths."""
  model, state, step = restore_latest(config, workdir)
  params = state.ema_params if config.sample.use_ema else state.params
  paths = {'conditional': sample_grid.GridWriter(model, config, workdir).write(params, step)}
  generate = jax.jit(generate_lib.make_unconditional_generate_fn(
      model, config.sample, latent_sampler_for(config, workdir)), static_argnums=2)
  samples = jax.device_get(generate({'params': params}, jax.random.PRNGKey(config.seed + 2),
                                    config.sample.num))
  columns = [visualise.to_uint8(samples[m.name]) for m in model.modalities if m.kind == 'image']
  if columns and jax.process_index() == 0:
    paths['unconditional'] = visualise.save_png(
        visualise.grid(columns),
        os.path.join(workdir, 'samples', f'step_{step:07d}_unconditional_{config.sample.prior}.png'))
  logging.info('Wrote %s', paths)
  return paths
