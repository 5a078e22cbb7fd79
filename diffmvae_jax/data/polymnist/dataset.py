"""PolyMNIST as the input pipeline sees it: the data/dataset_api.Dataset adapter DATASET."""

from __future__ import annotations

import numpy as np

from diffmvae_jax.data import builder_helpers as helpers
from diffmvae_jax.data import storage_backend
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.dataset_api import ModalitySpec
from diffmvae_jax.data.polymnist.array_build import ArrayPolyMnist
from diffmvae_jax.data.polymnist.attributes import ATTRIBUTE_NAMES, NUM_ATTRIBUTES
from diffmvae_jax.data.polymnist.source import IMAGE_SHAPE, MASK_SHAPE

if storage_backend.tfds_available():  # Absent on a bare JAX image: numpy builds only.
  # pylint: disable-next=g-import-not-at-top
  from diffmvae_jax.data.polymnist import builder as tfds_builder


class _PolyMnistDataset:
  """PolyMNIST as the input pipeline sees it (data/dataset_api.Dataset).

  Builds are TFDS array_record or numpy arrays (data/storage_backend.py); both hold the
  same examples and read the same way. Data config keys: num_image_modalities, build_seed,
  max_examples_per_split (see configs/default.py). One record per stored example in every
  split. Modalities: m0..m{M-1} (image), caption, label, mask (m0's stroke mask, float32
  {0, 1} (28, 28, 1)) and attributes (float32 {0, 1} (15,), ATTRIBUTE_NAMES).
  """

  name = "polymnist"
  attribute_names = ATTRIBUTE_NAMES
  config_defaults = {"num_image_modalities": 5, "build_seed": 0, "max_examples_per_split": 0}

  def make_builder(self, data_config):
    """The TFDS builder (PolyMnist) or, with the numpy backend, an ArrayPolyMnist.

    data/storage_backend.py picks the backend; both build the same examples.
    """
    get = lambda k: data_config.get(k, self.config_defaults.get(k))  # noqa: E731
    make = (ArrayPolyMnist if storage_backend.backend() == "numpy"
            else tfds_builder.make_builder)
    return make(
        num_modalities=int(get("num_image_modalities")),
        seed=int(get("build_seed")),
        max_examples_per_split=int(get("max_examples_per_split")),
        data_dir=helpers.config_path(data_config, "data_dir"),
        manual_dir=helpers.config_path(data_config, "manual_dir"))

  def modality_kinds(self, data_config) -> dict:
    """m0..m{M-1} images, caption, label, mask, attributes (M = num_image_modalities)."""
    num = int(data_config.get("num_image_modalities",
                              self.config_defaults["num_image_modalities"]))
    kinds = {f"m{m}": "image" for m in range(num)}
    kinds.update(caption="caption", label="label", mask="mask", attributes="attributes")
    return kinds

  def modality_specs(self, builder) -> dict:
    cfg = builder.builder_config
    vocab = helpers.read_vocabulary(builder)
    specs = {f"m{m}": ModalitySpec(f"m{m}", "image", IMAGE_SHAPE, "float32")
             for m in range(cfg.num_modalities)}
    specs["caption"] = ModalitySpec("caption", "caption", (cfg.caption_max_len,), "int32",
                                    vocab.size)
    specs["label"] = ModalitySpec("label", "label", (), "int32", 10)
    specs["mask"] = ModalitySpec("mask", "mask", MASK_SHAPE, "float32")
    specs["attributes"] = ModalitySpec("attributes", "attributes", (NUM_ATTRIBUTES,),
                                       "float32", NUM_ATTRIBUTES)
    return specs

  def num_records(self, builder, split: str) -> int:
    return int(builder.info.splits[split].num_examples)

  def read_batch(self, source, ids: np.ndarray, split: str) -> dict:
    del split  # Every split reads the same way.
    examples = source.__getitems__([int(i) for i in ids])
    image_keys = sorted((k for k in examples[0] if k[0] == "m" and k[1:].isdigit()),
                        key=lambda k: int(k[1:]))
    batch = {key: helpers.scale_images(examples, key) for key in image_keys}
    batch["caption"] = helpers.stack_field(examples, "caption", np.int32)
    batch["label"] = np.asarray([ex["label"] for ex in examples], dtype=np.int32)
    batch["mask"] = helpers.stack_field(examples, "mask", np.float32)
    batch["attributes"] = helpers.stack_field(examples, "attributes", np.float32)
    return batch

  def vocabulary(self, builder) -> text_lib.Vocabulary:
    return helpers.read_vocabulary(builder)


DATASET = _PolyMnistDataset()
