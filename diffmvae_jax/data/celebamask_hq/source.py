"""CelebAMask-HQ's source scan: checks a manual_dir and lists the Examples of every split."""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from diffmvae_jax.data.celebamask_hq.annotation_files import (
    SPLITS, parse_attribute_file, parse_mapping_file, split_of)
from diffmvae_jax.data.celebamask_hq.layout import (
    ATTRIBUTE_FILE, IMAGE_DIR, IMAGES_PER_MASK_FOLDER, MAPPING_FILE, MASK_DIR, find_root,
    layout_error)

# Every annotated part except 'skin': their union is the "non-skin" mask.
MASK_PARTS = (
    "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
    "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)

_MASK_NAME = re.compile(r"^(\d+)_([a-z_]+)\.png$")


@dataclasses.dataclass(frozen=True)
class Example:
  """One CelebA-HQ image to build.

  Attributes:
    hq_index: CelebA-HQ index i.
    celeba_index: original CelebA index (mapping file's orig_idx).
    attributes: uint8 (18,) in {0, 1}, ordered as ATTRIBUTE_NAMES.
    image_path: path of `{i}.jpg`.
    part_paths: paths of the existing part PNGs of MASK_PARTS (possibly none).
  """
  hq_index: int
  celeba_index: int
  attributes: np.ndarray
  image_path: str
  part_paths: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Layout:
  """A checked CelebAMask-HQ directory.

  Attributes:
    root: the directory holding the four entries of the layout.
    splits: split name -> Examples in increasing CelebA-HQ index (after truncation).
  """
  root: str
  splits: dict


def _mask_folder_parts(folder: str) -> dict[int, list[str]]:
  """CelebA-HQ index -> existing part PNGs of MASK_PARTS in one mask folder."""
  parts = {}
  wanted = set(MASK_PARTS)
  with os.scandir(folder) as entries:
    for entry in entries:
      match = _MASK_NAME.match(entry.name)
      if match and match.group(2) in wanted:
        parts.setdefault(int(match.group(1)), []).append(entry.path)
  return parts


def scan_layout(manual_dir: str, max_examples_per_split: int = 0) -> Layout:
  """Checks a CelebAMask-HQ directory and lists what to build, writing nothing.

  Args:
    manual_dir: the configured manual_dir (the layout or its parent).
    max_examples_per_split: 0 = all, else keep the first N (by CelebA-HQ index) per split.

  Returns:
    The Layout: root and, per split, the Examples to build.

  Raises:
    DataError: a missing folder or file (named, with the expected layout and where to get
      the data), a malformed text file (file and line), an image of the attribute file
      missing from the mapping file or from CelebA-HQ-img, or a missing mask folder.
  """
  root = find_root(manual_dir)
  paths = {e: os.path.join(root, e) for e in (IMAGE_DIR, MASK_DIR, ATTRIBUTE_FILE,
                                                MAPPING_FILE)}
  for entry in (IMAGE_DIR, MASK_DIR):
    if not os.path.isdir(paths[entry]):
      raise layout_error(f"the folder {paths[entry]} is missing.")
  for entry in (ATTRIBUTE_FILE, MAPPING_FILE):
    if not os.path.isfile(paths[entry]):
      raise layout_error(f"the file {paths[entry]} is missing.")
  attributes = parse_attribute_file(paths[ATTRIBUTE_FILE])
  mapping = parse_mapping_file(paths[MAPPING_FILE])
  unmapped = sorted(set(attributes) - set(mapping))
  if unmapped:
    raise layout_error(f"{len(unmapped)} image(s) of {paths[ATTRIBUTE_FILE]} are not in "
                       f"{paths[MAPPING_FILE]}, e.g. {unmapped[:5]}.")
  with os.scandir(paths[IMAGE_DIR]) as entries:
    present = {e.name for e in entries}
  absent = [f"{hq}.jpg" for hq in sorted(attributes) if f"{hq}.jpg" not in present]
  if absent:
    raise layout_error(f"{len(absent)} image(s) listed in {paths[ATTRIBUTE_FILE]} are "
                       f"missing from {paths[IMAGE_DIR]}: {', '.join(absent[:5])}"
                       + (", ..." if len(absent) > 5 else "") + ".")
  folders = sorted({hq // IMAGES_PER_MASK_FOLDER for hq in attributes})
  parts = {}  # Mask folder k -> {CelebA-HQ index -> part paths}.
  for k in folders:
    folder = os.path.join(paths[MASK_DIR], str(k))
    if not os.path.isdir(folder):
      raise layout_error(f"the mask folder {folder} is missing (it holds the masks of "
                         f"images {k * IMAGES_PER_MASK_FOLDER}.."
                         f"{(k + 1) * IMAGES_PER_MASK_FOLDER - 1}).")
    parts[k] = _mask_folder_parts(folder)
  splits = {s: [] for s in SPLITS}
  for hq in sorted(attributes):
    split = splits[split_of(mapping[hq])]
    if max_examples_per_split and len(split) >= max_examples_per_split:
      continue
    own = tuple(sorted(parts[hq // IMAGES_PER_MASK_FOLDER].get(hq, ())))
    split.append(Example(hq_index=hq, celeba_index=mapping[hq], attributes=attributes[hq],
                         image_path=os.path.join(paths[IMAGE_DIR], f"{hq}.jpg"),
                         part_paths=own))
  return Layout(root=root, splits=splits)

