"""Where CUB's source data is: the official and MMVAE on-disk layouts and their detection.

See the package docstring for both layouts; `detect_layout` names the first missing file or
folder (and how to get the data) when neither is complete.
"""

from __future__ import annotations

import os
from typing import Sequence

from diffmvae_jax.data.errors import DataError

OFFICIAL, MMVAE = "official", "mmvae"

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

