"""Shared fixtures: a tiny PolyMNIST built once per session, and the tiny config."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Tests are dominated by XLA compilation of tiny models: skip the LLVM backend's
# optimisation passes (3-8x faster compiles on CPU; the numerics are unchanged).
# Subprocesses started by tests inherit this.
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_backend_optimization_level=0').strip()


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """One persistent XLA cache for the session: identical steps compile once.

  Many tests train the same tiny model (in this process and in subprocesses, which
  inherit the environment variable); the cache turns their repeated compilations
  into reads.
  """
  import jax
  directory = str(tmp_path_factory.mktemp('jax_cache'))
  os.environ['JAX_COMPILATION_CACHE_DIR'] = directory
  jax.config.update('jax_compilation_cache_dir', directory)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  yield directory


@pytest.fixture(scope='session')
def tiny_data_dir(tmp_path_factory):
  """A TFDS data dir holding the tiny 3-modality PolyMNIST of configs/test_tiny.py."""
  from configs import test_tiny
  from diffmvae_jax.data import pipeline
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  config = test_tiny.get_config()
  config.data.data_dir = data_dir
  pipeline.prepare_dataset(config.data)
  return data_dir


@pytest.fixture
def tiny_config(tiny_data_dir):
  """A fresh configs/test_tiny.py config pointing at the session's tiny dataset."""
  from configs import test_tiny
  config = test_tiny.get_config()
  config.data.data_dir = tiny_data_dir
  return config
