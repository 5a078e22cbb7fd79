"""Sample grids: arrays in [-1, 1] -> uint8 image grids -> PNG files."""

import os

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
  """(..., H, W, C) float in [-1, 1] -> uint8 in [0, 255]; grey becomes RGB."""
  x = np.asarray(images, np.float32)
  x = np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return x


def grid(columns, pad: int = 2) -> np.ndarray:
  """Tiles a list of (N, H, W, 3) uint8 columns into one (rows=N) uint8 image."""
  n, h, w, c = columns[0].shape
  out = np.full((n * (h + pad) + pad, len(columns) * (w + pad) + pad, c), 255, np.uint8)
  for j, col in enumerate(columns):
    for i in range(n):
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      out[y:y + h, x:x + w] = col[i]
  return out


def save_png(image: np.ndarray, path: str) -> str:
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = path + '.tmp.png'
  Image.fromarray(image).save(tmp)
  os.replace(tmp, path)
  return path
