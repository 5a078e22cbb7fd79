"""Decoding one CelebAMask-HQ example: the resized image and the "non-skin" mask."""

from __future__ import annotations

import numpy as np

from diffmvae_jax.data.celebamask_hq.source import Example
from diffmvae_jax.data.errors import DataError

MASK_THRESHOLD = 0.5


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

