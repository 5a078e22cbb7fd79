"""Tests of diffmvae_jax.data.celebamask_hq on fake CelebAMask-HQ layouts written at test time."""

import os

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from diffmvae_jax.data import celebamask_hq as cmhq
from diffmvae_jax.data.errors import DataError
from tests import celebamask_fixture as fx

IMAGE_SIZE = 16  # Fixture JPEGs are 64px, masks 32px: the mask resize is a 2x2 box.
NUM_IMAGES = 12
SPLIT_COUNTS = {"train": 5, "validation": 4, "test": 3}


def make_data_config(data_dir, manual_dir, **overrides):
  config = dict(dataset="celebamask_hq", data_dir=str(data_dir), manual_dir=str(manual_dir),
                num_workers=0, image_size=IMAGE_SIZE, max_examples_per_split=0)
  config.update(overrides)
  return ml_collections.ConfigDict(config)


def build(data_config):
  builder = cmhq.DATASET.make_builder(data_config)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder


def all_examples(builder, split):
  source = builder.as_data_source(split)
  return [source[i] for i in range(len(source))]


def expected_mask(hq, mask_size=32, size=IMAGE_SIZE, include_skin=False):
  parts = fx.part_masks(hq, mask_size)
  union = np.zeros((mask_size, mask_size), dtype=bool)
  for part, mask in parts.items():
    if part != "skin" or include_skin:
      union |= mask
  f = mask_size // size
  mean = union.reshape(size, f, size, f).mean(axis=(1, 3))
  return (mean >= 0.5).astype(np.uint8)[..., None]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """The 12-image fixture built at 16px once for the module."""
  manual = fx.write_layout(tmp_path_factory.mktemp("manual"), NUM_IMAGES)
  config = make_data_config(tmp_path_factory.mktemp("tfds"), manual)
  return build(config), config


# ----------------------------------------------------------------------------- building


def test_splits_follow_the_original_celeba_index(built):
  builder, _ = built
  expected = fx.expected_splits(range(NUM_IMAGES), fx.orig_indices(NUM_IMAGES))
  assert {s: len(v) for s, v in expected.items()} == SPLIT_COUNTS
  assert builder.builder_config.name == "s16"
  orig = dict(zip(range(NUM_IMAGES), fx.orig_indices(NUM_IMAGES)))
  for split in cmhq.SPLITS:
    assert cmhq.DATASET.num_records(builder, split) == SPLIT_COUNTS[split]
    examples = all_examples(builder, split)
    hq = [int(ex["celeba_hq_index"]) for ex in examples]
    assert hq == expected[split]  # Increasing CelebA-HQ index within a split.
    assert [int(ex["celeba_index"]) for ex in examples] == [orig[i] for i in hq]
  # The boundaries: 162770 train, 162771 validation, 182637 validation, 182638 test.
  assert [cmhq.split_of(i) for i in (162770, 162771, 182637, 182638)] == [
      "train", "validation", "validation", "test"]


def test_masks_are_the_resized_union_of_non_skin_parts(built):
  builder, _ = built
  skin_matters = 0
  for split in cmhq.SPLITS:
    for ex in all_examples(builder, split):
      hq = int(ex["celeba_hq_index"])
      assert ex["mask"].dtype == np.uint8 and ex["mask"].shape == (IMAGE_SIZE, IMAGE_SIZE, 1)
      np.testing.assert_array_equal(ex["mask"], expected_mask(hq), err_msg=f"image {hq}")
      skin_matters += int((expected_mask(hq, include_skin=True) != ex["mask"]).any())
  assert skin_matters > 0  # The fixture's skin would change masks: it is really excluded.


def test_attributes_are_selected_by_name_and_mapped_to_0_1(built):
  builder, _ = built
  assert cmhq.ATTRIBUTE_INDICES == tuple(fx.CELEBA_ATTRIBUTES.index(n)
                                         for n in cmhq.ATTRIBUTE_NAMES)
  for split in cmhq.SPLITS:
    for ex in all_examples(builder, split):
      signs = fx.attribute_signs(int(ex["celeba_hq_index"]))
      by_name = [signs[fx.CELEBA_ATTRIBUTES.index(n)] for n in cmhq.ATTRIBUTE_NAMES]
      expected = np.asarray([1 if v == 1 else 0 for v in by_name], dtype=np.uint8)
      assert ex["attributes"].dtype == np.uint8
      np.testing.assert_array_equal(ex["attributes"], expected)


def test_images_are_resized_rgb(built):
  builder, _ = built
  for ex in all_examples(builder, "test"):
    assert ex["image"].dtype == np.uint8 and ex["image"].shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    colour = fx.image_colour(int(ex["celeba_hq_index"])).astype(np.float32)
    np.testing.assert_allclose(ex["image"].reshape(-1, 3).mean(axis=0), colour, atol=4)


def test_read_batch_and_protocol(built):
  builder, config = built
  dataset = cmhq.DATASET
  assert dataset.name == "celebamask_hq"
  assert dataset.config_defaults == {"image_size": 128, "max_examples_per_split": 0}
  assert dataset.vocabulary(builder) is None
  specs = dataset.modality_specs(builder)
  assert list(specs) == ["image", "mask", "attributes"]
  assert dataset.modality_kinds({}) == {n: s.kind for n, s in specs.items()}
  assert (specs["image"].kind, specs["image"].shape, specs["image"].dtype) == (
      "image", (16, 16, 3), "float32")
  assert (specs["mask"].kind, specs["mask"].shape) == ("mask", (16, 16, 1))
  assert (specs["attributes"].kind, specs["attributes"].shape,
          specs["attributes"].num_classes) == ("attributes", (18,), 18)
  source = builder.as_data_source("train")
  ids = np.array([4, 0, 2, 2], dtype=np.int64)
  batch = dataset.read_batch(source, ids, "train")
  assert set(batch) == {"image", "mask", "attributes"}
  for name, spec in specs.items():
    assert batch[name].dtype == np.float32 and batch[name].shape == (4,) + spec.shape
  assert batch["image"].min() >= -1 and batch["image"].max() <= 1
  assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
  assert set(np.unique(batch["attributes"])) <= {0.0, 1.0}
  np.testing.assert_array_equal(batch["image"][2], batch["image"][3])
  ex = source[4]
  np.testing.assert_allclose(batch["image"][0], ex["image"] / 127.5 - 1, atol=1e-6)
  np.testing.assert_array_equal(batch["mask"][0], ex["mask"])
  np.testing.assert_array_equal(batch["attributes"][0], ex["attributes"])
  # A fresh builder from the same config finds the built dataset (no manual_dir needed).
  again = dataset.make_builder(dict(data_dir=config.data_dir, image_size=IMAGE_SIZE))
  assert again.is_prepared() and dataset.num_records(again, "test") == 3


def test_nested_layout_truncation_and_mask_folders(tmp_path):
  hq = [3, 1999, 2000, 4001, 29999, 2500]
  orig = [10, 20, 170000, 170001, 190000, 190001]
  fx.write_layout(tmp_path / "manual", len(hq), image_size=16, mask_size=32, nested=True,
                  hq_indices=hq, celeba_indices=orig)
  builder = build(make_data_config(tmp_path / "tfds", tmp_path / "manual", image_size=8,
                                   max_examples_per_split=1))
  assert builder.builder_config.name == "s8_n1"
  got = {s: [int(ex["celeba_hq_index"]) for ex in all_examples(builder, s)]
         for s in cmhq.SPLITS}
  assert got == {"train": [3], "validation": [2000], "test": [2500]}
  # Folder k = i // 2000: image 2500's parts come from folder 1, 29999's from folder 14.
  layout = cmhq.scan_layout(str(tmp_path / "manual"))
  by_hq = {ex.hq_index: ex for split in layout.splits.values() for ex in split}
  for i in hq:
    assert by_hq[i].part_paths, i
    assert {os.path.basename(os.path.dirname(p)) for p in by_hq[i].part_paths} == {
        str(i // 2000)}
  ex = all_examples(builder, "test")[0]
  np.testing.assert_array_equal(ex["mask"], expected_mask(2500, size=8))


# ----------------------------------------------------------------------------- mask merge


def test_mask_merge_by_hand(tmp_path):
  root = fx.write_layout(tmp_path, 1, image_size=8, mask_size=4)
  folder = os.path.join(root, cmhq.MASK_DIR, "0")
  for name in os.listdir(folder):
    os.remove(os.path.join(folder, name))
  on = np.ones((4, 4), dtype=bool)
  fx.write_part(os.path.join(folder, "00000_skin.png"), on, "L")  # Not a mask part.
  fx.write_part(os.path.join(folder, "00000_foo.png"), on, "L")  # Unknown: ignored.
  l_eye = np.zeros((4, 4), dtype=bool)
  l_eye[0:2, 0:2] = True  # Block (0, 0) fully covered.
  fx.write_part(os.path.join(folder, "00000_l_eye.png"), l_eye, "RGB")
  hair = np.zeros((4, 4), dtype=bool)
  hair[0, 2:4] = True  # Block (0, 1) exactly half covered: a tie counts as on.
  fx.write_part(os.path.join(folder, "00000_hair.png"), hair, "P")
  nose = np.zeros((4, 4), dtype=bool)
  nose[3, 3] = True  # Block (1, 1) a quarter covered: off.
  fx.write_part(os.path.join(folder, "00000_nose.png"), nose, "1")
  # Absent parts (eye_g, cloth, ...) are simply absent.
  (example,) = cmhq.scan_layout(root).splits["train"]
  assert sorted(os.path.basename(p) for p in example.part_paths) == [
      "00000_hair.png", "00000_l_eye.png", "00000_nose.png"]
  mask = cmhq.decode_example(example, 2)["mask"]
  np.testing.assert_array_equal(mask[..., 0], [[1, 1], [0, 0]])
  # Without any part file the mask is empty.
  for name in os.listdir(folder):
    os.remove(os.path.join(folder, name))
  (example,) = cmhq.scan_layout(root).splits["train"]
  assert example.part_paths == ()
  np.testing.assert_array_equal(cmhq.decode_example(example, 2)["mask"], np.zeros((2, 2, 1)))


def test_part_reading_is_robust_to_modes(tmp_path):
  from PIL import Image
  mask = np.zeros((6, 6), dtype=bool)
  mask[1:4, 2:5] = True
  for mode in ("L", "RGB", "P", "1", "RGBA", "LA"):
    path = str(tmp_path / f"{mode}.png")
    fx.write_part(path, mask, mode)
    np.testing.assert_array_equal(cmhq.load_part(path), mask, err_msg=mode)
  colour = np.zeros((6, 6, 3), dtype=np.uint8)
  colour[0, 0] = (200, 0, 0)  # > 127 in one channel only: on.
  colour[0, 1] = (127, 127, 127)  # Not > 127 anywhere: off.
  colour[0, 2] = (0, 0, 128)
  Image.fromarray(colour, mode="RGB").save(tmp_path / "colour.png")
  got = cmhq.load_part(str(tmp_path / "colour.png"))
  assert got[0, :3].tolist() == [True, False, True] and got.sum() == 2
  rgba = np.zeros((6, 6, 4), dtype=np.uint8)
  rgba[..., 3] = 255  # Opaque black: alpha is not colour.
  Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
  assert not cmhq.load_part(str(tmp_path / "alpha.png")).any()


def test_resize_mask_non_integer_ratio_uses_area():
  union = np.zeros((5, 5), dtype=bool)
  union[:, :3] = True  # Columns 0-2 of 5 -> 2 output columns: left 2.5 cols on, right 0.5.
  np.testing.assert_array_equal(cmhq.resize_mask(union, 2), [[1, 0], [1, 0]])
  np.testing.assert_array_equal(cmhq.resize_mask(np.ones((3, 3), bool), 6), np.ones((6, 6)))


# ----------------------------------------------------------------------------- errors


def _edit(path, line_number, new_line):
  with open(path) as f:
    lines = f.read().splitlines()
  lines[line_number - 1] = new_line
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def _remove(path):
  if os.path.isdir(path):
    import shutil
    shutil.rmtree(path)
  else:
    os.remove(path)


def _assert_fails_cleanly(tmp_path, root, *patterns):
  data_dir = tmp_path / "tfds"
  config = make_data_config(data_dir, root)
  with pytest.raises(DataError) as info:
    build(config)
  message = str(info.value)
  for pattern in patterns:
    assert pattern in message, (pattern, message)
  # Nothing was written: no dataset, no metadata, no temporary directory.
  assert not data_dir.exists() or not any(data_dir.rglob("*")), list(data_dir.rglob("*"))
  return message


@pytest.mark.parametrize("entry", [cmhq.IMAGE_DIR, cmhq.MASK_DIR, cmhq.ATTRIBUTE_FILE,
                                   cmhq.MAPPING_FILE])
def test_missing_entry_is_named_with_the_layout_and_source(tmp_path, entry):
  root = fx.write_layout(tmp_path / "manual", 4, image_size=8, mask_size=8)
  _remove(os.path.join(root, entry))
  _assert_fails_cleanly(tmp_path, root, os.path.join(root, entry), "switchablenorms/CelebAMask-HQ",
                        "Lee et al.", "--config.data.manual_dir", "CelebA-HQ-img/{i}.jpg")


def test_manual_dir_unset_or_absent(tmp_path):
  _assert_fails_cleanly(tmp_path, "", "manual_dir is not set", "--config.data.manual_dir")
  _assert_fails_cleanly(tmp_path, tmp_path / "nope", "does not exist")


def test_malformed_attribute_lines_name_file_and_line(tmp_path):
  root = fx.write_layout(tmp_path / "manual", 4, image_size=8, mask_size=8)
  path = os.path.join(root, cmhq.ATTRIBUTE_FILE)
  original = open(path).read()
  good = original.splitlines()[4]  # Line 5: image 2.
  _edit(path, 5, " ".join(good.split()[:-1]))  # 39 values.
  _assert_fails_cleanly(tmp_path, root, f"{path}, line 5", "39 attribute values", "40")
  open(path, "w").write(original)
  _edit(path, 4, good.replace("2.jpg", "1.jpg").rsplit(" ", 1)[0] + " 0")  # A 0 value.
  _assert_fails_cleanly(tmp_path, root, f"{path}, line 4", "'0'", "-1 or 1")
  open(path, "w").write(original)
  _edit(path, 1, "5")
  _assert_fails_cleanly(tmp_path, root, f"{path}, line 1", "says 5 images but lists 4")


def test_attribute_header_missing_a_name_says_which(tmp_path):
  root = fx.write_layout(tmp_path / "manual", 4, image_size=8, mask_size=8)
  path = os.path.join(root, cmhq.ATTRIBUTE_FILE)
  _edit(path, 2, " ".join(fx.CELEBA_ATTRIBUTES).replace("Wavy_Hair", "Curly_Hair"))
  _assert_fails_cleanly(tmp_path, root, f"{path}, line 2", "lacks ['Wavy_Hair']")
  swapped = list(fx.CELEBA_ATTRIBUTES)
  swapped[4], swapped[5] = swapped[5], swapped[4]  # Bald <-> Bangs: not the standard order.
  _edit(path, 2, " ".join(swapped))
  _assert_fails_cleanly(tmp_path, root, "standard order")


def test_listed_image_missing_from_image_folder(tmp_path):
  root = fx.write_layout(tmp_path / "manual", 4, image_size=8, mask_size=8)
  os.remove(os.path.join(root, cmhq.IMAGE_DIR, "2.jpg"))
  _assert_fails_cleanly(tmp_path, root, "2.jpg", os.path.join(root, cmhq.IMAGE_DIR))


def test_missing_mask_subfolder_and_unmapped_image(tmp_path):
  root = fx.write_layout(tmp_path / "manual", 4, image_size=8, mask_size=8)
  _remove(os.path.join(root, cmhq.MASK_DIR, "0"))
  _assert_fails_cleanly(tmp_path, root, os.path.join(root, cmhq.MASK_DIR, "0"))
  root = fx.write_layout(tmp_path / "manual2", 4, image_size=8, mask_size=8)
  path = os.path.join(root, cmhq.MAPPING_FILE)
  _edit(path, 3, "")  # Image 1 loses its mapping line.
  _assert_fails_cleanly(tmp_path, root, "not in", "[1]")
  _edit(path, 3, "1 x 000002.jpg")
  _assert_fails_cleanly(tmp_path, root, f"{path}, line 3", "idx orig_idx orig_file")


def test_config_values_are_checked():
  with pytest.raises(DataError, match="image_size"):
    cmhq.DATASET.make_builder({"image_size": 0})
  with pytest.raises(DataError, match="max_examples_per_split"):
    cmhq.DATASET.make_builder({"max_examples_per_split": -1})
  builder = cmhq.DATASET.make_builder({"data_dir": "/nonexistent-not-created"})
  assert builder.builder_config.name == "s128" and not builder.is_prepared()


def test_undecodable_image_fails_without_a_dataset(tmp_path):
  root = fx.write_layout(tmp_path / "manual", 4, image_size=8, mask_size=8)
  bad = os.path.join(root, cmhq.IMAGE_DIR, "2.jpg")
  with open(bad, "wb") as f:
    f.write(b"not a jpeg")
  config = make_data_config(tmp_path / "tfds", root)
  with pytest.raises(DataError, match="cannot decode the image .*2.jpg"):
    build(config)
  # TFDS's build is atomic: only its metadata and empty folders remain, no records.
  assert not any(p.is_file() and "metadata" not in p.name
                 for p in (tmp_path / "tfds").rglob("*"))
  assert not cmhq.DATASET.make_builder(config).is_prepared()
