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

Modules: layout.py (entry names, find_root, the help text), annotation_files.py (the
attribute and mapping files, the split rule), source.py (scan_layout: the checked Examples of
every split), decode.py (image and mask decoding), builder.py (the TFDS builder CelebAMaskHq,
CelebAMaskHqConfig, make_builder), dataset.py (DATASET, the data/dataset_api.Dataset adapter
the pipeline uses).
"""

from diffmvae_jax.data.celebamask_hq.annotation_files import (
    ATTRIBUTE_INDICES, ATTRIBUTE_NAMES, NUM_CELEBA_ATTRIBUTES, SPLITS, TRAIN_END,
    VALIDATION_END, parse_attribute_file, parse_mapping_file, split_of)
from diffmvae_jax.data.celebamask_hq.builder import (
    DEFAULT_IMAGE_SIZE, MAX_IMAGE_SIZE, NAME, CelebAMaskHq, CelebAMaskHqConfig, make_builder)
from diffmvae_jax.data.celebamask_hq.dataset import DATASET, CelebAMaskHqDataset
from diffmvae_jax.data.celebamask_hq.decode import (
    MASK_THRESHOLD, decode_example, load_image, load_part, merge_parts, resize_mask)
from diffmvae_jax.data.celebamask_hq.layout import (
    ATTRIBUTE_FILE, IMAGE_DIR, IMAGES_PER_MASK_FOLDER, LAYOUT_HELP, MAPPING_FILE, MASK_DIR,
    NESTED_DIR, find_root)
from diffmvae_jax.data.celebamask_hq.source import MASK_PARTS, Example, Layout, scan_layout

# The names code outside the package uses (the old module's public API).
__all__ = [
    "ATTRIBUTE_FILE", "ATTRIBUTE_INDICES", "ATTRIBUTE_NAMES", "DATASET", "DEFAULT_IMAGE_SIZE",
    "IMAGE_DIR", "IMAGES_PER_MASK_FOLDER", "LAYOUT_HELP", "MAPPING_FILE", "MASK_DIR",
    "MASK_PARTS", "MASK_THRESHOLD", "MAX_IMAGE_SIZE", "NAME", "NESTED_DIR",
    "NUM_CELEBA_ATTRIBUTES", "SPLITS", "TRAIN_END", "VALIDATION_END", "CelebAMaskHq",
    "CelebAMaskHqConfig", "CelebAMaskHqDataset", "decode_example", "Example", "find_root",
    "Layout", "load_image", "load_part", "make_builder", "merge_parts", "parse_attribute_file",
    "parse_mapping_file", "resize_mask", "scan_layout", "split_of",
]
