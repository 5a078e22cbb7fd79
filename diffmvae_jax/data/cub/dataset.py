"""CUB as the input pipeline sees it: the data/dataset_api.Dataset adapter DATASET."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from diffmvae_jax.data import builder_helpers as helpers
from diffmvae_jax.data import dataset_api
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.cub.builder import Cub, make_builder
from diffmvae_jax.data.cub.source import CAPTIONS_PER_IMAGE, SPLITS


class CubDataset:
  """CUB as the pipeline sees it (data/dataset_api.Dataset); use the instance DATASET."""

  name = "cub"
  config_defaults = {
      "image_size": 64,
      "crop_to_bbox": False,
      "validation_fraction": 0.1,
      "build_seed": 0,
  }

  def make_builder(self, data_config) -> Cub:
    """The Cub builder of a data config (not necessarily built).

    Args:
      data_config: ConfigDict or dict; reads data_dir, manual_dir and config_defaults' keys
        (missing keys take their defaults).

    Returns:
      The builder, writing array_record into data_dir.

    Raises:
      DataError: a value is out of range.
    """
    get = lambda k: helpers.config_get(data_config, k, self.config_defaults[k])  # noqa: E731
    return make_builder(
        image_size=int(get("image_size")),
        crop_to_bbox=bool(get("crop_to_bbox")),
        validation_fraction=float(get("validation_fraction")),
        seed=int(get("build_seed")),
        data_dir=helpers.config_path(data_config, "data_dir"),
        manual_dir=helpers.config_path(data_config, "manual_dir"))

  def modality_kinds(self, data_config) -> dict[str, str]:
    """image, caption and label, whatever the data config."""
    del data_config
    return {"image": "image", "caption": "caption", "label": "label"}

  def modality_specs(self, builder: tfds.core.DatasetBuilder
                     ) -> dict[str, dataset_api.ModalitySpec]:
    """'image', 'caption', 'label' specs of a built dataset.

    Args:
      builder: a prepared Cub builder.

    Returns:
      image float32 (S, S, 3); caption int32 (L,) with num_classes = vocabulary size;
      label int32 () with num_classes = number of classes (200 on the real data).

    Raises:
      DataError: the dataset is not built.
    """
    cfg = builder.builder_config
    vocab = helpers.read_vocabulary(builder)
    size = cfg.image_size
    return {
        "image": dataset_api.ModalitySpec("image", "image", (size, size, 3), "float32"),
        "caption": dataset_api.ModalitySpec("caption", "caption", (cfg.caption_max_len,),
                                            "int32", vocab.size),
        "label": dataset_api.ModalitySpec("label", "label", (), "int32",
                                          int(builder.info.features["label"].num_classes)),
    }

  def num_records(self, builder: tfds.core.DatasetBuilder, split: str) -> int:
    """Records of a split: 10 per image for train, one per image otherwise.

    Args:
      builder: a prepared Cub builder.
      split: 'train' | 'validation' | 'test'.

    Returns:
      The size of the split's record id space.

    Raises:
      DataError: unknown split.
    """
    helpers.check_split(split, SPLITS, "CUB split")
    images = builder.info.splits[split].num_examples
    return CAPTIONS_PER_IMAGE * images if split == "train" else images

  def read_batch(self, source, ids: np.ndarray, split: str) -> dict[str, np.ndarray]:
    """Reads and decodes records.

    Args:
      source: the split's TFDS data source (builder.as_data_source(split)).
      ids: int (b,) record ids: train record r is image r // 10 with caption r % 10;
        validation/test record r is image r with caption 0.
      split: 'train' | 'validation' | 'test'.

    Returns:
      {'image': float32 (b, S, S, 3) in [-1, 1], 'caption': int32 (b, L),
       'label': int32 (b,)}.

    Raises:
      DataError: unknown split.
    """
    helpers.check_split(split, SPLITS, "CUB split")
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if split == "train":
      image_ids, caption_ids = ids // CAPTIONS_PER_IMAGE, ids % CAPTIONS_PER_IMAGE
    else:
      image_ids, caption_ids = ids, np.zeros_like(ids)
    examples = source.__getitems__([int(i) for i in image_ids])
    return {
        "image": helpers.scale_images(examples, "image"),
        "caption": np.stack([ex["caption"][c] for ex, c in zip(examples, caption_ids.tolist())]
                            ).astype(np.int32),
        "label": np.asarray([ex["label"] for ex in examples], dtype=np.int32),
    }

  def vocabulary(self, builder: tfds.core.DatasetBuilder) -> text_lib.Vocabulary:
    """The caption vocabulary saved with the built dataset (see read_vocabulary)."""
    return helpers.read_vocabulary(builder)


DATASET = CubDataset()
