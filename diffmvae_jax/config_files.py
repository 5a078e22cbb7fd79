"""The experiment configs (configs/*.py) by name, from a checkout or from the installed package.

  from diffmvae_jax import config_files
  config = config_files.get_config('demo')                        # configs/demo.py
  config = config_files.get_config('compare_polymnist', 'mopoe')  # configs/compare_polymnist.py:mopoe
  config = config_files.load_config_file('my_config.py')          # any file, same imports

What `--config=configs/demo.py` gives on the command line, without a checkout: in a checkout
the files are `<root>/configs/`; `pip install` ships the same files inside the package, as
`diffmvae_jax/configs/` (pyproject.toml maps that package path onto the top-level configs/
directory), so no top-level `configs` package is ever installed. Config files import their
siblings as `from configs import default`, which works on the command line because the
checkout root is on sys.path; here the name `configs` is bound to the config directory only
while a file loads, and whatever `configs` modules were imported before are put back after.
"""

import contextlib
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading

import ml_collections

from diffmvae_jax.errors import ConfigError

PACKAGE = 'configs'   # The name config files import their siblings by.
_LOCK = threading.Lock()


def config_dir() -> str:
  """The directory of the config files: the installed package's, else the checkout's.

  Returns:
    `<site-packages>/diffmvae_jax/configs` for an installed package, else `<root>/configs`
    beside the diffmvae_jax/ of a checkout (also an editable install).

  Raises:
    ConfigError: neither holds configs/default.py.
  """
  package = os.path.dirname(os.path.abspath(__file__))
  for directory in (os.path.join(package, PACKAGE),
                    os.path.join(os.path.dirname(package), PACKAGE)):
    if os.path.isfile(os.path.join(directory, 'default.py')):
      return directory
  raise ConfigError(f'no config files next to {package}: expected {PACKAGE}/default.py in the '
                    'installed package or in the checkout root; reinstall with pip install.')


def names() -> list[str]:
  """The names get_config accepts: the stems of the files that define get_config, sorted."""
  directory = config_dir()
  found = []
  for f in sorted(os.listdir(directory)):
    if f.endswith('.py') and not f.startswith('_'):
      with open(os.path.join(directory, f)) as source:
        if re.search(r'^def get_config\(', source.read(), re.MULTILINE):
          found.append(f[:-3])
  return found


def get_config(name: str, arm: str | None = None) -> ml_collections.ConfigDict:
  """Returns configs/<name>.py's get_config() (or get_config(arm)), like --config=...:arm.

  Args:
    name: a config file's stem, e.g. 'demo' or 'compare_polymnist' (see names()).
    arm: the text after ':' on the command line (configs/compare_polymnist.py:mopoe), passed
      to the file's get_config; None calls get_config() with no argument.

  Returns:
    a fresh ConfigDict (changing it changes nothing else).

  Raises:
    ConfigError: no config file of that name.
  """
  if name not in names():
    raise ConfigError(f'no config named {name!r} in {config_dir()}; choose one of '
                      f'{", ".join(names())}.')
  with _configs_package(config_dir()):
    module = importlib.import_module(f'{PACKAGE}.{name}')
    return _call(module, arm)


def load_config_file(path: str, arm: str | None = None) -> ml_collections.ConfigDict:
  """Returns the get_config() of any config file, which may import `from configs import x`.

  Args:
    path: a Python file defining get_config (e.g. one written in a notebook).
    arm: as get_config.

  Returns:
    the file's config.

  Raises:
    ConfigError: the file does not exist or defines no get_config.
  """
  if not os.path.isfile(path):
    raise ConfigError(f'config file {path} does not exist.')
  with _configs_package(config_dir()):
    name = f'_diffmvae_config_{abs(hash(os.path.abspath(path)))}'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return _call(module, arm)


def _call(module, arm: str | None) -> ml_collections.ConfigDict:
  get = getattr(module, 'get_config', None)
  if get is None:
    raise ConfigError(f'{module.__file__} defines no get_config().')
  return get() if arm is None else get(arm)


@contextlib.contextmanager
def _configs_package(directory: str):
  """While open, `import configs.<x>` reads `directory`; sys.modules is restored after."""
  def ours():
    return [k for k in sys.modules if k == PACKAGE or k.startswith(PACKAGE + '.')]

  with _LOCK:
    saved = {k: sys.modules.pop(k) for k in ours()}
    spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [directory]
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    try:
      yield
    finally:
      for k in ours():
        del sys.modules[k]
      sys.modules.update(saved)
