"""Which storage PolyMNIST is built into and read from: TFDS array_record or numpy arrays.

  'tfds'   the TFDS builder (data/polymnist/builder.py) writes array_record files; the
           default wherever tensorflow_datasets imports.
  'numpy'  data/polymnist/array_build.py writes one .npy file per feature and split, with
           the same examples (same builder logic and seed); the default where
           tensorflow_datasets is absent (a bare JAX image, the lent accelerator machine).

The environment variable DIFFMVAE_DATA_BACKEND=tfds|numpy overrides the default (tests use
it to exercise the numpy path where TFDS is installed). The input pipeline (grain) is the
same for both, so batches, shuffling, sharding and iterator state are too.
"""

from __future__ import annotations

import functools
import os

from diffmvae_jax.data.errors import DataError

ENV_VAR = "DIFFMVAE_DATA_BACKEND"
BACKENDS = ("tfds", "numpy")


@functools.cache
def tfds_available() -> bool:
  """Whether tensorflow_datasets imports here (imported once, cached)."""
  try:
    # pylint: disable-next=g-import-not-at-top,unused-import,import-outside-toplevel
    import tensorflow_datasets  # noqa: F401
  except ImportError:
    return False
  return True


def backend() -> str:
  """The storage backend in use: $DIFFMVAE_DATA_BACKEND, else 'tfds' if it imports.

  Returns:
    'tfds' or 'numpy'.

  Raises:
    DataError: the variable names an unknown backend, or 'tfds' where TFDS is absent.
  """
  name = os.environ.get(ENV_VAR, "").strip().lower()
  if not name:
    return "tfds" if tfds_available() else "numpy"
  if name not in BACKENDS:
    raise DataError(f"{ENV_VAR}={name!r} is not one of {list(BACKENDS)}")
  if name == "tfds" and not tfds_available():
    raise DataError(f"{ENV_VAR}=tfds but tensorflow_datasets does not import here; unset it "
                    "(the numpy build is used) or install tensorflow-datasets")
  return name
