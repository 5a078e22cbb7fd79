"""Grain input pipelines over the built datasets (the trainer's data API).

Builds are TFDS array_record, or for PolyMNIST numpy arrays where tensorflow_datasets is
absent or DIFFMVAE_DATA_BACKEND=numpy (data/storage_backend.py); this file treats both
alike, so batches, shuffling, sharding and iterator state do not depend on the storage.

The dataset itself is a module in DATASET_MODULES implementing data/dataset_api.Dataset
(PolyMNIST, CUB, CelebAMask-HQ); this file only shuffles, batches, shards and prefetches.
Batches are built at the level of record ids, then read and decoded batch by batch:

  train: range(N).shuffle(seed).repeat()         # infinite shuffled id stream, reshuffled
           .batch(global_batch_size, drop_remainder=True)   # per epoch (seed + epoch)
           .map(rows of this process)            # [p*b, (p+1)*b) of every global batch
           .map(read + decode)                   # -> dict of numpy arrays, b rows
  eval:  range(ceil(N/B)*B).batch(B).map(rows of this process).map(read + decode + 'valid')

So the global batch at step k is the same for any process count: process p's batch is rows
[p*b, (p+1)*b) of it (b = global_batch_size // process_count); shards are disjoint and cover
the global batch. Each process reads only its own rows.

Batches (numpy), per modality kind (data/dataset_api.py): image float32 (b, H, W, 3) in
[-1, 1]; mask float32 (b, H, W, 1); attributes float32 (b, K); caption int32 (b, L); label
int32 (b,); eval batches add 'valid' bool (b,).

Iterator state: grain's `DatasetIterator.get_state()`, a JSON-serialisable dict (with
num_workers=0: {'next_index': <batches consumed>}; with workers, grain's per-worker state).
`set_state` on a freshly made iterator with the same data_config, seed and sharding resumes it
exactly.
"""

from __future__ import annotations

import importlib
import math

from absl import flags
import grain
import numpy as np

from diffmvae_jax.data import storage_backend
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.dataset_api import Dataset
from diffmvae_jax.data.dataset_api import ModalitySpec  # pylint: disable=unused-import
from diffmvae_jax.data.errors import DataError

if storage_backend.tfds_available():  # Absent on a bare JAX image (numpy builds only).
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

# data.dataset -> the module whose `DATASET` implements data/dataset_api.Dataset (imported
# on first use, so a dataset's dependencies are only needed when it is used).
DATASET_MODULES = {
    "polymnist": "diffmvae_jax.data.polymnist",
    "cub": "diffmvae_jax.data.cub",
    "celebamask_hq": "diffmvae_jax.data.celebamask_hq",
}
KNOWN_DATASETS = tuple(DATASET_MODULES)
SPLITS = ("train", "validation", "test")
COMMON_CONFIG_KEYS = ("dataset", "data_dir", "manual_dir", "num_workers")
_READ_THREADS = 2  # Threads reading/decoding batches in each process (machines may be small).
_PREFETCH_BATCHES = 4


def _get(data_config, key: str):
  try:
    return data_config[key]
  except (KeyError, AttributeError) as e:
    raise DataError(f"data config lacks the key {key!r}; every data config needs "
                    f"{COMMON_CONFIG_KEYS}") from e


def get_dataset(data_config) -> Dataset:
  """The dataset module object named by data_config.dataset.

  Raises:
    DataError: unknown dataset name.
  """
  name = _get(data_config, "dataset")
  if name not in DATASET_MODULES:
    raise DataError(f"unknown dataset {name!r}; known datasets: {list(KNOWN_DATASETS)}")
  return importlib.import_module(DATASET_MODULES[name]).DATASET


def _builder(data_config):
  for key in COMMON_CONFIG_KEYS:
    _get(data_config, key)
  return get_dataset(data_config).make_builder(data_config)


def _prepare_kwargs(builder) -> dict:
  """download_and_prepare's arguments: array_record and no GCS for TFDS builders."""
  if storage_backend.tfds_available() and isinstance(builder, tfds.core.DatasetBuilder):
    return {"file_format": "array_record",
            "download_config": tfds.download.DownloadConfig(try_download_gcs=False)}
  return {}


def prepare_dataset(data_config):
  """Returns the dataset's builder, building it (array_record or numpy) if not built yet.

  The build is atomic: TFDS writes into a temporary directory and renames it when complete,
  so a failed or interrupted build leaves nothing a later run would read. With several
  processes on a shared filesystem, build on one process first (the others would race).

  Args:
    data_config: ConfigDict with dataset, data_dir, manual_dir, num_workers and the
      dataset's own keys (its module's `config_defaults`, e.g. num_image_modalities).

  Returns:
    The prepared builder: a TFDS DatasetBuilder, or PolyMNIST's ArrayPolyMnist (same
    interface as far as this module and the Dataset adapters use it).

  Raises:
    DataError: unknown dataset, bad config, missing source data, or a failed build.
  """
  builder = _builder(data_config)
  if builder.is_prepared():
    return builder
  try:
    builder.download_and_prepare(**_prepare_kwargs(builder))
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    builder = _builder(data_config)
    if builder.is_prepared():  # Another process finished the same build first.
      return builder
    raise DataError(f"building {builder.name}/{builder.builder_config.name} in "
                    f"{builder.data_dir_root} failed: {type(e).__name__}: {e}") from e
  return builder


def load_vocabulary(data_config) -> text_lib.Vocabulary | None:
  """The caption vocabulary saved with the dataset (None if it has no captions).

  Raises:
    DataError: as prepare_dataset.
  """
  return get_dataset(data_config).vocabulary(prepare_dataset(data_config))


def modality_specs(data_config) -> dict[str, ModalitySpec]:
  """All modalities the dataset offers, in batch order (e.g. 'm0'.., 'caption', 'label').

  Builds the dataset if needed (the caption vocabulary size comes from it).

  Returns:
    name -> ModalitySpec with per-example shapes and the dtypes of pipeline batches.
  """
  return get_dataset(data_config).modality_specs(prepare_dataset(data_config))


def modality_kinds(data_config) -> dict[str, str]:
  """name -> kind of every modality the dataset offers, in batch order, without reading or
  building anything (the names modality_specs will return).

  Raises:
    DataError: unknown dataset name.
  """
  return dict(get_dataset(data_config).modality_kinds(data_config))


def num_records(data_config, split: str) -> int:
  """Number of records of `split` the iterators run over (builds the dataset if needed)."""
  if split not in SPLITS:
    raise DataError(f"unknown split {split!r}; splits: {list(SPLITS)}")
  return get_dataset(data_config).num_records(prepare_dataset(data_config), split)


def _data_source(data_config, split: str):
  """(data source of `split`, number of records in the pipeline's id space)."""
  if split not in SPLITS:
    raise DataError(f"unknown split {split!r}; splits: {list(SPLITS)}")
  builder = prepare_dataset(data_config)
  source = builder.as_data_source(split=split)
  n = get_dataset(data_config).num_records(builder, split) if len(source) else 0
  if n == 0:
    raise DataError(f"split {split!r} of {builder.data_dir} is empty")
  return source, n


def _per_process_batch(global_batch_size: int, process_index: int, process_count: int) -> int:
  if global_batch_size <= 0 or process_count <= 0 or not 0 <= process_index < process_count:
    raise DataError(f"bad batch sharding: global_batch_size={global_batch_size}, "
                    f"process_index={process_index}, process_count={process_count}")
  if global_batch_size % process_count:
    raise DataError(f"global_batch_size {global_batch_size} is not divisible by the "
                    f"process count {process_count}; choose a multiple of {process_count}")
  return global_batch_size // process_count


class _TakeRows:
  """Global batch of ids (B,) -> this process's rows [start, stop)."""

  def __init__(self, start: int, stop: int):
    self.start, self.stop = start, stop

  def __call__(self, ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids[self.start:self.stop], dtype=np.int64)


class _ReadBatch:
  """Record ids (b,) -> decoded batch dict; ids >= num_valid are padding (valid=False)."""

  def __init__(self, dataset: Dataset, source, split: str, num_valid: int = 0):
    self.dataset = dataset
    self.source = source
    self.split = split
    self.num_valid = num_valid  # 0: every id is real (training).

  def __call__(self, ids: np.ndarray) -> dict[str, np.ndarray]:
    read_ids = ids if not self.num_valid else np.minimum(ids, self.num_valid - 1)
    batch = self.dataset.read_batch(self.source, np.asarray(read_ids, np.int64), self.split)
    if self.num_valid:
      batch["valid"] = ids < self.num_valid
    return batch


def _to_iterator(ds: grain.MapDataset, data_config) -> grain.DatasetIterator:
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=_READ_THREADS,
                                               prefetch_buffer_size=_PREFETCH_BATCHES))
  num_workers = int(_get(data_config, "num_workers"))
  if num_workers < 0:
    raise DataError(f"num_workers must be >= 0, got {num_workers}")
  if num_workers:
    # Grain's worker processes read absl flags; outside an absl app (tests, Colab) they are
    # unparsed, so take the defaults.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return iter(it_ds)


def make_train_iterator(data_config, *, global_batch_size: int, seed: int,
                        process_index: int = 0, process_count: int = 1
                        ) -> grain.DatasetIterator:
  """Infinite, shuffled, checkpointable iterator over this process's training batches.

  Args:
    data_config: see prepare_dataset; also num_workers (grain worker processes, 0 = none).
    global_batch_size: batch size over all processes.
    seed: shuffle seed; each epoch is reshuffled deterministically from it.
    process_index: this process, 0 <= process_index < process_count.
    process_count: number of processes; must divide global_batch_size.

  Returns:
    A grain DatasetIterator yielding {'m0'..: float32 (b, 28, 28, 3) in [-1, 1],
    'caption': int32 (b, L), 'label': int32 (b,)} with b = global_batch_size //
    process_count; get_state() -> JSON-serialisable dict, set_state(state) resumes.

  Raises:
    DataError: bad config or sharding, or the dataset cannot be built.
  """
  b = _per_process_batch(global_batch_size, process_index, process_count)
  source, n = _data_source(data_config, "train")
  ds = (grain.MapDataset.range(n)
        .shuffle(seed=int(seed))
        .repeat(None)
        .batch(global_batch_size, drop_remainder=True)
        .map(_TakeRows(process_index * b, (process_index + 1) * b))
        .map(_ReadBatch(get_dataset(data_config), source, "train")))
  return _to_iterator(ds, data_config)


def make_eval_iterator(data_config, *, split: str, global_batch_size: int,
                       process_index: int = 0, process_count: int = 1,
                       num_examples: int = 0) -> grain.DatasetIterator:
  """One deterministic pass (no shuffle) over a split, padded to whole global batches.

  Every process gets the same number of batches, ceil(N / global_batch_size), so jitted
  shapes stay static; padding rows repeat the last example and have valid=False.

  Args:
    data_config: see prepare_dataset.
    split: 'train' | 'validation' | 'test'.
    global_batch_size: batch size over all processes.
    process_index, process_count: this process's rows of each global batch.
    num_examples: > 0 to evaluate only the first num_examples examples of the split.

  Returns:
    Iterator of {'m0'..: float32 (b, 28, 28, 3) in [-1, 1], 'caption': int32 (b, L),
    'label': int32 (b,), 'valid': bool (b,)}; global example g sits in global batch
    g // global_batch_size, row g % global_batch_size.

  Raises:
    DataError: bad split, config or sharding.
  """
  b = _per_process_batch(global_batch_size, process_index, process_count)
  source, total = _data_source(data_config, split)
  n = total if num_examples <= 0 else min(int(num_examples), total)
  padded = math.ceil(n / global_batch_size) * global_batch_size
  ds = (grain.MapDataset.range(padded)
        .batch(global_batch_size, drop_remainder=True)
        .map(_TakeRows(process_index * b, (process_index + 1) * b))
        .map(_ReadBatch(get_dataset(data_config), source, split, num_valid=n)))
  return _to_iterator(ds, data_config)
