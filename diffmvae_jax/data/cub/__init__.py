"""CUB image-captions (CUB-200-2011 birds with 10 captions per image) as a TFDS dataset.

What it builds (DESIGN.md §3.2). One stored example per bird photo: the photo resized to
`image_size` x `image_size`, its 10 captions (Reed et al. 2016) tokenised with data/text.py,
its species and where it came from. Splits `train`, `validation` and `test`; validation is
carved from the training images BY IMAGE (a seeded random `validation_fraction` of them), so
the 10 captions of one image always stay together in one split.

Where the data comes from (read from `manual_dir`, never downloaded; set
`--config.data.manual_dir`). Two on-disk layouts are accepted and detected:
  (a) official. CUB-200-2011 (Wah et al. 2011, `CUB_200_2011.tgz` from the Caltech vision
      lab, https://www.vision.caltech.edu/datasets/cub_200_2011/) with the captions of
      Reed et al. 2016, "Learning Deep Representations of Fine-Grained Visual Descriptions"
      (`cvpr2016_cub.tar.gz`, linked from https://github.com/reedscot/cvpr2016):
        CUB_200_2011/images.txt                 "<image id> <class dir>/<file>.jpg"
        CUB_200_2011/train_test_split.txt       "<image id> <1 = train, 0 = test>"
        CUB_200_2011/image_class_labels.txt     "<image id> <class id, 1-based>"
        CUB_200_2011/bounding_boxes.txt         "<image id> <x> <y> <width> <height>"
        CUB_200_2011/images/<class dir>/<file>.jpg
        text_c10/<class dir>/<file stem>.txt    10 captions, one per line
      `CUB_200_2011/` may also be `manual_dir` itself; `text_c10/` may sit in `manual_dir`,
      `manual_dir/cvpr2016_cub/` or `CUB_200_2011/`. Train/test come from
      train_test_split.txt (5,994 / 5,794 images). bounding_boxes.txt is needed only with
      `crop_to_bbox`.
  (b) MMVAE (Shi et al. 2019): their cleaned-up `cub.zip`, linked from the README of
      https://github.com/iffsid/mmvae, unzipped:
        cub/train/<class dir>/*.jpg      cub/text_trainvalclasses.txt
        cub/test/<class dir>/*.jpg       cub/text_testclasses.txt
      (`cub/` may also be `manual_dir` itself). Line 10 * i + k of a text file is caption k of
      image i, images in torchvision ImageFolder order (sorted class folders, then sorted file
      names). Its train/test split is by CLASS (150 train+val species, 50 test species), as in
      MMVAE, so test labels are species never seen in training.
The official layout is used when complete, else the MMVAE one; when neither is, the
DataError names the first missing file or folder. Every file and caption count is checked
before anything is written, so a failed build leaves nothing behind.

Images: decoded with Pillow, converted to RGB and resized to S x S with Pillow's bilinear
filter (antialiased when shrinking, as torchvision's Resize on PIL images). The whole photo
is squashed to a square (as MMVAE does) unless `crop_to_bbox`, which first crops the square
of side 1.5 * max(box width, box height) centred on the bird's bounding box, clipped to the
photo (the crop of StackGAN, Zhang et al. 2017; official layout only).

Captions: lower-cased word tokens (data/text.py), vocabulary from the captions of the
`train` split only (validation and test excluded), min count 3, specials <pad>=0, <eos>=1,
<unk>=2, `caption_max_len` 32 ids including <eos>. Saved as `vocabulary.json` inside the
build directory (part of the atomic build); read it with `read_vocabulary(builder)`.

Features of a stored example (S = image_size, L = caption_max_len). Images are raw uint8
tensors stored as one bytes value, like PolyMNIST's: no codec at read time.
  image         uint8 (S, S, 3)
  caption       int32 (10, L) token ids of the 10 captions (<eos>, then <pad> = 0)
  caption_text  the 10 raw caption strings (bytes when read from a data source)
  label         ClassLabel: species index 0..K-1 (K = 200 on the real data). Official layout:
                image_class_labels.txt's class id - 1; MMVAE layout: position of the class
                folder in the sorted union of train/ and test/ class folders. Names are the
                class folder names ('001.Black_footed_Albatross', ...).
  image_id      int32: official layout: the id in images.txt; MMVAE layout: 1-based position
                in train/ (ImageFolder order), then test/ (continuing after train/).
  file_name     text: official: '<class dir>/<file>.jpg' (as in images.txt); MMVAE:
                'train/<class dir>/<file>.jpg' or 'test/...'. Unique over the dataset.
Stored order (disable_shuffling): images.txt order (official) or ImageFolder order (MMVAE),
validation images removed from train in place.

Records (the pipeline's id space, data/dataset_api.py): `train` has 10 records per image,
record r = image r // 10 with its caption r % 10, so a shuffled epoch pairs every image with
each of its captions; `validation` and `test` have one record per image with caption 0.

The layout is part of the builder config name ('mmvae_' prefix), detected from manual_dir
when the builder is made, so builds from the two layouts never mix; keep manual_dir set to
read an MMVAE build (with no usable manual_dir the official name is assumed).

Data config keys read by `DATASET.make_builder` (besides data_dir and manual_dir), each part
of the builder config name (e.g. 'img64_val0p1_s0'), so changing one builds a new dataset:
  image_size           64     side S of the stored square images
  crop_to_bbox         False  crop around the bounding box first (official layout only)
  validation_fraction  0.1    fraction of the training images moved to `validation`
  build_seed           0      seeds the choice of validation images

Modules: layout.py (the two on-disk layouts, detect_layout, find_layout), source.py (reading
and validating images and captions, the validation split), images.py (decoding and the
bounding-box crop), builder.py (the TFDS builder Cub, CubConfig, make_builder), dataset.py
(DATASET, the data/dataset_api.Dataset adapter the pipeline uses).
"""

from diffmvae_jax.data.builder_helpers import read_vocabulary
from diffmvae_jax.data.cub.builder import (
    VOCAB_MIN_COUNT, VOCABULARY_FILE, Cub, CubConfig, make_builder)
from diffmvae_jax.data.cub.dataset import DATASET, CubDataset
from diffmvae_jax.data.cub.images import BBOX_CROP_SCALE, bbox_crop_box, load_image
from diffmvae_jax.data.cub.layout import MMVAE, OFFICIAL, detect_layout, find_layout
from diffmvae_jax.data.cub.source import (
    CAPTIONS_PER_IMAGE, SPLITS, CubSource, SourceImage, image_folder_files, load_source,
    split_train_validation)

# The names code outside the package uses (the old module's public API).
__all__ = [
    "BBOX_CROP_SCALE", "CAPTIONS_PER_IMAGE", "DATASET", "MMVAE", "OFFICIAL", "SPLITS",
    "VOCAB_MIN_COUNT", "VOCABULARY_FILE", "bbox_crop_box", "Cub", "CubConfig", "CubDataset",
    "CubSource", "detect_layout", "find_layout", "image_folder_files", "load_image",
    "load_source", "make_builder", "read_vocabulary", "SourceImage", "split_train_validation",
]
