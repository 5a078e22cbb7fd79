"""CelebAMask-HQ as the input pipeline sees it: the data/dataset_api.Dataset adapter DATASET."""

from __future__ import annotations

import numpy as np

from diffmvae_jax.data import builder_helpers as helpers
from diffmvae_jax.data import dataset_api
from diffmvae_jax.data.celebamask_hq.annotation_files import ATTRIBUTE_NAMES, SPLITS
from diffmvae_jax.data.celebamask_hq.builder import (
    DEFAULT_IMAGE_SIZE, NAME, CelebAMaskHq, make_builder)


class CelebAMaskHqDataset:
  """CelebAMask-HQ through data/dataset_api.py's `Dataset` protocol (see DATASET)."""

  name = NAME
  config_defaults = {"image_size": DEFAULT_IMAGE_SIZE, "max_examples_per_split": 0}

  def make_builder(self, data_config) -> CelebAMaskHq:
    """The builder for a data config.

    Args:
      data_config: ConfigDict or dict; reads data_dir, manual_dir, image_size and
        max_examples_per_split (missing keys take their defaults).

    Returns:
      The CelebAMaskHq builder (not necessarily built).

    Raises:
      DataError: a value is out of range.
    """
    get = lambda k: helpers.config_get(data_config, k, self.config_defaults[k])  # noqa: E731
    return make_builder(
        image_size=int(get("image_size")),
        max_examples_per_split=int(get("max_examples_per_split")),
        data_dir=helpers.config_path(data_config, "data_dir"),
        manual_dir=helpers.config_path(data_config, "manual_dir"))

  def modality_kinds(self, data_config) -> dict[str, str]:
    """image, mask and attributes, whatever the data config."""
    del data_config
    return {"image": "image", "mask": "mask", "attributes": "attributes"}

  def modality_specs(self, builder) -> dict[str, dataset_api.ModalitySpec]:
    """'image', 'mask', 'attributes' specs of pipeline batches.

    Args:
      builder: a CelebAMaskHq builder (need not be built).

    Returns:
      name -> ModalitySpec, in batch order.
    """
    s = builder.builder_config.image_size
    return {
        "image": dataset_api.ModalitySpec("image", "image", (s, s, 3), "float32"),
        "mask": dataset_api.ModalitySpec("mask", "mask", (s, s, 1), "float32"),
        "attributes": dataset_api.ModalitySpec("attributes", "attributes",
                                               (len(ATTRIBUTE_NAMES),), "float32",
                                               num_classes=len(ATTRIBUTE_NAMES)),
    }

  def num_records(self, builder, split: str) -> int:
    """Number of examples of a split of a built dataset.

    Args:
      builder: a built CelebAMaskHq builder.
      split: 'train' | 'validation' | 'test'.

    Returns:
      The count (one record per stored example).

    Raises:
      DataError: unknown split.
    """
    helpers.check_split(split, SPLITS)
    return int(builder.info.splits[split].num_examples)

  def read_batch(self, source, ids: np.ndarray, split: str) -> dict[str, np.ndarray]:
    """Reads and decodes records of a split.

    Args:
      source: the split's TFDS data source (builder.as_data_source(split)).
      ids: int (b,) record ids (= stored example indices).
      split: the split's name (unused: records are examples).

    Returns:
      {'image': float32 (b, S, S, 3) in [-1, 1], 'mask': float32 (b, S, S, 1) in {0, 1},
       'attributes': float32 (b, 18) in {0, 1}}.
    """
    del split
    index = [int(i) for i in np.asarray(ids).reshape(-1)]
    if hasattr(source, "__getitems__"):
      examples = source.__getitems__(index)
    else:
      examples = [source[i] for i in index]
    return {
        "image": helpers.scale_images(examples, "image"),
        "mask": helpers.stack_field(examples, "mask", np.float32),
        "attributes": helpers.stack_field(examples, "attributes", np.float32),
    }

  def vocabulary(self, builder):
    """None: CelebAMask-HQ has no captions.

    Args:
      builder: unused.

    Returns:
      None.
    """
    del builder
    return None


DATASET = CelebAMaskHqDataset()
