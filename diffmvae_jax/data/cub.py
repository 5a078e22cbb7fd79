"""CUB image-captions (CUB-200-2011 birds with 10 captions per image) as a TFDS dataset.

What it builds (DESIGN.md §3.2). One stored example per bird photo: the photo resized to
`image_size` x `image_size`, its 10 captions (Reed et al. 2016) tokenised with data/text.py,
its species and where it came from. Splits `train`, `validation` and `test`; validation is
carved from the training images BY IMAGE (a seeded random `validation_fraction` of them), so
the 10 captions of one image always stay together in one split.

Where the data comes from (read from `manual_dir`, never downloaded; set
`--config.data.manual_dir`). Two on-disk layouts are accepted and detected:
  (a) official. CUB-200-2011 (Wah et al. 2011, `CUB_200_2011.tgz` from the Caltech vision
      lab, https://www.vision.caltech.edu/datasets/cub_200_2011/) with the captions of
      Reed et al. 2016, "Learning Deep Representations of Fine-Grained Visual Descriptions"
      (`cvpr2016_cub.tar.gz`, linked from https://github.com/reedscot/cvpr2016):
        CUB_200_2011/images.txt                 "<image id> <class dir>/<file>.jpg"
        CUB_200_2011/train_test_split.txt       "<image id> <1 = train, 0 = test>"
        CUB_200_2011/image_class_labels.txt     "<image id> <class id, 1-based>"
        CUB_200_2011/bounding_boxes.txt         "<image id> <x> <y> <width> <height>"
        CUB_200_2011/images/<class dir>/<file>.jpg
        text_c10/<class dir>/<file stem>.txt    10 captions, one per line
      `CUB_200_2011/` may also be `manual_dir` itself; `text_c10/` may sit in `manual_dir`,
      `manual_dir/cvpr2016_cub/` or `CUB_200_2011/`. Train/test come from
      train_test_split.txt (5,994 / 5,794 images). bounding_boxes.txt is needed only with
      `crop_to_bbox`.
  (b) MMVAE (Shi et al. 2019): their cleaned-up `cub.zip`, linked from the README of
      https://github.com/iffsid/mmvae, unzipped:
        cub/train/<class dir>/*.jpg      cub/text_trainvalclasses.txt
        cub/test/<class dir>/*.jpg       cub/text_testclasses.txt
      (`cub/` may also be `manual_dir` itself). Line 10 * i + k of a text file is caption k of
      image i, images in torchvision ImageFolder order (sorted class folders, then sorted file
      names). Its train/test split is by CLASS (150 train+val species, 50 test species), as in
      MMVAE, so test labels are species never seen in training.
The official layout is used when complete, else the MMVAE one; when neither is, the
DataError names the first missing file or folder. Every file and caption count is checked
before anything is written, so a failed build leaves nothing behind.

Images: decoded with Pillow, converted to RGB and resized to S x S with Pillow's bilinear
filter (antialiased when shrinking, as torchvision's Resize on PIL images). The whole photo
is squashed to a square (as MMVAE does) unless `crop_to_bbox`, which first crops the square
of side 1.5 * max(box width, box height) centred on the bird's bounding box, clipped to the
photo (the crop of StackGAN, Zhang et al. 2017; official layout only).

Captions: lower-cased word tokens (data/text.py), vocabulary from the captions of the
`train` split only (validation and test excluded), min count 3, specials <pad>=0, <eos>=1,
<unk>=2, `caption_max_len` 32 ids including <eos>. Saved as `vocabulary.json` inside the
build directory (part of the atomic build); read it with `read_vocabulary(builder)`.

Features of a stored example (S = image_size, L = caption_max_len). Images are raw uint8
tensors stored as one bytes value, like PolyMNIST's: no codec at read time.
  image         uint8 (S, S, 3)
  caption       int32 (10, L) token ids of the 10 captions (<eos>, then <pad> = 0)
  caption_text  the 10 raw caption strings (bytes when read from a data source)
  label         ClassLabel: species index 0..K-1 (K = 200 on the real data). Official layout:
                image_class_labels.txt's class id - 1; MMVAE layout: position of the class
                folder in the sorted union of train/ and test/ class folders. Names are the
                class folder names ('001.Black_footed_Albatross', ...).
  image_id      int32: official layout: the id in images.txt; MMVAE layout: 1-based position
                in train/ (ImageFolder order), then test/ (continuing after train/).
  file_name     text: official: '<class dir>/<file>.jpg' (as in images.txt); MMVAE:
                'train/<class dir>/<file>.jpg' or 'test/...'. Unique over the dataset.
Stored order (disable_shuffling): images.txt order (official) or ImageFolder order (MMVAE),
validation images removed from train in place.

Records (the pipeline's id space, data/dataset_api.py): `train` has 10 records per image,
record r = image r // 10 with its caption r % 10, so a shuffled epoch pairs every image with
each of its captions; `validation` and `test` have one record per image with caption 0.

The layout is part of the builder config name ('mmvae_' prefix), detected from manual_dir
when the builder is made, so builds from the two layouts never mix; keep manual_dir set to
read an MMVAE build (with no usable manual_dir the official name is assumed).

Data config keys read by `DATASET.make_builder` (besides data_dir and manual_dir), each part
of the builder config name (e.g. 'img64_val0p1_s0'), so changing one builds a new dataset:
  image_size           64     side S of the stored square images
  crop_to_bbox         False  crop around the bounding box first (official layout only)
  validation_fraction  0.1    fraction of the training images moved to `validation`
  build_seed           0      seeds the choice of validation images
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from diffmvae_jax.data import dataset_api
from diffmvae_jax.data import text as text_lib
from diffmvae_jax.data.errors import DataError

CAPTIONS_PER_IMAGE = 10
VOCABULARY_FILE = text_lib.VOCABULARY_FILE
VOCAB_MIN_COUNT = text_lib.DEFAULT_MIN_COUNT
SPLITS = ("train", "validation", "test")
# Side of the StackGAN bounding-box crop, relative to the box's longer side.
BBOX_CROP_SCALE = 1.5
OFFICIAL, MMVAE = "official", "mmvae"
# What torchvision's ImageFolder accepts, lower-cased.
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff",
                     ".webp")
_VALIDATION_PURPOSE = 1  # Mixed into the seed of the validation draw.

_HOW_TO_GET = """\
Expected one of two layouts in --config.data.manual_dir (now {manual_dir!r}):
  (a) official CUB-200-2011 + Reed et al. 2016 captions:
        CUB_200_2011/images.txt, CUB_200_2011/train_test_split.txt,
        CUB_200_2011/image_class_labels.txt, CUB_200_2011/bounding_boxes.txt,
        CUB_200_2011/images/<class dir>/<file>.jpg        (CUB_200_2011/ may be manual_dir)
        text_c10/<class dir>/<file stem>.txt, 10 lines    (or cvpr2016_cub/text_c10/ or
                                                           CUB_200_2011/text_c10/)
      CUB-200-2011 (CUB_200_2011.tgz) comes from Caltech's vision lab site,
      https://www.vision.caltech.edu/datasets/cub_200_2011/ ; the captions from Reed et al.
      2016, "cvpr2016_cub" (cvpr2016_cub.tar.gz, linked from
      https://github.com/reedscot/cvpr2016).
  (b) MMVAE's cub.zip, unzipped: cub/train/<class dir>/*.jpg, cub/test/<class dir>/*.jpg,
      cub/text_trainvalclasses.txt, cub/text_testclasses.txt (10 lines per image; cub/ may
      be manual_dir); cub.zip is linked from the README of the MMVAE repository,
      https://github.com/iffsid/mmvae.
Put the data there and set --config.data.manual_dir=/path/to/it."""


# ----------------------------------------------------------------------------- source data


@dataclasses.dataclass(frozen=True)
class SourceImage:
  """One photo of the source data with its captions.

  Attributes:
    path: absolute path of the image file.
    file_name: name stored in the dataset (see the module docstring).
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


def _official_paths(manual_dir: str) -> dict[str, str]:
  nested = os.path.join(manual_dir, "CUB_200_2011")
  root = nested if os.path.isdir(nested) else manual_dir
  text_candidates = [os.path.join(manual_dir, "text_c10"),
                     os.path.join(manual_dir, "cvpr2016_cub", "text_c10"),
                     os.path.join(root, "text_c10")]
  text_dir = next((d for d in text_candidates if os.path.isdir(d)), text_candidates[0])
  return {
      "root": root,
      "images.txt": os.path.join(root, "images.txt"),
      "train_test_split.txt": os.path.join(root, "train_test_split.txt"),
      "image_class_labels.txt": os.path.join(root, "image_class_labels.txt"),
      "bounding_boxes.txt": os.path.join(root, "bounding_boxes.txt"),
      "images": os.path.join(root, "images"),
      "text_c10": text_dir,
  }


def _mmvae_paths(manual_dir: str) -> dict[str, str]:
  nested = os.path.join(manual_dir, "cub")
  root = nested if os.path.isdir(nested) else manual_dir
  return {
      "root": root,
      "train": os.path.join(root, "train"),
      "test": os.path.join(root, "test"),
      "text_trainvalclasses.txt": os.path.join(root, "text_trainvalclasses.txt"),
      "text_testclasses.txt": os.path.join(root, "text_testclasses.txt"),
  }


def _missing(paths: dict[str, str], required: Sequence[str]) -> list[str]:
  """Required entries that do not exist (names ending in .txt are files, others folders)."""
  out = []
  for key in required:
    exists = os.path.isfile if key.endswith(".txt") else os.path.isdir
    if not exists(paths[key]):
      out.append(paths[key] + ("" if key.endswith(".txt") else os.sep))
  return out


_OFFICIAL_REQUIRED = ("images.txt", "train_test_split.txt", "image_class_labels.txt",
                      "images", "text_c10")
_MMVAE_REQUIRED = ("train", "test", "text_trainvalclasses.txt", "text_testclasses.txt")


def detect_layout(manual_dir: str, crop_to_bbox: bool = False) -> tuple[str, dict[str, str]]:
  """Finds which layout `manual_dir` holds.

  Args:
    manual_dir: the directory of --config.data.manual_dir.
    crop_to_bbox: whether bounding_boxes.txt is needed (official layout).

  Returns:
    (OFFICIAL or MMVAE, name -> path of the layout's files and folders, plus 'root').

  Raises:
    DataError: manual_dir is unset or missing, neither layout is complete (the message names
      the first missing file or folder of the more complete layout and how to get the data),
      or crop_to_bbox is asked of the MMVAE layout.
  """
  if not manual_dir:
    raise DataError("CUB must be read from local files, but data.manual_dir is empty.\n"
                    + _HOW_TO_GET.format(manual_dir=manual_dir))
  if not os.path.isdir(manual_dir):
    raise DataError(f"data.manual_dir {manual_dir!r} does not exist.\n"
                    + _HOW_TO_GET.format(manual_dir=manual_dir))
  manual_dir = os.path.abspath(manual_dir)
  official = _official_paths(manual_dir)
  official_required = _OFFICIAL_REQUIRED + (("bounding_boxes.txt",) if crop_to_bbox else ())
  official_missing = _missing(official, official_required)
  if not official_missing:
    return OFFICIAL, official
  mmvae = _mmvae_paths(manual_dir)
  mmvae_missing = _missing(mmvae, _MMVAE_REQUIRED)
  if not mmvae_missing:
    if crop_to_bbox:
      raise DataError(
          f"crop_to_bbox=True needs the bounding boxes of the official CUB-200-2011 layout, "
          f"but {manual_dir!r} holds MMVAE's cub.zip layout, which has none "
          f"({official_missing[0]} is missing). Set --config.data.crop_to_bbox=False or use "
          "the official layout.\n" + _HOW_TO_GET.format(manual_dir=manual_dir))
    return MMVAE, mmvae
  # Report the layout the user seems to have attempted (fewer missing entries; official on
  # a tie).
  official_score = len(official_missing) / len(official_required)
  mmvae_score = len(mmvae_missing) / len(_MMVAE_REQUIRED)
  first = official_missing[0] if official_score <= mmvae_score else mmvae_missing[0]
  raise DataError(f"CUB data not found: {first} is missing.\n"
                  + _HOW_TO_GET.format(manual_dir=manual_dir))


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
    manual_dir: directory holding one of the two layouts (module docstring).
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


def bbox_crop_box(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
  """The StackGAN crop around a bounding box.

  Args:
    bbox: (x, y, box width, box height) in pixels.
    width, height: the photo's size.

  Returns:
    (left, top, right, bottom) for PIL's crop: a square of side BBOX_CROP_SCALE * the box's
    longer side, centred on the box, clipped to the photo (never empty).
  """
  x, y, w, h = (float(v) for v in bbox)
  half = int(max(w, h) * BBOX_CROP_SCALE / 2)
  cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
  left, right = max(0, cx - half), min(width, cx + half)
  top, bottom = max(0, cy - half), min(height, cy + half)
  if right <= left or bottom <= top:
    return 0, 0, width, height
  return left, top, right, bottom


def load_image(path: str, image_size: int,
               bbox: Sequence[float] | None = None) -> np.ndarray:
  """Decodes, optionally crops around the bounding box, and resizes one photo.

  Args:
    path: image file.
    image_size: output side S.
    bbox: (x, y, width, height) to crop around (bbox_crop_box), or None for the whole photo.

  Returns:
    uint8 (S, S, 3) RGB.

  Raises:
    DataError: the file cannot be decoded (named).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as im:
      im = im.convert("RGB")
      if bbox is not None:
        im = im.crop(bbox_crop_box(bbox, im.width, im.height))
      im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
      return np.asarray(im, dtype=np.uint8)
  except (OSError, ValueError) as e:
    raise DataError(f"cannot decode the image {path}: {e}") from e


# ----------------------------------------------------------------------------- TFDS builder


def _format_fraction(value: float) -> str:
  return format(value, "g").replace(".", "p").replace("-", "m")


@dataclasses.dataclass
class CubConfig(tfds.core.BuilderConfig):
  """CUB variant.

  Attributes:
    image_size: side S of the stored square images.
    crop_to_bbox: crop around the bounding box before resizing (official layout only).
    validation_fraction: fraction of the training images moved to validation.
    seed: seeds the choice of validation images.
    caption_max_len: caption token length, <eos> included.
    layout: OFFICIAL or MMVAE, the source layout (their splits differ: by image vs by
      class, so they never share a build).
  """
  image_size: int = 64
  crop_to_bbox: bool = False
  validation_fraction: float = 0.1
  seed: int = 0
  caption_max_len: int = text_lib.DEFAULT_MAX_LEN
  layout: str = OFFICIAL

  @classmethod
  def make(cls, image_size: int = 64, crop_to_bbox: bool = False,
           validation_fraction: float = 0.1, seed: int = 0,
           caption_max_len: int = text_lib.DEFAULT_MAX_LEN,
           layout: str = OFFICIAL) -> "CubConfig":
    """A config whose name is derived from its fields (e.g. 'img64_val0p1_s0').

    Args:
      image_size, crop_to_bbox, validation_fraction, seed, caption_max_len, layout: the
        attributes. The MMVAE layout prefixes the name with 'mmvae_'.

    Returns:
      The config.

    Raises:
      DataError: a field is out of range.
    """
    image_size, seed, caption_max_len = int(image_size), int(seed), int(caption_max_len)
    validation_fraction = float(validation_fraction)
    if image_size < 4 or seed < 0 or caption_max_len < 2:
      raise DataError("CUB needs image_size >= 4, build_seed >= 0 and caption_max_len >= 2; "
                      f"got {image_size}, {seed}, {caption_max_len}")
    if not 0 < validation_fraction < 1:
      raise DataError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if layout not in (OFFICIAL, MMVAE):
      raise DataError(f"layout must be {OFFICIAL!r} or {MMVAE!r}, got {layout!r}")
    name = ("mmvae_" if layout == MMVAE else "") + f"img{image_size}"
    name += "_bbox" if crop_to_bbox else ""
    name += f"_val{_format_fraction(validation_fraction)}_s{seed}"
    if caption_max_len != text_lib.DEFAULT_MAX_LEN:
      name += f"_l{caption_max_len}"
    return cls(name=name, image_size=image_size, crop_to_bbox=bool(crop_to_bbox),
               validation_fraction=validation_fraction, seed=seed,
               caption_max_len=caption_max_len, layout=layout,
               description=(f"{layout} layout, {image_size}x{image_size} images"
                            + (" cropped around the bounding box" if crop_to_bbox else "")
                            + f", validation fraction {validation_fraction}, seed {seed}"))


class Cub(tfds.core.GeneratorBasedBuilder):
  """CUB-200-2011 photos with the 10 captions per image of Reed et al. 2016."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  # No registered configs: every config comes from CubConfig.make (a custom config to TFDS),
  # so pickled builders (grain workers) rebuild without name clashes, and no metadata file
  # is written next to the dataset before the build succeeds.
  BUILDER_CONFIGS = []
  # TFDS derives `code_path` through `importlib_resources`, a package it does not declare as
  # a dependency; naming the file directly avoids that import (no checksums file is used).
  code_path = epath.Path(__file__)

  def __init__(self, *, manual_dir: str = "", **kwargs):
    """Creates the builder.

    Args:
      manual_dir: directory holding the source data in one of the two layouts (module
        docstring); needed only to build. Not part of the config.
      **kwargs: tfds DatasetBuilder arguments (data_dir, config, file_format, ...); config
        must be a CubConfig.
    """
    if not isinstance(kwargs.get("config"), CubConfig):
      raise DataError("the CUB builder needs config=CubConfig.make(...)")
    self._cub_manual_dir = manual_dir
    self._source: CubSource | None = None
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    size = cfg.image_size
    return self.dataset_info_from_configs(
        description=(
            "CUB-200-2011 bird photos (Wah et al. 2011) with the 10 captions per image of "
            "Reed et al. 2016, one example per image; validation carved from the training "
            f"images by image. Caption vocabulary in {VOCABULARY_FILE}."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "caption": tfds.features.Tensor(
                shape=(CAPTIONS_PER_IMAGE, cfg.caption_max_len), dtype=np.int32,
                encoding=tfds.features.Encoding.BYTES),
            "caption_text": tfds.features.Sequence(tfds.features.Text(),
                                                   length=CAPTIONS_PER_IMAGE),
            # Names (hence the class count) are set from the source data at build time.
            "label": tfds.features.ClassLabel(),
            "image_id": tfds.features.Scalar(dtype=np.int32),
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=None,
        disable_shuffling=True,  # Stored order is the source order (module docstring).
    )

  def source(self) -> CubSource:
    """The validated source data of manual_dir (read once, then cached).

    Raises:
      DataError: as load_source.
    """
    if self._source is None:
      cfg = self.builder_config
      source = load_source(self._cub_manual_dir, cfg.crop_to_bbox)
      if source.layout != cfg.layout:
        raise DataError(f"config {cfg.name!r} is for the {cfg.layout} layout, but "
                        f"{self._cub_manual_dir!r} holds the {source.layout} layout; make the "
                        "builder with make_builder (it detects the layout)")
      self._source = source
    return self._source

  def download_and_prepare(self, *args, **kwargs):
    """Validates the source data, then builds as TFDS does (atomically).

    The validation runs before TFDS creates any file or folder, so bad source data leaves
    `data_dir` untouched.

    Raises:
      DataError: the source data is missing or invalid.
    """
    if not self.is_prepared():
      self.source()
    return super().download_and_prepare(*args, **kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    cfg = self.builder_config
    source = self.source()
    self.info.features["label"].names = list(source.class_names)
    train_idx, val_idx = split_train_validation(len(source.train), cfg.validation_fraction,
                                                cfg.seed)
    images = {"train": [source.train[i] for i in train_idx],
              "validation": [source.train[i] for i in val_idx],
              "test": list(source.test)}
    vocab = text_lib.Vocabulary.build(
        (c for image in images["train"] for c in image.captions), min_count=VOCAB_MIN_COUNT)
    # During download_and_prepare, data_path is TFDS's temporary build dir, renamed to the
    # final one only when every split is written: a failed build leaves no vocabulary.
    (self.data_path / VOCABULARY_FILE).write_text(vocab.to_json())
    return {split: self._generate_examples(images[split], vocab) for split in SPLITS}

  def _generate_examples(self, images: list[SourceImage],
                         vocab: text_lib.Vocabulary) -> Iterator[tuple[int, dict]]:
    cfg = self.builder_config
    for key, image in enumerate(images):
      yield key, {
          "image": load_image(image.path, cfg.image_size,
                              image.bbox if cfg.crop_to_bbox else None),
          "caption": np.stack([vocab.encode(c, cfg.caption_max_len) for c in image.captions]),
          "caption_text": list(image.captions),
          "label": image.label,
          "image_id": image.image_id,
          "file_name": image.file_name,
      }


def find_layout(manual_dir: str, crop_to_bbox: bool = False) -> str:
  """The layout a build from `manual_dir` would use, OFFICIAL when none is complete yet.

  Args:
    manual_dir: the source directory ('' allowed).
    crop_to_bbox: as detect_layout.

  Returns:
    MMVAE if manual_dir holds a complete MMVAE layout (and no complete official one), else
    OFFICIAL (building then reports what is missing).
  """
  try:
    return detect_layout(manual_dir, crop_to_bbox)[0]
  except DataError:
    return OFFICIAL


def make_builder(*, image_size: int = 64, crop_to_bbox: bool = False,
                 validation_fraction: float = 0.1, seed: int = 0,
                 caption_max_len: int = text_lib.DEFAULT_MAX_LEN, data_dir: str = "",
                 manual_dir: str = "", layout: str | None = None) -> Cub:
  """A Cub builder for these fields.

  Args:
    image_size, crop_to_bbox, validation_fraction, seed, caption_max_len: see CubConfig.
    data_dir: TFDS data dir ('' = TFDS default, ~/tensorflow_datasets).
    manual_dir: directory with the source data (needed only to build).
    layout: OFFICIAL or MMVAE; None: `find_layout(manual_dir)`. It is part of the config
      name, so a dataset built from one layout is never read for the other.

  Returns:
    The builder (not necessarily built), writing array_record.

  Raises:
    DataError: a field is out of range.
  """
  if layout is None:
    layout = find_layout(manual_dir, crop_to_bbox)
  config = CubConfig.make(image_size, crop_to_bbox, validation_fraction, seed, caption_max_len,
                          layout)
  return Cub(data_dir=data_dir or None, config=config, file_format="array_record",
             manual_dir=manual_dir)


def read_vocabulary(builder: tfds.core.DatasetBuilder) -> text_lib.Vocabulary:
  """The caption vocabulary saved with a built CUB dataset.

  Args:
    builder: a prepared Cub builder.

  Returns:
    The Vocabulary built from the training captions.

  Raises:
    DataError: the dataset is not built or has no vocabulary file.
  """
  return text_lib.read_saved_vocabulary(builder.data_path)


# ----------------------------------------------------------------------------- Dataset API


def _config_get(data_config, key: str, default):
  value = data_config.get(key, default)
  return default if value is None else value


class CubDataset:
  """CUB as the pipeline sees it (data/dataset_api.Dataset); use the instance DATASET."""

  name = "cub"
  config_defaults = {
      "image_size": 64,
      "crop_to_bbox": False,
      "validation_fraction": 0.1,
      "build_seed": 0,
  }

  def make_builder(self, data_config) -> Cub:
    """The Cub builder of a data config (not necessarily built).

    Args:
      data_config: ConfigDict or dict; reads data_dir, manual_dir and config_defaults' keys
        (missing keys take their defaults).

    Returns:
      The builder, writing array_record into data_dir.

    Raises:
      DataError: a value is out of range.
    """
    d = self.config_defaults
    return make_builder(
        image_size=int(_config_get(data_config, "image_size", d["image_size"])),
        crop_to_bbox=bool(_config_get(data_config, "crop_to_bbox", d["crop_to_bbox"])),
        validation_fraction=float(_config_get(data_config, "validation_fraction",
                                              d["validation_fraction"])),
        seed=int(_config_get(data_config, "build_seed", d["build_seed"])),
        data_dir=os.path.expanduser(str(_config_get(data_config, "data_dir", ""))),
        manual_dir=os.path.expanduser(str(_config_get(data_config, "manual_dir", ""))))

  def modality_specs(self, builder: tfds.core.DatasetBuilder
                     ) -> dict[str, dataset_api.ModalitySpec]:
    """'image', 'caption', 'label' specs of a built dataset.

    Args:
      builder: a prepared Cub builder.

    Returns:
      image float32 (S, S, 3); caption int32 (L,) with num_classes = vocabulary size;
      label int32 () with num_classes = number of classes (200 on the real data).

    Raises:
      DataError: the dataset is not built.
    """
    cfg = builder.builder_config
    vocab = read_vocabulary(builder)
    size = cfg.image_size
    return {
        "image": dataset_api.ModalitySpec("image", "image", (size, size, 3), "float32"),
        "caption": dataset_api.ModalitySpec("caption", "caption", (cfg.caption_max_len,),
                                            "int32", vocab.size),
        "label": dataset_api.ModalitySpec("label", "label", (), "int32",
                                          int(builder.info.features["label"].num_classes)),
    }

  def num_records(self, builder: tfds.core.DatasetBuilder, split: str) -> int:
    """Records of a split: 10 per image for train, one per image otherwise.

    Args:
      builder: a prepared Cub builder.
      split: 'train' | 'validation' | 'test'.

    Returns:
      The size of the split's record id space.

    Raises:
      DataError: unknown split.
    """
    _check_split(split)
    images = builder.info.splits[split].num_examples
    return CAPTIONS_PER_IMAGE * images if split == "train" else images

  def read_batch(self, source, ids: np.ndarray, split: str) -> dict[str, np.ndarray]:
    """Reads and decodes records.

    Args:
      source: the split's TFDS data source (builder.as_data_source(split)).
      ids: int (b,) record ids: train record r is image r // 10 with caption r % 10;
        validation/test record r is image r with caption 0.
      split: 'train' | 'validation' | 'test'.

    Returns:
      {'image': float32 (b, S, S, 3) in [-1, 1], 'caption': int32 (b, L),
       'label': int32 (b,)}.

    Raises:
      DataError: unknown split.
    """
    _check_split(split)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if split == "train":
      image_ids, caption_ids = ids // CAPTIONS_PER_IMAGE, ids % CAPTIONS_PER_IMAGE
    else:
      image_ids, caption_ids = ids, np.zeros_like(ids)
    examples = source.__getitems__([int(i) for i in image_ids])
    images = np.stack([ex["image"] for ex in examples]).astype(np.float32)
    return {
        "image": images / np.float32(127.5) - np.float32(1.0),
        "caption": np.stack([ex["caption"][c] for ex, c in zip(examples, caption_ids.tolist())]
                            ).astype(np.int32),
        "label": np.asarray([ex["label"] for ex in examples], dtype=np.int32),
    }

  def vocabulary(self, builder: tfds.core.DatasetBuilder) -> text_lib.Vocabulary:
    """The caption vocabulary saved with the built dataset (see read_vocabulary)."""
    return read_vocabulary(builder)


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise DataError(f"unknown CUB split {split!r}; splits: {list(SPLITS)}")


DATASET = CubDataset()
