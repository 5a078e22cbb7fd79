"""The training recipe shared by the paper-scale configs (configs/cub.py, celebamask_hq.py).

One place for what the two datasets share: beta 1, 150k steps of Adam at 2e-4 with 2k
warm-up steps, EMA 0.9999, checkpoints every 5k steps, and the U-Net's block settings
(base 128 channels, 2 residual blocks a level, 32 groups, dropout 0.1). Each config sets
its own levels, attention resolutions, batch size and evaluation.
"""

import ml_collections


def apply(config: ml_collections.ConfigDict, batch_size: int) -> ml_collections.ConfigDict:
  """Sets the shared recipe on `config` (in place) with a global `batch_size`; returns it."""
  d = config.model.diffusion
  d.base_channels = 128
  d.num_res_blocks = 2
  d.num_groups = 32
  d.dropout = 0.1

  config.loss.beta = 1.0
  t = config.train
  t.num_steps = 150_000
  t.batch_size = batch_size
  t.learning_rate = 2e-4
  t.warmup_steps = 2000
  t.ema_decay = 0.9999
  t.log_every = 100
  t.checkpoint_every = 5000
  t.sample_every = 10_000
  return config
