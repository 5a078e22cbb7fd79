"""--mode=eval end to end on the tiny dataset: provenance, resumption, error paths."""

import json
import os

import numpy as np
import pytest

from diffmvae_jax import evaluate
from diffmvae_jax import train
from diffmvae_jax.errors import CheckpointError, ConfigError
from diffmvae_jax.metrics import classifiers
from diffmvae_jax.metrics import torchscript_weights


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_data_dir):
  """A tiny VAE over (m0, label) trained 2 steps, and classifiers trained a few steps."""
  from configs import test_tiny
  config = test_tiny.get_config()
  config.data.data_dir = tiny_data_dir
  config.data.modalities = 'm0,label'
  config.train.num_steps = 2
  config.eval.num_examples = 8
  config.eval.batch_size = 4
  config.eval.unconditional_num = 6
  workdir = str(tmp_path_factory.mktemp('eval_run'))
  train.train_and_evaluate(config, workdir)
  classifiers.train_classifiers(config.data, os.path.join(workdir, 'classifiers'),
                                modalities=['m0'], num_steps=3, batch_size=8)
  return config, workdir


def test_coherence_eval_writes_provenance_and_resumes(trained):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'coherence'
  record = evaluate.evaluate(config, workdir)
  conditional = record['results']['coherence']['conditional']
  assert set(conditional['by_num_given']) == {1} or set(conditional['by_num_given']) == {'1'}
  assert 0.0 <= record['results']['coherence']['unconditional'] <= 1.0
  prov = record['provenance']
  for key in ('dataset', 'split', 'num_examples', 'sampler', 'sampler_steps', 'checkpoint_step',
              'seed', 'classifiers', 'preprocessing', 'ema'):
    assert key in prov, key
  assert prov['checkpoint_step'] == 2 and prov['num_examples'] == 8
  assert len(prov['classifiers']['m0']['sha256']) == 64
  out_dir = os.path.join(workdir, 'eval', 'step_2')
  with open(os.path.join(out_dir, 'metrics_gaussian.json')) as f:
    assert json.load(f) == json.loads(json.dumps(record))
  # Resumption: finished tasks are read back, not recomputed.
  task = os.path.join(out_dir, 'coherence_given_m0.npz')
  before = os.path.getmtime(task)
  again = evaluate.evaluate(config, workdir)
  assert os.path.getmtime(task) == before
  assert again['results'] == record['results']


def test_fid_eval(trained):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'fid'
  try:
    torchscript_weights.default_inception_path()
  except torchscript_weights.InceptionWeightsError as e:
    pytest.skip(f'FID weights package not installed: {e}')
  record = evaluate.evaluate(config, workdir)
  assert np.isfinite(record['results']['fid']['m0']) and record['results']['fid']['m0'] > 0
  assert record['provenance']['fid']['weights_sha256'] == torchscript_weights.INCEPTION_SHA256


def test_eval_errors(trained, tmp_path):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'coherence,bleu'
  with pytest.raises(ConfigError, match='bleu'):
    evaluate.evaluate(config, workdir)
  config.eval.metrics = 'coherence'
  config.eval.classifier_dir = str(tmp_path / 'none')
  with pytest.raises(classifiers.ClassifierError, match='train_classifiers'):
    evaluate.evaluate(config, workdir)
  config.eval.metrics = 'fid'
  config.eval.fid_weights = str(tmp_path / 'fake.pt')
  (tmp_path / 'fake.pt').write_bytes(b'not the inception weights')
  with pytest.raises(torchscript_weights.InceptionWeightsError):
    evaluate.evaluate(config, workdir)
  config.eval.step = 7
  with pytest.raises(CheckpointError, match='available steps'):
    evaluate.evaluate(config, workdir)
  with pytest.raises(CheckpointError, match='train first'):
    evaluate.evaluate(config, str(tmp_path / 'empty'))
