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

Modules: source.py (backgrounds, pairing, crops, compose, captions), attributes.py (the 15
attributes), examples.py (the examples both builds write), builder.py (the TFDS builder
PolyMnist, PolyMnistConfig, make_builder; only where tensorflow_datasets imports),
array_build.py (ArrayPolyMnist: the same examples as numpy arrays, data/storage_backend.py),
dataset.py (DATASET, the data/dataset_api.Dataset adapter the pipeline uses).
"""

from diffmvae_jax.data import storage_backend
from diffmvae_jax.data.builder_helpers import read_vocabulary
from diffmvae_jax.data.polymnist.attributes import (
    ATTRIBUTE_NAMES, CLOSED_LOOP_DIGITS, NUM_ATTRIBUTES, digit_attributes, ink_counts,
    ink_medians, slants)
from diffmvae_jax.data.polymnist.array_build import ArrayPolyMnist
from diffmvae_jax.data.polymnist.dataset import DATASET
from diffmvae_jax.data.polymnist.source import (
    BACKGROUNDS, BINARISE_THRESHOLD, CAPTION_TEMPLATES, DIGIT_WORDS, IMAGE_SHAPE, MASK_SHAPE,
    SPLIT_IDS, VOCAB_MIN_COUNT, VOCABULARY_FILE, captions, compose, crop_offsets,
    load_background, pair_by_label, skimage_data_dir, stroke_mask)

# The names code outside the package uses (the old module's public API).
__all__ = [
    "ATTRIBUTE_NAMES", "BACKGROUNDS", "BINARISE_THRESHOLD", "CAPTION_TEMPLATES",
    "CLOSED_LOOP_DIGITS", "DATASET", "DIGIT_WORDS", "IMAGE_SHAPE", "MASK_SHAPE",
    "NUM_ATTRIBUTES", "SPLIT_IDS", "VOCAB_MIN_COUNT", "VOCABULARY_FILE", "captions", "compose",
    "crop_offsets", "digit_attributes", "ink_counts", "ink_medians", "load_background",
    "make_builder", "pair_by_label", "PolyMnist", "PolyMnistConfig", "read_vocabulary",
    "skimage_data_dir", "slants", "stroke_mask", "ArrayPolyMnist",
]

if storage_backend.tfds_available():  # The TFDS builder needs tensorflow_datasets.
  # pylint: disable-next=g-import-not-at-top
  from diffmvae_jax.data.polymnist.builder import PolyMnist, PolyMnistConfig, make_builder
else:
  __all__ = [n for n in __all__ if n not in ("PolyMnist", "PolyMnistConfig", "make_builder")]
