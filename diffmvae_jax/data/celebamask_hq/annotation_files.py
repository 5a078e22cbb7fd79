"""CelebAMask-HQ's two text files (attributes, CelebA-HQ -> CelebA index) and the split rule."""

from __future__ import annotations

import re

import numpy as np

from diffmvae_jax.data.celebamask_hq.layout import layout_error

ATTRIBUTE_NAMES = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows",
    "Eyeglasses", "Gray_Hair", "Heavy_Makeup", "Male", "Mouth_Slightly_Open", "Mustache",
    "Pale_Skin", "Receding_Hairline", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Hat",
)
# Where ATTRIBUTE_NAMES sit among the 40 CelebA attributes (0-based), DESIGN.md §3.3.
ATTRIBUTE_INDICES = (4, 5, 8, 9, 11, 12, 15, 17, 18, 20, 21, 22, 26, 28, 31, 32, 33, 35)
NUM_CELEBA_ATTRIBUTES = 40
# Original CelebA index boundaries of the splits: < TRAIN_END train, < VALIDATION_END
# validation, else test.
TRAIN_END = 162771
VALIDATION_END = 182638
SPLITS = ("train", "validation", "test")

_IMAGE_NAME = re.compile(r"^(\d+)\.jpg$")


def _read_lines(path: str) -> list[str]:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read().splitlines()
  except UnicodeDecodeError as e:
    raise layout_error(f"{path} is not a text file ({e}).") from e


def parse_attribute_file(path: str) -> dict[int, np.ndarray]:
  """Reads `CelebAMask-HQ-attribute-anno.txt`.

  Args:
    path: the file.

  Returns:
    CelebA-HQ index -> uint8 (18,) in {0, 1}, ATTRIBUTE_NAMES picked by name, -1 -> 0.

  Raises:
    DataError: naming the file (and line, 1-based) on any deviation from the format: a
      bad count line, a header without one of ATTRIBUTE_NAMES or not in the standard
      40-attribute order, a line whose image name is not `{i}.jpg`, whose number of values
      is not the header's, or with a value other than -1 and 1, a repeated image, or a count
      line that disagrees with the number of image lines.
  """
  lines = _read_lines(path)
  if len(lines) < 2:
    raise layout_error(f"{path}: expected a count line and a header line, found "
                       f"{len(lines)} line(s).")
  try:
    count = int(lines[0].strip())
  except ValueError:
    raise layout_error(f"{path}, line 1: expected the number of images, got "
                       f"{lines[0][:80]!r}.") from None
  header = lines[1].split()
  missing = [n for n in ATTRIBUTE_NAMES if n not in header]
  if missing:
    raise layout_error(f"{path}, line 2: the attribute header lacks {missing} (it has "
                       f"{len(header)} names: {' '.join(header)[:200]}).")
  positions = tuple(header.index(n) for n in ATTRIBUTE_NAMES)
  if len(header) != NUM_CELEBA_ATTRIBUTES or positions != ATTRIBUTE_INDICES:
    raise layout_error(
        f"{path}, line 2: expected the {NUM_CELEBA_ATTRIBUTES} CelebA attributes in their "
        f"standard order ({ATTRIBUTE_NAMES} at {ATTRIBUTE_INDICES}); found {len(header)} "
        f"names with them at {positions}.")
  columns = np.asarray(positions)
  result = {}
  for number, line in enumerate(lines[2:], start=3):
    fields = line.split()
    if not fields:
      continue  # Blank lines (e.g. a trailing one) carry nothing.
    match = _IMAGE_NAME.match(fields[0])
    if match is None:
      raise layout_error(f"{path}, line {number}: expected an image name `{{i}}.jpg` "
                         f"first, got {fields[0][:80]!r}.")
    values = fields[1:]
    if len(values) != len(header):
      raise layout_error(f"{path}, line {number}: {fields[0]} has {len(values)} attribute "
                         f"values, expected {len(header)}.")
    bad = [v for v in values if v not in ("-1", "1")]
    if bad:
      raise layout_error(f"{path}, line {number}: {fields[0]} has the value {bad[0]!r}; "
                         "attribute values must be -1 or 1.")
    hq = int(match.group(1))
    if hq in result:
      raise layout_error(f"{path}, line {number}: {fields[0]} is listed twice.")
    signs = np.asarray([int(v) for v in values], dtype=np.int8)[columns]
    result[hq] = ((signs + 1) // 2).astype(np.uint8)
  if count != len(result):
    raise layout_error(f"{path}, line 1: says {count} images but lists {len(result)}.")
  return result


def parse_mapping_file(path: str) -> dict[int, int]:
  """Reads `CelebA-HQ-to-CelebA-mapping.txt`.

  Args:
    path: the file.

  Returns:
    CelebA-HQ index -> original CelebA index (orig_idx).

  Raises:
    DataError: naming the file and line on a line that is not `idx orig_idx orig_file`
      with integer idx and orig_idx, or a repeated idx.
  """
  lines = _read_lines(path)
  result = {}
  for number, line in enumerate(lines, start=1):
    fields = line.split()
    if not fields:
      continue
    if number == 1 and not fields[0].isdigit():
      continue  # The header `idx orig_idx orig_file`.
    if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
      raise layout_error(f"{path}, line {number}: expected `idx orig_idx orig_file` with "
                         f"non-negative integers idx and orig_idx, got {line[:80]!r}.")
    hq = int(fields[0])
    if hq in result:
      raise layout_error(f"{path}, line {number}: idx {hq} is listed twice.")
    result[hq] = int(fields[1])
  return result


def split_of(celeba_index: int) -> str:
  """The split of an image from its original CelebA index (DESIGN.md §3.3).

  Args:
    celeba_index: orig_idx of the mapping file.

  Returns:
    'train' if < TRAIN_END, 'validation' if < VALIDATION_END, else 'test'.
  """
  if celeba_index < TRAIN_END:
    return "train"
  if celeba_index < VALIDATION_END:
    return "validation"
  return "test"

