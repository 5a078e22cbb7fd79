"""The MoPoE-VAE baseline on 5-modality PolyMNIST (Sutter et al. 2021's setup).

  python -m diffmvae_jax.main --config=configs/polymnist_mopoe.py --workdir=runs/mopoe

Same code as Diff-MVAE with feed-forward image decoders: 5 modalities of 3x28x28,
latent 512, Laplace likelihood of fixed scale 0.75 on images in [0, 1], beta 2.5,
all 31 subsets. Encoder per modality: conv 3->32->64->128 (3x3, stride 2, padding 1,
ReLU; 28->14->7->4), flatten 2048 -> dense 512 + ReLU -> dense 512 heads for mu and
logvar. Decoder: dense 512 -> 2048 + ReLU, 4x4x128, transposed convs 128->64->32->3
(3x3, stride 2; 4->7->14->28) with ReLU between. Adam, constant lr 1e-3, batch 256.
About 14.05 M parameters.

Cost (benchmarks/peer_compare.sh, 2026-12-06, 2-core Intel Xeon CPU): 12.5 GFLOP per
train step at batch 64; at batch 256, 253 samples/s one step per dispatch and 307 at the
8 steps per dispatch set here (train.steps_per_dispatch, one lax.scan; same steps), so
50k steps take about 11.6 hours on that CPU (the PyTorch peer: 247 samples/s).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.num_image_modalities = 5
  config.model.latent_dim = 512
  config.model.decoders.image = 'laplace'
  config.model.image_likelihood_scale = 0.75
  config.model.image_encoder.channels = (32, 64, 128)
  config.model.image_encoder.hidden = 512
  config.model.image_ff_decoder.channels = (128, 64, 32)
  config.model.image_ff_decoder.hidden = 0
  config.loss.beta = 2.5
  config.loss.kl_estimator = 'subset_average'
  config.train.num_steps = 50_000
  config.train.batch_size = 256
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 1
  config.train.end_learning_rate_factor = 1.0   # Constant learning rate.
  config.train.weight_decay = 0.0
  config.train.grad_clip_norm = 0.0
  config.train.log_every = 100
  config.train.steps_per_dispatch = 8          # 1.2-1.6x on CPU (README "Speed").
  config.train.checkpoint_every = 2000
  config.train.sample_every = 5000
  config.sample.num = 16
  return config
