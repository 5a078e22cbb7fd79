"""CelebAMask-HQ's on-disk layout: entry names, where it lies (find_root), its help text."""

from __future__ import annotations

import os

from diffmvae_jax.data.errors import DataError

IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
ATTRIBUTE_FILE = "CelebAMask-HQ-attribute-anno.txt"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
NESTED_DIR = "CelebAMask-HQ"
IMAGES_PER_MASK_FOLDER = 2000

LAYOUT_HELP = f"""\
Expected layout (the extracted CelebAMask-HQ.zip), in manual_dir or manual_dir/{NESTED_DIR}:
  {IMAGE_DIR}/{{i}}.jpg                              i = 0..29999
  {MASK_DIR}/{{i // 2000}}/{{i:05d}}_{{part}}.png     folders 0..14
  {ATTRIBUTE_FILE}
  {MAPPING_FILE}
The data is the CelebAMask-HQ release of Lee et al. 2020 (MaskGAN, CVPR 2020): see
https://github.com/switchablenorms/CelebAMask-HQ for the download (non-commercial research
use only). Point the config at it with --config.data.manual_dir=/path/to/CelebAMask-HQ."""


def layout_error(message: str) -> DataError:
  """A DataError about the layout: "CelebAMask-HQ: {message}" then LAYOUT_HELP."""
  return DataError(f"CelebAMask-HQ: {message}\n{LAYOUT_HELP}")


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
    raise layout_error("data.manual_dir is not set; CelebAMask-HQ cannot be downloaded "
                       "automatically.")
  manual_dir = os.path.expanduser(str(manual_dir))
  if not os.path.isdir(manual_dir):
    raise layout_error(f"manual_dir {manual_dir} does not exist.")
  nested = os.path.join(manual_dir, NESTED_DIR)
  entries = (IMAGE_DIR, MASK_DIR, ATTRIBUTE_FILE, MAPPING_FILE)
  if not any(os.path.exists(os.path.join(manual_dir, e)) for e in entries) and \
      os.path.isdir(nested):
    return nested
  return manual_dir

