"""diffmvae_jax.config_files: configs by name from a checkout and from an installed layout,
with `from configs import x` working only while a file loads."""

import importlib.util
import os
import shutil
import sys

import pytest

from diffmvae_jax import config_files
from diffmvae_jax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_config_loads_by_name_like_the_command_line():
  assert config_files.config_dir() == os.path.join(ROOT, 'configs')
  names = config_files.names()
  assert {'default', 'demo', 'notebook', 'test_tiny', 'compare_polymnist'} <= set(names)
  assert 'paper_recipe' not in names   # Settings other configs share: no get_config.
  for name in names:
    assert config_files.get_config(name).keys(), name
  assert config_files.get_config('compare_polymnist', 'mopoe').loss.beta == 2.5
  assert config_files.get_config('notebook', 'smoke').data.max_examples_per_split == 64
  with pytest.raises(ValueError, match='Unknown arm'):
    config_files.get_config('compare_polymnist', 'bogus')


def test_errors_are_one_line_config_errors(tmp_path):
  with pytest.raises(ConfigError, match="no config named 'nope'.*demo"):
    config_files.get_config('nope')
  with pytest.raises(ConfigError, match='does not exist'):
    config_files.load_config_file(str(tmp_path / 'missing.py'))
  (tmp_path / 'empty.py').write_text('X = 1\n')
  with pytest.raises(ConfigError, match='defines no get_config'):
    config_files.load_config_file(str(tmp_path / 'empty.py'))


def test_the_configs_name_is_bound_only_while_loading(tmp_path):
  saved = {k: sys.modules.pop(k) for k in list(sys.modules)
           if k == 'configs' or k.startswith('configs.')}
  try:
    config_files.get_config('demo')
    assert 'configs' not in sys.modules and 'configs.demo' not in sys.modules
    # A `configs` module imported before (another project's, here) is put back untouched.
    other = type(sys)('configs')
    sys.modules['configs'] = other
    user = tmp_path / 'mine.py'
    user.write_text('from configs import demo\n\ndef get_config(arm=None):\n'
                    '  config = demo.get_config()\n  config.seed = 7 if arm is None else 8\n'
                    '  return config\n')
    assert config_files.load_config_file(str(user)).seed == 7
    assert config_files.load_config_file(str(user), 'x').seed == 8
    assert sys.modules['configs'] is other
  finally:
    for k in [k for k in sys.modules if k == 'configs' or k.startswith('configs.')]:
      del sys.modules[k]
    sys.modules.update(saved)


def test_an_installed_layout_reads_the_configs_inside_the_package(tmp_path):
  """pip puts configs/*.py in site-packages/diffmvae_jax/configs/ (pyproject.toml); a
  `configs/` beside the package there (another distribution's) must not be used."""
  site = tmp_path / 'site-packages'
  package = site / 'diffmvae_jax'
  shutil.copytree(os.path.join(ROOT, 'configs'), package / 'configs',
                  ignore=shutil.ignore_patterns('__pycache__'))
  shutil.copy(os.path.join(ROOT, 'diffmvae_jax', 'config_files.py'), package)
  (site / 'configs').mkdir()
  (site / 'configs' / 'default.py').write_text('raise RuntimeError("wrong directory")\n')
  spec = importlib.util.spec_from_file_location('installed_config_files',
                                                package / 'config_files.py')
  installed = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(installed)
  assert installed.config_dir() == str(package / 'configs')
  config = installed.get_config('compare_polymnist', 'mopoe')
  assert config.loss.beta == 2.5 and config.model.decoders.image == 'laplace'
  (package / 'configs' / 'default.py').unlink()
  (site / 'configs' / 'default.py').unlink()
  with pytest.raises(ConfigError, match='no config files'):
    installed.config_dir()
