"""PolyMNIST's examples, computed without TensorFlow: what both builds write.

The TFDS builder (builder.py) and the numpy build (array_build.py) call the same two
functions, so the two storage formats hold identical examples for the same config:

  texts, vocab, thick = split_inputs(mnist, seed, max_examples_per_split)
  for i, example in generate_examples(split, mnist[split], texts[split], vocab, thick,
                                      num_modalities=..., seed=..., ...):
    ...

Example i's fields are described in the package docstring (__init__.py).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.errors import DataError
from diffmvae_jax.data.polymnist import attributes
from diffmvae_jax.data.polymnist import source
from diffmvae_jax.data.polymnist.source import BACKGROUNDS, SPLIT_IDS, VOCAB_MIN_COUNT


def variant_name(num_modalities: int, seed: int = 0, max_examples_per_split: int = 0,
                 caption_max_len: int = text_lib.DEFAULT_MAX_LEN) -> str:
  """The name of a build variant, derived from its fields (e.g. 'm5_s0', 'm3_s1_n60').

  Args:
    num_modalities: image modalities M, 1..len(BACKGROUNDS).
    seed: the build seed, >= 0.
    max_examples_per_split: >= 0 (0 = all).
    caption_max_len: >= 2.

  Returns:
    'm{M}_s{seed}', then '_n{max}' when truncated and '_l{len}' for a non-default length.

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
  return name


def truncated(n: int, max_examples_per_split: int) -> int:
  """How many of a split's n MNIST examples a config keeps.

  Args:
    n: the MNIST split's size.
    max_examples_per_split: the config's limit, 0 = all.

  Returns:
    min(n, limit), or n without a limit.
  """
  return min(n, max_examples_per_split) if max_examples_per_split else n


def split_inputs(mnist: dict, seed: int, max_examples_per_split: int
                 ) -> tuple[dict, text_lib.Vocabulary, np.ndarray]:
  """What every split's examples depend on besides the split itself.

  Args:
    mnist: split -> mnist_source split data (images, labels), from `load_mnist`.
    seed: the build seed.
    max_examples_per_split: 0 = all examples.

  Returns:
    (split -> list of caption texts of the kept examples, the vocabulary built from the
    training captions (min count VOCAB_MIN_COUNT), the per-class ink medians of the full
    train split (the 'thick' attribute's thresholds)).
  """
  texts = {}
  for split in SPLIT_IDS:
    labels = mnist[split].labels
    texts[split] = source.captions(labels[:truncated(len(labels), max_examples_per_split)],
                                   len(labels), seed, split)
  vocab = text_lib.Vocabulary.build(texts["train"], min_count=VOCAB_MIN_COUNT)
  thick = attributes.ink_medians(mnist["train"].images, mnist["train"].labels)
  return texts, vocab, thick


def generate_examples(split: str, split_data, split_texts, vocab: text_lib.Vocabulary,
                      thick_thresholds: np.ndarray, *, num_modalities: int, seed: int,
                      max_examples_per_split: int, caption_max_len: int
                      ) -> Iterator[tuple[int, dict]]:
  """Yields (i, example) for the kept examples of one split, in MNIST order.

  Args:
    split: 'train' | 'validation' | 'test'.
    split_data: the MNIST split (images uint8 (N, 28, 28), labels (N,)).
    split_texts: the split's caption texts (`split_inputs`).
    vocab: the caption vocabulary (`split_inputs`).
    thick_thresholds: per-class ink medians (`split_inputs`).
    num_modalities, seed, max_examples_per_split, caption_max_len: the build config.

  Yields:
    (i, {'m0'..: uint8 (28, 28, 3), 'label': int, 'caption': int32 (caption_max_len,),
    'caption_text': str, 'mnist_index': int32 (M,), 'mask': uint8 (28, 28, 1),
    'attributes': uint8 (15,)}).
  """
  total = len(split_data.labels)
  n = truncated(total, max_examples_per_split)
  labels = split_data.labels[:n]
  images = split_data.images[:n]
  pairing = source.pair_by_label(labels, num_modalities, seed, split)
  offsets = [source.crop_offsets(total, m, seed, split)[:n] for m in range(num_modalities)]
  backgrounds = [source.load_background(m) for m in range(num_modalities)]
  digits0 = images[pairing[0]]  # Modality 0's digits (pairing[0] is the identity).
  masks = source.stroke_mask(digits0)
  attrs = attributes.digit_attributes(digits0, labels[pairing[0]], thick_thresholds)
  for i in range(n):
    example = {f"m{m}": source.compose(images[pairing[m, i]], backgrounds[m], offsets[m][i])
               for m in range(num_modalities)}
    example.update(
        label=int(labels[i]),
        caption=vocab.encode(split_texts[i], caption_max_len),
        caption_text=split_texts[i],
        mnist_index=pairing[:, i].astype(np.int32),
        mask=masks[i],
        attributes=attrs[i],
    )
    yield i, example
