"""The VAE as a training task: model, state, step, checkpoint record and restore.

What `train.py` (the mode) runs through the loop driver, and what every later stage
(sampling, evaluation, the latent prior, benchmarks) uses to get a trained VAE back:

    model = vae.build_model(config)                       # builds the dataset if needed
    state = vae.init_state(config, model, optimizer, mesh)
    step_fn = vae.make_train_step(model, optimizer, config)
    model, state, step = vae.restore_vae(config, workdir)  # latest checkpoint

Keys: the root key is PRNGKey(config.seed); it is split into the parameter-init key and the
state's rng, and step s uses fold_in(state.rng, s) (rng.py documents every other purpose).
"""

from typing import Callable

import jax
from jax.experimental import multihost_utils
import ml_collections
import optax

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import config_checks
from diffmvae_jax import parallel
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.data import pipeline
from diffmvae_jax.errors import CheckpointError
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import modalities as modalities_lib


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Every config rule (config_checks) and the batch's divisibility over the devices.

  Raises:
    ConfigError: the first value outside its meaning, in one line.
  """
  config_checks.check_config(config)
  parallel.check_batch_size(config.train.batch_size)


def build_model(config) -> diffmvae.DiffMVAE:
  """Prepares the dataset (building it if needed) and returns the Flax model.

  With several processes, process 0 builds while the others wait at a barrier, so
  they never race to write the same files.
  """
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      pipeline.prepare_dataset(config.data)
    multihost_utils.sync_global_devices('diffmvae_jax:dataset_ready')
  pipeline.prepare_dataset(config.data)
  specs = pipeline.modality_specs(config.data)
  modalities = modalities_lib.resolve_modalities(config, specs)
  return diffmvae.model_from_config(config, modalities)


def make_init_fn(config, model, optimizer) -> tuple[Callable, jax.Array]:
  """The pure init function (key -> TrainState) and its key (module docstring)."""
  rng = jax.random.PRNGKey(config.seed)
  init_key, state_rng = jax.random.split(rng)
  batch = diffmvae.dummy_batch(model.modalities)

  def init(key):
    variables = model.init(key, batch, key, method=diffmvae.DiffMVAE.init_all)
    return train_state_lib.create_train_state(variables['params'], optimizer, state_rng)

  return init, init_key


def init_state(config, model, optimizer, mesh) -> train_state_lib.TrainState:
  """Initialises the train state directly with replicated shardings."""
  init, init_key = make_init_fn(config, model, optimizer)
  # Initialisation runs once but compiles one threefry expansion per parameter, which
  # XLA's CPU backend optimises slowly; its numerics do not depend on the LLVM pass level.
  compiled = jax.jit(init, out_shardings=parallel.replicated(mesh)).lower(init_key).compile(
      compiler_options={'xla_backend_optimization_level': 0}
      if jax.default_backend() == 'cpu' else None)
  return compiled(init_key)


def abstract_train_state(config, model, optimizer, mesh) -> train_state_lib.TrainState:
  """ShapeDtypeStructs of the train state with replicated shardings (restore targets)."""
  init, init_key = make_init_fn(config, model, optimizer)
  return checkpoint_lib.abstract_like(jax.eval_shape(init, init_key), parallel.replicated(mesh))


def make_train_step(model, optimizer, config) -> Callable:
  """Returns the pure train step (state, batch) -> (state, metrics).

  Args (of the returned function):
    state: TrainState.
    batch: the model's inputs (model_inputs), global arrays (B, ...).

  Returns (state + 1 step, metrics): every named loss term of the model, 'grad_norm' and
  'learning_rate' (scalars).
  """
  schedule = train_state_lib.learning_rate_schedule(config.train)
  ema_decay = config.train.ema_decay

  def train_step(state, batch):
    step_key = jax.random.fold_in(state.rng, state.step)
    key_model, key_dropout = jax.random.split(step_key)

    def loss_fn(params):
      terms = model.apply({'params': params}, batch, key_model, train=True,
                          rngs={'dropout': key_dropout})
      return terms['loss'], terms

    (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = dict(terms)
    metrics['grad_norm'] = optax.global_norm(grads)
    metrics['learning_rate'] = schedule(state.step)
    return train_state_lib.apply_gradients(state, grads, optimizer, ema_decay), metrics

  return train_step


def make_multi_train_step(model, optimizer, config) -> Callable:
  """Returns (state, batches) -> (state, metrics): len(batches) train steps in one call.

  A lax.scan of make_train_step over batches stacked on a leading axis (K, B, ...); the
  metrics come back stacked (K,). The same steps as K calls of the single step (the step's
  key is folded from state.step), without K dispatches and the host work between them.
  On XLA:CPU this pays for models of dense layers and patch convolutions (MoPoE: 1.2-1.4x,
  README "Speed") but not for the U-Net, whose convolution gradients XLA compiles inside a
  loop with a generic kernel (~14x slower per step): keep train.steps_per_dispatch = 1 for
  diffusion decoders on CPU.
  """
  train_step = make_train_step(model, optimizer, config)

  def multi_train_step(state, batches):
    return jax.lax.scan(train_step, state, batches)

  return multi_train_step


def model_inputs(batch: dict, model) -> dict:
  """Keeps the arrays the model reads (its modalities and 'available')."""
  keys = set(model.names) | {'available'}
  return {k: v for k, v in batch.items() if k in keys}


def sampling_params(config, state):
  """The parameters generation uses: EMA ones unless sample.use_ema is False."""
  return state.ema_params if config.sample.use_ema else state.params


def run_record(config, model) -> dict:
  """What checkpoints save as 'config': the config as nested dicts and, for a model with
  a caption modality, the dataset's caption vocabulary (checkpoint.VOCABULARY_KEY), so a
  checkpoint always says which words its token ids are and a restore can check them."""
  record = checkpoint_lib.config_as_dict(config)
  if any(m.kind == 'caption' for m in model.modalities):
    record[checkpoint_lib.VOCABULARY_KEY] = pipeline.load_vocabulary(config.data).words
  return record


def restore_vae(config, workdir: str, step: int | None = None):
  """Restores VAE checkpoint `step` (None = the latest) of workdir, checked against config.

  Args:
    config: the run's config (its model and data sections must match the checkpoint's).
    workdir: the training workdir (checkpoints in <workdir>/checkpoints).
    step: the checkpoint step, None for the latest.

  Returns:
    (model, TrainState replicated over all devices, step).

  Raises:
    CheckpointError: no checkpoint, no such step, another model, or unreadable files.
  """
  model = build_model(config)
  mesh = parallel.make_mesh()
  optimizer = train_state_lib.make_optimizer(config.train)
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise CheckpointError(f'No VAE checkpoint in {checkpointer.directory}: train it first '
                            f'with --mode=train --workdir={workdir}.')
    if step is None:
      step = max(steps)
    elif step not in steps:
      raise CheckpointError(f'No VAE checkpoint step {step} in {checkpointer.directory}; '
                            f'available steps: {sorted(steps)}.')
    checkpointer.check_compatible(step, run_record(config, model))
    state, _ = checkpointer.restore(step, abstract_train_state(config, model, optimizer, mesh))
  finally:
    checkpointer.close()
  return model, state, step
