"""Second training stage: the auxiliary score-based latent prior (DESIGN §2.5).

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=/tmp/demo --mode=train_prior

Runs on a workdir that holds a trained VAE. Every training example is encoded once with
the EMA encoders (the raw ones if ``sample.use_ema`` is False, matching generation) through
the full-set product of experts (all modalities, plus N(0, I) when
``model.use_prior_expert``), keeping its mean or one sample (``prior.latents``). The latents
are standardised per dimension (the mean and std are part of the prior's checkpointed state)
and a `ScoreNet` is trained on them with denoising score matching: one jit-compiled step over
the ('data',) mesh (parameters replicated, batch sharded, state donated), AdamW with warm-up,
cosine decay and clipping from ``config.prior``, EMA of the parameters, step keys
``fold_in(rng, step)``.

Batches need no data iterator: step s of epoch e = s // steps_per_epoch
(steps_per_epoch = N // batch_size; the remainder of each epoch is dropped) takes rows
``perm_e[(s % steps_per_epoch) * B : +B]`` of the latent array, perm_e =
``jax.random.permutation(fold_in(data_key, e), N)``, data_key derived from ``config.seed``.
The batch of a step is a function of the step alone, so a resumed run (rerun the same
command) continues exactly as if never interrupted. The prior checkpoint records which VAE
step produced its latents, and a resumed run re-encodes with that step.

Checkpoints go to ``<workdir>/prior_checkpoints`` (every ``prior.checkpoint_every`` steps, at
the end and on SIGTERM); scalars to the clu writers under ``prior/...`` and to
``<workdir>/prior_metrics.jsonl``. A NaN/Inf loss stops the run, naming the step, and no
checkpoint is written after it.

Sampling: `restore_prior` + `make_prior_latent_sampler` give ``sample(key, num) -> z``
(num, latent_dim) in the VAE's latent space, to feed every decoder
(``generate.make_decode_fn(model, sample_config)(params, z, key)``).
"""

import json
import os
from typing import Any, Callable

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import parallel
from diffmvae_jax import train
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.data import pipeline
from diffmvae_jax.diffusion import sde as sde_lib
from diffmvae_jax.diffusion import sde_samplers
from diffmvae_jax.errors import CheckpointError, ConfigError
from diffmvae_jax.metrics import fid as fid_lib
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import fusion
from diffmvae_jax.models import latent_prior

SUBDIR = 'prior_checkpoints'
METRICS_FILE = 'prior_metrics.jsonl'
LATENT_KINDS = ('mean', 'sample')
# Saved prior config values that must match for a prior checkpoint to be resumed.
PRIOR_COMPATIBILITY_KEYS = ('seed', 'model.latent_dim', 'prior.sde', 'prior.beta_min',
                            'prior.beta_max', 'prior.sigma_min', 'prior.sigma_max',
                            'prior.width', 'prior.depth', 'prior.embed_dim', 'prior.latents',
                            'prior.batch_size')
# Tags folded into the root seed so the prior's randomness is independent of the VAE's.
_PRIOR_TAG, _DATA_TAG, _SAMPLE_LATENTS_TAG = 0x5052494F, 1, 2
# Floor of the per-dimension standard deviation used for standardisation.
MIN_STD = 1e-6


@flax.struct.dataclass
class PriorState:
  """The score net's training state, with the latent standardisation statistics.

  Attributes:
    step: int32 scalar, number of updates applied.
    params: ScoreNet parameters.
    ema_params: exponential moving average of params (used for sampling).
    opt_state: optax state.
    rng: PRNG key; step keys are fold_in(rng, step).
    latent_mean: float32 (D,), per-dimension mean of the training latents.
    latent_std: float32 (D,), their per-dimension standard deviation (>= MIN_STD).
  """
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  rng: jax.Array
  latent_mean: jax.Array
  latent_std: jax.Array


# ------------------------------------------------------------------------------ config


def validate_prior_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for prior settings that would fail later with an obscure error."""
  p = config.prior
  choices = (('sde', sde_lib.SDE_NAMES), ('latents', LATENT_KINDS),
             ('sampler', sde_samplers.SAMPLER_NAMES))
  for key, valid in choices:
    if p[key] not in valid:
      raise ConfigError(f'Unknown prior.{key} {p[key]!r}; choose one of {tuple(valid)}.')
  if p.num_steps < 0:
    raise ConfigError(f'prior.num_steps must be >= 0, got {p.num_steps}.')
  for key in ('batch_size', 'log_every', 'checkpoint_every', 'width', 'depth', 'embed_dim',
              'sampler_steps'):
    if p[key] <= 0:
      raise ConfigError(f'prior.{key} must be positive, got {p[key]}.')
  if p.embed_dim % 2:
    raise ConfigError(f'prior.embed_dim must be even, got {p.embed_dim}.')
  if not 0.0 <= p.ema_decay < 1.0:
    raise ConfigError(f'prior.ema_decay must be in [0, 1), got {p.ema_decay}.')
  parallel.check_batch_size(p.batch_size, 'prior.batch_size')


def make_sde(prior_config) -> sde_lib.SDE:
  """The forward SDE named by prior.sde with its prior.* parameters."""
  if prior_config.sde == 've':
    return sde_lib.make_sde('ve', sigma_min=prior_config.sigma_min,
                            sigma_max=prior_config.sigma_max)
  return sde_lib.make_sde(prior_config.sde, beta_min=prior_config.beta_min,
                          beta_max=prior_config.beta_max)


def make_score_net(config) -> latent_prior.ScoreNet:
  """The (static) ScoreNet module of config.prior."""
  p = config.prior
  return latent_prior.ScoreNet(sde=make_sde(p), width=p.width, depth=p.depth,
                               embed_dim=p.embed_dim)


def make_prior_optimizer(prior_config) -> optax.GradientTransformation:
  """train_state.make_optimizer (AdamW, clip, warm-up + cosine) with the prior.* settings."""
  keys = ('learning_rate', 'warmup_steps', 'num_steps', 'end_learning_rate_factor',
          'weight_decay', 'grad_clip_norm')
  return train_state_lib.make_optimizer(
      ml_collections.ConfigDict({k: prior_config[k] for k in keys}))


def _prior_key(config):
  return jax.random.fold_in(jax.random.PRNGKey(config.seed), _PRIOR_TAG)


# ------------------------------------------------------------------------------ VAE latents


def restore_vae(config, workdir: str, step: int | None):
  """(model, VAE state, step) of VAE checkpoint `step` (None = latest) in workdir."""
  model = train.build_model(config)
  mesh = parallel.make_mesh()
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  try:
    latest = checkpointer.latest_step()
    if latest is None:
      raise CheckpointError(
          f'No VAE checkpoint in {checkpointer.directory}: the latent prior is trained on a '
          f'trained VAE; train it first with --mode=train --workdir={workdir}.')
    if step is None:
      step = latest
    elif step not in checkpointer.all_steps():
      raise CheckpointError(
          f'The latent prior in {os.path.join(workdir, SUBDIR)} was trained on the latents of '
          f'VAE step {step}, which is no longer in {checkpointer.directory} (steps '
          f'{checkpointer.all_steps()}); move {SUBDIR} aside to train a new prior.')
    checkpointer.check_compatible(step, train.run_record(config, model))
    state, _ = checkpointer.restore(step, train.abstract_train_state(
        config, model, train_state_lib.make_optimizer(config.train), mesh))
  finally:
    checkpointer.close()
  return model, state, step


def make_encode_fn(model: diffmvae.DiffMVAE, latents: str) -> Callable:
  """Returns encode(params, batch, key) -> z (B, D) from the full-set product of experts.

  Args (of the returned function):
    params: VAE parameters (the EMA ones for the prior).
    batch: dict with every modality of the model, (B, ...), optionally 'available' (B, M)
      bool: then the product is over each example's available experts only, and whatever
      an unavailable modality or its expert holds (NaN included) does not reach z.
    key: PRNG key, used only when latents == 'sample'.

  `latents` 'mean' returns the PoE mean, 'sample' one draw mu + sigma * noise.
  """
  members = jnp.ones((len(model.names),), bool)
  use_prior_expert = model.model_config.use_prior_expert

  def encode(params, batch, key):
    mu, logvar = model.apply({'params': params}, batch, method=diffmvae.DiffMVAE.encode)
    mu_s, logvar_s = fusion.product_of_experts(mu, logvar, batch.get('available', members),
                                               use_prior_expert)
    if latents == 'mean':
      return mu_s
    return mu_s + jnp.exp(0.5 * logvar_s) * jax.random.normal(key, mu_s.shape, mu_s.dtype)

  return encode


def encode_training_latents(config, model, params, mesh) -> np.ndarray:
  """Encodes the whole training split (each process reads its rows of each global batch).

  Args:
    config: the full config (prior.batch_size is the global encoding batch).
    model: the DiffMVAE.
    params: its (EMA) parameters, replicated on `mesh`.
    mesh: the ('data',) mesh.

  Returns:
    float32 (N, D) numpy, the training split in order (padding rows dropped), identical on
    every process.
  """
  batch_size = config.prior.batch_size
  names = tuple(model.names)
  encode = make_encode_fn(model, config.prior.latents)
  sample_key = jax.random.fold_in(_prior_key(config), _SAMPLE_LATENTS_TAG)

  def encode_batch(params, batch, index):
    z = encode(params, {k: batch[k] for k in names}, jax.random.fold_in(sample_key, index))
    return z, batch['valid']

  encode_batch = jax.jit(
      encode_batch, in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh), None),
      out_shardings=parallel.replicated(mesh))
  iterator = pipeline.make_eval_iterator(
      config.data, split='train', global_batch_size=batch_size,
      process_index=jax.process_index(), process_count=jax.process_count())
  chunks = []
  for index, local in enumerate(iterator):
    batch = parallel.global_batch({k: local[k] for k in names + ('valid',)}, mesh)
    z, valid = jax.device_get(encode_batch(params, batch, np.int32(index)))
    chunks.append(np.asarray(z, np.float32)[np.asarray(valid, bool)])
  return np.concatenate(chunks, axis=0)


def standardisation_stats(latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-dimension mean and std (ddof 0, floored at MIN_STD) of (N, D) latents, float32."""
  x = np.asarray(latents, np.float64)
  return x.mean(0).astype(np.float32), np.maximum(x.std(0), MIN_STD).astype(np.float32)


# ------------------------------------------------------------------------------ training


def init_prior_state(config, net, optimizer, mesh, latent_mean, latent_std) -> PriorState:
  """Initialises the PriorState directly with replicated shardings."""
  init_key, state_rng = jax.random.split(_prior_key(config))
  dim = config.model.latent_dim

  def init(key, mean, std):
    params = net.init(key, jnp.zeros((2, dim), jnp.float32),
                      jnp.full((2,), 0.5, jnp.float32))['params']
    return PriorState(step=jnp.zeros((), jnp.int32), params=params,
                      ema_params=jax.tree.map(jnp.copy, params),
                      opt_state=optimizer.init(params), rng=state_rng,
                      latent_mean=jnp.asarray(mean, jnp.float32),
                      latent_std=jnp.asarray(std, jnp.float32))

  return jax.jit(init, out_shardings=parallel.replicated(mesh))(
      init_key, np.asarray(latent_mean, np.float32), np.asarray(latent_std, np.float32))


def make_prior_train_step(net, optimizer, config) -> Callable:
  """Returns the pure step (state, z0 (B, D) standardised) -> (state, metrics)."""
  sde = net.sde
  schedule = train_state_lib.learning_rate_schedule(config.prior)
  ema_decay = config.prior.ema_decay

  def score_apply(params, z, t):
    return net.apply({'params': params}, z, t)

  def train_step(state, z0):
    key = jax.random.fold_in(state.rng, state.step)
    loss, grads = jax.value_and_grad(
        lambda p: latent_prior.dsm_loss(score_apply, p, sde, key, z0))(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
    metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads),
               'learning_rate': schedule(state.step)}
    return state.replace(step=state.step + 1, params=params, ema_params=ema,
                         opt_state=opt_state), metrics

  return train_step


class BatchSchedule:
  """Rows of the latent array for each step: a fresh permutation per epoch (see module doc).

  Args:
    num_examples: N, the number of training latents.
    batch_size: global batch size B <= N.
    key: the data key; epoch e uses permutation(fold_in(key, e), N).
  """

  def __init__(self, num_examples: int, batch_size: int, key):
    if batch_size > num_examples:
      raise ConfigError(f'prior.batch_size={batch_size} exceeds the {num_examples} training '
                        'latents; lower prior.batch_size.')
    self.num_examples, self.batch_size, self.key = num_examples, batch_size, key
    self.steps_per_epoch = num_examples // batch_size
    self._epoch, self._perm = None, None

  def indices(self, step: int) -> np.ndarray:
    """int (B,) row indices of the global batch of `step` (0-based)."""
    epoch, position = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._perm = np.asarray(jax.random.permutation(jax.random.fold_in(self.key, epoch),
                                                     self.num_examples))
      self._epoch = epoch
    return self._perm[position * self.batch_size:(position + 1) * self.batch_size]


class _PrefixedScalars:
  """Forwards write_scalars with 'prior/' prefixed keys (for ReportProgress's steps/s)."""

  def __init__(self, writer):
    self._writer = writer

  def write_scalars(self, step, scalars):
    self._writer.write_scalars(step, {f'prior/{k}': v for k, v in scalars.items()})


def _config_json(config) -> str:
  return config.to_json_best_effort(sort_keys=True)


def _check_prior_compatible(checkpointer, step: int, config) -> None:
  saved, current = checkpointer.restore_config(step), train.config_as_dict(config)
  diffs = [f'{k}: {checkpoint_lib.lookup(saved, k)!r} -> {checkpoint_lib.lookup(current, k)!r}'
           for k in PRIOR_COMPATIBILITY_KEYS if checkpoint_lib.lookup(saved, k) != checkpoint_lib.lookup(current, k)]
  if diffs:
    raise CheckpointError(
        f'{checkpointer.directory} holds a latent prior (step {step}) trained with different '
        'settings than this config asks for:\n  ' + '\n  '.join(diffs) +
        f'\nMove {SUBDIR} aside to train a new prior, or restore the original values.')


def _abstract_prior_state(config, net, optimizer, mesh):
  dim = config.model.latent_dim
  abstract = jax.eval_shape(lambda: init_prior_state(
      config, net, optimizer, mesh, np.zeros(dim, np.float32), np.ones(dim, np.float32)))
  return checkpoint_lib.abstract_like(abstract, parallel.replicated(mesh))


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
  validate_prior_config(config)
  p = config.prior
  if p.joint:
    raise ConfigError('prior.joint=True trains the latent prior inside --mode=train, one step '
                      'per VAE step (diffmvae_jax/joint_prior.py); --mode=train_prior trains a '
                      'second-stage prior: run it with --config.prior.joint=False.')
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh()
  net = make_score_net(config)
  optimizer = make_prior_optimizer(p)
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                             subdir=SUBDIR)
  writer = None
  try:
    last_saved = checkpointer.latest_step()
    state, meta = None, {}
    if last_saved is not None:
      _check_prior_compatible(checkpointer, last_saved, config)
      state, meta = checkpointer.restore(
          last_saved, _abstract_prior_state(config, net, optimizer, mesh))
      checkpoint_lib.log_restored(last_saved, checkpointer.directory)
      if int(state.step) >= p.num_steps:
        logging.info('The latent prior is already at step %d >= prior.num_steps=%d.',
                     int(state.step), p.num_steps)
        return {}

    model, vae_state, vae_step = restore_vae(config, workdir, meta.get('vae_step'))
    vae_params = vae_state.ema_params if config.sample.use_ema else vae_state.params
    latents = encode_training_latents(config, model, vae_params, mesh)
    del vae_state, vae_params
    if state is None:
      state = init_prior_state(config, net, optimizer, mesh, *standardisation_stats(latents))
    elif meta.get('num_latents') != len(latents):
      raise CheckpointError(
          f'The latent prior was trained on {meta.get("num_latents")} latents but the '
          f'training split now gives {len(latents)}; move {SUBDIR} aside to train a new prior.')
    mean, std = (np.asarray(jax.device_get(x)) for x in (state.latent_mean, state.latent_std))
    latents = ((latents - mean) / std).astype(np.float32)
    meta = {'vae_step': int(vae_step), 'num_latents': int(len(latents)),
            'latent_dim': int(latents.shape[1]), 'latents': p.latents}
    logging.info('Latent prior: %d %s latents of dim %d from VAE step %d; score net %d '
                 'parameters.', len(latents), p.latents, latents.shape[1], vae_step,
                 sum(x.size for x in jax.tree.leaves(state.params)))

    schedule = BatchSchedule(len(latents), p.batch_size,
                             jax.random.fold_in(_prior_key(config), _DATA_TAG))
    rows = parallel.check_batch_size(p.batch_size, 'prior.batch_size')
    row0 = jax.process_index() * rows
    is_lead = jax.process_index() == 0
    writer = metric_writers.create_default_writer(workdir, just_logging=not is_lead)
    report_progress = periodic_actions.ReportProgress(
        num_train_steps=p.num_steps, writer=_PrefixedScalars(writer), every_secs=30)
    train_step = jax.jit(
        make_prior_train_step(net, optimizer, config),
        in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
        out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
        donate_argnums=(0,))
    metrics_path = os.path.join(workdir, METRICS_FILE)
    config_json = _config_json(config)
    history, last_metrics = [], {}
    pending = None  # (step, device metrics), fetched one step late (async dispatch).

    def consume(step, device_metrics):
      nonlocal last_metrics
      host = jax.device_get(device_metrics)
      train.check_finite(step, host, last_saved, str(checkpointer.directory),
                         what='Non-finite value in the latent prior',
                         advice='Lower prior.learning_rate or tighten prior.grad_clip_norm')
      last_metrics = {k: float(v) for k, v in host.items()}
      history.append(last_metrics)
      if step % p.log_every == 0 or step == p.num_steps:
        means = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
        _PrefixedScalars(writer).write_scalars(step, means)
        if is_lead:
          with open(metrics_path, 'a') as f:
            f.write(json.dumps({'step': step, **last_metrics}) + '\n')
        history.clear()

    step = start_step = int(state.step)
    logging.info('Training the latent prior from step %d to %d.', start_step, p.num_steps)
    with train.PreemptionWatcher() as preemption:
      while step < p.num_steps:
        with jax.profiler.StepTraceAnnotation('train_prior', step_num=step):
          local = latents[schedule.indices(step)[row0:row0 + rows]]
          z0 = parallel.global_batch({'z': local}, mesh)['z']
          state, metrics = train_step(state, z0)
        step += 1
        if pending is not None:
          consume(*pending)
        pending = (step, metrics)
        report_progress(step)
        stop = preemption.should_stop(step)
        if step % p.checkpoint_every == 0 or step == p.num_steps or stop:
          consume(*pending)  # Never save a state that came from a non-finite step.
          pending = None
          checkpointer.save(step, state, meta, config_json)
          last_saved = step
        if stop:
          logging.warning('Latent prior stopped at step %d on preemption; rerun to resume.',
                          step)
          break
      if pending is not None:
        consume(*pending)
    logging.info('Latent prior done at step %d; %s.', step, checkpointer.directory)
    return last_metrics
  finally:
    checkpointer.close()  # Waits for the last async save, also when an error stops the run.
    if writer is not None:
      writer.flush()


# ------------------------------------------------------------------------------ sampling


def make_latent_sample_fn(config) -> Callable:
  """Returns sample(ema_params, mean, std, key, num) -> z (num, D), pure and jit-able.

  Runs prior.sampler (prior.sampler_steps steps, Tweedie denoising at the end; prior.snr for
  'pc') with the score net, in standardised space, then returns z_std * std + mean. `num`
  must be static under jit.
  """
  p = config.prior
  net = make_score_net(config)
  settings = {'num_steps': p.sampler_steps, 'denoise': True}
  if p.sampler == 'pc':
    settings['snr'] = p.snr
  sampler = sde_samplers.make_sampler(p.sampler, net.sde, **settings)
  dim = config.model.latent_dim

  def sample(params, mean, std, key, num):
    score_fn = latent_prior.make_score_fn(net, {'params': params})
    z = sampler(score_fn, key, (num, dim))
    return z * std + mean

  return sample


def make_prior_latent_sampler(config, prior_state: PriorState) -> Callable:
  """Returns sample(key, num: int) -> float32 (num, latent_dim) from the trained prior.

  Uses the EMA score-net parameters and the state's standardisation statistics; the result
  lives in the VAE's latent space, ready for generate.make_decode_fn(...)(params, z, key).
  Deterministic for a key. Compiled once per `num`.
  """
  fn = jax.jit(make_latent_sample_fn(config), static_argnums=4)
  params, mean, std = prior_state.ema_params, prior_state.latent_mean, prior_state.latent_std

  def sample(key, num: int):
    return fn(params, mean, std, key, int(num))

  return sample


def restore_prior_state(config, workdir: str) -> tuple[PriorState, int]:
  """(PriorState, step) of the latest prior checkpoint in workdir (replicated)."""
  validate_prior_config(config)
  mesh = parallel.make_mesh()
  net = make_score_net(config)
  optimizer = make_prior_optimizer(config.prior)
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                             subdir=SUBDIR)
  try:
    step = checkpointer.latest_step()
    if step is None:
      raise CheckpointError(f'No latent prior checkpoint in {checkpointer.directory}; train '
                            f'one first with --mode=train_prior --workdir={workdir}.')
    _check_prior_compatible(checkpointer, step, config)
    state, _ = checkpointer.restore(step, _abstract_prior_state(config, net, optimizer, mesh))
  finally:
    checkpointer.close()
  return state, step


def restore_prior(config, workdir: str) -> tuple[Callable, dict, int]:
  """Restores the latest latent prior of workdir for generation.

  Returns:
    (sample, stats, step): sample(key, num) -> z (num, latent_dim) as in
    make_prior_latent_sampler; stats {'mean': (D,), 'std': (D,)} numpy float32, the
    standardisation of the training latents; step the prior's checkpoint step.
  """
  state, step = restore_prior_state(config, workdir)
  stats = {'mean': np.asarray(jax.device_get(state.latent_mean)),
           'std': np.asarray(jax.device_get(state.latent_std))}
  return make_prior_latent_sampler(config, state), stats, step


# ------------------------------------------------------------------------------ evidence


def _squared_distances(a, b):
  d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
  return np.maximum(d, 0.0)


def latent_gap(posterior_latents, prior_samples, max_samples: int = 2000,
               seed: int = 0) -> dict:
  """How far samples of a prior are from the aggregate posterior, in latent space.

  Args:
    posterior_latents: (N, D) latents of data (e.g. encode_training_latents).
    prior_samples: (M, D) samples of the prior (N(0, I) or the score prior).
    max_samples: each set is subsampled (without replacement, fixed seed) to at most this
      many rows for the O(n^2) MMD; the Fréchet distance uses every row.
    seed: subsampling seed.

  Returns:
    {'frechet': Fréchet distance between Gaussian fits (metrics.fid.frechet_distance),
     'mmd2': unbiased MMD^2 with an RBF kernel exp(-|x - y|^2 / (2 h^2)) (can be slightly
       negative when the sets match), 'mmd_bandwidth': h, the median pairwise distance of
       the pooled (subsampled) sets}; floats, computed in float64.
  """
  x = np.asarray(posterior_latents, np.float64)
  y = np.asarray(prior_samples, np.float64)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
    raise ValueError(f'need (N >= 2, D) and (M >= 2, D) arrays, got {x.shape} and {y.shape}')
  frechet = fid_lib.frechet_distance(*fid_lib.feature_statistics(x),
                                     *fid_lib.feature_statistics(y))
  rng = np.random.default_rng(seed)
  if len(x) > max_samples:
    x = x[rng.choice(len(x), max_samples, replace=False)]
  if len(y) > max_samples:
    y = y[rng.choice(len(y), max_samples, replace=False)]
  pooled = np.concatenate([x, y])
  d_all = _squared_distances(pooled, pooled)
  off_diagonal = d_all[~np.eye(len(pooled), dtype=bool)]
  bandwidth = float(np.sqrt(np.median(off_diagonal)))
  gamma = 1.0 / (2.0 * max(bandwidth, 1e-12) ** 2)
  n, m = len(x), len(y)
  k_xx = np.exp(-gamma * d_all[:n, :n])
  k_yy = np.exp(-gamma * d_all[n:, n:])
  k_xy = np.exp(-gamma * d_all[:n, n:])
  mmd2 = ((k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
          + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1)) - 2.0 * k_xy.mean())
  return {'frechet': frechet, 'mmd2': float(mmd2), 'mmd_bandwidth': bandwidth}
