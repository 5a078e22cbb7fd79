"""CelebAMask-HQ as three modalities: face image, "non-skin" mask, 18 attributes (TFDS).

What it builds (DESIGN.md §3.3). For every CelebA-HQ image i listed in the attribute file:
  image       uint8 (S, S, 3): `CelebA-HQ-img/{i}.jpg` (1024x1024) decoded in full, converted
              to RGB and resized to S x S with Pillow's antialiased BILINEAR filter (what
              torchvision's `Resize` does to a PIL image).
  mask        uint8 (S, S, 1) in {0, 1}: the union of the parts in MASK_PARTS (every part
              but 'skin') of `CelebAMask-HQ-mask-anno/{i // 2000}/{i:05d}_{part}.png`
              (512x512, 0/255). A part is "on" where its pixel value is > 127 in any colour
              channel (L, RGB, P, 1, LA and RGBA files all work; alpha is ignored); a part
              file that does not exist is a part the face does not have. The union, taken at
              the masks' own resolution, is resized to S x S with a box (area) filter and
              thresholded: a pixel is 1 where at least half of its area is covered (a mean of
              exactly 0.5 counts as on). When the mask size is a multiple of S (512 -> 128)
              the area mean is computed with exact integer counts; otherwise with Pillow's
              BOX filter on float32.
  attributes  uint8 (18,) in {0, 1}: ATTRIBUTE_NAMES picked BY NAME from the attribute
              file's header (they must sit at ATTRIBUTE_INDICES of its 40 names, the standard
              CelebA order), values -1 -> 0 and 1 -> 1.
  celeba_hq_index  int32: i.
  celeba_index     int32: the original CelebA index of i (the mapping file's `orig_idx`).

Splits come from the original CelebA index: orig_idx < 162771 -> train, < 182638 ->
validation, else test (the rule of DESIGN.md §3.3, applied to `orig_idx` as written there).
Within a split, examples are stored in increasing CelebA-HQ index, so record r of a split is
always the same image; `max_examples_per_split` = N keeps the first N of each split.

On-disk layout, read from `manual_dir` or `manual_dir/CelebAMask-HQ` (what the official
CelebAMask-HQ.zip extracts to):
  CelebA-HQ-img/{i}.jpg                                 i = 0..29999
  CelebAMask-HQ-mask-anno/{k}/{i:05d}_{part}.png        k = i // 2000 = 0..14
  CelebAMask-HQ-attribute-anno.txt    line 1: number of images; line 2: the 40 attribute
                                      names; then `{i}.jpg` and 40 values in {-1, 1} per line
  CelebA-HQ-to-CelebA-mapping.txt     header `idx orig_idx orig_file`, then one line per image
The data is the CelebAMask-HQ release of Lee et al., "MaskGAN: Towards Diverse and
Interactive Facial Image Manipulation", CVPR 2020 (https://github.com/switchablenorms/
CelebAMask-HQ, which links the download); its licence allows non-commercial research use
only. Nothing is downloaded: put the extracted folder somewhere and set
`--config.data.manual_dir=/path/to/CelebAMask-HQ`.

The whole layout is checked before anything is written (files and folders present, both
text files well-formed, every listed image present), so a failed check leaves no trace in
`data_dir`; a file that fails to decode later aborts the build, which TFDS keeps atomic.

Storage. Image, mask and attributes are raw uint8 tensors stored as one bytes value each
(`tfds.features.Tensor(..., encoding=Encoding.BYTES)`), like PolyMNIST: no codec at read
time, so the input pipeline only copies bytes. The price is size: (3 + 1) * S * S + 18
bytes per example, about 2.0 GB for the 30,000 examples at S = 128 (7.9 GB at S = 256).

Config keys (data config; see `DATASET.config_defaults`):
  image_size              S, default 128.
  max_examples_per_split  0 = all; N > 0 keeps the first N of each split (smoke builds).
  manual_dir              where the layout above is (not part of the builder config: the
                          same data wherever it lies).
  data_dir                TFDS data dir ('' = TFDS's default).

Cost. The full build decodes 30,000 1024x1024 JPEGs and up to 17 512x512 PNGs per image.
Measured on synthetic files at those resolutions (fixture layout, ~270 KB JPEGs, ~9 parts
per image) on a shared 2-core CPU: 8-20 ms per JPEG (decode + resize), ~2 ms per part PNG
(L ~1 ms, RGB ~3-5 ms), and a build of ~28 ms per example with 2 decoding threads: about 15
minutes for the 30,000 images on such a machine, less with more cores (up to 8 threads;
Pillow releases the GIL while decoding). The real dataset's build has not been timed.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from diffmvae_jax.data import dataset_api
from diffmvae_jax.data.errors import DataError

NAME = "celebamask_hq"
ATTRIBUTE_NAMES = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows",
    "Eyeglasses", "Gray_Hair", "Heavy_Makeup", "Male", "Mouth_Slightly_Open", "Mustache",
    "Pale_Skin", "Receding_Hairline", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Hat",
)
# Where ATTRIBUTE_NAMES sit among the 40 CelebA attributes (0-based), DESIGN.md §3.3.
ATTRIBUTE_INDICES = (4, 5, 8, 9, 11, 12, 15, 17, 18, 20, 21, 22, 26, 28, 31, 32, 33, 35)
NUM_CELEBA_ATTRIBUTES = 40
# Every annotated part except 'skin': their union is the "non-skin" mask.
MASK_PARTS = (
    "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
    "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
# Original CelebA index boundaries of the splits: < TRAIN_END train, < VALIDATION_END
# validation, else test.
TRAIN_END = 162771
VALIDATION_END = 182638
SPLITS = ("train", "validation", "test")

IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
ATTRIBUTE_FILE = "CelebAMask-HQ-attribute-anno.txt"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
NESTED_DIR = "CelebAMask-HQ"
IMAGES_PER_MASK_FOLDER = 2000
DEFAULT_IMAGE_SIZE = 128
MAX_IMAGE_SIZE = 1024
MASK_THRESHOLD = 0.5

_CHUNK = 256  # Examples decoded concurrently before being handed to the writer.
_DECODE_THREADS = max(1, min(8, os.cpu_count() or 1))
_MASK_NAME = re.compile(r"^(\d+)_([a-z_]+)\.png$")
_IMAGE_NAME = re.compile(r"^(\d+)\.jpg$")

LAYOUT_HELP = f"""\
Expected layout (the extracted CelebAMask-HQ.zip), in manual_dir or manual_dir/{NESTED_DIR}:
  {IMAGE_DIR}/{{i}}.jpg                              i = 0..29999
  {MASK_DIR}/{{i // 2000}}/{{i:05d}}_{{part}}.png     folders 0..14
  {ATTRIBUTE_FILE}
  {MAPPING_FILE}
The data is the CelebAMask-HQ release of Lee et al. 2020 (MaskGAN, CVPR 2020): see
https://github.com/switchablenorms/CelebAMask-HQ for the download (non-commercial research
use only). Point the config at it with --config.data.manual_dir=/path/to/CelebAMask-HQ."""


def _layout_error(message: str) -> DataError:
  return DataError(f"CelebAMask-HQ: {message}\n{LAYOUT_HELP}")


# ----------------------------------------------------------------------------- layout scan


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


def find_root(manual_dir: str) -> str:
  """The directory holding the layout: `manual_dir` or `manual_dir/CelebAMask-HQ`.

  Args:
    manual_dir: the configured manual_dir.

  Returns:
    The root directory.

  Raises:
    DataError: manual_dir is empty or does not exist.
  """
  if not manual_dir:
    raise _layout_error("data.manual_dir is not set; CelebAMask-HQ cannot be downloaded "
                        "automatically.")
  manual_dir = os.path.expanduser(str(manual_dir))
  if not os.path.isdir(manual_dir):
    raise _layout_error(f"manual_dir {manual_dir} does not exist.")
  nested = os.path.join(manual_dir, NESTED_DIR)
  entries = (IMAGE_DIR, MASK_DIR, ATTRIBUTE_FILE, MAPPING_FILE)
  if not any(os.path.exists(os.path.join(manual_dir, e)) for e in entries) and \
      os.path.isdir(nested):
    return nested
  return manual_dir


def _read_lines(path: str) -> list[str]:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read().splitlines()
  except UnicodeDecodeError as e:
    raise _layout_error(f"{path} is not a text file ({e}).") from e


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
    raise _layout_error(f"{path}: expected a count line and a header line, found "
                        f"{len(lines)} line(s).")
  try:
    count = int(lines[0].strip())
  except ValueError:
    raise _layout_error(f"{path}, line 1: expected the number of images, got "
                        f"{lines[0][:80]!r}.") from None
  header = lines[1].split()
  missing = [n for n in ATTRIBUTE_NAMES if n not in header]
  if missing:
    raise _layout_error(f"{path}, line 2: the attribute header lacks {missing} (it has "
                        f"{len(header)} names: {' '.join(header)[:200]}).")
  positions = tuple(header.index(n) for n in ATTRIBUTE_NAMES)
  if len(header) != NUM_CELEBA_ATTRIBUTES or positions != ATTRIBUTE_INDICES:
    raise _layout_error(
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
      raise _layout_error(f"{path}, line {number}: expected an image name `{{i}}.jpg` "
                          f"first, got {fields[0][:80]!r}.")
    values = fields[1:]
    if len(values) != len(header):
      raise _layout_error(f"{path}, line {number}: {fields[0]} has {len(values)} attribute "
                          f"values, expected {len(header)}.")
    bad = [v for v in values if v not in ("-1", "1")]
    if bad:
      raise _layout_error(f"{path}, line {number}: {fields[0]} has the value {bad[0]!r}; "
                          "attribute values must be -1 or 1.")
    hq = int(match.group(1))
    if hq in result:
      raise _layout_error(f"{path}, line {number}: {fields[0]} is listed twice.")
    signs = np.asarray([int(v) for v in values], dtype=np.int8)[columns]
    result[hq] = ((signs + 1) // 2).astype(np.uint8)
  if count != len(result):
    raise _layout_error(f"{path}, line 1: says {count} images but lists {len(result)}.")
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
      raise _layout_error(f"{path}, line {number}: expected `idx orig_idx orig_file` with "
                          f"non-negative integers idx and orig_idx, got {line[:80]!r}.")
    hq = int(fields[0])
    if hq in result:
      raise _layout_error(f"{path}, line {number}: idx {hq} is listed twice.")
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
      raise _layout_error(f"the folder {paths[entry]} is missing.")
  for entry in (ATTRIBUTE_FILE, MAPPING_FILE):
    if not os.path.isfile(paths[entry]):
      raise _layout_error(f"the file {paths[entry]} is missing.")
  attributes = parse_attribute_file(paths[ATTRIBUTE_FILE])
  mapping = parse_mapping_file(paths[MAPPING_FILE])
  unmapped = sorted(set(attributes) - set(mapping))
  if unmapped:
    raise _layout_error(f"{len(unmapped)} image(s) of {paths[ATTRIBUTE_FILE]} are not in "
                        f"{paths[MAPPING_FILE]}, e.g. {unmapped[:5]}.")
  with os.scandir(paths[IMAGE_DIR]) as entries:
    present = {e.name for e in entries}
  absent = [f"{hq}.jpg" for hq in sorted(attributes) if f"{hq}.jpg" not in present]
  if absent:
    raise _layout_error(f"{len(absent)} image(s) listed in {paths[ATTRIBUTE_FILE]} are "
                        f"missing from {paths[IMAGE_DIR]}: {', '.join(absent[:5])}"
                        + (", ..." if len(absent) > 5 else "") + ".")
  folders = sorted({hq // IMAGES_PER_MASK_FOLDER for hq in attributes})
  parts = {}  # Mask folder k -> {CelebA-HQ index -> part paths}.
  for k in folders:
    folder = os.path.join(paths[MASK_DIR], str(k))
    if not os.path.isdir(folder):
      raise _layout_error(f"the mask folder {folder} is missing (it holds the masks of "
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


# ----------------------------------------------------------------------------- decoding


def load_image(path: str, size: int) -> np.ndarray:
  """A CelebA-HQ JPEG as uint8 (size, size, 3).

  Args:
    path: the JPEG.
    size: output height and width.

  Returns:
    RGB uint8 array, resized with Pillow's antialiased BILINEAR filter.

  Raises:
    DataError: the file cannot be decoded.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as im:
      rgb = im.convert("RGB")
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise DataError(f"CelebAMask-HQ: cannot decode the image {path}: {e}") from e
  if rgb.size != (size, size):
    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
  return np.asarray(rgb, dtype=np.uint8)


def load_part(path: str) -> np.ndarray:
  """One part PNG as a bool (H, W) array: True where any colour channel is > 127.

  Args:
    path: the PNG. Single-band files (L, I, I;16, F) are thresholded as they are; colour
      files (RGB, RGBA, LA) on their colour channels (alpha is ignored); palette files (P,
      PA) on the palette colour of each pixel; mode 1 as is; other modes after conversion
      to RGB.

  Returns:
    bool (H, W).

  Raises:
    DataError: the file cannot be decoded.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as im:
      mode = im.mode
      if mode == "1":
        return np.array(im, dtype=bool)
      if mode in ("P", "PA"):
        palette = np.asarray(im.getpalette("RGB") or [], dtype=np.int64).reshape(-1, 3)
        on = np.zeros(256, dtype=bool)
        on[:len(palette)] = (palette > 127).any(axis=1)[:256]
        index = np.asarray(im)
        return on[index[..., 0] if index.ndim == 3 else index]
      if mode not in ("L", "I", "I;16", "I;16B", "F", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
      arr = np.asarray(im)
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise DataError(f"CelebAMask-HQ: cannot decode the mask {path}: {e}") from e
  if arr.ndim == 3:
    colour = 1 if arr.shape[2] == 2 else min(arr.shape[2], 3)  # LA -> L; RGBA -> RGB.
    merged = arr[:, :, 0]
    for c in range(1, colour):
      merged = merged | arr[:, :, c]
    # On uint8, "> 127 in some channel" is "the high bit is set in the OR of the channels".
    arr = merged
  return arr > 127


def resize_mask(union: np.ndarray, size: int) -> np.ndarray:
  """Box (area) resize of a binary mask, then threshold at MASK_THRESHOLD (ties -> 1).

  Args:
    union: bool (H, W).
    size: output height and width.

  Returns:
    uint8 (size, size) in {0, 1}: 1 where at least half of the pixel's area is covered.
  """
  h, w = union.shape
  if h % size == 0 and w % size == 0:
    fh, fw = h // size, w // size
    counts = union.reshape(size, fh, size, fw).sum(axis=(1, 3), dtype=np.int64)
    return (2 * counts >= fh * fw).astype(np.uint8)  # Exact: mean >= 0.5.
  from PIL import Image  # pylint: disable=g-import-not-at-top

  resized = Image.fromarray(union.astype(np.float32), mode="F").resize(
      (size, size), Image.Resampling.BOX)
  return (np.asarray(resized) >= MASK_THRESHOLD).astype(np.uint8)


def merge_parts(part_paths, size: int) -> np.ndarray:
  """The "non-skin" mask of one image from its part files.

  Args:
    part_paths: paths of the image's part PNGs that exist (all of MASK_PARTS; 'skin' and
      other names must already be filtered out).
    size: output height and width.

  Returns:
    uint8 (size, size, 1) in {0, 1}: their union, box-resized and thresholded (resize_mask);
    all zeros without parts.

  Raises:
    DataError: a part cannot be decoded, or the parts differ in size.
  """
  union = None
  for path in part_paths:
    part = load_part(path)
    if union is None:
      union = part.copy()
    elif part.shape != union.shape:
      raise DataError(f"CelebAMask-HQ: the mask {path} is {part.shape[1]}x{part.shape[0]}, "
                      f"unlike the other parts of its image ({union.shape[1]}x"
                      f"{union.shape[0]}).")
    else:
      union |= part
  if union is None:
    return np.zeros((size, size, 1), dtype=np.uint8)
  return resize_mask(union, size)[..., None]


def decode_example(example: Example, size: int) -> dict:
  """The stored features of one image.

  Args:
    example: from scan_layout.
    size: image_size.

  Returns:
    The feature dict of CelebAMaskHq's FeaturesDict.
  """
  return {
      "image": load_image(example.image_path, size),
      "mask": merge_parts(example.part_paths, size),
      "attributes": example.attributes,
      "celeba_hq_index": np.int32(example.hq_index),
      "celeba_index": np.int32(example.celeba_index),
  }


# ----------------------------------------------------------------------------- builder


@dataclasses.dataclass
class CelebAMaskHqConfig(tfds.core.BuilderConfig):
  """CelebAMask-HQ variant.

  Attributes:
    image_size: S, height and width of image and mask.
    max_examples_per_split: keep the first N (by CelebA-HQ index) of each split, 0 = all.
  """
  image_size: int = DEFAULT_IMAGE_SIZE
  max_examples_per_split: int = 0

  @classmethod
  def make(cls, image_size: int = DEFAULT_IMAGE_SIZE,
           max_examples_per_split: int = 0) -> "CelebAMaskHqConfig":
    """A config whose name is derived from its fields (e.g. 's128', 's64_n20').

    Args:
      image_size: 1..MAX_IMAGE_SIZE.
      max_examples_per_split: >= 0.

    Returns:
      The config.

    Raises:
      DataError: a field is out of range.
    """
    if not 1 <= image_size <= MAX_IMAGE_SIZE:
      raise DataError(f"data.image_size must be in 1..{MAX_IMAGE_SIZE} for CelebAMask-HQ, "
                      f"got {image_size}")
    if max_examples_per_split < 0:
      raise DataError("data.max_examples_per_split must be >= 0, got "
                      f"{max_examples_per_split}")
    name = f"s{image_size}"
    if max_examples_per_split:
      name += f"_n{max_examples_per_split}"
    return cls(name=name, image_size=image_size,
               max_examples_per_split=max_examples_per_split,
               description=f"{image_size}x{image_size}"
               + (f", first {max_examples_per_split} examples per split"
                  if max_examples_per_split else ""))


def _config_fields(config: CelebAMaskHqConfig) -> tuple:
  return (config.image_size, config.max_examples_per_split)


class CelebAMaskHq(tfds.core.GeneratorBasedBuilder):
  """CelebAMask-HQ image, non-skin mask and 18 attributes, from a manual download."""

  name = NAME
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [CelebAMaskHqConfig.make(s) for s in (64, 128)]
  DEFAULT_CONFIG_NAME = f"s{DEFAULT_IMAGE_SIZE}"
  # As in polymnist.py: TFDS derives `code_path` through `importlib_resources`, which it
  # does not declare as a dependency; naming the file directly avoids that import.
  code_path = epath.Path(__file__)

  def __init__(self, *, manual_dir: str = "", **kwargs):
    """Creates the builder.

    Args:
      manual_dir: directory holding the CelebAMask-HQ layout (or its parent); read only
        when building.
      **kwargs: tfds DatasetBuilder arguments (data_dir, config, file_format, ...).
    """
    self._celebamask_dir = manual_dir
    self._layout = None
    config = kwargs.get("config")
    if isinstance(config, CelebAMaskHqConfig):
      # As in polymnist.py: TFDS accepts a registered config's name only as that very
      # object, so an equal config made elsewhere is swapped for it.
      registered = {c.name: c for c in self.BUILDER_CONFIGS}.get(config.name)
      if registered is not None and registered is not config:
        if _config_fields(registered) != _config_fields(config):
          raise DataError(f"config {config.name!r} differs from the registered config of that "
                          "name; build it with CelebAMaskHqConfig.make")
        kwargs["config"] = registered
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size

    def raw(shape):
      return tfds.features.Tensor(shape=shape, dtype=np.uint8,
                                  encoding=tfds.features.Encoding.BYTES)

    return self.dataset_info_from_configs(
        description=(
            "CelebAMask-HQ (Lee et al., MaskGAN, CVPR 2020): CelebA-HQ faces resized to "
            f"{s}x{s}, a binary non-skin mask (union of {', '.join(MASK_PARTS)}; box-resized, "
            f"threshold 0.5) and 18 binary attributes ({', '.join(ATTRIBUTE_NAMES)}). Splits "
            f"by original CelebA index: < {TRAIN_END} train, < {VALIDATION_END} validation, "
            "else test."),
        features=tfds.features.FeaturesDict({
            "image": raw((s, s, 3)),
            "mask": raw((s, s, 1)),
            "attributes": raw((len(ATTRIBUTE_NAMES),)),
            "celeba_hq_index": tfds.features.Scalar(dtype=np.int32),
            "celeba_index": tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=None,
        homepage="https://github.com/switchablenorms/CelebAMask-HQ",
        disable_shuffling=True,  # Record r of a split is its r-th image by CelebA-HQ index.
    )

  def download_and_prepare(self, *args, **kwargs):
    """Checks the manual_dir layout (writing nothing), then builds as TFDS does.

    Args:
      *args, **kwargs: as tfds.core.DatasetBuilder.download_and_prepare.

    Raises:
      DataError: the layout is missing or malformed (before anything is written).
    """
    if self._layout is None and not self.is_prepared():
      self._layout = scan_layout(self._celebamask_dir,
                                 self.builder_config.max_examples_per_split)
    return super().download_and_prepare(*args, **kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    if self._layout is None:
      self._layout = scan_layout(self._celebamask_dir,
                                 self.builder_config.max_examples_per_split)
    return {split: self._generate_examples(self._layout.splits[split]) for split in SPLITS}

  def _generate_examples(self, examples):
    size = self.builder_config.image_size
    with concurrent.futures.ThreadPoolExecutor(_DECODE_THREADS) as pool:
      for start in range(0, len(examples), _CHUNK):
        chunk = examples[start:start + _CHUNK]
        decoded = list(pool.map(lambda ex: decode_example(ex, size), chunk))
        for ex, features in zip(chunk, decoded):
          yield ex.hq_index, features


def make_builder(*, image_size: int = DEFAULT_IMAGE_SIZE, max_examples_per_split: int = 0,
                 data_dir: str = "", manual_dir: str = "") -> CelebAMaskHq:
  """A CelebAMaskHq builder for these fields (registered config if one matches).

  Args:
    image_size: S.
    max_examples_per_split: 0 = all.
    data_dir: TFDS data dir ('' = TFDS default, ~/tensorflow_datasets).
    manual_dir: the CelebAMask-HQ layout (or its parent); needed only to build.

  Returns:
    The builder (not necessarily built), writing array_record.

  Raises:
    DataError: a field is out of range.
  """
  config = CelebAMaskHqConfig.make(image_size, max_examples_per_split)
  return CelebAMaskHq(data_dir=data_dir or None, config=config, file_format="array_record",
                      manual_dir=manual_dir)


# ----------------------------------------------------------------------------- Dataset API


def _config_get(data_config, key: str, default):
  value = data_config.get(key, default)
  return default if value is None else value


class CelebAMaskHqDataset:
  """CelebAMask-HQ through data/dataset_api.py's `Dataset` protocol (see DATASET)."""

  name = NAME
  config_defaults = {"image_size": DEFAULT_IMAGE_SIZE, "max_examples_per_split": 0}

  def make_builder(self, data_config) -> CelebAMaskHq:
    """The builder for a data config.

    Args:
      data_config: ConfigDict or dict; reads data_dir, manual_dir, image_size and
        max_examples_per_split (missing keys take their defaults).

    Returns:
      The CelebAMaskHq builder (not necessarily built).

    Raises:
      DataError: a value is out of range.
    """
    defaults = self.config_defaults
    return make_builder(
        image_size=int(_config_get(data_config, "image_size", defaults["image_size"])),
        max_examples_per_split=int(_config_get(data_config, "max_examples_per_split",
                                               defaults["max_examples_per_split"])),
        data_dir=os.path.expanduser(str(_config_get(data_config, "data_dir", ""))),
        manual_dir=os.path.expanduser(str(_config_get(data_config, "manual_dir", ""))))

  def modality_specs(self, builder) -> dict[str, dataset_api.ModalitySpec]:
    """'image', 'mask', 'attributes' specs of pipeline batches.

    Args:
      builder: a CelebAMaskHq builder (need not be built).

    Returns:
      name -> ModalitySpec, in batch order.
    """
    s = builder.builder_config.image_size
    return {
        "image": dataset_api.ModalitySpec("image", "image", (s, s, 3), "float32"),
        "mask": dataset_api.ModalitySpec("mask", "mask", (s, s, 1), "float32"),
        "attributes": dataset_api.ModalitySpec("attributes", "attributes",
                                               (len(ATTRIBUTE_NAMES),), "float32",
                                               num_classes=len(ATTRIBUTE_NAMES)),
    }

  def num_records(self, builder, split: str) -> int:
    """Number of examples of a split of a built dataset.

    Args:
      builder: a built CelebAMaskHq builder.
      split: 'train' | 'validation' | 'test'.

    Returns:
      The count (one record per stored example).

    Raises:
      DataError: unknown split.
    """
    if split not in SPLITS:
      raise DataError(f"unknown split {split!r}; splits: {list(SPLITS)}")
    return int(builder.info.splits[split].num_examples)

  def read_batch(self, source, ids: np.ndarray, split: str) -> dict[str, np.ndarray]:
    """Reads and decodes records of a split.

    Args:
      source: the split's TFDS data source (builder.as_data_source(split)).
      ids: int (b,) record ids (= stored example indices).
      split: the split's name (unused: records are examples).

    Returns:
      {'image': float32 (b, S, S, 3) in [-1, 1], 'mask': float32 (b, S, S, 1) in {0, 1},
       'attributes': float32 (b, 18) in {0, 1}}.
    """
    del split
    index = [int(i) for i in np.asarray(ids).reshape(-1)]
    if hasattr(source, "__getitems__"):
      examples = source.__getitems__(index)
    else:
      examples = [source[i] for i in index]
    images = np.stack([ex["image"] for ex in examples]).astype(np.float32)
    return {
        "image": images / np.float32(127.5) - np.float32(1.0),
        "mask": np.stack([ex["mask"] for ex in examples]).astype(np.float32),
        "attributes": np.stack([ex["attributes"] for ex in examples]).astype(np.float32),
    }

  def vocabulary(self, builder):
    """None: CelebAMask-HQ has no captions.

    Args:
      builder: unused.

    Returns:
      None.
    """
    del builder
    return None


DATASET = CelebAMaskHqDataset()
