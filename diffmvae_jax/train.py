"""Training: ``train_and_evaluate(config, workdir)``.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=/tmp/demo

One jit-compiled step over a ('data',) mesh of all devices (parameters replicated,
batch sharded, state donated); AdamW with warm-up + cosine decay and clipping; EMA
of the parameters; step keys fold_in(rng, step). Orbax checkpoints (async, every
``train.checkpoint_every`` steps, at the end and on SIGTERM) hold the train state,
the data-iterator position and the config, so rerunning the same command resumes
and continues exactly as if never stopped. clu writers log every loss term, the
learning rate, the gradient norm, steps/s and ETA; sample grids go to TensorBoard
and ``<workdir>/samples``. A NaN/Inf loss stops the run naming the step and term,
and no checkpoint is written after it.
"""

import functools
import json
import os
import signal
import time
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import config_checks
from diffmvae_jax import parallel
from diffmvae_jax import sample_grid
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.data import pipeline
from diffmvae_jax.errors import ConfigError, NonFiniteLossError
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import modalities as modalities_lib

KL_ESTIMATORS = config_checks.KL_ESTIMATORS


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks values that would otherwise fail deep inside jit with an obscure error."""
  config_checks.check_config(config)
  if config.loss.kl_estimator not in KL_ESTIMATORS:
    raise ConfigError(f'Unknown loss.kl_estimator {config.loss.kl_estimator!r}; '
                      f'choose one of {KL_ESTIMATORS}.')
  if config.train.num_steps < 0 or config.train.batch_size <= 0:
    raise ConfigError('train.num_steps must be >= 0 and train.batch_size > 0.')
  for key in ('log_every', 'checkpoint_every'):
    if config.train[key] <= 0:
      raise ConfigError(f'train.{key} must be positive, got {config.train[key]}.')
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


def _make_init_fn(config, model, optimizer):
  """The pure init function (key -> TrainState) and its key."""
  rng = jax.random.PRNGKey(config.seed)
  init_key, state_rng = jax.random.split(rng)
  batch = diffmvae.dummy_batch(model.modalities)

  def init(key):
    variables = model.init(key, batch, key, method=diffmvae.DiffMVAE.init_all)
    return train_state_lib.create_train_state(variables['params'], optimizer, state_rng)

  return init, init_key


def init_state(config, model, optimizer, mesh) -> train_state_lib.TrainState:
  """Initialises the train state directly with replicated shardings."""
  init, init_key = _make_init_fn(config, model, optimizer)
  # Initialisation runs once but compiles one threefry expansion per parameter, which
  # XLA's CPU backend optimises slowly; its numerics do not depend on the LLVM pass level.
  compiled = jax.jit(init, out_shardings=parallel.replicated(mesh)).lower(init_key).compile(
      compiler_options={'xla_backend_optimization_level': 0}
      if jax.default_backend() == 'cpu' else None)
  return compiled(init_key)


def abstract_train_state(config, model, optimizer, mesh) -> train_state_lib.TrainState:
  """ShapeDtypeStructs of the train state with replicated shardings (restore targets)."""
  init, init_key = _make_init_fn(config, model, optimizer)
  return checkpoint_lib.abstract_like(jax.eval_shape(init, init_key), parallel.replicated(mesh))


def make_train_step(model, optimizer, config):
  """Returns the pure train step (state, batch) -> (state, metrics)."""
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
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
    metrics = dict(terms)
    metrics['grad_norm'] = optax.global_norm(grads)
    metrics['learning_rate'] = schedule(state.step)
    new_state = state.replace(step=state.step + 1, params=params, ema_params=ema,
                              opt_state=opt_state)
    return new_state, metrics

  return train_step


class PreemptionWatcher:
  """Turns SIGTERM into a flag the loop polls (and syncs across hosts)."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread (e.g. some notebook runners).
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint and stopping.')
    self.requested = True

  def should_stop(self, step: int) -> bool:
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step) or self.requested
    return self.requested

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def check_finite(step: int, metrics: dict, last_saved: int | None, directory: str,
                 what: str = 'Non-finite value',
                 advice: str = 'Lower train.learning_rate, tighten train.grad_clip_norm or check '
                               'the data') -> None:
  """Raises NonFiniteLossError naming the step and every non-finite metric."""
  bad = sorted(k for k, v in metrics.items() if not np.all(np.isfinite(v)))
  if bad:
    kept = (f'the last good checkpoint (step {last_saved}) is kept' if last_saved is not None
            else 'no checkpoint had been written yet')
    raise NonFiniteLossError(
        f'{what} at step {step} in {bad} (loss={metrics.get("loss")}); {kept} in '
        f'{directory}. {advice}, then rerun the same command to resume from that checkpoint.')


def _config_json(config) -> str:
  return config.to_json_best_effort(sort_keys=True)


def config_as_dict(config) -> dict:
  """The config as plain nested dicts."""
  return json.loads(_config_json(config))


def run_record(config, model) -> dict:
  """What checkpoints save as 'config': the config as nested dicts and, for a model with
  a caption modality, the dataset's caption vocabulary (checkpoint.VOCABULARY_KEY), so a
  checkpoint always says which words its token ids are and a restore can check them."""
  record = config_as_dict(config)
  if any(m.kind == 'caption' for m in model.modalities):
    record[checkpoint_lib.VOCABULARY_KEY] = pipeline.load_vocabulary(config.data).words
  return record


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) a Diff-MVAE run in `workdir` up to train.num_steps.

  Args:
    config: the full config (see configs/default.py).
    workdir: where checkpoints, TensorBoard events, metrics.jsonl and samples go.

  Returns:
    the last step's metrics as floats (empty if nothing was trained).
  """
  validate_config(config)
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh()
  local_batch_size = parallel.check_batch_size(config.train.batch_size)
  model = build_model(config)
  optimizer = train_state_lib.make_optimizer(config.train)
  state = init_state(config, model, optimizer, mesh)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info('Model: %s; %d parameters; %d devices (%d processes); global batch %d.',
               [(m.name, m.decoder) for m in model.modalities], num_params,
               jax.device_count(), jax.process_count(), config.train.batch_size)

  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  config_dict = run_record(config, model)
  config_json = json.dumps(config_dict, sort_keys=True)
  data_iter = pipeline.make_train_iterator(
      config.data, global_batch_size=config.train.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count())
  last_saved = checkpointer.latest_step()
  if last_saved is not None:
    checkpointer.check_compatible(last_saved, config_dict)
    state, iter_state = checkpointer.restore(last_saved, checkpoint_lib.abstract_like(
        state, parallel.replicated(mesh)))
    data_iter.set_state(iter_state)
    checkpoint_lib.log_restored(last_saved, checkpointer.directory)
  start_step = int(state.step)
  joint = None
  if config.prior.joint:
    # Imported here: joint_prior -> train_prior -> train would be circular at import time.
    from diffmvae_jax import joint_prior  # pylint: disable=g-import-not-at-top
    joint = joint_prior.JointPrior(config, model, mesh, workdir)
    if last_saved is not None:
      joint.restore(last_saved)

  is_lead = jax.process_index() == 0
  writer = metric_writers.create_default_writer(workdir, just_logging=not is_lead)
  if start_step == 0:
    writer.write_hparams({k: v for k, v in checkpoint_lib.flatten(config_dict).items()
                          if isinstance(v, (int, float, str, bool))})
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=config.train.num_steps, writer=writer, every_secs=30)
  train_step = jax.jit(
      make_train_step(model, optimizer, config),
      in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
      out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
      donate_argnums=(0,))
  sampler = sample_grid.GridWriter(model, config, workdir, writer)
  metrics_path = os.path.join(workdir, 'metrics.jsonl')

  history, last_metrics = [], {}
  pending = None  # (step, device metrics) fetched one step late to keep dispatch async.

  def consume(step, device_metrics):
    nonlocal last_metrics
    host = jax.device_get(device_metrics)
    check_finite(step, host, last_saved, workdir)
    last_metrics = {k: float(v) for k, v in host.items()}
    history.append(last_metrics)
    if step % config.train.log_every == 0 or step == config.train.num_steps:
      means = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
      writer.write_scalars(step, means)
      if is_lead:
        with open(metrics_path, 'a') as f:
          f.write(json.dumps({'step': step, **last_metrics}) + '\n')
      history.clear()

  logging.info('Training from step %d to %d.', start_step, config.train.num_steps)

  def params_for_samples(s):
    return s.ema_params if config.sample.use_ema else s.params

  step = start_step
  try:
    with PreemptionWatcher() as preemption:
      while step < config.train.num_steps:
        with jax.profiler.StepTraceAnnotation('train', step_num=step):
          local = next(data_iter)
          iter_state = data_iter.get_state()
          batch = parallel.global_batch(_model_inputs(local, model), mesh)
          state, metrics = train_step(state, batch)
          if joint is not None:
            metrics = {**metrics, **joint.step(state, batch)}
        step += 1
        if pending is not None:
          consume(*pending)
        pending = (step, metrics)
        report_progress(step)
        stop = preemption.should_stop(step)
        if step % config.train.checkpoint_every == 0 or step == config.train.num_steps or stop:
          consume(*pending)  # Never save a state that came from a non-finite step.
          pending = None
          checkpointer.save(step, state, iter_state, config_json)
          if joint is not None:
            joint.save(step, _config_json(config))
          last_saved = step
        if config.train.sample_every and step % config.train.sample_every == 0:
          sampler.write(params_for_samples(state), step)
        if stop:
          logging.warning('Stopped at step %d on preemption; rerun to resume.', step)
          break
      if pending is not None:
        consume(*pending)
  finally:
    checkpointer.close()  # Waits for the last async save, also when an error stops the run.
    if joint is not None:
      joint.close()
    writer.flush()
  finished_now = step == config.train.num_steps and step > start_step
  if finished_now and (not config.train.sample_every or step % config.train.sample_every):
    sampler.write(params_for_samples(state), step)
  writer.flush()
  logging.info('Done at step %d; workdir %s.', step, workdir)
  return last_metrics


def _model_inputs(batch: dict, model) -> dict:
  """Keeps the arrays the model reads (its modalities and 'available')."""
  keys = set(model.names) | {'available'}
  return {k: v for k, v in batch.items() if k in keys}

