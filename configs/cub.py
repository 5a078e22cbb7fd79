"""Diff-MVAE on CUB image–captions (DESIGN.md §3.2): a diffusion decoder for the 64x64 bird
photo, a categorical decoder for its caption.

  python -m diffmvae_jax.main --config=configs/cub.py --workdir=DIR \
      --config.data.manual_dir=/path/to/cub_data [--config.data.data_dir=/path/to/tfds]
  # then, on the same workdir: classifiers for coherence, and the metrics
  python -m diffmvae_jax.main --config=configs/cub.py --workdir=DIR --mode=train_classifiers \
      --config.data.manual_dir=...
  python -m diffmvae_jax.main --config=configs/cub.py --workdir=DIR --mode=eval \
      --config.data.manual_dir=... --config.eval.metrics=coherence,fid,caption_nll

The data (nothing is downloaded): put in `data.manual_dir` either
  - CUB_200_2011 (images.txt, train_test_split.txt, image_class_labels.txt,
    bounding_boxes.txt, images/<class>/<image>.jpg; from the Caltech-UCSD Birds-200-2011
    page) plus the captions of Reed et al. 2016 (text_c10/<class>/<image>.txt, 10 lines
    each; from their "Learning Deep Representations of Fine-Grained Visual Descriptions"
    release), side by side; or
  - the MMVAE `cub.zip` layout (cub/{train,test}/<class>/*.jpg and
    text_{trainval,test}classes.txt, 10 lines per image).
A missing or malformed file is an error that names it and shows the expected layout
(data/cub/). The first run builds the TFDS dataset into `data.data_dir` (atomic:
64x64 images, all 10 captions per image, the vocabulary; ~20 minutes for the 11,788 images
on 2 CPU cores, about 150 MB); a validation split is carved from train by image.
`--config.data.crop_to_bbox=True` crops around the bird's bounding box (official layout).

Model: latent 64; image encoder 4 stride-2 convs 64 -> 4; caption 1-D CNN encoder and
transposed-CNN decoder over the 32-token captions; a U-Net with base 128 channels, levels
64/32/16/8, 2 res blocks a level, attention at 16 and 8, conditioned on z. The image's
denoising loss is a sum over 12,288 pixels and the caption NLL a sum over <= 32 tokens;
`loss.weights.caption` (default 1) rescales the caption's log-likelihood if coherence needs
it (MMVAE-style likelihood rescaling).

Cost (benchmarks/model_cost.py, XLA's count on the lowered step; not timed): 60.6 M
parameters; 137 GFLOP per example for a train step (forward + backward, one denoising step
per example), 17.6 TFLOP per step at batch 128; one U-Net forward pass is 45 GFLOP per
image, so DDIM-50 generation is ~2.3 TFLOP per image. Estimate, not measured (no
accelerator was available): one H100 at 30-60 % of its ~400 TFLOP/s TF32/bf16 dense peak
runs a step in ~0.07-0.15 s, so the 150k steps here take 3-6 hours; a TPU v4-8 host
similar. On a 2-core CPU (~40 GFLOP/s achieved) a step takes minutes: CPUs run only the
shrunk smoke test of tests/test_configs.py.
"""

from configs import default
from configs import paper_recipe


def get_config():
  config = default.get_config()
  data = config.data
  data.dataset = 'cub'
  data.modalities = 'image,caption'
  data.image_size = 64              # Stored side; 64 in the paper's CUB experiments.
  data.crop_to_bbox = False         # Crop around the bounding box (official layout only).
  data.validation_fraction = 0.1    # Of the training images, by image.
  data.build_seed = 0               # Seed of the validation carve-out.

  model = config.model
  model.latent_dim = 64
  model.image_encoder.channels = (64, 128, 256, 512)   # 64 -> 32 -> 16 -> 8 -> 4.
  model.image_encoder.hidden = 512
  model.text.embed_dim = 128
  model.text.channels = (256, 512)
  model.text.hidden = 512
  d = model.diffusion
  d.channel_mults = (1, 2, 2, 2)    # 64 -> 32 -> 16 -> 8.
  d.attention_resolutions = (16, 8)
  paper_recipe.apply(config, batch_size=128)
  config.sample.given = 'caption'
  config.sample.num = 16

  e = config.eval
  e.metrics = 'coherence,fid,caption_nll'
  e.num_examples = 0                # The whole test split (2,933 images, caption 0 each).
  e.batch_size = 128
  e.unconditional_num = 2933        # As many as the FID reference set.
  return config
