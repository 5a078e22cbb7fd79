"""CUB's TFDS builder (Cub), its configs (CubConfig, named by their fields), make_builder."""

from __future__ import annotations

import dataclasses
from typing import Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from diffmvae_jax.data import builder_helpers as helpers
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.cub.images import load_image
from diffmvae_jax.data.cub.layout import MMVAE, OFFICIAL, find_layout
from diffmvae_jax.data.cub.source import (
    CAPTIONS_PER_IMAGE, SPLITS, CubSource, SourceImage, load_source, split_train_validation)
from diffmvae_jax.data.errors import DataError

VOCABULARY_FILE = text_lib.VOCABULARY_FILE
VOCAB_MIN_COUNT = text_lib.DEFAULT_MIN_COUNT


def _format_fraction(value: float) -> str:
  return format(value, "g").replace(".", "p").replace("-", "m")


@dataclasses.dataclass
class CubConfig(tfds.core.BuilderConfig):
  """CUB variant.

  Attributes:
    image_size: side S of the stored square images.
    crop_to_bbox: crop around the bounding box before resizing (official layout only).
    validation_fraction: fraction of the training images moved to validation.
    seed: seeds the choice of validation images.
    caption_max_len: caption token length, <eos> included.
    layout: OFFICIAL or MMVAE, the source layout (their splits differ: by image vs by
      class, so they never share a build).
  """
  image_size: int = 64
  crop_to_bbox: bool = False
  validation_fraction: float = 0.1
  seed: int = 0
  caption_max_len: int = text_lib.DEFAULT_MAX_LEN
  layout: str = OFFICIAL

  @classmethod
  def make(cls, image_size: int = 64, crop_to_bbox: bool = False,
           validation_fraction: float = 0.1, seed: int = 0,
           caption_max_len: int = text_lib.DEFAULT_MAX_LEN,
           layout: str = OFFICIAL) -> "CubConfig":
    """A config whose name is derived from its fields (e.g. 'img64_val0p1_s0').

    Args:
      image_size, crop_to_bbox, validation_fraction, seed, caption_max_len, layout: the
        attributes. The MMVAE layout prefixes the name with 'mmvae_'.

    Returns:
      The config.

    Raises:
      DataError: a field is out of range.
    """
    image_size, seed, caption_max_len = int(image_size), int(seed), int(caption_max_len)
    validation_fraction = float(validation_fraction)
    if image_size < 4 or seed < 0 or caption_max_len < 2:
      raise DataError("CUB needs image_size >= 4, build_seed >= 0 and caption_max_len >= 2; "
                      f"got {image_size}, {seed}, {caption_max_len}")
    if not 0 < validation_fraction < 1:
      raise DataError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if layout not in (OFFICIAL, MMVAE):
      raise DataError(f"layout must be {OFFICIAL!r} or {MMVAE!r}, got {layout!r}")
    name = ("mmvae_" if layout == MMVAE else "") + f"img{image_size}"
    name += "_bbox" if crop_to_bbox else ""
    name += f"_val{_format_fraction(validation_fraction)}_s{seed}"
    if caption_max_len != text_lib.DEFAULT_MAX_LEN:
      name += f"_l{caption_max_len}"
    return cls(name=name, image_size=image_size, crop_to_bbox=bool(crop_to_bbox),
               validation_fraction=validation_fraction, seed=seed,
               caption_max_len=caption_max_len, layout=layout,
               description=(f"{layout} layout, {image_size}x{image_size} images"
                            + (" cropped around the bounding box" if crop_to_bbox else "")
                            + f", validation fraction {validation_fraction}, seed {seed}"))


class Cub(tfds.core.GeneratorBasedBuilder):
  """CUB-200-2011 photos with the 10 captions per image of Reed et al. 2016."""

  # The package, as when this class lived in data/cub.py: TFDS writes it to
  # dataset_info.json (moduleName) and reads metadata files from its parent folder, so
  # builds stay byte-identical; the package re-exports the class, so pickles resolve.
  __module__ = "diffmvae_jax.data.cub"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  # No registered configs: every config comes from CubConfig.make (a custom config to TFDS),
  # so pickled builders (grain workers) rebuild without name clashes, and no metadata file
  # is written next to the dataset before the build succeeds.
  BUILDER_CONFIGS = []
  # TFDS derives `code_path` through `importlib_resources`, a package it does not declare as
  # a dependency; naming the file directly avoids that import (no checksums file is used).
  code_path = epath.Path(__file__)

  def __init__(self, *, manual_dir: str = "", **kwargs):
    """Creates the builder.

    Args:
      manual_dir: directory holding the source data in one of the two layouts (package
        docstring); needed only to build. Not part of the config.
      **kwargs: tfds DatasetBuilder arguments (data_dir, config, file_format, ...); config
        must be a CubConfig.
    """
    if not isinstance(kwargs.get("config"), CubConfig):
      raise DataError("the CUB builder needs config=CubConfig.make(...)")
    self._cub_manual_dir = manual_dir
    self._source: CubSource | None = None
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    size = cfg.image_size
    return self.dataset_info_from_configs(
        description=(
            "CUB-200-2011 bird photos (Wah et al. 2011) with the 10 captions per image of "
            "Reed et al. 2016, one example per image; validation carved from the training "
            f"images by image. Caption vocabulary in {VOCABULARY_FILE}."),
        features=tfds.features.FeaturesDict({
            "image": helpers.raw_tensor((size, size, 3)),
            "caption": helpers.raw_tensor((CAPTIONS_PER_IMAGE, cfg.caption_max_len),
                                          np.int32),
            "caption_text": tfds.features.Sequence(tfds.features.Text(),
                                                   length=CAPTIONS_PER_IMAGE),
            # Names (hence the class count) are set from the source data at build time.
            "label": tfds.features.ClassLabel(),
            "image_id": tfds.features.Scalar(dtype=np.int32),
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=None,
        disable_shuffling=True,  # Stored order is the source order (package docstring).
    )

  def source(self) -> CubSource:
    """The validated source data of manual_dir (read once, then cached).

    Raises:
      DataError: as load_source.
    """
    if self._source is None:
      cfg = self.builder_config
      source = load_source(self._cub_manual_dir, cfg.crop_to_bbox)
      if source.layout != cfg.layout:
        raise DataError(f"config {cfg.name!r} is for the {cfg.layout} layout, but "
                        f"{self._cub_manual_dir!r} holds the {source.layout} layout; make the "
                        "builder with make_builder (it detects the layout)")
      self._source = source
    return self._source

  def download_and_prepare(self, *args, **kwargs):
    """Validates the source data, then builds as TFDS does (atomically).

    The validation runs before TFDS creates any file or folder, so bad source data leaves
    `data_dir` untouched.

    Raises:
      DataError: the source data is missing or invalid.
    """
    if not self.is_prepared():
      self.source()
    return super().download_and_prepare(*args, **kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    cfg = self.builder_config
    source = self.source()
    self.info.features["label"].names = list(source.class_names)
    train_idx, val_idx = split_train_validation(len(source.train), cfg.validation_fraction,
                                                cfg.seed)
    images = {"train": [source.train[i] for i in train_idx],
              "validation": [source.train[i] for i in val_idx],
              "test": list(source.test)}
    vocab = text_lib.Vocabulary.build(
        (c for image in images["train"] for c in image.captions), min_count=VOCAB_MIN_COUNT)
    helpers.write_vocabulary(self, vocab)
    return {split: self._generate_examples(images[split], vocab) for split in SPLITS}

  def _generate_examples(self, images: list[SourceImage],
                         vocab: text_lib.Vocabulary) -> Iterator[tuple[int, dict]]:
    cfg = self.builder_config
    for key, image in enumerate(images):
      yield key, {
          "image": load_image(image.path, cfg.image_size,
                              image.bbox if cfg.crop_to_bbox else None),
          "caption": np.stack([vocab.encode(c, cfg.caption_max_len) for c in image.captions]),
          "caption_text": list(image.captions),
          "label": image.label,
          "image_id": image.image_id,
          "file_name": image.file_name,
      }


def make_builder(*, image_size: int = 64, crop_to_bbox: bool = False,
                 validation_fraction: float = 0.1, seed: int = 0,
                 caption_max_len: int = text_lib.DEFAULT_MAX_LEN, data_dir: str = "",
                 manual_dir: str = "", layout: str | None = None) -> Cub:
  """A Cub builder for these fields.

  Args:
    image_size, crop_to_bbox, validation_fraction, seed, caption_max_len: see CubConfig.
    data_dir: TFDS data dir ('' = TFDS default, ~/tensorflow_datasets).
    manual_dir: directory with the source data (needed only to build).
    layout: OFFICIAL or MMVAE; None: `find_layout(manual_dir)`. It is part of the config
      name, so a dataset built from one layout is never read for the other.

  Returns:
    The builder (not necessarily built), writing array_record.

  Raises:
    DataError: a field is out of range.
  """
  if layout is None:
    layout = find_layout(manual_dir, crop_to_bbox)
  config = CubConfig.make(image_size, crop_to_bbox, validation_fraction, seed, caption_max_len,
                          layout)
  return Cub(data_dir=data_dir or None, config=config, file_format="array_record",
             manual_dir=manual_dir)

