"""Word-level vocabulary and tokeniser shared by captioned datasets (PolyMNIST, CUB).

Tokenisation: the text is lower-cased and split into words: maximal runs of letters and digits
(Unicode included), possibly joined by inner apostrophes (regex `[^\W_]+(?:'[^\W_]+)*`).
Everything else (punctuation, underscores, whitespace, leading/trailing apostrophes) separates
tokens and is dropped, so "A bird, it's red." gives ['a', 'bird', "it's", 'red'].

Ids: `<pad>` = 0, `<eos>` = 1, `<unk>` = 2, then the words seen at least `min_count` times in
the training captions, ordered by count (descending) then alphabetically, so the same captions
always give the same ids. `encode` appends `<eos>` and pads with `<pad>` to `max_len`; a long
caption is truncated to `max_len - 1` words so `<eos>` always fits.
"""

from __future__ import annotations

import collections
import json
import re
from typing import Iterable, Sequence

import numpy as np

from diffmvae_jax.data.errors import DataError

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
SPECIALS = (PAD, EOS, UNK)
DEFAULT_MAX_LEN = 32
DEFAULT_MIN_COUNT = 3

_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> list[str]:
  """Splits `text` into lower-cased word tokens; punctuation is dropped.

  Args:
    text: any string.

  Returns:
    Tokens: maximal runs of letters/digits, possibly joined by inner apostrophes ("it's").
  """
  return _TOKEN_RE.findall(text.lower())


class Vocabulary:
  """A fixed word <-> id mapping with the specials <pad>=0, <eos>=1, <unk>=2."""

  def __init__(self, words: Sequence[str]):
    """Creates a vocabulary.

    Args:
      words: the non-special words in id order (ids start at 3).
    """
    words = list(words)
    if any(w in SPECIALS for w in words):
      raise ValueError(f"words must not contain the specials {SPECIALS}")
    if len(set(words)) != len(words):
      raise ValueError("words must be unique")
    self._itos = list(SPECIALS) + words
    self._stoi = {w: i for i, w in enumerate(self._itos)}

  @classmethod
  def build(cls, texts: Iterable[str], min_count: int = DEFAULT_MIN_COUNT) -> "Vocabulary":
    """Builds a vocabulary from (training) captions.

    Args:
      texts: captions; each is tokenised with `tokenize`.
      min_count: keep words occurring at least this many times in total.

    Returns:
      A Vocabulary with words ordered by count (descending), then alphabetically.
    """
    counts = collections.Counter(tok for text in texts for tok in tokenize(text))
    kept = [(w, c) for w, c in counts.items() if c >= min_count and w not in SPECIALS]
    kept.sort(key=lambda wc: (-wc[1], wc[0]))
    return cls([w for w, _ in kept])

  @property
  def size(self) -> int:
    """Number of ids, specials included."""
    return len(self._itos)

  def __len__(self) -> int:
    return self.size

  def __eq__(self, other) -> bool:
    return isinstance(other, Vocabulary) and self._itos == other._itos

  @property
  def words(self) -> list[str]:
    """All tokens in id order, specials first."""
    return list(self._itos)

  def id_of(self, word: str) -> int:
    """Id of `word`, or UNK_ID if unknown."""
    return self._stoi.get(word, UNK_ID)

  def encode(self, text: str, max_len: int = DEFAULT_MAX_LEN) -> np.ndarray:
    """Tokenises and encodes a caption.

    Args:
      text: a caption.
      max_len: output length (>= 1), <eos> included.

    Returns:
      int32 (max_len,): word ids (unknown words -> <unk>), then <eos>, then <pad> zeros.
      At most max_len - 1 words are kept so <eos> is always present.
    """
    if max_len < 1:
      raise ValueError(f"max_len must be >= 1, got {max_len}")
    ids = [self.id_of(tok) for tok in tokenize(text)][: max_len - 1]
    out = np.full((max_len,), PAD_ID, dtype=np.int32)
    out[: len(ids)] = ids
    out[len(ids)] = EOS_ID
    return out

  def decode(self, ids: Iterable[int]) -> str:
    """Turns ids back into a space-joined string, stopping at the first <eos>.

    Args:
      ids: int sequence or array (L,).

    Returns:
      The words joined by single spaces; <pad> is skipped, <unk> is written as '<unk>'.
    """
    words = []
    for i in np.asarray(ids).reshape(-1).tolist():
      if i == EOS_ID:
        break
      if i == PAD_ID:
        continue
      words.append(self._itos[i] if 0 <= i < len(self._itos) else UNK)
    return " ".join(words)

  def to_json(self) -> str:
    """Serialises to JSON: {"specials": [...], "words": [...]} (ids are list positions)."""
    return json.dumps({"specials": list(SPECIALS), "words": self._itos[len(SPECIALS):]},
                      ensure_ascii=False, indent=0)

  @classmethod
  def from_json(cls, text: str) -> "Vocabulary":
    """Inverse of `to_json`.

    Raises:
      ValueError: the JSON is not a vocabulary written by `to_json`.
    """
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("specials") != list(SPECIALS):
      raise ValueError(f"not a vocabulary JSON with specials {list(SPECIALS)}")
    return cls(data["words"])

  def __repr__(self) -> str:
    return f"Vocabulary(size={self.size})"


# The file a captioned dataset's build writes next to its records (Vocabulary.to_json).
VOCABULARY_FILE = "vocabulary.json"


def read_saved_vocabulary(dataset_path) -> Vocabulary:
  """The vocabulary a captioned dataset's build saved in `dataset_path` / VOCABULARY_FILE.

  Args:
    dataset_path: the built dataset's directory (a TFDS builder's `data_path`).

  Raises:
    DataError: the dataset is not built or has no vocabulary file.
  """
  path = dataset_path / VOCABULARY_FILE
  if not path.exists():
    raise DataError(f"{path} is missing: build the dataset first (prepare_dataset) or "
                    "delete its directory so it is rebuilt.")
  return Vocabulary.from_json(path.read_text())
