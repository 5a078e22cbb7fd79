"""Evaluation passes: one generation pass per task, every metric part from the same samples.

evaluate.py decides what to compute (eval_plan.Plan); this module runs a task's pass over
batches, feeds the per-part accumulators (eval_metrics), stores what each part needs (never images) and makes
the task files resumable part by part.

A pass (``run_pass``) is pipelined: the device work of batch i (generation, classifier,
Inception) is dispatched before the host fetches and scores batch i - 1, so host work
(F1, feature statistics) overlaps generation.

What a part stores in its task file (keys '<part key>/<field>', part key 'metric:modality')
is up to its metric: each eval_metrics module's docstring lists its fields (coherence:m
pred and true_label, fid:m Inception statistics and the distance, f1:m per-example scores,
caption_nll:m per-caption NLL and token counts).

Each task file also holds 'meta', a JSON {part key: fingerprint}: the settings the part
was computed with (split, examples, batch size, seed, sampler, EMA, classifier and
Inception hashes, ...). A part is reused only when its fingerprint is unchanged; the other
requested parts are computed in one pass and merged into the file (same keys, so the same
samples), so adding a metric later costs one pass, and changing a setting never reuses a
stale number. Cost on disk: ~17 MB per conditional FID part (2048 x 2048 float64 upper
triangle), e.g. ~1.3 GB per evaluated step for 5-modality PolyMNIST (75 parts).

Multi-host: every process runs every pass (generation and networks are sharded over all
devices); small per-batch results are gathered with ``multihost_utils.process_allgather``
(``fetch``), so every process sees the global batch; only process 0 (``is_lead``) reads
and writes task files and caches, and broadcasts its decisions (which parts to compute) so
every process runs the same collectives.
"""

from __future__ import annotations

import json
import os
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np

from diffmvae_jax import generate as generate_lib
from diffmvae_jax import parallel
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.models import decoders as decoders_lib
from diffmvae_jax.models.diffmvae import DiffMVAE


class Progress:
  """Logs done/total, rate and ETA at most every `every_secs`."""

  def __init__(self, total: int, what: str, every_secs: float = 30.0):
    self.total, self.what, self.every = total, what, every_secs
    self.done, self.start, self.last = 0, time.time(), 0.0

  def update(self, n: int) -> None:
    self.done += n
    now = time.time()
    if now - self.last >= self.every or self.done >= self.total:
      rate = self.done / max(now - self.start, 1e-9)
      eta = (self.total - self.done) / max(rate, 1e-9)
      logging.info('%s: %d/%d (%.1f/s, ETA %.0f s)', self.what, self.done, self.total, rate, eta)
      self.last = now


# ------------------------------------------------------------------ multi-host helpers
def is_lead() -> bool:
  """Process 0: the one that reads and writes files."""
  return jax.process_index() == 0


def multi_process() -> bool:
  return jax.process_count() > 1


def fetch(tree):
  """Device values -> numpy on every process.

  Global arrays that span several processes are all-gathered (their full value); other
  jax arrays are fetched; numpy leaves are returned as they are (they must already hold
  the global value, the same on every process).
  """
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
  return jax.tree.map(get, tree)


def lead_decides(flags) -> np.ndarray:
  """Process 0's bool array `flags`, the same on every process."""
  flags = np.asarray(flags, bool)
  if not multi_process():
    return flags
  return np.asarray(multihost_utils.broadcast_one_to_all(flags), bool)


def host_rows(tree: dict, mesh) -> dict:
  """A process's rows of a batch in the form `fetch` turns into the global batch."""
  return parallel.global_batch(tree, mesh) if multi_process() else tree


# ------------------------------------------------------------------ device functions
def make_subset_step(model, sample_config, given, generate_names, nll_names):
  """step(params, inputs, key) -> (samples, nll) for the given subset `given`.

  samples: {m: generated m} for m in generate_names (generate.make_conditional_generate_fn:
  z ~ q_S, then every decoder; the same key gives the same samples whichever names are
  decoded). nll: {m: (nll (B,), tokens (B,))} for the caption modalities m in nll_names:
  -log p(inputs[m] | z = mean of the PoE of S) summed over non-<pad> tokens, and their count.
  """
  given = tuple(given)
  generate = (generate_lib.make_conditional_generate_fn(model, sample_config, given,
                                                        names=tuple(generate_names))
              if generate_names else None)

  def step(params, inputs, key):
    samples = generate(params, inputs, key) if generate is not None else {}
    nll = {}
    if nll_names:
      z, _ = model.apply(params, inputs, given, method=DiffMVAE.posterior)
      for name in nll_names:
        logits = model.apply(params, name, z, method=DiffMVAE.decode_feedforward)
        tokens = inputs[name]
        nll[name] = (decoders_lib.caption_nll(logits, tokens, text_lib.PAD_ID),
                     jnp.sum(tokens != text_lib.PAD_ID, axis=-1).astype(jnp.int32))
    return samples, nll

  return step


# ------------------------------------------------------------------ one pass
def run_pass(items, accumulators, progress: Progress) -> dict:
  """Feeds every batch of `items` to every accumulator; returns their arrays.

  Args:
    items: iterable of (samples, nll, host) per batch, the device work already dispatched:
      samples / nll as the accumulators' device() take them; host = {'truth': {field:
      (B, ...)}, 'valid': bool (B,)} in `fetch`able form (host_rows).
    accumulators: the task's eval_metrics.base.Accumulators.
    progress: counts valid examples.
  """
  def collect(pending):
    fetched = fetch(pending)
    valid = np.asarray(fetched['host']['valid'], bool)
    for acc in accumulators:
      acc.host(fetched['parts'][acc.part.key], fetched['host']['truth'], valid)
    progress.update(int(valid.sum()))

  pending = None
  for samples, nll, host in items:
    current = {'parts': {a.part.key: a.device(samples, nll) for a in accumulators},
               'host': host}
    if pending is not None:
      collect(pending)   # Batch i - 1, while the device works on batch i.
    pending = current
  if pending is not None:
    collect(pending)
  out = {}
  for acc in accumulators:
    out.update(acc.arrays())
  return out


# ------------------------------------------------------------------ task files
def part_of(array_name: str) -> str:
  return array_name.split('/', 1)[0]


def _canonical(fingerprint) -> str:
  return json.dumps(fingerprint, sort_keys=True, default=str)


class TaskStore:
  """Task files <directory>/<name>.npz: per-part arrays + 'meta' fingerprints; resumable."""

  def __init__(self, directory: str):
    self.directory = directory

  def path(self, name: str) -> str:
    return os.path.join(self.directory, f'{name}.npz')

  def _load(self, name: str):
    path = self.path(name)
    if not os.path.exists(path):
      return {}, {}
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop('meta', '{}')))
    return arrays, meta

  def run(self, name: str, parts, fingerprints: dict, compute) -> dict:
    """Arrays of `parts`, computing (one `compute(todo_parts)` call) what is not stored.

    Args:
      name: task file name without .npz.
      parts: the requested eval_plan.Parts.
      fingerprints: part key -> JSON-able settings the part depends on.
      compute: list of Parts -> {array name: array} for exactly those parts.

    Returns:
      {array name: array} of the requested parts (on process 0; other processes get only
      what they computed in this call).
    """
    arrays, meta = self._load(name) if is_lead() else ({}, {})
    stale = [meta.get(p.key) != _canonical(fingerprints[p.key]) for p in parts]
    stale = lead_decides(stale)
    todo = [p for p, s in zip(parts, stale) if s]
    if todo:
      reused = [p.key for p, s in zip(parts, stale) if not s]
      logging.info('Task %s: computing %s%s.', name, ', '.join(p.key for p in todo),
                   f' (reusing {", ".join(reused)})' if reused else '')
      new = compute(todo)
      keys = {p.key for p in todo}
      arrays = {k: v for k, v in arrays.items() if part_of(k) not in keys}
      arrays.update(new)
      meta = {k: v for k, v in meta.items() if k not in keys}
      meta.update({p.key: _canonical(fingerprints[p.key]) for p in todo})
      if is_lead():
        path = self.path(name)
        tmp = path + '.tmp.npz'
        np.savez(tmp, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        os.replace(tmp, path)
    else:
      logging.info('Task %s: every part already computed (%s).', name,
                   ', '.join(p.key for p in parts))
    wanted = {p.key for p in parts}
    return {k: v for k, v in arrays.items() if part_of(k) in wanted}
