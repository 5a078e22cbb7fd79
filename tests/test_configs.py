"""configs/cub.py and configs/celebamask_hq.py end to end on tiny fixtures of their layouts.

Each config keeps its structure (modalities, decoders, number of encoder convs, U-Net
levels and attention) with its widths shrunk, and runs on data written at test time in
the real on-disk layout: build, train (with a checkpoint), classifiers where the dataset
has labels, and --mode=eval with the config's own metrics.
"""

import json
import os

import numpy as np
import pytest

from configs import celebamask_hq as celebamask_config
from configs import cub as cub_config
from diffmvae_jax import evaluate
from diffmvae_jax import train
from diffmvae_jax.errors import CheckpointError
from diffmvae_jax.data import pipeline
from diffmvae_jax.tasks import classifiers as classifier_training
from diffmvae_jax.tasks import vae
from tests import celebamask_fixture
from tests import cub_fixture

SIZE = 16


def shrink(config):
  """The same architecture with tiny widths, 2 train steps, tiny evaluation."""
  m = config.model
  m.latent_dim = 8
  m.image_encoder.channels = tuple(4 for _ in m.image_encoder.channels)
  m.image_encoder.hidden = 16
  m.image_ff_decoder.channels = tuple(4 for _ in m.image_ff_decoder.channels)
  m.image_ff_decoder.hidden = 16
  m.text.embed_dim, m.text.channels, m.text.hidden = 8, (8, 8), 16
  m.attributes_hidden = 16
  d = m.diffusion
  d.num_timesteps = 20
  d.base_channels = 8
  d.num_groups = 4
  d.num_res_blocks = 1
  t = config.train
  t.num_steps, t.batch_size, t.warmup_steps = 2, 4, 1
  t.log_every, t.checkpoint_every, t.sample_every = 1, 2, 0
  config.sample.num, config.sample.steps = 2, 2
  e = config.eval
  e.batch_size, e.num_examples, e.unconditional_num = 2, 0, 2
  config.data.image_size = SIZE
  return config


@pytest.fixture(scope='module')
def cub_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('cub_config')
  manual = cub_fixture.write_official_layout(root / 'manual', num_classes=3, images_per_class=4)
  config = shrink(cub_config.get_config())
  config.data.manual_dir, config.data.data_dir = str(manual), str(root / 'tfds')
  workdir = str(root / 'run')
  metrics = train.train_and_evaluate(config, workdir)
  return config, workdir, metrics


def test_cub_config_trains_with_image_diffusion_and_caption(cub_run):
  config, workdir, metrics = cub_run
  model = vae.build_model(config)
  assert [(m.name, m.kind, m.decoder) for m in model.modalities] == [
      ('image', 'image', 'diffusion'), ('caption', 'caption', 'categorical')]
  assert model.modalities[0].shape == (SIZE, SIZE, 3)
  assert np.isfinite(metrics['loss']) and metrics['nll/caption'] > 0
  # The vocabulary is saved with the checkpoint.
  with open(os.path.join(workdir, 'checkpoints', '2', 'config', 'metadata')) as f:
    saved = json.load(f)
  vocab = pipeline.load_vocabulary(config.data)
  assert saved['_caption_vocabulary'] == vocab.words
  # The sample grid given the caption (the config's sample.given) exists.
  assert os.path.exists(os.path.join(workdir, 'samples', 'step_0000002_given-caption.png'))


def test_cub_config_evaluates(cub_run):
  config, workdir, _ = cub_run
  classifier_training.train_classifiers(config.data, os.path.join(workdir, 'classifiers'),
                                num_steps=2, batch_size=8)
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'coherence,caption_nll'
  record = evaluate.evaluate(config, workdir)
  coherence = record['results']['coherence']
  # Image given caption, caption given image: 200-way in the real data, 3 in the fixture.
  assert set(coherence['conditional']['per_subset']) == {'image', 'caption'}
  assert 0.0 <= coherence['unconditional'] <= 1.0
  nll = record['results']['caption_nll']['nll_per_token']['per_subset']['image']['caption']
  assert np.isfinite(nll) and nll > 0
  assert record['provenance']['num_examples'] == 3   # The fixture's 3 test images.
  assert record['provenance']['classifiers']['caption']['sha256']


def test_cub_checkpoint_refuses_another_vocabulary(cub_run, tmp_path):
  config, workdir, _ = cub_run
  other = cub_fixture.write_official_layout(tmp_path / 'manual', num_classes=2,
                                            images_per_class=4)
  config = config.copy_and_resolve_references()
  config.data.manual_dir, config.data.data_dir = str(other), str(tmp_path / 'tfds')
  with pytest.raises(CheckpointError, match='caption vocabulary'):
    vae.restore_vae(config, workdir)


@pytest.fixture(scope='module')
def celebamask_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('celebamask_config')
  manual = celebamask_fixture.write_layout(root / 'manual', num_images=12)
  config = shrink(celebamask_config.get_config())
  config.data.manual_dir, config.data.data_dir = str(manual), str(root / 'tfds')
  workdir = str(root / 'run')
  metrics = train.train_and_evaluate(config, workdir)
  return config, workdir, metrics


def test_celebamask_config_trains_and_evaluates_f1(celebamask_run):
  config, workdir, metrics = celebamask_run
  for key in ('nll/image', 'nll/mask', 'nll/attributes'):
    assert np.isfinite(metrics[key]) and metrics[key] > 0
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'f1'
  record = evaluate.evaluate(config, workdir)
  f1 = record['results']['f1']
  # Subsets lacking the mask or the attributes: {image}, {mask}, {attributes},
  # {image, mask}, {image, attributes}.
  assert set(f1['per_subset']) == {'image', 'mask', 'attributes', 'image,mask',
                                   'image,attributes'}
  assert set(f1['per_subset']['image']) == {'mask', 'attributes', 'mean'}
  assert all(0.0 <= v <= 1.0 for v in f1['by_num_given'].values())
  assert record['provenance']['num_examples'] == 3   # The fixture's 3 test faces.


def test_celebamask_coherence_is_skipped_with_a_reason(celebamask_run):
  config, workdir, _ = celebamask_run
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'coherence,f1'
  record = evaluate.evaluate(config, workdir)
  assert 'coherence' not in record['results'] and 'label' in record['skipped']['coherence']
