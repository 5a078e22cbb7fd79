"""Sample grids: images in [-1, 1] and masks in [0, 1] -> uint8 grids -> PNG; attribute text.

Which modality kinds are drawn in grids (GRID_KINDS) and how:
  image  float (..., H, W, C) in [-1, 1] -> RGB (grey images repeated to 3 channels)
  mask   float (..., H, W, 1) in [0, 1] (data, or generated probabilities) -> grey RGB,
         0 black, 1 white (probabilities shown as grey levels, not thresholded)
Attributes are written as text (`attributes_text`), like captions and labels.
"""

import os
from typing import Sequence

import numpy as np
from PIL import Image

GRID_KINDS = ('image', 'mask')


def to_uint8(images) -> np.ndarray:
  """(..., H, W, C) float in [-1, 1] -> uint8 in [0, 255]; grey becomes RGB."""
  x = np.asarray(images, np.float32)
  x = np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return x


def mask_to_uint8(masks) -> np.ndarray:
  """(..., H, W, 1) float in [0, 1] (masks or their probabilities) -> grey uint8 RGB."""
  return to_uint8(np.asarray(masks, np.float32) * 2.0 - 1.0)


def modality_to_uint8(kind: str, values) -> np.ndarray:
  """A batch of one grid-drawn modality kind -> uint8 (N, H, W, 3) for `grid`.

  Args:
    kind: 'image' (values in [-1, 1]) or 'mask' (values in [0, 1]).
    values: float (N, H, W, C).

  Raises:
    ValueError: a kind that is not drawn (see GRID_KINDS).
  """
  if kind == 'image':
    return to_uint8(values)
  if kind == 'mask':
    return mask_to_uint8(values)
  raise ValueError(f'{kind!r} modalities are not drawn in grids (only {GRID_KINDS}).')


def attributes_text(values, names: Sequence[str] | None = None,
                    threshold: float = 0.5) -> str:
  """One attribute vector as text: the attributes that are on, comma separated.

  Args:
    values: float (K,) in [0, 1]: data in {0, 1} or generated probabilities; an attribute
      is on when its value >= threshold (the convention of metrics/f1.py).
    names: K attribute names, or None to write indices.
    threshold: the on/off threshold.

  Returns:
    e.g. 'even,closed_loop' or '0,3,12'; '' when none is on.
  """
  values = np.asarray(values).reshape(-1)
  on = np.flatnonzero(values >= threshold).tolist()
  if names is not None and len(names) == len(values):
    return ','.join(str(names[i]) for i in on)
  return ','.join(str(i) for i in on)


def grid(columns, pad: int = 2) -> np.ndarray:
  """Tiles a list of (N, H, W, 3) uint8 columns into one (rows=N) uint8 image.

  Columns may differ in H and W (e.g. an image and a mask of another size); each
  cell is as large as the largest column and smaller items sit in its top-left corner.
  """
  n, _, _, c = columns[0].shape
  h = max(col.shape[1] for col in columns)
  w = max(col.shape[2] for col in columns)
  out = np.full((n * (h + pad) + pad, len(columns) * (w + pad) + pad, c), 255, np.uint8)
  for j, col in enumerate(columns):
    for i in range(n):
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      out[y:y + col.shape[1], x:x + col.shape[2]] = col[i]
  return out


def save_png(image: np.ndarray, path: str) -> str:
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = path + '.tmp.png'
  Image.fromarray(image).save(tmp)
  os.replace(tmp, path)
  return path
