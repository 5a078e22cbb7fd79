"""``--mode=train``: ``train_and_evaluate(config, workdir)`` trains (or resumes) the VAE.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=/tmp/demo

One jit-compiled step (tasks/vae.py) over a ('data',) mesh of all devices (parameters
replicated, batch sharded, state donated), run by the shared loop driver (loop.py: metrics
one step late, NaN guard, saves every ``train.checkpoint_every`` steps, at the end and on
SIGTERM, progress and ETA). Orbax checkpoints hold the train state, the data-iterator
position and the config, so rerunning the same command resumes and continues exactly as if
never stopped. clu writers log every loss term, the learning rate, the gradient norm,
steps/s and ETA; sample grids go to TensorBoard and ``<workdir>/samples``. With
``prior.joint=True`` the latent score prior takes one step after every VAE step
(tasks/joint_prior.py); with ``train.steps_per_dispatch=K`` the loop runs K steps per
dispatch (one lax.scan over K batches, vae.make_multi_train_step) between its save,
sample and curve steps; with ``train.curve_every=k`` learning curves (coherence given 1 and
2, the latent probe) are measured every k steps (curves.py). The name follows flax's
examples; evaluation is ``--mode=eval``.
"""

import json
import os

import numpy as np

from absl import logging
import jax
import ml_collections

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import curves as curves_lib
from diffmvae_jax import loop
from diffmvae_jax import metric_writer
from diffmvae_jax import parallel
from diffmvae_jax import sample_grid
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.data import pipeline
from diffmvae_jax.tasks import joint_prior
from diffmvae_jax.tasks import vae


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) a Diff-MVAE run in `workdir` up to train.num_steps.

  Args:
    config: the full config (see configs/default.py).
    workdir: where checkpoints, TensorBoard events, metrics.jsonl and samples go.

  Returns:
    the last step's metrics as floats (empty if nothing was trained).

  Raises:
    ConfigError, DataError, CheckpointError: bad settings, data or workdir (one line each).
    NonFiniteLossError: a NaN/Inf metric; the last good checkpoint is kept.
  """
  vae.validate_config(config)
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh()
  model = vae.build_model(config)
  optimizer = train_state_lib.make_optimizer(config.train)
  state = vae.init_state(config, model, optimizer, mesh)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info('Model: %s; %d parameters; %d devices (%d processes); global batch %d.',
               [(m.name, m.decoder) for m in model.modalities], num_params,
               jax.device_count(), jax.process_count(), config.train.batch_size)

  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  record = vae.run_record(config, model)
  record_json = json.dumps(record, sort_keys=True)
  data_iter = pipeline.make_train_iterator(
      config.data, global_batch_size=config.train.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count())
  last_saved = checkpointer.latest_step()
  if last_saved is not None:
    checkpointer.check_compatible(last_saved, record)
    state, iter_state = checkpointer.restore(last_saved, checkpoint_lib.abstract_like(
        state, parallel.replicated(mesh)))
    data_iter.set_state(iter_state)
    checkpoint_lib.log_restored(last_saved, checkpointer.directory)
  start_step = int(state.step)
  joint = None
  if config.prior.joint:
    joint = joint_prior.JointPrior(config, model, mesh, workdir)
    if last_saved is not None:
      joint.restore(last_saved)

  is_lead = jax.process_index() == 0
  writer = metric_writer.create_writer(workdir, just_logging=not is_lead)
  if start_step == 0:
    writer.write_hparams({k: v for k, v in checkpoint_lib.flatten(record).items()
                          if isinstance(v, (int, float, str, bool))})
  train_step = jax.jit(
      vae.make_train_step(model, optimizer, config),
      in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
      out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
      donate_argnums=(0,))
  steps_per_dispatch = config.train.get('steps_per_dispatch', 1)
  multi_train_step = None
  if steps_per_dispatch > 1:
    if jax.default_backend() == 'cpu' and model.diffusion_names:
      logging.warning('train.steps_per_dispatch=%d with a diffusion decoder on CPU: XLA:CPU '
                      'runs the U-Net\'s convolution gradients inside a scan ~14x slower '
                      '(README "Speed"); use 1 here.', steps_per_dispatch)
    stacked = parallel.stacked_batch_sharded(mesh)
    multi_train_step = jax.jit(
        vae.make_multi_train_step(model, optimizer, config),
        in_shardings=(parallel.replicated(mesh), stacked),
        out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
        donate_argnums=(0,))
  grids = sample_grid.GridWriter(model, config, workdir, writer)
  curve_every = config.train.get('curve_every', 0)
  curves = curves_lib.CurveLogger(model, config, workdir, mesh, writer) if curve_every else None
  if curves is not None and start_step == 0:
    curves.write(vae.sampling_params(config, state), 0)
  iter_state = data_iter.get_state()

  def step_fn(state, step):
    del step
    nonlocal iter_state
    local = next(data_iter)
    iter_state = data_iter.get_state()
    batch = parallel.global_batch(vae.model_inputs(local, model), mesh)
    state, metrics = train_step(state, batch)
    if joint is not None:
      metrics = {**metrics, **joint.step(state, batch)}
    return state, metrics

  def multi_step_fn(state, step, n):
    del step
    nonlocal iter_state
    locals_ = [vae.model_inputs(next(data_iter), model) for _ in range(n)]
    iter_state = data_iter.get_state()
    batches = parallel.global_batch(
        {k: np.stack([b[k] for b in locals_]) for k in locals_[0]}, mesh, stacked=True)
    return multi_train_step(state, batches)

  def save_fn(step, state):
    checkpointer.save(step, state, iter_state, record_json)
    if joint is not None:
      joint.save(step, checkpoint_lib.config_json(config))

  def after_step(step, state):
    if config.train.sample_every and step % config.train.sample_every == 0:
      grids.write(vae.sampling_params(config, state), step)
    if curves is not None and (step % curve_every == 0 or step == config.train.num_steps):
      curves.write(vae.sampling_params(config, state), step)

  settings = loop.LoopSettings(
      num_steps=config.train.num_steps, log_every=config.train.log_every,
      checkpoint_every=config.train.checkpoint_every, checkpoint_dir=workdir, name='train',
      metrics_path=os.path.join(workdir, 'metrics.jsonl'), steps_per_call=steps_per_dispatch,
      boundaries=(config.train.sample_every, curve_every))
  try:
    result = loop.run_loop(settings, state, start_step, step_fn, writer=writer,
                           save_fn=save_fn, after_step=after_step, last_saved=last_saved,
                           multi_step_fn=multi_step_fn if multi_train_step is not None else None)
  finally:
    checkpointer.close()  # Waits for the last async save, also when an error stops the run.
    if joint is not None:
      joint.close()
    writer.flush()
  step = result.step
  finished_now = step == config.train.num_steps and step > start_step
  if finished_now and (not config.train.sample_every or step % config.train.sample_every):
    grids.write(vae.sampling_params(config, result.state), step)
  writer.flush()
  logging.info('Done at step %d; workdir %s.', step, workdir)
  return result.last_metrics
