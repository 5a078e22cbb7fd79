"""A tiny config for tests: 3 modalities, 64 examples per split, a few steps.

  python -m diffmvae_jax.main --config=configs/test_tiny.py --workdir=/tmp/tiny

Cost: seconds on a 2-core CPU (most of it compilation). Nothing it learns means anything.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.num_image_modalities = 3
  config.data.max_examples_per_split = 64
  config.model.latent_dim = 8
  config.model.image_encoder.channels = (8, 16, 16)
  config.model.image_encoder.hidden = 32
  config.model.image_ff_decoder.channels = (16, 16, 8)
  config.model.image_ff_decoder.hidden = 32
  config.model.text.embed_dim = 8
  config.model.text.channels = (8, 8)
  config.model.text.hidden = 16
  config.model.label_hidden = 16
  d = config.model.diffusion
  d.num_timesteps = 50
  d.base_channels = 8
  d.channel_mults = (1, 2)
  d.num_res_blocks = 1
  d.attention_resolutions = ()
  d.num_groups = 4
  config.train.num_steps = 4
  config.train.batch_size = 8
  config.train.warmup_steps = 2
  config.train.log_every = 1
  config.train.checkpoint_every = 2
  config.sample.num = 4
  config.sample.steps = 5
  return config
