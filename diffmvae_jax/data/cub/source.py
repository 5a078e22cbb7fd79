"""CUB's source data read and validated: images and captions per split, and the by-image
validation split. Nothing is decoded here (images.py decodes).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from diffmvae_jax.data.cub.layout import MMVAE, OFFICIAL, detect_layout
from diffmvae_jax.data.errors import DataError

CAPTIONS_PER_IMAGE = 10
SPLITS = ("train", "validation", "test")
# What torchvision's ImageFolder accepts, lower-cased.
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff",
                     ".webp")
_VALIDATION_PURPOSE = 1  # Mixed into the seed of the validation draw.


@dataclasses.dataclass(frozen=True)
class SourceImage:
  """One photo of the source data with its captions.

  Attributes:
    path: absolute path of the image file.
    file_name: name stored in the dataset (see the package docstring).
    image_id: id stored in the dataset.
    label: 0-based class index.
    captions: the CAPTIONS_PER_IMAGE raw captions, stripped.
    bbox: (x, y, width, height) in pixels, or None when not read.
  """
  path: str
  file_name: str
  image_id: int
  label: int
  captions: tuple[str, ...]
  bbox: tuple[float, float, float, float] | None = None


@dataclasses.dataclass(frozen=True)
class CubSource:
  """The validated source data (nothing decoded yet).

  Attributes:
    layout: OFFICIAL or MMVAE.
    root: the directory the layout was found in.
    class_names: class folder names in label order.
    train: the training images (validation not yet carved out), in stored order.
    test: the test images, in stored order.
  """
  layout: str
  root: str
  class_names: tuple[str, ...]
  train: tuple[SourceImage, ...]
  test: tuple[SourceImage, ...]


def _read_lines(path: str) -> list[str]:
  """Non-empty lines of a text file, stripped (bad UTF-8 bytes are replaced)."""
  with open(path, encoding="utf-8", errors="replace") as f:
    return [line.strip() for line in f if line.strip()]


def _read_table(path: str, num_fields: int) -> dict[int, list[str]]:
  """'<image id> <fields...>' lines -> {id: fields}."""
  table = {}
  for n, line in enumerate(_read_lines(path), start=1):
    parts = line.split(maxsplit=num_fields)
    if len(parts) != num_fields + 1 or not parts[0].isdigit():
      raise DataError(f"{path}, line {n}: expected '<image id>' and {num_fields} field(s), "
                      f"got {line!r}")
    if int(parts[0]) in table:
      raise DataError(f"{path}, line {n}: image id {parts[0]} appears twice")
    table[int(parts[0])] = parts[1:]
  return table


def _missing_files_error(missing: list[str], what: str) -> DataError:
  more = f" (and {len(missing) - 1} more {what})" if len(missing) > 1 else ""
  return DataError(f"CUB data is incomplete: {missing[0]} is missing{more}.")


def _caption_count_error(path: str, found: int, expected: int, extra: str = "") -> DataError:
  return DataError(f"{path} has {found} non-empty caption lines; expected exactly "
                   f"{expected}{extra}. Re-extract the captions (Reed et al. 2016 "
                   "cvpr2016_cub, or MMVAE's cub.zip).")


def _load_official(paths: dict[str, str], crop_to_bbox: bool) -> CubSource:
  names = _read_table(paths["images.txt"], 1)
  splits = _read_table(paths["train_test_split.txt"], 1)
  labels = _read_table(paths["image_class_labels.txt"], 1)
  boxes = _read_table(paths["bounding_boxes.txt"], 4) if crop_to_bbox else {}
  tables = [("train_test_split.txt", splits), ("image_class_labels.txt", labels)]
  if crop_to_bbox:
    tables.append(("bounding_boxes.txt", boxes))
  for key, table in tables:
    lacking = sorted(set(names) - set(table))
    if lacking:
      raise DataError(f"{paths[key]} has no line for image id {lacking[0]} of images.txt "
                      f"({len(lacking)} image(s) lacking)")
  if not names:
    raise DataError(f"{paths['images.txt']} lists no images")
  try:
    class_ids = {i: int(labels[i][0]) for i in names}
    is_train = {i: int(splits[i][0]) for i in names}
    bboxes = {i: tuple(float(v) for v in boxes[i]) for i in names} if crop_to_bbox else {}
  except ValueError as e:
    raise DataError(f"{paths['root']}: malformed number in a metadata file: {e}") from e
  if min(class_ids.values()) < 1:
    raise DataError(f"{paths['image_class_labels.txt']}: class ids must start at 1")
  if set(is_train.values()) - {0, 1}:
    raise DataError(f"{paths['train_test_split.txt']}: the split flag must be 0 or 1")
  num_classes = max(class_ids.values())
  class_names = [f"class_{k + 1:03d}" for k in range(num_classes)]
  for i in sorted(names, reverse=True):  # The smallest image id of a class names it.
    name = names[i][0]
    if "/" in name:
      class_names[class_ids[i] - 1] = name.split("/")[0]

  missing_images, missing_texts = [], []
  for i in sorted(names):
    name = names[i][0]
    if not os.path.isfile(os.path.join(paths["images"], name)):
      missing_images.append(os.path.join(paths["images"], name))
    text = os.path.join(paths["text_c10"], os.path.splitext(name)[0] + ".txt")
    if not os.path.isfile(text):
      missing_texts.append(text)
  if missing_images:
    raise _missing_files_error(missing_images, "images")
  if missing_texts:
    raise _missing_files_error(missing_texts, "caption files")

  train, test = [], []
  for i in sorted(names):
    name = names[i][0]
    text = os.path.join(paths["text_c10"], os.path.splitext(name)[0] + ".txt")
    captions = _read_lines(text)
    if len(captions) != CAPTIONS_PER_IMAGE:
      raise _caption_count_error(text, len(captions), CAPTIONS_PER_IMAGE)
    image = SourceImage(path=os.path.join(paths["images"], name), file_name=name,
                        image_id=i, label=class_ids[i] - 1, captions=tuple(captions),
                        bbox=bboxes.get(i))
    (train if is_train[i] else test).append(image)
  return CubSource(OFFICIAL, paths["root"], tuple(class_names), tuple(train), tuple(test))


def image_folder_files(directory: str) -> list[tuple[str, str]]:
  """(class folder, image path) pairs in torchvision ImageFolder order.

  Args:
    directory: a folder of class folders.

  Returns:
    Class folders sorted by name; within each, files found by a sorted recursive walk, sorted
    by name, keeping ImageFolder's image extensions (case-insensitive).
  """
  classes = sorted(e.name for e in os.scandir(directory) if e.is_dir())
  out = []
  for cls in classes:
    for root, _, fnames in sorted(os.walk(os.path.join(directory, cls), followlinks=True)):
      for fname in sorted(fnames):
        if fname.lower().endswith(_IMAGE_EXTENSIONS):
          out.append((cls, os.path.join(root, fname)))
  return out


def _load_mmvae(paths: dict[str, str]) -> CubSource:
  files = {split: image_folder_files(paths[split]) for split in ("train", "test")}
  class_names = sorted({cls for split in files.values() for cls, _ in split})
  index = {name: k for k, name in enumerate(class_names)}
  texts = {"train": paths["text_trainvalclasses.txt"], "test": paths["text_testclasses.txt"]}
  images, next_id = {}, 1
  for split in ("train", "test"):
    if not files[split]:
      raise DataError(f"{paths[split]} holds no images in class folders")
    captions = _read_lines(texts[split])
    expected = CAPTIONS_PER_IMAGE * len(files[split])
    if len(captions) != expected:
      raise _caption_count_error(
          texts[split], len(captions), expected,
          f" ({CAPTIONS_PER_IMAGE} per image for the {len(files[split])} images in "
          f"{paths[split]})")
    images[split] = []
    for k, (cls, path) in enumerate(files[split]):
      images[split].append(SourceImage(
          path=path, file_name=os.path.relpath(path, paths["root"]).replace(os.sep, "/"),
          image_id=next_id, label=index[cls],
          captions=tuple(captions[CAPTIONS_PER_IMAGE * k:CAPTIONS_PER_IMAGE * (k + 1)])))
      next_id += 1
  return CubSource(MMVAE, paths["root"], tuple(class_names), tuple(images["train"]),
                   tuple(images["test"]))


def load_source(manual_dir: str, crop_to_bbox: bool = False) -> CubSource:
  """Finds, reads and validates the source data (captions read, images not decoded).

  Args:
    manual_dir: directory holding one of the two layouts (package docstring).
    crop_to_bbox: also read (and require) the bounding boxes.

  Returns:
    The CubSource: every image file exists and has exactly 10 non-empty captions.

  Raises:
    DataError: a missing layout, file or folder (named), malformed metadata, or a caption
      file with a wrong number of lines (named, with the count found).
  """
  layout, paths = detect_layout(manual_dir, crop_to_bbox)
  source = _load_official(paths, crop_to_bbox) if layout == OFFICIAL else _load_mmvae(paths)
  if not source.train or not source.test:
    raise DataError(f"{paths['root']}: the {'train' if not source.train else 'test'} split "
                    "holds no images")
  return source


def split_train_validation(num_train: int, validation_fraction: float,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Chooses the validation images among the training images (by image).

  Args:
    num_train: number of training images.
    validation_fraction: 0 < fraction < 1; round(fraction * num_train) images (at least 1)
      go to validation.
    seed: build seed.

  Returns:
    (train, validation): sorted int64 index arrays into the training images, disjoint,
    covering range(num_train).

  Raises:
    DataError: the fraction leaves train or validation empty.
  """
  num_val = max(1, int(round(validation_fraction * num_train)))
  if not 0 < validation_fraction < 1 or num_val >= num_train:
    raise DataError(f"validation_fraction {validation_fraction} of {num_train} training "
                    "images leaves train or validation empty; choose 0 < fraction < 1")
  rng = np.random.default_rng(np.random.SeedSequence((seed, _VALIDATION_PURPOSE)))
  perm = rng.permutation(num_train)
  return np.sort(perm[num_val:]), np.sort(perm[:num_val])

