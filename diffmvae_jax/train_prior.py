"""``--mode=train_prior``: the second training stage, the latent score-based prior (DESIGN §2.5).

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=/tmp/demo --mode=train_prior

Runs on a workdir that holds a trained VAE: encodes every training example once
(tasks/score_prior.py says how: full-set product of experts, EMA encoders, mean or sample,
standardised), then trains the `ScoreNet` by denoising score matching through the shared
loop driver (loop.py: metrics one step late, NaN guard, saves every
``prior.checkpoint_every`` steps, at the end and on SIGTERM, progress and ETA). A step's
batch is a function of the step alone (score_prior.BatchSchedule), so rerunning the same
command resumes exactly; the prior checkpoint records which VAE step produced its latents,
and a resumed run re-encodes with that step.

Checkpoints go to ``<workdir>/prior_checkpoints``; scalars to the clu writers under
``prior/...`` and to ``<workdir>/prior_metrics.jsonl``.
"""

import os

from absl import logging
import jax
import ml_collections
import numpy as np

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import loop
from diffmvae_jax import metric_writer
from diffmvae_jax import parallel
from diffmvae_jax.errors import CheckpointError, ConfigError
from diffmvae_jax.tasks import score_prior
from diffmvae_jax.tasks import vae

METRICS_FILE = 'prior_metrics.jsonl'


def _restore_vae_for_prior(config, workdir: str, vae_step: int | None):
  """vae.restore_vae, with the prior's own message when its VAE step is gone."""
  if vae_step is not None:
    checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints)
    try:
      steps = checkpointer.all_steps()
    finally:
      checkpointer.close()
    if steps and vae_step not in steps:
      raise CheckpointError(
          f'The latent prior in {os.path.join(workdir, score_prior.SUBDIR)} was trained on the '
          f'latents of VAE step {vae_step}, which is no longer in {checkpointer.directory} '
          f'(steps {sorted(steps)}); move {score_prior.SUBDIR} aside to train a new prior.')
  return vae.restore_vae(config, workdir, vae_step)


def train_prior(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the latent score prior of the VAE in `workdir` up to prior.num_steps.

  Args:
    config: the full config (the VAE's sections must match its checkpoint; see config.prior).
    workdir: a workdir holding VAE checkpoints; the prior's checkpoints go to
      <workdir>/prior_checkpoints, its scalars to prior_metrics.jsonl and TensorBoard.

  Returns:
    the last step's metrics ('loss', 'grad_norm', 'learning_rate') as floats; empty if
    nothing was trained.

  Raises:
    ConfigError: bad prior settings, or prior.joint=True (the joint prior trains in
      --mode=train).
    CheckpointError: no VAE checkpoint, or a prior checkpoint of other settings.
    NonFiniteLossError: a NaN/Inf loss.
  """
  score_prior.validate_prior_config(config)
  p = config.prior
  if p.joint:
    raise ConfigError('prior.joint=True trains the latent prior inside --mode=train, one step '
                      'per VAE step (diffmvae_jax/tasks/joint_prior.py); --mode=train_prior '
                      'trains a second-stage prior: run it with --config.prior.joint=False.')
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh()
  net = score_prior.make_score_net(config)
  optimizer = score_prior.make_prior_optimizer(p)
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                             subdir=score_prior.SUBDIR)
  writer = None
  try:
    last_saved = checkpointer.latest_step()
    state, meta = None, {}
    if last_saved is not None:
      score_prior.check_prior_compatible(checkpointer, last_saved, config)
      state, meta = checkpointer.restore(
          last_saved, score_prior.abstract_prior_state(config, net, optimizer, mesh))
      checkpoint_lib.log_restored(last_saved, checkpointer.directory)
      if int(state.step) >= p.num_steps:
        logging.info('The latent prior is already at step %d >= prior.num_steps=%d.',
                     int(state.step), p.num_steps)
        return {}

    model, vae_state, vae_step = _restore_vae_for_prior(config, workdir, meta.get('vae_step'))
    latents = score_prior.encode_training_latents(
        config, model, vae.sampling_params(config, vae_state), mesh)
    del vae_state
    if state is None:
      state = score_prior.init_prior_state(config, net, optimizer, mesh,
                                           *score_prior.standardisation_stats(latents))
    elif meta.get('num_latents') != len(latents):
      raise CheckpointError(
          f'The latent prior was trained on {meta.get("num_latents")} latents but the '
          f'training split now gives {len(latents)}; move {score_prior.SUBDIR} aside to train '
          'a new prior.')
    mean, std = (np.asarray(jax.device_get(x)) for x in (state.latent_mean, state.latent_std))
    latents = ((latents - mean) / std).astype(np.float32)
    meta = {'vae_step': int(vae_step), 'num_latents': int(len(latents)),
            'latent_dim': int(latents.shape[1]), 'latents': p.latents}
    logging.info('Latent prior: %d %s latents of dim %d from VAE step %d; score net %d '
                 'parameters.', len(latents), p.latents, latents.shape[1], vae_step,
                 sum(x.size for x in jax.tree.leaves(state.params)))

    schedule = score_prior.BatchSchedule(len(latents), p.batch_size, score_prior.data_key(config))
    rows = parallel.check_batch_size(p.batch_size, 'prior.batch_size')
    row0 = jax.process_index() * rows
    writer = metric_writer.create_writer(workdir,
                                         just_logging=jax.process_index() != 0)
    train_step = jax.jit(
        score_prior.make_prior_train_step(net, optimizer, config),
        in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
        out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
        donate_argnums=(0,))
    config_json = checkpoint_lib.config_json(config)

    def step_fn(state, step):
      local = latents[schedule.indices(step)[row0:row0 + rows]]
      return train_step(state, parallel.global_batch({'z': local}, mesh)['z'])

    def save_fn(step, state):
      checkpointer.save(step, state, meta, config_json)

    settings = loop.LoopSettings(
        num_steps=p.num_steps, log_every=p.log_every, checkpoint_every=p.checkpoint_every,
        checkpoint_dir=str(checkpointer.directory), name='train_prior',
        scalar_prefix='prior/', metrics_path=os.path.join(workdir, METRICS_FILE),
        nonfinite_what='Non-finite value in the latent prior',
        nonfinite_advice='Lower prior.learning_rate or tighten prior.grad_clip_norm')
    result = loop.run_loop(settings, state, int(state.step), step_fn, writer=writer,
                           save_fn=save_fn, last_saved=last_saved)
    logging.info('Latent prior done at step %d; %s.', result.step, checkpointer.directory)
    return result.last_metrics
  finally:
    checkpointer.close()  # Waits for the last async save, also when an error stops the run.
    if writer is not None:
      writer.flush()
