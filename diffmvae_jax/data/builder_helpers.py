"""Boilerplate shared by the TFDS builders and Dataset adapters of data/polymnist, cub and
celebamask_hq: the registered-config swap, data-config field reading, the raw-bytes tensor
feature, the saved caption vocabulary, and stacking/scaling stored examples into batches.

Nothing here knows a particular dataset; each function is used by at least two of them.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from diffmvae_jax.data import storage_backend
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.errors import DataError

if storage_backend.tfds_available():  # Only raw_tensor needs it at run time.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

# ----------------------------------------------------------------------------- builder configs


def config_fields(config: tfds.core.BuilderConfig, names: Sequence[str]) -> tuple:
  """The values of a builder config's own fields, for comparing two configs.

  Args:
    config: a BuilderConfig dataclass instance.
    names: the field names that define what the config builds (in a fixed order).

  Returns:
    tuple, `getattr(config, name)` for each name.
  """
  return tuple(getattr(config, name) for name in names)


def use_registered_config(kwargs: dict, builder_configs: Sequence[tfds.core.BuilderConfig],
                          config_cls: type, fields: Sequence[str]) -> dict:
  """Swaps `kwargs['config']` for the registered config of the same name.

  TFDS accepts a registered config's name only as that very object; configs rebuilt from
  pickles (grain worker processes) or from `<ConfigClass>.make` are swapped for it when
  their fields agree.

  Args:
    kwargs: the builder's DatasetBuilder keyword arguments (data_dir, config, ...).
    builder_configs: the builder's BUILDER_CONFIGS.
    config_cls: the builder's BuilderConfig class; other configs (None, a name) pass as is.
    fields: the field names compared with `config_fields`.

  Returns:
    `kwargs`, with 'config' replaced by the registered object when one has its name.

  Raises:
    DataError: a registered config has the name but different fields.
  """
  config = kwargs.get("config")
  if isinstance(config, config_cls):
    registered = {c.name: c for c in builder_configs}.get(config.name)
    if registered is not None and registered is not config:
      if config_fields(registered, fields) != config_fields(config, fields):
        raise DataError(f"config {config.name!r} differs from the registered config of that "
                        f"name; build it with {config_cls.__name__}.make")
      kwargs["config"] = registered
  return kwargs


# ----------------------------------------------------------------------------- data config


def config_get(data_config, key: str, default: Any) -> Any:
  """A data config value, the default when the key is missing or None.

  Args:
    data_config: ConfigDict or dict.
    key: the key.
    default: returned for a missing key or a None value.

  Returns:
    The value (any type; callers convert it).
  """
  value = data_config.get(key, default)
  return default if value is None else value


def config_path(data_config, key: str) -> str:
  """A directory of the data config ('data_dir', 'manual_dir'), '~' expanded.

  Args:
    data_config: ConfigDict or dict.
    key: the key; missing or None reads as ''.

  Returns:
    str, `os.path.expanduser(str(value))`; '' when unset.
  """
  return os.path.expanduser(str(config_get(data_config, key, "")))


# ----------------------------------------------------------------------------- features


def raw_tensor(shape: tuple, dtype=np.uint8) -> tfds.features.Tensor:
  """A tensor feature stored as one bytes value (no codec at write or read time).

  Args:
    shape: the per-example shape, e.g. (28, 28, 3).
    dtype: numpy dtype of the stored array (uint8 images, int32 caption ids, ...).

  Returns:
    `tfds.features.Tensor(shape=shape, dtype=dtype, encoding=Encoding.BYTES)`.
  """
  return tfds.features.Tensor(shape=shape, dtype=dtype, encoding=tfds.features.Encoding.BYTES)


# ----------------------------------------------------------------------------- vocabulary


def write_vocabulary(builder: tfds.core.DatasetBuilder, vocab: text_lib.Vocabulary) -> None:
  """Saves the caption vocabulary as `VOCABULARY_FILE` in the builder's data path.

  Call it from `_split_generators`: during download_and_prepare, data_path is TFDS's
  temporary build dir, renamed to the final one only when every split is written, so a
  failed build leaves no vocabulary.

  Args:
    builder: the builder being prepared.
    vocab: the vocabulary built from the training captions.
  """
  (builder.data_path / text_lib.VOCABULARY_FILE).write_text(vocab.to_json())


def read_vocabulary(builder: tfds.core.DatasetBuilder) -> text_lib.Vocabulary:
  """The caption vocabulary saved with a built dataset.

  Args:
    builder: a prepared builder of a captioned dataset (PolyMNIST, CUB).

  Returns:
    The Vocabulary built from the training captions.

  Raises:
    DataError: the dataset is not built or has no vocabulary file.
  """
  return text_lib.read_saved_vocabulary(builder.data_path)


# ----------------------------------------------------------------------------- batches


def stack_field(examples: Sequence[dict], key: str, dtype) -> np.ndarray:
  """One feature of decoded examples, stacked into a batch.

  Args:
    examples: b examples read from a TFDS data source (dicts of numpy arrays).
    key: the feature name.
    dtype: the batch dtype (e.g. np.float32 for masks and attributes, np.int32 for ids).

  Returns:
    dtype (b, *feature shape).
  """
  return np.stack([ex[key] for ex in examples]).astype(dtype)


def scale_images(examples: Sequence[dict], key: str) -> np.ndarray:
  """Stored uint8 images of decoded examples as a float32 batch in [-1, 1].

  Args:
    examples: b examples read from a TFDS data source.
    key: the image feature, uint8 (H, W, C) in each example.

  Returns:
    float32 (b, H, W, C): v / 127.5 - 1.
  """
  images = stack_field(examples, key, np.float32)
  return images / np.float32(127.5) - np.float32(1.0)


def check_split(split: str, splits: Sequence[str], what: str = "split") -> None:
  """Raises unless `split` is one of `splits`.

  Args:
    split: the requested split name.
    splits: the dataset's split names.
    what: how the message names a split ('split', 'CUB split').

  Raises:
    DataError: "unknown {what} {split!r}; splits: [...]".
  """
  if split not in splits:
    raise DataError(f"unknown {what} {split!r}; splits: {list(splits)}")
