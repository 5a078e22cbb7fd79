"""Tests of diffmvae_jax.data.cub on tiny fake CUBs (tests/cub_fixture.py), both layouts."""

import collections
import os
import pickle
import shutil

import ml_collections
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from diffmvae_jax.data import cub
from diffmvae_jax.data import dataset_api
from diffmvae_jax.data import text
from diffmvae_jax.data.cub import layout as cub_layout
from diffmvae_jax.data.errors import DataError
from tests import cub_fixture as fx

NUM_CLASSES, PER_CLASS = 3, 4
SIZE = 16  # Stored image side: small and fast.


def data_config(data_dir, manual_dir, **kwargs):
  return ml_collections.ConfigDict(dict(
      dataset="cub", data_dir=str(data_dir), manual_dir=str(manual_dir), num_workers=0,
      image_size=kwargs.pop("image_size", SIZE), **kwargs))


def build(config):
  builder = cub.DATASET.make_builder(config)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder


def examples(builder, split):
  source = builder.as_data_source(split)
  return [source[i] for i in range(len(source))]


def file_names(builder, split):
  return [ex["file_name"].decode() for ex in examples(builder, split)]


def pil_resized(path, size, box=None):
  with Image.open(path) as im:
    im = im.convert("RGB")
    if box is not None:
      im = im.crop(box)
    return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR))


def files_under(directory):
  return [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs]


@pytest.fixture(scope="module")
def official(tmp_path_factory):
  """(manual_dir, built builder) of the official layout."""
  root = tmp_path_factory.mktemp("cub_official")
  manual = fx.write_official_layout(root / "manual", NUM_CLASSES, PER_CLASS)
  return manual, build(data_config(root / "tfds", manual))


@pytest.fixture(scope="module")
def mmvae(tmp_path_factory):
  """(manual_dir, built builder) of the MMVAE layout (cub/ directly in manual_dir)."""
  root = tmp_path_factory.mktemp("cub_mmvae")
  manual = fx.write_mmvae_layout(root / "manual", NUM_CLASSES, PER_CLASS, nested=False)
  return manual, build(data_config(root / "tfds", manual))


# ----------------------------------------------------------------------------- layouts


def test_official_layout_builds(official):
  manual, builder = official
  assert builder.builder_config.name == "img16_val0p1_s0"
  vocab = cub.read_vocabulary(builder)
  seen = set()
  for split in cub.SPLITS:
    for ex in examples(builder, split):
      c, j = fx.parse_file_name(ex["file_name"].decode())
      seen.add((c, j))
      assert ex["file_name"].decode() == f"{fx.class_dir(c)}/{fx.file_stem(c, j)}.jpg"
      assert (split == "test") == fx.is_test_image(j)
      assert ex["label"] == c and ex["image_id"] == c * PER_CLASS + j + 1
      texts = [t.decode() for t in ex["caption_text"]]
      assert texts == fx.captions_for(c, j)
      assert ex["caption"].dtype == np.int32 and ex["caption"].shape == (10, 32)
      np.testing.assert_array_equal(ex["caption"], np.stack([vocab.encode(t) for t in texts]))
      assert ex["image"].dtype == np.uint8 and ex["image"].shape == (SIZE, SIZE, 3)
      path = manual / "CUB_200_2011" / "images" / ex["file_name"].decode()
      np.testing.assert_array_equal(ex["image"], pil_resized(path, SIZE))
  assert seen == {(c, j) for c in range(NUM_CLASSES) for j in range(PER_CLASS)}
  assert builder.info.features["label"].names == [fx.class_dir(c) for c in range(NUM_CLASSES)]
  # Stored order: images.txt order (validation removed from train in place).
  ids = [ex["image_id"] for ex in examples(builder, "train")]
  assert ids == sorted(ids)


def test_mmvae_layout_builds(mmvae):
  manual, builder = mmvae
  assert builder.builder_config.name == "mmvae_img16_val0p1_s0"
  test_classes = set(fx.mmvae_test_classes(NUM_CLASSES))
  stored = {split: examples(builder, split) for split in cub.SPLITS}
  for split, exs in stored.items():
    for ex in exs:
      name = ex["file_name"].decode()
      c, j = fx.parse_file_name(name)
      assert name == f"{'test' if c in test_classes else 'train'}/{fx.class_dir(c)}/" \
                     f"{fx.file_stem(c, j)}.jpg"
      assert (split == "test") == (c in test_classes)  # MMVAE splits by class.
      assert ex["label"] == c
      assert [t.decode() for t in ex["caption_text"]] == fx.captions_for(c, j)
      np.testing.assert_array_equal(ex["image"], pil_resized(manual / name, SIZE))
  # Image ids follow ImageFolder order (sorted class folders, sorted file names), train/
  # first; the fixture's file names do not sort in writing order.
  train_files = cub.image_folder_files(str(manual / "train"))
  ordered = sorted((ex["image_id"], ex["file_name"].decode())
                   for ex in stored["train"] + stored["validation"])
  assert [n for _, n in ordered] == [f"train/{cls}/{os.path.basename(p)}"
                                     for cls, p in train_files]
  assert [i for i, _ in ordered] == list(range(1, len(train_files) + 1))
  assert [ex["image_id"] for ex in stored["test"]] == list(
      range(len(train_files) + 1, len(train_files) + 1 + len(stored["test"])))
  assert [fx.parse_file_name(os.path.basename(p))[1] for _, p in train_files[:PER_CLASS]] \
      == sorted(range(PER_CLASS), key=lambda j: fx.file_stem(0, j))
  assert builder.info.features["label"].num_classes == NUM_CLASSES


def test_same_bird_same_pixels_in_both_layouts(official, mmvae):
  a = {fx.parse_file_name(ex["file_name"].decode()): ex["image"]
       for s in cub.SPLITS for ex in examples(official[1], s)}
  b = {fx.parse_file_name(ex["file_name"].decode()): ex["image"]
       for s in cub.SPLITS for ex in examples(mmvae[1], s)}
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("nested,text_dir", [
    (True, "text_c10"), (True, "cvpr2016_cub/text_c10"), (True, "CUB_200_2011/text_c10"),
    (False, "text_c10"), (False, "cvpr2016_cub/text_c10")])
def test_official_layout_variants_are_found(tmp_path, nested, text_dir):
  manual = fx.write_official_layout(tmp_path, 2, 4, nested=nested, text_dir=text_dir)
  layout, paths = cub.detect_layout(str(manual))
  assert layout == cub.OFFICIAL
  assert paths["root"] == str(manual / "CUB_200_2011" if nested else manual)
  assert paths["text_c10"] == str(manual / text_dir)
  source = cub.load_source(str(manual))
  assert (len(source.train), len(source.test)) == (6, 2)
  assert source.train[0].captions == tuple(fx.captions_for(0, 0))


def test_mmvae_layout_variants_are_found(tmp_path):
  nested = fx.write_mmvae_layout(tmp_path / "a", 2, 2)
  assert cub.detect_layout(str(nested)) == (cub.MMVAE, cub_layout._mmvae_paths(str(nested)))
  assert cub.detect_layout(str(nested))[1]["root"] == str(nested / "cub")
  flat = fx.write_mmvae_layout(tmp_path / "b", 2, 2, nested=False)
  assert cub.detect_layout(str(flat))[1]["root"] == str(flat)
  # Both layouts present: the official one wins.
  fx.write_official_layout(nested, 2, 2)
  assert cub.detect_layout(str(nested))[0] == cub.OFFICIAL


def test_layouts_never_share_a_build(tmp_path, official, mmvae):
  a = cub.DATASET.make_builder(data_config(tmp_path, official[0]))
  b = cub.DATASET.make_builder(data_config(tmp_path, mmvae[0]))
  assert (a.builder_config.layout, b.builder_config.layout) == (cub.OFFICIAL, cub.MMVAE)
  assert a.data_dir != b.data_dir
  # Forcing the wrong layout is refused at build time, before anything is written.
  wrong = cub.make_builder(image_size=SIZE, data_dir=str(tmp_path / "tfds"),
                           manual_dir=str(mmvae[0]), layout=cub.OFFICIAL)
  with pytest.raises(DataError, match="holds the mmvae layout"):
    wrong.download_and_prepare(file_format="array_record")
  assert not (tmp_path / "tfds").exists()


# ----------------------------------------------------------------------------- splits


def test_validation_is_carved_from_train_by_image(official, mmvae):
  for manual, builder in (official, mmvae):
    names = {split: file_names(builder, split) for split in cub.SPLITS}
    source = cub.load_source(str(manual))
    sets = {split: set(v) for split, v in names.items()}
    assert all(len(sets[s]) == len(names[s]) for s in cub.SPLITS)  # One example per image.
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"] and not sets["validation"] & sets["test"]
    assert sets["train"] | sets["validation"] == {im.file_name for im in source.train}
    assert sets["test"] == {im.file_name for im in source.test}
    n_train = len(source.train)
    assert len(names["validation"]) == max(1, round(0.1 * n_train))
    ids = {s: {ex["image_id"] for ex in examples(builder, s)} for s in cub.SPLITS}
    assert not ids["train"] & ids["validation"] and not ids["validation"] & ids["test"]
    assert not ids["train"] & ids["test"]
    # Captions of one image stay with it: each caption string set belongs to one split.
    owners = collections.defaultdict(set)
    for s in cub.SPLITS:
      for ex in examples(builder, s):
        for t in ex["caption_text"]:
          owners[t].add((s, ex["file_name"]))
    assert all(len(o) == 1 for t, o in owners.items() if b"unique" in t)


def test_split_train_validation():
  train, val = cub.split_train_validation(100, 0.1, seed=0)
  assert len(val) == 10 and len(train) == 90
  assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
  assert list(train) == sorted(train) and list(val) == sorted(val)
  again = cub.split_train_validation(100, 0.1, seed=0)
  np.testing.assert_array_equal(again[1], val)
  assert not np.array_equal(cub.split_train_validation(100, 0.1, seed=1)[1], val)
  assert len(cub.split_train_validation(5, 0.01, 0)[1]) == 1  # At least one image.
  for bad in (0.0, 1.0, 0.99):
    with pytest.raises(DataError, match="validation_fraction"):
      cub.split_train_validation(5, bad, 0)


def test_build_seed_and_fraction_change_the_split(tmp_path):
  manual = fx.write_official_layout(tmp_path / "manual", 4, 8)
  a = build(data_config(tmp_path / "tfds", manual, validation_fraction=0.25))
  b = build(data_config(tmp_path / "tfds", manual, validation_fraction=0.25, build_seed=3))
  assert a.builder_config.name == "img16_val0p25_s0"
  assert b.builder_config.name == "img16_val0p25_s3" and a.data_dir != b.data_dir
  n_train = 4 * 8 - 4 * 2  # j % 4 == 3 is test.
  for builder in (a, b):
    assert len(file_names(builder, "validation")) == round(0.25 * n_train)
    assert len(file_names(builder, "train")) == n_train - round(0.25 * n_train)
  assert set(file_names(a, "validation")) != set(file_names(b, "validation"))
  expected = cub.split_train_validation(n_train, 0.25, 3)[1]
  source = cub.load_source(str(manual))
  assert file_names(b, "validation") == [source.train[i].file_name for i in expected]


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_from_training_captions_only(official, mmvae):
  for manual, builder in (official, mmvae):
    vocab = cub.DATASET.vocabulary(builder)
    assert vocab == cub.read_vocabulary(builder)
    assert vocab.words[:3] == ["<pad>", "<eos>", "<unk>"]
    train_texts = [t.decode() for ex in examples(builder, "train") for t in ex["caption_text"]]
    assert vocab == text.Vocabulary.build(train_texts, min_count=3)
    counts = collections.Counter(w for t in train_texts for w in text.tokenize(t))
    assert all(counts[w] >= 3 for w in vocab.words[3:])
    assert "twice" not in vocab.words and "bird" in vocab.words and "red" in vocab.words
    for split in ("validation", "test"):  # Words of held-out images only are unknown.
      for name in file_names(builder, split):
        c, j = fx.parse_file_name(name)
        assert vocab.id_of(f"unique{c}x{j}") == text.UNK_ID
    c, j = fx.parse_file_name(file_names(builder, "train")[0])
    assert vocab.id_of(f"unique{c}x{j}") > text.UNK_ID
    # Saved inside the build dir, read back identical.
    path = builder.data_path / cub.VOCABULARY_FILE
    assert text.Vocabulary.from_json(path.read_text()) == vocab
    fresh = cub.DATASET.make_builder(data_config(builder.data_dir_root, manual))
    assert fresh.is_prepared() and cub.DATASET.vocabulary(fresh).words == vocab.words


def test_vocabulary_of_unbuilt_dataset_raises(tmp_path):
  builder = cub.DATASET.make_builder(data_config(tmp_path, ""))
  with pytest.raises(DataError, match="vocabulary.json"):
    cub.DATASET.vocabulary(builder)


# ----------------------------------------------------------------------------- errors


def _assert_fails_cleanly(tmp_path, manual, match, **kwargs):
  tfds_dir = tmp_path / "tfds"
  with pytest.raises(DataError, match=match) as info:
    build(data_config(tfds_dir, manual, **kwargs))
  assert not tfds_dir.exists() or not files_under(tfds_dir), files_under(tfds_dir)
  assert not tfds_dir.exists() or not os.listdir(tfds_dir)
  return str(info.value)


def test_caption_count_is_checked_per_image(tmp_path):
  manual = fx.write_official_layout(tmp_path / "manual", 2, 4)
  bad = manual / "text_c10" / fx.class_dir(1) / f"{fx.file_stem(1, 2)}.txt"
  bad.write_text("\n".join(fx.captions_for(1, 2)[:9]) + "\n\n")  # 9 lines and a blank one.
  message = _assert_fails_cleanly(tmp_path, manual, "9 non-empty caption lines")
  assert str(bad) in message and "exactly 10" in message
  bad.write_text("\n".join(fx.captions_for(1, 2) + ["one more"]))
  assert str(bad) in _assert_fails_cleanly(tmp_path, manual, "11 non-empty")


def test_caption_count_is_checked_in_mmvae_text_files(tmp_path):
  manual = fx.write_mmvae_layout(tmp_path / "manual", 3, 2)
  path = manual / "cub" / "text_testclasses.txt"
  path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
  message = _assert_fails_cleanly(tmp_path, manual, "19 non-empty caption lines")
  assert str(path) in message and "exactly 20" in message


def test_caption_count_error_when_every_file_is_short(tmp_path):
  manual = fx.write_official_layout(tmp_path / "manual", 2, 4, captions_per_image=9)
  _assert_fails_cleanly(tmp_path, manual, "has 9 non-empty")


def test_missing_files_and_folders_are_named(tmp_path):
  manual = fx.write_official_layout(tmp_path / "manual", 2, 4)
  image = manual / "CUB_200_2011" / "images" / fx.class_dir(0) / f"{fx.file_stem(0, 1)}.jpg"
  image.rename(str(image) + ".bak")
  message = _assert_fails_cleanly(tmp_path, manual, "is missing")
  assert str(image) in message
  os.rename(str(image) + ".bak", image)

  caption = manual / "text_c10" / fx.class_dir(1) / f"{fx.file_stem(1, 0)}.txt"
  caption.unlink()
  assert str(caption) in _assert_fails_cleanly(tmp_path, manual, "is missing")

  shutil.rmtree(manual / "text_c10")
  message = _assert_fails_cleanly(tmp_path, manual, "text_c10")
  assert f"{manual / 'text_c10'}{os.sep} is missing" in message

  fx.write_official_layout(manual, 2, 4)
  (manual / "CUB_200_2011" / "train_test_split.txt").unlink()
  message = _assert_fails_cleanly(tmp_path, manual, "train_test_split.txt is missing")
  assert str(manual / "CUB_200_2011" / "train_test_split.txt") in message


def test_missing_layout_says_where_the_data_comes_from(tmp_path):
  (tmp_path / "empty").mkdir()
  message = _assert_fails_cleanly(tmp_path, tmp_path / "empty", "CUB data not found")
  for needle in ("images.txt is missing", "CUB_200_2011", "text_c10", "cvpr2016_cub",
                 "Caltech", "Reed et al. 2016", "cub.zip", "MMVAE", "text_trainvalclasses.txt",
                 "--config.data.manual_dir"):
    assert needle in message, needle
  with pytest.raises(DataError, match="manual_dir is empty"):
    build(data_config(tmp_path / "tfds", ""))
  with pytest.raises(DataError, match="does not exist"):
    build(data_config(tmp_path / "tfds", tmp_path / "nope"))
  # An incomplete MMVAE layout names its own missing file.
  manual = fx.write_mmvae_layout(tmp_path / "mm", 2, 2)
  (manual / "cub" / "text_trainvalclasses.txt").unlink()
  message = _assert_fails_cleanly(tmp_path, manual, "text_trainvalclasses.txt is missing")
  assert str(manual / "cub" / "text_trainvalclasses.txt") in message


def test_undecodable_image_is_named(tmp_path):
  manual = fx.write_official_layout(tmp_path / "manual", 2, 4)
  image = manual / "CUB_200_2011" / "images" / fx.class_dir(1) / f"{fx.file_stem(1, 1)}.jpg"
  image.write_bytes(b"not a jpeg")
  tfds_dir = tmp_path / "tfds"
  with pytest.raises(DataError, match="cannot decode") as info:
    build(data_config(tfds_dir, manual))
  assert str(image) in str(info.value)
  assert not list(tfds_dir.rglob("*.array_record*"))
  assert not list(tfds_dir.rglob("vocabulary.json"))
  assert not list(tfds_dir.rglob("dataset_info.json"))


# ----------------------------------------------------------------------------- bbox crop


def test_crop_to_bbox_changes_the_image(tmp_path, official):
  manual, plain = official
  cropped = build(data_config(tmp_path, manual, crop_to_bbox=True))
  assert cropped.builder_config.name == "img16_bbox_val0p1_s0"
  plain_images = {ex["file_name"]: ex["image"] for ex in examples(plain, "test")}
  for ex in examples(cropped, "test"):
    c, j = fx.parse_file_name(ex["file_name"].decode())
    assert not np.array_equal(ex["image"], plain_images[ex["file_name"]])
    path = manual / "CUB_200_2011" / "images" / ex["file_name"].decode()
    h, w = 40, 50
    box = cub.bbox_crop_box(fx.bbox_for(c, j, (h, w)), w, h)
    np.testing.assert_array_equal(ex["image"], pil_resized(path, SIZE, box))


def test_bbox_crop_box():
  # Square of side 1.5 * the longer side, centred on the box.
  assert cub.bbox_crop_box((40, 30, 20, 10), 200, 100) == (35, 20, 65, 50)
  assert cub.bbox_crop_box((0, 0, 20, 10), 200, 100) == (0, 0, 25, 20)  # Clipped.
  assert cub.bbox_crop_box((0, 0, 500, 500), 100, 80) == (0, 0, 100, 80)


def test_crop_to_bbox_is_refused_for_mmvae_layout(tmp_path, mmvae):
  message = _assert_fails_cleanly(tmp_path, mmvae[0], "crop_to_bbox", crop_to_bbox=True)
  assert "MMVAE" in message and "bounding boxes" in message


# ----------------------------------------------------------------------------- Dataset API


def test_dataset_protocol(official):
  _, builder = official
  ds = cub.DATASET
  assert ds.name == "cub"
  assert ds.config_defaults == {"image_size": 64, "crop_to_bbox": False,
                                "validation_fraction": 0.1, "build_seed": 0}
  for method in ("make_builder", "modality_specs", "modality_kinds", "num_records",
                 "read_batch", "vocabulary"):
    assert callable(getattr(ds, method))
  specs = ds.modality_specs(builder)
  assert ds.modality_kinds({}) == {n: s.kind for n, s in specs.items()}
  assert list(specs) == ["image", "caption", "label"]
  assert specs["image"] == dataset_api.ModalitySpec("image", "image", (SIZE, SIZE, 3),
                                                    "float32")
  assert specs["caption"] == dataset_api.ModalitySpec("caption", "caption", (32,), "int32",
                                                      ds.vocabulary(builder).size)
  assert specs["label"] == dataset_api.ModalitySpec("label", "label", (), "int32", NUM_CLASSES)


def test_make_builder_reads_data_config(tmp_path):
  plain = cub.DATASET.make_builder({"data_dir": str(tmp_path), "manual_dir": ""})
  assert plain.builder_config.name == "img64_val0p1_s0"
  assert str(plain.data_dir_root) == str(tmp_path)
  config = ml_collections.ConfigDict(dict(data_dir=str(tmp_path), manual_dir="/x",
                                          image_size=32, crop_to_bbox=True,
                                          validation_fraction=0.05, build_seed=7))
  builder = cub.DATASET.make_builder(config)
  cfg = builder.builder_config
  assert cfg.name == "img32_bbox_val0p05_s7"
  assert (cfg.image_size, cfg.crop_to_bbox, cfg.validation_fraction, cfg.seed) == (
      32, True, 0.05, 7)
  for bad in (dict(image_size=0), dict(validation_fraction=1.0), dict(build_seed=-1)):
    with pytest.raises(DataError):
      cub.DATASET.make_builder(dict(data_dir=str(tmp_path), manual_dir="", **bad))
  # Grain workers get the builder by pickle.
  again = pickle.loads(pickle.dumps(builder))
  assert again.builder_config == cfg and again.data_dir == builder.data_dir


def test_num_records_and_read_batch(official):
  _, builder = official
  ds = cub.DATASET
  n = {s: len(builder.as_data_source(s)) for s in cub.SPLITS}
  assert n == {"train": 8, "validation": 1, "test": 3}
  assert {s: ds.num_records(builder, s) for s in cub.SPLITS} == {
      "train": 80, "validation": 1, "test": 3}
  with pytest.raises(DataError, match="split"):
    ds.num_records(builder, "dev")

  source = builder.as_data_source("train")
  ids = np.array([0, 1, 9, 10, 37, 79, 37], dtype=np.int64)
  batch = ds.read_batch(source, ids, "train")
  assert set(batch) == {"image", "caption", "label"}
  assert batch["image"].dtype == np.float32 and batch["image"].shape == (7, SIZE, SIZE, 3)
  assert batch["caption"].dtype == np.int32 and batch["caption"].shape == (7, 32)
  assert batch["label"].dtype == np.int32 and batch["label"].shape == (7,)
  assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
  vocab = ds.vocabulary(builder)
  for row, r in enumerate(ids.tolist()):
    ex = source[r // 10]
    np.testing.assert_allclose(batch["image"][row], ex["image"] / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(batch["caption"][row], ex["caption"][r % 10])
    assert f"caption{r % 10}" in vocab.decode(batch["caption"][row]).split()
    assert batch["label"][row] == ex["label"]
  images = ds.read_batch(source, np.arange(0, 80, 10), "train")["image"]
  assert images.min() < -0.5 and images.max() > 0.5  # Uses the range.

  for split in ("validation", "test"):
    source = builder.as_data_source(split)
    batch = ds.read_batch(source, np.arange(n[split]), split)
    assert batch["image"].shape == (n[split], SIZE, SIZE, 3)
    for i in range(n[split]):
      np.testing.assert_array_equal(batch["caption"][i], source[i]["caption"][0])
      assert "caption0" in vocab.decode(batch["caption"][i]).split()
