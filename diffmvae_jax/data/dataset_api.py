"""The contract between the input pipeline and one dataset module.

`data/pipeline.py` knows nothing about PolyMNIST, CUB or CelebAMask-HQ; it looks up the
dataset named by `data.dataset` in its registry and talks to it through `Dataset`:

  builder = dataset.make_builder(data_config)        # TFDS builder (maybe not built yet), or
                                                     # PolyMNIST's numpy build without TFDS
  builder.download_and_prepare(...)                  # atomic array_record build
  specs = dataset.modality_specs(builder)            # what a batch holds
  n = dataset.num_records(builder, split)            # size of the pipeline's id space
  batch = dataset.read_batch(source, ids, split)     # ids (b,) int64 -> dict of numpy

Records vs stored examples: a dataset may expose more records than it stores (CUB stores
one example per image with its 10 captions; a training record is an (image, caption) pair,
record id = 10 * image + caption). `read_batch` maps record ids to stored examples.

Batch conventions (numpy, leading batch dim b), by modality kind:
  image       float32 (b, H, W, 3) in [-1, 1]
  mask        float32 (b, H, W, 1) in {0, 1}
  attributes  float32 (b, K) in {0, 1}
  caption     int32 (b, L) token ids, <eos> then <pad> = 0 (data/text.py)
  label       int32 (b,) class index
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

import numpy as np

from diffmvae_jax.data import text as text_lib

if TYPE_CHECKING:  # Annotations only: the numpy build path runs without TFDS.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

KINDS = ("image", "mask", "attributes", "caption", "label")


@dataclasses.dataclass(frozen=True)
class ModalitySpec:
  """What one modality of a batch looks like.

  Attributes:
    name: batch key ('m0', 'image', 'caption', 'mask', 'attributes', 'label', ...).
    kind: one of KINDS.
    shape: per-example shape (no batch dim), e.g. (28, 28, 3), (32,), (18,), ().
    dtype: numpy dtype name of the batch array ('float32', 'int32').
    num_classes: vocabulary size for 'caption', class count for 'label', number of
      attributes for 'attributes', else 0.
  """
  name: str
  kind: str
  shape: tuple
  dtype: str = "float32"
  num_classes: int = 0


class Dataset(Protocol):
  """One dataset as the pipeline sees it (see the module docstring)."""

  name: str
  # Dataset-specific keys of the data config this dataset reads (besides dataset,
  # data_dir, manual_dir, num_workers), each with its default.
  config_defaults: dict

  def make_builder(self, data_config) -> tfds.core.DatasetBuilder:
    """The TFDS builder for this data config (not necessarily built)."""

  def modality_specs(self, builder: tfds.core.DatasetBuilder) -> dict[str, ModalitySpec]:
    """name -> ModalitySpec of every modality a batch holds, in batch order."""

  def modality_kinds(self, data_config) -> dict[str, str]:
    """name -> kind of the same modalities, from the data config alone: nothing is read or
    built, so a wrong modality name is reported before any work starts."""

  def num_records(self, builder: tfds.core.DatasetBuilder, split: str) -> int:
    """Number of records of `split` in the pipeline's id space."""

  def read_batch(self, source, ids: np.ndarray, split: str) -> dict[str, np.ndarray]:
    """Reads and decodes records `ids` (int64 (b,)) of `split` from its TFDS data source."""

  def vocabulary(self, builder: tfds.core.DatasetBuilder) -> text_lib.Vocabulary | None:
    """The caption vocabulary saved with the dataset, or None without captions."""
