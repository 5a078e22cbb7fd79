"""PolyMNIST's raw sources and image recipe: backgrounds, pairing, crops, compose, captions.

Every random draw comes from `np.random.default_rng(SeedSequence((seed, split_id, modality,
purpose)))`; see the package docstring for the recipe and its determinism.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

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
