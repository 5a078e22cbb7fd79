"""Makes the packages named in DIFFMVAE_BLOCK_IMPORTS unimportable (tests only).

Put this directory first on PYTHONPATH and set DIFFMVAE_BLOCK_IMPORTS to comma-separated
top-level package names (e.g. 'tensorflow,tensorflow_datasets,clu'): Python's `site` imports
this file at start-up, and every import of a blocked package (or one of its submodules) then
raises ModuleNotFoundError and importlib.util.find_spec returns None, as on a machine where
it is not installed. tests/test_device_check.py
simulates the lent accelerator machine (no TensorFlow, TFDS or clu) this way.
"""

import importlib.abc
import os
import sys

_BLOCKED = frozenset(n.strip() for n in os.environ.get("DIFFMVAE_BLOCK_IMPORTS", "").split(",")
                     if n.strip())


class _Hiding(importlib.abc.MetaPathFinder):
  """Wraps one of sys.meta_path's finders: blocked names are not found (find_spec returns
  None, as for an absent package, so importlib.util.find_spec probes see None and imports
  raise ModuleNotFoundError); everything else is delegated."""

  def __init__(self, finder):
    self._finder = finder

  def find_spec(self, fullname, path=None, target=None):
    if fullname.split(".")[0] in _BLOCKED:
      return None
    find = getattr(self._finder, "find_spec", None)
    return None if find is None else find(fullname, path, target)

  def invalidate_caches(self):
    invalidate = getattr(self._finder, "invalidate_caches", None)
    if invalidate is not None:
      invalidate()

  def __getattr__(self, name):
    return getattr(self._finder, name)


if _BLOCKED:
  sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]
