"""Orbax checkpoints of a run: train state, data-iterator state and config.

Layout: ``<workdir>/checkpoints/<step>/{state,data_iter,config}``. Orbax writes each
step to a temporary directory and renames it when complete, so a process killed
mid-save leaves no step that ``latest_step`` would return; leftovers are removed
at the next start. Saves are asynchronous; the policy is every
``train.checkpoint_every`` steps, at the end, and on preemption (SIGTERM), keeping
the latest ``train.keep_checkpoints``.
"""

import json
import os
from typing import Any

from absl import logging
from etils import epath
import jax
import orbax.checkpoint as ocp

from diffmvae_jax.errors import CheckpointError

# Config sections that must match for a checkpoint to be restored into a run.
COMPATIBILITY_KEYS = ('model', 'data.dataset', 'data.num_image_modalities', 'data.modalities')
# Key of the saved config record holding the caption vocabulary (every token in id order)
# of models with a caption modality: token ids mean nothing without it.
VOCABULARY_KEY = '_caption_vocabulary'


def config_json(config) -> str:
  """The config (ml_collections.ConfigDict) as sorted JSON, the form checkpoints save."""
  return config.to_json_best_effort(sort_keys=True)


def config_as_dict(config) -> dict:
  """The config as plain nested dicts (what a saved config restores as)."""
  return json.loads(config_json(config))


def lookup(config_dict: dict, dotted: str):
  """config_dict['a']['b'] for 'a.b', or None when absent."""
  node = config_dict
  for part in dotted.split('.'):
    if not isinstance(node, dict) or part not in node:
      return None
    node = node[part]
  return node


def flatten(node, prefix: str = '') -> dict:
  """Nested dicts -> {'a.b.c': leaf}."""
  if isinstance(node, dict):
    out = {}
    for k, v in node.items():
      out.update(flatten(v, f'{prefix}.{k}' if prefix else k))
    return out
  return {prefix: node}


def incompatibilities(saved: dict, current: dict) -> list:
  """Lists 'key: saved -> current' for every compatibility-relevant difference.

  Keys present on one side only are not differences: configs gain keys as the code grows
  (e.g. decoders for a new modality kind), and a checkpoint written before a key existed
  must stay usable. A parameter tree that really differs still fails at restore.
  """
  diffs = []
  for key in COMPATIBILITY_KEYS:
    a = flatten(lookup(saved, key), key)
    b = flatten(lookup(current, key), key)
    for k in sorted(set(a) & set(b)):
      va, vb = a.get(k), b.get(k)
      if isinstance(va, (list, tuple)) or isinstance(vb, (list, tuple)):
        va = list(va) if va is not None else None
        vb = list(vb) if vb is not None else None
      if va != vb:
        diffs.append(f'{k}: {va!r} -> {vb!r}')
  return diffs


class Checkpointer:
  """Saves and restores (state, data-iterator state, config) under a workdir."""

  def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True,
               subdir: str = 'checkpoints'):
    if '://' not in str(workdir):  # Local paths must be absolute for TensorStore.
      workdir = os.path.abspath(workdir)
    self.directory = epath.Path(workdir) / subdir
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=('state', 'data_iter', 'config'))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_iter_state: dict, config_json: str) -> None:
    """Starts an (async) save of all three items at `step`."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data_iter=ocp.args.JsonSave(data_iter_state),
        config=ocp.args.JsonSave(json.loads(config_json))), force=True)

  def restore_config(self, step: int) -> dict:
    """The config saved with `step`, as nested dicts."""
    try:
      return self._manager.restore(step, args=ocp.args.Composite(
          config=ocp.args.JsonRestore()))['config']
    except Exception as e:  # Orbax raises several types for unreadable files.
      raise CheckpointError(
          f'Cannot read the config of checkpoint step {step} in {self.directory}: {e}. '
          'The checkpoint may be corrupt: move that step directory aside to resume from an '
          'earlier one, or use a new --workdir.') from e

  def check_compatible(self, step: int, current_config: dict) -> None:
    """Raises CheckpointError if the saved model differs from the configured one.

    `current_config` is the record train.run_record saves: the config as nested dicts,
    plus the caption vocabulary under VOCABULARY_KEY for models with captions; a
    vocabulary that differs from the saved one is an error too.
    """
    saved = self.restore_config(step)
    diffs = incompatibilities(saved, current_config)
    saved_vocab, vocab = saved.get(VOCABULARY_KEY), current_config.get(VOCABULARY_KEY)
    if saved_vocab is not None and vocab is not None and list(saved_vocab) != list(vocab):
      first = next((i for i, (a, b) in enumerate(zip(saved_vocab, vocab)) if a != b),
                   min(len(saved_vocab), len(vocab)))
      raise CheckpointError(
          f'Checkpoint step {step} in {self.directory} was trained with a caption vocabulary '
          f'of {len(saved_vocab)} tokens; the dataset now gives {len(vocab)} (first '
          f'difference at id {first}), so token ids would mean other words. Point '
          '--config.data.data_dir (and the data settings) at the dataset the run was trained '
          'on, or use a new --workdir.')
    if diffs:
      raise CheckpointError(
          f'The workdir holds a checkpoint (step {step}, {self.directory}) of a different '
          'model than this config asks for:\n  ' + '\n  '.join(diffs) +
          '\nUse a new --workdir for a new model, or restore the original config values.')

  def restore(self, step: int, abstract_state: Any) -> tuple:
    """Restores (state, data_iter_state) at `step` onto abstract_state's shardings.

    Args:
      step: the checkpoint step.
      abstract_state: pytree of jax.ShapeDtypeStruct with the target shardings
        (restoring onto a different device count works).

    Returns:
      (state, data_iter_state dict).
    """
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data_iter=ocp.args.JsonRestore()))
    except Exception as e:
      raise CheckpointError(
          f'Cannot restore checkpoint step {step} from {self.directory}: {e}. If the files are '
          'corrupt, move that step directory aside to resume from an earlier step, or start '
          'afresh with a new --workdir.') from e
    return restored['state'], restored['data_iter']

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_like(tree: Any, sharding) -> Any:
  """ShapeDtypeStructs of `tree` with `sharding` (for restore targets)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def log_restored(step: int, directory) -> None:
  logging.info('Restored checkpoint step %d from %s.', step, directory)
