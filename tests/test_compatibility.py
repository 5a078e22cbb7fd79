"""Files and numbers from before the one-shape refactor still hold.

`fixtures/pre_refactor_run/` is a workdir written by the code at commit 78b87dd (a tiny VAE
and a tiny second-stage latent prior, both at step 2); `fixtures/pre_refactor_numbers.json`
holds that code's metrics for the runs below. Restoring, resuming and retraining with the
current code must give the same numbers: bit-identical on the machine that recorded them; the
tolerances leave room for another CPU's vector widths (summation order) compounding over the
steps, far below what any change to the maths or the streams does (percent-level).
"""

import json
import os
import shutil

import numpy as np

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import train
from diffmvae_jax import train_prior
from diffmvae_jax.tasks import score_prior
from diffmvae_jax.tasks import vae

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
with open(os.path.join(FIXTURES, 'pre_refactor_numbers.json')) as _f:
  REFERENCE = json.load(_f)


def _fixture_config(tiny_config, steps: int):
  """The config the fixture workdir was written with (VAE and prior at `steps`)."""
  config = tiny_config
  config.model.decoders.image = 'laplace'
  config.train.num_steps = steps
  config.train.checkpoint_every = 2
  p = config.prior
  p.width, p.depth, p.embed_dim = 16, 1, 8
  p.num_steps, p.batch_size, p.warmup_steps = steps, 8, 1
  p.checkpoint_every, p.log_every = 2, 1
  p.sampler_steps = 5
  return config


def _last_row(path):
  with open(path) as f:
    return json.loads(f.readlines()[-1])


def _assert_rows_close(actual: dict, expected: dict, rtol: float):
  actual = {k: v for k, v in actual.items() if k != 'train_seconds'}  # Timing, not numerics.
  assert set(actual) == set(expected)
  for key, value in expected.items():
    np.testing.assert_allclose(actual[key], value, rtol=rtol, atol=1e-6, err_msg=key)


def test_pre_refactor_checkpoints_restore_and_resume_to_the_same_numbers(tiny_config, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(os.path.join(FIXTURES, 'pre_refactor_run'), workdir)
  config = _fixture_config(tiny_config, steps=2)
  _, state, step = vae.restore_vae(config, workdir)
  assert step == 2 and int(state.step) == 2
  prior_state, prior_step = score_prior.restore_prior_state(config, workdir)
  assert prior_step == 2 and prior_state.latent_std.shape == (config.model.latent_dim,)

  config = _fixture_config(config, steps=3)
  train.train_and_evaluate(config, workdir)
  train_prior.train_prior(config, workdir)
  expected = REFERENCE['resumed_from_pre_refactor_run']
  _assert_rows_close(_last_row(os.path.join(workdir, 'metrics.jsonl')), expected['vae_step_3'],
                     rtol=1e-4)
  _assert_rows_close(_last_row(os.path.join(workdir, train_prior.METRICS_FILE)),
                     expected['prior_step_3'], rtol=1e-4)
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  assert checkpointer.all_steps() == [2, 3]
  checkpointer.close()


def test_twenty_training_steps_give_the_pre_refactor_losses(tiny_config, tmp_path):
  config = tiny_config
  config.train.num_steps, config.train.checkpoint_every = 20, 10
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  expected = REFERENCE['train_20_steps']
  assert [r['step'] for r in rows] == [r['step'] for r in expected] == list(range(1, 21))
  for row, ref in zip(rows, expected):
    _assert_rows_close(row, ref, rtol=2e-3)

