"""PolyMNIST's numpy build (data/polymnist/array_build.py): the same examples as the TFDS
build, the same batches through the pipeline, resumable iterators, backend selection."""
import os

import numpy as np
import pytest

from diffmvae_jax.data import pipeline
from diffmvae_jax.data import storage_backend
from diffmvae_jax.data.errors import DataError
from diffmvae_jax.data.polymnist.array_build import ArrayPolyMnist


def _with_backend(monkeypatch, name):
  monkeypatch.setenv(storage_backend.ENV_VAR, name)


def test_same_examples_as_tfds_build(tiny_config, monkeypatch):
  _with_backend(monkeypatch, 'tfds')
  tfds_builder = pipeline.prepare_dataset(tiny_config.data)
  _with_backend(monkeypatch, 'numpy')
  array_builder = pipeline.prepare_dataset(tiny_config.data)
  assert isinstance(array_builder, ArrayPolyMnist)
  assert array_builder.data_dir != str(tfds_builder.data_dir)
  assert array_builder.builder_config.name == tfds_builder.builder_config.name
  for split in ('train', 'validation', 'test'):
    ours, theirs = array_builder.as_data_source(split), tfds_builder.as_data_source(split)
    assert len(ours) == len(theirs) == array_builder.info.splits[split].num_examples
    ids = list(range(len(ours)))
    for a, b in zip(ours.__getitems__(ids), theirs.__getitems__(ids)):
      assert set(a) == set(b)
      for key in a:
        want = b[key].decode() if key == 'caption_text' else np.asarray(b[key])
        got = np.asarray(a[key])
        assert got.dtype == np.asarray(want).dtype, key
        np.testing.assert_array_equal(got, want, err_msg=f'{split} {key}')
  assert (pipeline.load_vocabulary(tiny_config.data).to_json()
          == (tfds_builder.data_path / 'vocabulary.json').read_text())


def test_same_batches_and_resume(tiny_config, monkeypatch):
  def train_batches(backend, state=None, n=4):
    _with_backend(monkeypatch, backend)
    it = pipeline.make_train_iterator(tiny_config.data, global_batch_size=8, seed=5,
                                      process_index=1, process_count=2)
    if state is not None:
      it.set_state(state)
    return [next(it) for _ in range(n)], it.get_state()

  tfds_batches, _ = train_batches('tfds', n=10)  # 10 x 8 > 64: crosses an epoch.
  numpy_batches, _ = train_batches('numpy', n=10)
  for x, y in zip(tfds_batches, numpy_batches):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  _, state = train_batches('numpy', n=6)
  resumed, _ = train_batches('numpy', state=state, n=4)
  for x, y in zip(resumed, numpy_batches[6:]):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])

  for backend in ('tfds', 'numpy'):
    _with_backend(monkeypatch, backend)
    batches = list(pipeline.make_eval_iterator(tiny_config.data, split='test',
                                               global_batch_size=24, num_examples=50))
    assert len(batches) == 3 and int(sum(b['valid'].sum() for b in batches)) == 50
    if backend == 'tfds':
      tfds_eval = batches
  for x, y in zip(tfds_eval, batches):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


def test_backend_selection(monkeypatch):
  monkeypatch.delenv(storage_backend.ENV_VAR, raising=False)
  assert storage_backend.backend() == ('tfds' if storage_backend.tfds_available() else 'numpy')
  _with_backend(monkeypatch, 'parquet')
  with pytest.raises(DataError, match='not one of'):
    storage_backend.backend()


def test_build_is_atomic_and_checks_fields(tmp_path, monkeypatch):
  with pytest.raises(DataError, match='num_image_modalities'):
    ArrayPolyMnist(num_modalities=0, data_dir=str(tmp_path))
  builder = ArrayPolyMnist(num_modalities=2, max_examples_per_split=8, data_dir=str(tmp_path))
  assert not builder.is_prepared()
  with pytest.raises(DataError, match='not built'):
    builder.as_data_source('train')
  monkeypatch.setattr('diffmvae_jax.data.polymnist.array_build.VOCABULARY_FILE',
                      os.path.join('missing_dir', 'vocabulary.json'))
  with pytest.raises(Exception):  # The build fails half-way: nothing is left behind.
    builder.download_and_prepare()
  assert not builder.is_prepared()
  assert os.listdir(os.path.dirname(builder.data_dir)) == []
