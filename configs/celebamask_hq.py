"""Diff-MVAE on CelebAMask-HQ (DESIGN.md §3.3): face image (diffusion decoder), "non-skin"
mask (Bernoulli), 18 attributes (Bernoulli).

  python -m diffmvae_jax.main --config=configs/celebamask_hq.py --workdir=DIR \
      --config.data.manual_dir=/path/to/CelebAMask-HQ [--config.data.data_dir=/path/to/tfds]
  # metrics as the paper's authors report them: attribute and mask F1 for every
  # conditioning set, image FID for every conditioning set that lacks the image
  python -m diffmvae_jax.main --config=configs/celebamask_hq.py --workdir=DIR --mode=eval \
      --config.data.manual_dir=/path/to/CelebAMask-HQ

The data (nothing is downloaded): the extracted CelebAMask-HQ.zip of Lee et al. 2020
(MaskGAN), non-commercial research use only, in `data.manual_dir` or
`data.manual_dir/CelebAMask-HQ`:
  CelebA-HQ-img/{i}.jpg, CelebAMask-HQ-mask-anno/{i // 2000}/{i:05d}_{part}.png,
  CelebAMask-HQ-attribute-anno.txt, CelebA-HQ-to-CelebA-mapping.txt.
A missing or malformed entry is an error that names it and shows this layout
(data/celebamask_hq/). The first run builds the TFDS dataset into `data.data_dir`
(atomic; 128x128 images, masks and attributes, ~2 GB; about 15 minutes on 2 cores
measured on synthetic files of the real sizes). Splits follow the original CelebA index.
There is no class label, so coherence does not apply (eval.metrics is f1,fid).

Model: latent 256; image encoder 5 stride-2 convs 128 -> 4 (the mask encoder is the same
CNN on one channel, the mask decoder the feed-forward image decoder with one channel of
logits); attribute MLPs of width 256; a U-Net with base 128 channels, levels 128/64/32/16,
2 res blocks a level, attention at 16, conditioned on z.

Cost (benchmarks/model_cost.py, XLA's count on the lowered step; not timed): 53.9 M
parameters; 354 GFLOP per example for a train step (forward + backward, one denoising step
per example), 22.7 TFLOP per step at batch 64; one U-Net forward pass is 117 GFLOP per
128x128 image, DDIM-50 ~5.8 TFLOP per image. Estimate, not measured (no accelerator was
available): one H100 at 30-60 % of its ~400 TFLOP/s TF32/bf16 dense peak runs a step in
~0.1-0.2 s, so the 150k steps here take 4-8 hours. A CPU runs only the shrunk smoke test
of tests/test_configs.py.
"""

from configs import default
from configs import paper_recipe


def get_config():
  config = default.get_config()
  data = config.data
  data.dataset = 'celebamask_hq'
  data.modalities = 'image,mask,attributes'
  data.image_size = 128             # Stored side of image and mask.
  data.max_examples_per_split = 0   # > 0 builds a small variant (smoke runs).

  model = config.model
  model.latent_dim = 256
  model.image_encoder.channels = (64, 128, 256, 256, 512)   # 128 -> 64 -> ... -> 4.
  model.image_encoder.hidden = 512
  model.image_ff_decoder.channels = (256, 128, 64, 32, 16)   # Mask: 4 -> 8 -> ... -> 128.
  model.image_ff_decoder.hidden = 512
  model.attributes_hidden = 256
  d = model.diffusion
  d.channel_mults = (1, 1, 2, 2)    # 128 -> 64 -> 32 -> 16.
  d.attention_resolutions = (16,)
  paper_recipe.apply(config, batch_size=64)
  config.sample.given = 'mask,attributes'
  config.sample.num = 16

  e = config.eval
  e.metrics = 'f1,fid'
  e.num_examples = 2000             # Test examples per conditioning set.
  e.batch_size = 64
  e.unconditional_num = 2000
  return config
