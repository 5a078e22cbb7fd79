"""A tiny fake CelebAMask-HQ in exactly the official on-disk layout, for tests.

  root = celebamask_fixture.write_layout(tmp_path / "manual")   # 12 images, 64px, 32px masks

writes, under `root` (or `root/CelebAMask-HQ` with nested=True):
  CelebA-HQ-img/{i}.jpg                               image_size x image_size JPEGs
  CelebAMask-HQ-mask-anno/{i // 2000}/{i:05d}_{part}.png   mask_size x mask_size, 0/255
  CelebAMask-HQ-attribute-anno.txt                    count, 40 names, `{i}.jpg` + 40 ±1
  CelebA-HQ-to-CelebA-mapping.txt                     `idx orig_idx orig_file` + 1 per image

Everything is a deterministic function of the CelebA-HQ index, so tests recompute what
was written with `attribute_signs`, `part_masks` and `image_colour`. With the default
original indices the 12 images fall 5/4/3 into train/validation/test and sit on both sides
of both split boundaries (162770, 162771, 182637, 182638).
"""

from __future__ import annotations

import os

import numpy as np

# The 40 CelebA attributes in the order of CelebAMask-HQ-attribute-anno.txt.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
# The 18 part names of the official annotation (g_mask.py's label_list).
PARTS = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
    "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
# Original CelebA indices of the first 12 images: train < 162771 <= validation < 182638.
DEFAULT_ORIG_INDICES = (5, 162769, 162770, 162771, 170000, 182636, 182637, 182638, 190000,
                        100, 202598, 1000)
NUM_CELEBA = 202599
# PNG modes the parts are written in, cycled by part: real files are 0/255, L or RGB.
PART_MODES = ("L", "RGB", "P", "1")
NESTED_DIR = "CelebAMask-HQ"


def _rng(hq_index: int, purpose: int) -> np.random.Generator:
  return np.random.default_rng(np.random.SeedSequence((hq_index, purpose)))


def orig_indices(num_images: int) -> list[int]:
  """Original CelebA indices of images 0..num_images-1 (distinct).

  Args:
    num_images: how many.

  Returns:
    DEFAULT_ORIG_INDICES first, then distinct pseudo-random indices.
  """
  result = list(DEFAULT_ORIG_INDICES[:num_images])
  used = set(result)
  rng = np.random.default_rng(12345)
  while len(result) < num_images:
    candidate = int(rng.integers(0, NUM_CELEBA))
    if candidate not in used:
      used.add(candidate)
      result.append(candidate)
  return result


def attribute_signs(hq_index: int) -> np.ndarray:
  """The 40 attribute values written for an image.

  Args:
    hq_index: CelebA-HQ index.

  Returns:
    int8 (40,) in {-1, 1}, in CELEBA_ATTRIBUTES order.
  """
  return np.where(_rng(hq_index, 0).random(len(CELEBA_ATTRIBUTES)) < 0.5, -1, 1).astype(
      np.int8)


def part_masks(hq_index: int, mask_size: int) -> dict[str, np.ndarray]:
  """The parts written for an image; parts not in the dict have no file.

  'skin' is always present and covers the central square; about half of the other parts
  are present, each a random rectangle (so ties, partial and full blocks all occur after a
  box resize).

  Args:
    hq_index: CelebA-HQ index.
    mask_size: mask height and width.

  Returns:
    part -> bool (mask_size, mask_size).
  """
  rng = _rng(hq_index, 1)
  skin = np.zeros((mask_size, mask_size), dtype=bool)
  q = mask_size // 4
  skin[q:mask_size - q, q:mask_size - q] = True
  result = {"skin": skin}
  for part in PARTS[1:]:
    if rng.random() < 0.5:
      continue
    r0, c0 = rng.integers(0, mask_size, size=2)
    r1 = int(rng.integers(r0 + 1, mask_size + 1))
    c1 = int(rng.integers(c0 + 1, mask_size + 1))
    mask = np.zeros((mask_size, mask_size), dtype=bool)
    mask[r0:r1, c0:c1] = True
    result[part] = mask
  return result


def image_colour(hq_index: int) -> np.ndarray:
  """The flat colour of an image's JPEG.

  Args:
    hq_index: CelebA-HQ index.

  Returns:
    uint8 (3,).
  """
  return _rng(hq_index, 2).integers(30, 226, size=3).astype(np.uint8)


def write_part(path: str, mask: np.ndarray, mode: str = "L") -> None:
  """Writes one part PNG, 0 off / 255 on (white in colour modes).

  Args:
    path: destination .png.
    mask: bool (H, W).
    mode: Pillow mode of the file ('L', 'RGB', 'P', '1', 'RGBA', 'LA').
  """
  from PIL import Image

  grey = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
  if mode == "P":
    image = grey.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
  else:
    image = grey.convert(mode)
  image.save(path, format="PNG")


def write_layout(root, num_images: int = 12, image_size: int = 64, mask_size: int = 32, *,
                 nested: bool = False, hq_indices=None, celeba_indices=None) -> str:
  """Writes a fake CelebAMask-HQ in the official layout.

  Args:
    root: directory to write into (created if missing).
    num_images: number of images.
    image_size: JPEG height and width (1024 in the real data).
    mask_size: part PNG height and width (512 in the real data).
    nested: write into root/CelebAMask-HQ (what the official zip extracts to).
    hq_indices: CelebA-HQ indices of the images (default 0..num_images-1); indices >= 2000
      land in mask folders > 0.
    celeba_indices: their original CelebA indices (default orig_indices(num_images)).

  Returns:
    The directory holding the four layout entries (root, or root/CelebAMask-HQ).
  """
  from PIL import Image

  hq_indices = list(range(num_images)) if hq_indices is None else list(hq_indices)
  celeba_indices = (orig_indices(len(hq_indices)) if celeba_indices is None
                    else list(celeba_indices))
  assert len(hq_indices) == len(celeba_indices) == num_images
  base = os.path.join(str(root), NESTED_DIR) if nested else str(root)
  image_dir = os.path.join(base, "CelebA-HQ-img")
  mask_dir = os.path.join(base, "CelebAMask-HQ-mask-anno")
  os.makedirs(image_dir, exist_ok=True)
  for k in range(15):  # The real release always has folders 0..14.
    os.makedirs(os.path.join(mask_dir, str(k)), exist_ok=True)

  ramp = np.linspace(-8, 8, image_size, dtype=np.float32)
  for hq in hq_indices:
    pixels = image_colour(hq).astype(np.float32) + ramp[None, :, None]
    pixels = np.broadcast_to(pixels, (image_size, image_size, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB").save(
        os.path.join(image_dir, f"{hq}.jpg"), format="JPEG", quality=95)
    folder = os.path.join(mask_dir, str(hq // 2000))
    for part, mask in part_masks(hq, mask_size).items():
      mode = PART_MODES[PARTS.index(part) % len(PART_MODES)]
      write_part(os.path.join(folder, f"{hq:05d}_{part}.png"), mask, mode)

  order = sorted(range(num_images), key=lambda j: hq_indices[j])
  lines = [str(num_images), " ".join(CELEBA_ATTRIBUTES)]
  for j in order:
    hq = hq_indices[j]
    # The real file separates some values by two spaces; so does this one.
    lines.append(f"{hq}.jpg " + "  ".join(str(v) for v in attribute_signs(hq)))
  with open(os.path.join(base, "CelebAMask-HQ-attribute-anno.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")

  lines = ["idx         orig_idx    orig_file"]
  for j in order:
    orig = celeba_indices[j]
    lines.append(f"{hq_indices[j]:<12d}{orig:<12d}{orig + 1:06d}.jpg")
  with open(os.path.join(base, "CelebA-HQ-to-CelebA-mapping.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return base


def expected_splits(hq_indices, celeba_indices) -> dict[str, list[int]]:
  """CelebA-HQ indices per split under DESIGN.md §3.3's rule, in increasing order.

  Args:
    hq_indices: CelebA-HQ indices.
    celeba_indices: their original CelebA indices.

  Returns:
    {'train': [...], 'validation': [...], 'test': [...]}.
  """
  splits = {"train": [], "validation": [], "test": []}
  for hq, orig in sorted(zip(hq_indices, celeba_indices)):
    split = "train" if orig < 162771 else "validation" if orig < 182638 else "test"
    splits[split].append(hq)
  return splits
