"""Decoding one CUB photo: the StackGAN bounding-box crop and the resize to S x S."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from diffmvae_jax.data.errors import DataError

# Side of the StackGAN bounding-box crop, relative to the box's longer side.
BBOX_CROP_SCALE = 1.5


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

