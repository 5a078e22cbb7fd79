"""The latent score prior trained jointly with the VAE, on stopped-gradient latents.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=DIR --config.prior.joint=True

With ``prior.joint=True``, ``--mode=train`` runs one score-net step after every VAE step
(DESIGN §2.5, "alongside, with stopped gradients"): the batch is encoded with the VAE's
freshly updated EMA encoders (raw ones if ``sample.use_ema`` is False, matching generation)
through the full-set product of experts (mean or one sample, ``prior.latents``), under
``jax.lax.stop_gradient`` so the prior never shapes the VAE. The latents move while the VAE
learns, so their standardisation is a running one: per dimension,

  mean_s = d_s mean_{s-1} + (1 - d_s) batch_mean,
  m2_s   = d_s m2_{s-1}   + (1 - d_s) batch_mean_of_squares,   std_s = sqrt(m2_s - mean_s^2),
  d_s    = min(STATS_DECAY, (1 + s) / (10 + s))    (train_state.warmup_decay; ~100 steps)

kept in the PriorState (``latent_mean``, ``latent_std``) and applied before the
denoising-score-matching update (optimiser, EMA and keys exactly as in tasks/score_prior.py;
``prior.num_steps`` is not used: the prior takes one step per VAE step).

The prior's state is checkpointed in ``<workdir>/prior_checkpoints`` at every VAE checkpoint
step, so ``--mode=sample/eval --config.sample.prior=sde`` use it like a second-stage prior,
and a restarted run resumes both exactly. Its scalars appear as ``prior/loss`` etc. beside the
VAE's, and the NaN guard covers them.
"""

from typing import Callable

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import parallel
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.errors import CheckpointError
from diffmvae_jax.models import diffmvae
from diffmvae_jax.tasks import score_prior

STATS_DECAY = 0.99


def update_running_stats(mean, std, z, step):
  """One running-standardisation update (module docstring).

  Args:
    mean, std: float32 (D,), the statistics after `step` updates.
    z: float32 (B, D) latents of this step.
    step: int32 scalar, the number of updates so far.

  Returns:
    (mean, std) float32 (D,), std floored at score_prior.MIN_STD.
  """
  decay = train_state_lib.warmup_decay(step, STATS_DECAY)
  second = std * std + mean * mean
  mean = decay * mean + (1.0 - decay) * jnp.mean(z, axis=0)
  second = decay * second + (1.0 - decay) * jnp.mean(z * z, axis=0)
  std = jnp.sqrt(jnp.maximum(second - mean * mean, score_prior.MIN_STD ** 2))
  return mean, std


def make_joint_prior_step(model: diffmvae.DiffMVAE, net, optimizer, config) -> Callable:
  """Returns the pure step (prior_state, vae_params, batch) -> (prior_state, metrics).

  Args (of the returned function):
    prior_state: score_prior.PriorState.
    vae_params: the VAE parameters to encode with (EMA ones by default).
    batch: the VAE's global training batch (dict of modality arrays, (B, ...), optionally
      'available' (B, M) bool).

  Returns metrics {'prior/loss', 'prior/grad_norm', 'prior/learning_rate'} (scalars).
  """
  encode = score_prior.make_encode_fn(model, config.prior.latents)
  dsm_step = score_prior.make_prior_train_step(net, optimizer, config)
  names = tuple(model.names)

  def step(prior_state, vae_params, batch):
    key = jax.random.fold_in(jax.random.fold_in(prior_state.rng, prior_state.step),
                             score_prior.SAMPLE_LATENTS_TAG)
    # 'available' travels with the modalities: the PoE is then over each example's
    # available experts only (score_prior.make_encode_fn).
    inputs = {k: batch[k] for k in (*names, 'available') if k in batch}
    z = jax.lax.stop_gradient(encode(vae_params, inputs, key))
    mean, std = update_running_stats(prior_state.latent_mean, prior_state.latent_std, z,
                                     prior_state.step)
    prior_state = prior_state.replace(latent_mean=mean, latent_std=std)
    prior_state, metrics = dsm_step(prior_state, (z - mean) / std)
    return prior_state, {f'prior/{k}': v for k, v in metrics.items()}

  return step


class JointPrior:
  """The jointly trained prior inside train.train_and_evaluate (--mode=train): init/restore, step, save."""

  def __init__(self, config, model: diffmvae.DiffMVAE, mesh, workdir: str):
    score_prior.validate_prior_config(config)
    self.config = config
    self.mesh = mesh
    net = score_prior.make_score_net(config)
    optimizer = score_prior.make_prior_optimizer(config.prior)
    dim = config.model.latent_dim
    self.state = score_prior.init_prior_state(config, net, optimizer, mesh,
                                              np.zeros(dim, np.float32),
                                              np.ones(dim, np.float32))
    self._abstract = checkpoint_lib.abstract_like(
        jax.eval_shape(lambda: self.state), parallel.replicated(mesh))
    self.checkpointer = checkpoint_lib.Checkpointer(
        workdir, keep=config.train.keep_checkpoints, subdir=score_prior.SUBDIR)
    rep, shard = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    self._step = jax.jit(make_joint_prior_step(model, net, optimizer, config),
                         in_shardings=(rep, rep, shard), out_shardings=(rep, rep),
                         donate_argnums=(0,))

  def restore(self, vae_step: int) -> None:
    """Restores the prior saved with VAE checkpoint `vae_step`.

    Raises:
      CheckpointError: no prior checkpoint at that step (e.g. the VAE was trained without
        prior.joint, or the prior's files were removed), or other prior settings.
    """
    steps = self.checkpointer.all_steps()
    if vae_step not in steps:
      raise CheckpointError(
          f'prior.joint=True but {self.checkpointer.directory} has no latent prior for VAE '
          f'checkpoint step {vae_step} (it has {sorted(steps)}). A run started without '
          'prior.joint cannot switch it on; train a second-stage prior with '
          '--mode=train_prior instead, or start a new --workdir.')
    score_prior.check_prior_compatible(self.checkpointer, vae_step, self.config)
    self.state, _ = self.checkpointer.restore(vae_step, self._abstract)
    logging.info('Joint latent prior restored at step %d.', vae_step)

  def step(self, vae_state, batch) -> dict:
    """Runs one prior step on the global `batch`; returns its (device) metrics."""
    params = vae_state.ema_params if self.config.sample.use_ema else vae_state.params
    self.state, metrics = self._step(self.state, params, batch)
    return metrics

  def save(self, step: int, config_json: str) -> None:
    """Starts an async save of the prior beside VAE checkpoint `step`."""
    meta = {'vae_step': int(step), 'num_latents': 0, 'latent_dim': self.config.model.latent_dim,
            'latents': self.config.prior.latents, 'joint': True}
    self.checkpointer.save(step, self.state, meta, config_json)

  def close(self) -> None:
    self.checkpointer.close()
