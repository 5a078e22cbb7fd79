"""A tiny fake CUB written at test time, in both on-disk layouts that data/cub/ reads.

  write_official_layout(root, ...) -> manual_dir   CUB_200_2011/ + text_c10/ (Reed et al.)
  write_mmvae_layout(root, ...) -> manual_dir      MMVAE's unzipped cub.zip: cub/{train,test}/

Both describe the same fake birds: class c (0-based) has the folder `class_dir(c)`, image j of
class c the file `file_stem(c, j) + '.jpg'` (a small random-noise JPEG over a colour gradient,
`image_size` = (height, width)) and the captions `captions_for(c, j, n)`: common words (in
the vocabulary with min count 3), 'caption<k>' naming the caption's position k, a word
'unique<c>x<j>' of that image only (10 times: in the vocabulary only if the image is in the
train split) and, in image (0, 0), the word 'twice' twice (never in the vocabulary).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

COLOURS = ("red", "blue", "green", "yellow", "brown", "grey", "black", "white")
PARTS = ("wings", "beak", "tail", "crown", "belly")


def class_dir(c: int) -> str:
  """Folder name of class c (0-based), CUB style: '001.Fake_bird_0'."""
  return f"{c + 1:03d}.Fake_bird_{c}"


def file_stem(c: int, j: int) -> str:
  """File name (no extension) of image j of class c.

  The number is chosen so that sorted file names are NOT in j order (so tests catch code
  that assumes the writing order).
  """
  return f"Fake_Bird_{(7 * j + 3) % 10:04d}_{c}_{j}"


def captions_for(c: int, j: int, n: int = 10) -> list[str]:
  """The n captions of image j of class c.

  Caption k reads e.g. 'This bird has RED wings, and a blue beak. caption3 unique2x1': the
  colours depend on (c, k), 'caption<k>' names the position and 'unique<c>x<j>' is a word of
  this image only; captions 1 and 3 of image (0, 0) also end in 'twice', a word below the
  minimum count 3 in any split.
  """
  out = []
  for k in range(n):
    words = (f"This bird has {COLOURS[(c + k) % len(COLOURS)].upper()} "
             f"{PARTS[k % len(PARTS)]}, and a {COLOURS[(2 * c + k + 1) % len(COLOURS)]} "
             f"{PARTS[(k + 1) % len(PARTS)]}. caption{k} unique{c}x{j}")
    if c == 0 and j == 0 and k in (1, 3):
      words += " twice"
    out.append(words)
  return out


def _image(c: int, j: int, image_size: tuple[int, int], seed: int) -> np.ndarray:
  h, w = image_size
  rng = np.random.default_rng((seed, c, j))
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([255 * yy / max(h - 1, 1), 255 * xx / max(w - 1, 1),
                   np.full((h, w), 40.0 * (c % 6))], axis=-1)
  noise = rng.normal(0, 40, size=(h, w, 3))
  return np.clip(base + noise, 0, 255).astype(np.uint8)


def _write_jpeg(path: str, array: np.ndarray) -> None:
  from PIL import Image
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path, format="JPEG", quality=90)


def _write_lines(path: str, lines) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(line + "\n" for line in lines))


def is_test_image(j: int) -> bool:
  """Official layout: image j of each class is a test image when j % 4 == 3."""
  return j % 4 == 3


def bbox_for(c: int, j: int, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
  """(x, y, width, height) of the fake bird: a box in the top-left half of the image."""
  h, w = image_size
  return (2 + (c + j) % 3, 3, max(2, w // 4), max(2, h // 4))


def write_official_layout(root, num_classes: int = 3, images_per_class: int = 4,
                          image_size: tuple[int, int] = (40, 50),
                          captions_per_image: int = 10, *, nested: bool = True,
                          text_dir: str = "text_c10", seed: int = 0) -> pathlib.Path:
  """Writes CUB-200-2011 + text_c10 for a few fake birds.

  Args:
    root: directory to write into (created if needed); it becomes the manual_dir.
    num_classes: number of class folders.
    images_per_class: images per class; image j is a test image when j % 4 == 3.
    image_size: (height, width) of the JPEGs.
    captions_per_image: lines per caption file (the real data has 10).
    nested: True: root/CUB_200_2011/...; False: the CUB_200_2011 files directly in root.
    text_dir: where the captions go, relative to root: 'text_c10',
      'cvpr2016_cub/text_c10' or 'CUB_200_2011/text_c10'.
    seed: seeds the image noise.

  Returns:
    The manual_dir (root) as a pathlib.Path. Image ids are 1-based, class-major
    (id = c * images_per_class + j + 1).
  """
  root = pathlib.Path(root)
  cub = root / "CUB_200_2011" if nested else root
  images, split, labels, boxes = [], [], [], []
  for c in range(num_classes):
    for j in range(images_per_class):
      i = c * images_per_class + j + 1
      name = f"{class_dir(c)}/{file_stem(c, j)}.jpg"
      _write_jpeg(str(cub / "images" / name), _image(c, j, image_size, seed))
      _write_lines(str(root / text_dir / class_dir(c) / f"{file_stem(c, j)}.txt"),
                   captions_for(c, j, captions_per_image))
      images.append(f"{i} {name}")
      split.append(f"{i} {0 if is_test_image(j) else 1}")
      labels.append(f"{i} {c + 1}")
      boxes.append(f"{i} " + " ".join(f"{v:.1f}" for v in bbox_for(c, j, image_size)))
  _write_lines(str(cub / "images.txt"), images)
  _write_lines(str(cub / "train_test_split.txt"), split)
  _write_lines(str(cub / "image_class_labels.txt"), labels)
  _write_lines(str(cub / "bounding_boxes.txt"), boxes)
  _write_lines(str(cub / "classes.txt"), [f"{c + 1} {class_dir(c)}"
                                          for c in range(num_classes)])
  return root


def mmvae_test_classes(num_classes: int) -> list[int]:
  """MMVAE layout: the classes in cub/test/ (the last quarter, at least one)."""
  k = max(1, num_classes // 4)
  return list(range(num_classes - k, num_classes))


def write_mmvae_layout(root, num_classes: int = 3, images_per_class: int = 4,
                       image_size: tuple[int, int] = (40, 50), captions_per_image: int = 10,
                       *, nested: bool = True, seed: int = 0) -> pathlib.Path:
  """Writes MMVAE's unzipped cub.zip for the same fake birds as write_official_layout.

  Args:
    root: directory to write into (created if needed); it becomes the manual_dir.
    num_classes: number of class folders; the last `mmvae_test_classes` go to cub/test/,
      the others to cub/train/ (MMVAE splits by class).
    images_per_class: images per class.
    image_size: (height, width) of the JPEGs.
    captions_per_image: caption lines per image in the text files.
    nested: True: root/cub/...; False: the cub/ contents directly in root.
    seed: seeds the image noise (same images as write_official_layout with the same seed).

  Returns:
    The manual_dir (root) as a pathlib.Path. The text files list each image's captions in
    ImageFolder order: sorted class folders, then sorted file names.
  """
  root = pathlib.Path(root)
  cub = root / "cub" if nested else root
  test_classes = set(mmvae_test_classes(num_classes))
  lines = {"train": [], "test": []}
  for c in range(num_classes):
    split = "test" if c in test_classes else "train"
    for j in sorted(range(images_per_class), key=lambda j, c=c: file_stem(c, j)):
      _write_jpeg(str(cub / split / class_dir(c) / f"{file_stem(c, j)}.jpg"),
                  _image(c, j, image_size, seed))
      lines[split].extend(captions_for(c, j, captions_per_image))
  _write_lines(str(cub / "text_trainvalclasses.txt"), lines["train"])
  _write_lines(str(cub / "text_testclasses.txt"), lines["test"])
  return root


def parse_file_name(file_name: str) -> tuple[int, int]:
  """(c, j) of a stored file_name ('<class dir>/<stem>.jpg', maybe prefixed by the split)."""
  stem = os.path.splitext(file_name.split("/")[-1])[0]
  _, _, _, c, j = stem.split("_")
  return int(c), int(j)
