"""CelebAMask-HQ's TFDS builder (CelebAMaskHq), its configs and make_builder."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from diffmvae_jax.data import builder_helpers as helpers
from diffmvae_jax.data.celebamask_hq.annotation_files import (
    ATTRIBUTE_NAMES, SPLITS, TRAIN_END, VALIDATION_END)
from diffmvae_jax.data.celebamask_hq.decode import decode_example
from diffmvae_jax.data.celebamask_hq.source import MASK_PARTS, scan_layout
from diffmvae_jax.data.errors import DataError

NAME = "celebamask_hq"
DEFAULT_IMAGE_SIZE = 128
MAX_IMAGE_SIZE = 1024

_CHUNK = 256  # Examples decoded concurrently before being handed to the writer.
_DECODE_THREADS = max(1, min(8, os.cpu_count() or 1))
# The fields that define what a CelebAMaskHqConfig builds (compared by the registered swap).
_CONFIG_FIELDS = ("image_size", "max_examples_per_split")


@dataclasses.dataclass
class CelebAMaskHqConfig(tfds.core.BuilderConfig):
  """CelebAMask-HQ variant.

  Attributes:
    image_size: S, height and width of image and mask.
    max_examples_per_split: keep the first N (by CelebA-HQ index) of each split, 0 = all.
  """
  image_size: int = DEFAULT_IMAGE_SIZE
  max_examples_per_split: int = 0

  @classmethod
  def make(cls, image_size: int = DEFAULT_IMAGE_SIZE,
           max_examples_per_split: int = 0) -> "CelebAMaskHqConfig":
    """A config whose name is derived from its fields (e.g. 's128', 's64_n20').

    Args:
      image_size: 1..MAX_IMAGE_SIZE.
      max_examples_per_split: >= 0.

    Returns:
      The config.

    Raises:
      DataError: a field is out of range.
    """
    if not 1 <= image_size <= MAX_IMAGE_SIZE:
      raise DataError(f"data.image_size must be in 1..{MAX_IMAGE_SIZE} for CelebAMask-HQ, "
                      f"got {image_size}")
    if max_examples_per_split < 0:
      raise DataError("data.max_examples_per_split must be >= 0, got "
                      f"{max_examples_per_split}")
    name = f"s{image_size}"
    if max_examples_per_split:
      name += f"_n{max_examples_per_split}"
    return cls(name=name, image_size=image_size,
               max_examples_per_split=max_examples_per_split,
               description=f"{image_size}x{image_size}"
               + (f", first {max_examples_per_split} examples per split"
                  if max_examples_per_split else ""))


class CelebAMaskHq(tfds.core.GeneratorBasedBuilder):
  """CelebAMask-HQ image, non-skin mask and 18 attributes, from a manual download."""

  # The package, as when this class lived in data/celebamask_hq.py: TFDS writes it to
  # dataset_info.json (moduleName) and reads metadata files from its parent folder, so
  # builds stay byte-identical; the package re-exports the class, so pickles resolve.
  __module__ = "diffmvae_jax.data.celebamask_hq"
  name = NAME
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [CelebAMaskHqConfig.make(s) for s in (64, 128)]
  DEFAULT_CONFIG_NAME = f"s{DEFAULT_IMAGE_SIZE}"
  # As in polymnist/builder.py: TFDS derives `code_path` through `importlib_resources`,
  # which it does not declare as a dependency; naming the file directly avoids that import.
  code_path = epath.Path(__file__)

  def __init__(self, *, manual_dir: str = "", **kwargs):
    """Creates the builder.

    Args:
      manual_dir: directory holding the CelebAMask-HQ layout (or its parent); read only
        when building.
      **kwargs: tfds DatasetBuilder arguments (data_dir, config, file_format, ...).
    """
    self._celebamask_dir = manual_dir
    self._layout = None
    kwargs = helpers.use_registered_config(kwargs, self.BUILDER_CONFIGS, CelebAMaskHqConfig,
                                           _CONFIG_FIELDS)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    return self.dataset_info_from_configs(
        description=(
            "CelebAMask-HQ (Lee et al., MaskGAN, CVPR 2020): CelebA-HQ faces resized to "
            f"{s}x{s}, a binary non-skin mask (union of {', '.join(MASK_PARTS)}; box-resized, "
            f"threshold 0.5) and 18 binary attributes ({', '.join(ATTRIBUTE_NAMES)}). Splits "
            f"by original CelebA index: < {TRAIN_END} train, < {VALIDATION_END} validation, "
            "else test."),
        features=tfds.features.FeaturesDict({
            "image": helpers.raw_tensor((s, s, 3)),
            "mask": helpers.raw_tensor((s, s, 1)),
            "attributes": helpers.raw_tensor((len(ATTRIBUTE_NAMES),)),
            "celeba_hq_index": tfds.features.Scalar(dtype=np.int32),
            "celeba_index": tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=None,
        homepage="https://github.com/switchablenorms/CelebAMask-HQ",
        disable_shuffling=True,  # Record r of a split is its r-th image by CelebA-HQ index.
    )

  def download_and_prepare(self, *args, **kwargs):
    """Checks the manual_dir layout (writing nothing), then builds as TFDS does.

    Args:
      *args, **kwargs: as tfds.core.DatasetBuilder.download_and_prepare.

    Raises:
      DataError: the layout is missing or malformed (before anything is written).
    """
    if self._layout is None and not self.is_prepared():
      self._layout = scan_layout(self._celebamask_dir,
                                 self.builder_config.max_examples_per_split)
    return super().download_and_prepare(*args, **kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    if self._layout is None:
      self._layout = scan_layout(self._celebamask_dir,
                                 self.builder_config.max_examples_per_split)
    return {split: self._generate_examples(self._layout.splits[split]) for split in SPLITS}

  def _generate_examples(self, examples):
    size = self.builder_config.image_size
    with concurrent.futures.ThreadPoolExecutor(_DECODE_THREADS) as pool:
      for start in range(0, len(examples), _CHUNK):
        chunk = examples[start:start + _CHUNK]
        decoded = list(pool.map(lambda ex: decode_example(ex, size), chunk))
        for ex, features in zip(chunk, decoded):
          yield ex.hq_index, features


def make_builder(*, image_size: int = DEFAULT_IMAGE_SIZE, max_examples_per_split: int = 0,
                 data_dir: str = "", manual_dir: str = "") -> CelebAMaskHq:
  """A CelebAMaskHq builder for these fields (registered config if one matches).

  Args:
    image_size: S.
    max_examples_per_split: 0 = all.
    data_dir: TFDS data dir ('' = TFDS default, ~/tensorflow_datasets).
    manual_dir: the CelebAMask-HQ layout (or its parent); needed only to build.

  Returns:
    The builder (not necessarily built), writing array_record.

  Raises:
    DataError: a field is out of range.
  """
  config = CelebAMaskHqConfig.make(image_size, max_examples_per_split)
  return CelebAMaskHq(data_dir=data_dir or None, config=config, file_format="array_record",
                      manual_dir=manual_dir)

