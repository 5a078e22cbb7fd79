"""The latent score-based prior as a task (DESIGN §2.5): its state, step, latents, checkpoints
and sampler.

The second training stage (``--mode=train_prior``, train_prior.py) and the joint variant
(``prior.joint=True``, tasks/joint_prior.py) both train a `ScoreNet` by denoising score
matching on latents of the VAE: the full-set product of experts (all modalities, plus
N(0, I) when ``model.use_prior_expert``) under the EMA encoders (raw ones if
``sample.use_ema`` is False, matching generation), keeping its mean or one sample
(``prior.latents``), standardised per dimension (the statistics live in the `PriorState`).
AdamW with warm-up, cosine decay and clipping from ``config.prior``, EMA of the parameters
(train_state.apply_gradients), step keys ``fold_in(rng, step)``; the prior's keys come from
rng.key_for(seed, 'prior') so they are independent of the VAE's.

Batches of the second stage need no data iterator (`BatchSchedule`): step s of epoch
e = s // steps_per_epoch takes rows ``perm_e[(s % steps_per_epoch) * B : +B]`` of the latent
array, perm_e = ``jax.random.permutation(fold_in(data_key, e), N)``, so a resumed run
continues exactly. Checkpoints live in ``<workdir>/prior_checkpoints`` with the VAE step
their latents came from.

Sampling: `latent_sampler_for(config, workdir)` (N(0, I) or the trained prior per
``sample.prior``), `restore_prior` + `make_prior_latent_sampler` give
``sample(key, num) -> z`` (num, latent_dim) in the VAE's latent space, to feed every decoder
(``generate.make_decode_fn(model, sample_config)(params, z, key)``).
"""

from typing import Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import parallel
from diffmvae_jax import rng as rng_lib
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.data import pipeline
from diffmvae_jax.diffusion import sde as sde_lib
from diffmvae_jax.diffusion import sde_samplers
from diffmvae_jax.errors import CheckpointError, ConfigError
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import latent_prior

SUBDIR = 'prior_checkpoints'
LATENT_KINDS = ('mean', 'sample')
# Saved prior config values that must match for a prior checkpoint to be resumed.
PRIOR_COMPATIBILITY_KEYS = ('seed', 'model.latent_dim', 'prior.sde', 'prior.beta_min',
                            'prior.beta_max', 'prior.sigma_min', 'prior.sigma_max',
                            'prior.width', 'prior.depth', 'prior.embed_dim', 'prior.latents',
                            'prior.batch_size', 'prior.gaussian_residual')
# Values of compatibility keys added later, for checkpoints saved before they existed.
PRIOR_KEY_DEFAULTS = {'prior.gaussian_residual': False}
# Tags folded into the prior's key: its data order and the noise of sampled latents.
_DATA_TAG, SAMPLE_LATENTS_TAG = 1, 2
# Floor of the per-dimension standard deviation used for standardisation.
MIN_STD = 1e-6


@flax.struct.dataclass
class PriorState(train_state_lib.TrainState):
  """The score net's TrainState (step, params, ema_params, opt_state, rng) plus the latent
  standardisation statistics (same pytree and checkpoint layout as before the subclass).

  Attributes:
    latent_mean: float32 (D,), per-dimension mean of the training latents.
    latent_std: float32 (D,), their per-dimension standard deviation (>= MIN_STD).
  """
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
                               embed_dim=p.embed_dim,
                               gaussian_residual=bool(p.get('gaussian_residual', False)))


def make_prior_optimizer(prior_config) -> optax.GradientTransformation:
  """train_state.make_optimizer (AdamW, clip, warm-up + cosine) with the prior.* settings."""
  keys = ('learning_rate', 'warmup_steps', 'num_steps', 'end_learning_rate_factor',
          'weight_decay', 'grad_clip_norm')
  return train_state_lib.make_optimizer(
      ml_collections.ConfigDict({k: prior_config[k] for k in keys}))


def prior_key(config) -> jax.Array:
  """The root of every key the latent prior uses: rng.key_for(seed, 'prior')."""
  return rng_lib.key_for(config.seed, 'prior')


def data_key(config) -> jax.Array:
  """The key of the second stage's per-epoch permutations (BatchSchedule)."""
  return jax.random.fold_in(prior_key(config), _DATA_TAG)


# ------------------------------------------------------------------------------ VAE latents


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

  def encode(params, batch, key):
    mu_s, logvar_s = model.apply({'params': params}, batch,
                                 method=diffmvae.DiffMVAE.posterior)
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
  sample_key = jax.random.fold_in(prior_key(config), SAMPLE_LATENTS_TAG)

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
  init_key, state_rng = jax.random.split(prior_key(config))
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
    metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads),
               'learning_rate': schedule(state.step)}
    return train_state_lib.apply_gradients(state, grads, optimizer, ema_decay), metrics

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


def check_prior_compatible(checkpointer, step: int, config) -> None:
  saved, current = checkpointer.restore_config(step), checkpoint_lib.config_as_dict(config)
  def value(config_dict, key):
    found = checkpoint_lib.lookup(config_dict, key)
    return PRIOR_KEY_DEFAULTS.get(key) if found is None else found
  diffs = [f'{k}: {value(saved, k)!r} -> {value(current, k)!r}'
           for k in PRIOR_COMPATIBILITY_KEYS if value(saved, k) != value(current, k)]
  if diffs:
    raise CheckpointError(
        f'{checkpointer.directory} holds a latent prior (step {step}) trained with different '
        'settings than this config asks for:\n  ' + '\n  '.join(diffs) +
        f'\nMove {SUBDIR} aside to train a new prior, or restore the original values.')


def abstract_prior_state(config, net, optimizer, mesh):
  dim = config.model.latent_dim
  abstract = jax.eval_shape(lambda: init_prior_state(
      config, net, optimizer, mesh, np.zeros(dim, np.float32), np.ones(dim, np.float32)))
  return checkpoint_lib.abstract_like(abstract, parallel.replicated(mesh))


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
    check_prior_compatible(checkpointer, step, config)
    state, _ = checkpointer.restore(step, abstract_prior_state(config, net, optimizer, mesh))
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


def latent_sampler_for(config, workdir: str) -> Callable | None:
  """The unconditional z sampler that sample.prior names: None for N(0, I) ('gaussian'), or
  sample(key, num) -> z of the latent score prior trained in workdir ('sde').

  Raises:
    ConfigError: an unknown sample.prior.
    CheckpointError: 'sde' but no (compatible) prior checkpoint in workdir.
  """
  if config.sample.prior == 'gaussian':
    return None
  if config.sample.prior == 'sde':
    sampler, _, _ = restore_prior(config, workdir)
    return sampler
  raise ConfigError(f"Unknown sample.prior {config.sample.prior!r}; use 'gaussian' or 'sde'.")
