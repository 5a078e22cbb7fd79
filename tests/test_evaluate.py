"""--mode=eval end to end on the tiny dataset: provenance, resumption, error paths."""

import json
import os

import numpy as np
import pytest

from diffmvae_jax import coherence as coherence_lib
from diffmvae_jax import evaluate
from diffmvae_jax import train
from diffmvae_jax.errors import CheckpointError, ConfigError
from diffmvae_jax.metrics import classifiers
from diffmvae_jax.metrics import torchscript_weights
from diffmvae_jax.tasks import classifiers as classifier_training


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
  classifier_training.train_classifiers(config.data, os.path.join(workdir, 'classifiers'),
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
  # The independence baseline is recomputed from the saved unconditional predictions.
  step_dir = os.path.join(workdir, 'eval', f"step_{record['provenance']['checkpoint_step']}")
  with np.load(os.path.join(step_dir, 'unconditional_gaussian.npz')) as arrays:
    preds = {k: arrays[k] for k in arrays.files
             if k.startswith('coherence:') and k.endswith('/pred')}
  assert len(preds) >= 2
  assert record['results']['coherence']['unconditional_independence_baseline'] == (
      pytest.approx(coherence_lib.unconditional_independence_baseline(preds)))
  gap = record['results']['latent_gap']
  assert gap['num_posterior'] == 8 and gap['num_prior'] == 6
  assert gap['frechet'] > 0 and np.isfinite(gap['mmd2'])
  prov = record['provenance']
  for key in ('dataset', 'split', 'num_examples', 'sampler', 'sampler_steps', 'checkpoint_step',
              'seed', 'classifiers', 'preprocessing', 'ema'):
    assert key in prov, key
  assert prov['checkpoint_step'] == 2 and prov['num_examples'] == 8
  assert len(prov['classifiers']['m0']['sha256']) == 64
  out_dir = os.path.join(workdir, 'eval', 'step_2')
  with open(os.path.join(out_dir, 'metrics_gaussian.json')) as f:
    assert json.load(f) == record
  # The figure is the accuracy of the stored predictions against the stored labels.
  with np.load(os.path.join(out_dir, 'given_m0.npz')) as z:
    pred, true = z['coherence:label/pred'], z['coherence:label/true_label']
  assert pred.shape == (8,) and true.shape == (8,)
  assert conditional['per_subset']['m0']['label'] == pytest.approx(np.mean(pred == true))
  # Resumption: finished tasks are read back, not recomputed.
  task = os.path.join(out_dir, 'given_m0.npz')
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
  config.eval.unconditional_num = 4
  record = evaluate.evaluate(config, workdir)
  fid = record['results']['fid']
  assert np.isfinite(fid['unconditional']['m0']) and fid['unconditional']['m0'] > 0
  # m0 generated given the label, on the same 8 test examples as the reference.
  assert fid['conditional']['per_subset']['label']['m0'] > 0
  assert record['provenance']['fid']['weights_sha256'] == torchscript_weights.INCEPTION_SHA256
  # Coherence parts computed earlier in the same task file are kept beside the FID part.
  with np.load(os.path.join(workdir, 'eval', 'step_2', 'given_label.npz')) as z:
    assert 'fid:m0/mu' in z.files and 'fid:m0/sigma_triu' in z.files


def test_changed_setting_recomputes_only_that_part(trained):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'coherence'
  evaluate.evaluate(config, workdir)
  task = os.path.join(workdir, 'eval', 'step_2', 'unconditional_gaussian.npz')
  before = np.load(task)['coherence:m0/pred']
  config.eval.unconditional_num = 3        # A different sample set: recomputed.
  record = evaluate.evaluate(config, workdir)
  after = np.load(task)['coherence:m0/pred']
  assert before.shape == (6,) and after.shape == (3,)
  assert record['provenance']['unconditional_num'] == 3


def test_eval_errors(trained, tmp_path):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'coherence,bleu'
  with pytest.raises(ConfigError, match='bleu'):
    evaluate.evaluate(config, workdir)
  config.eval.metrics = 'f1'   # No mask or attributes in this model.
  with pytest.raises(ConfigError, match='mask or attributes'):
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
  with pytest.raises(CheckpointError, match='train it first'):
    evaluate.evaluate(config, str(tmp_path / 'empty'))


@pytest.fixture(scope='module')
def trained_mixed(tmp_path_factory, tiny_data_dir):
  """A tiny VAE over (m0, caption, mask, attributes) trained 2 steps."""
  from configs import test_tiny
  config = test_tiny.get_config()
  config.data.data_dir = tiny_data_dir
  config.data.modalities = 'm0,caption,mask,attributes'
  config.train.num_steps = 2
  config.eval.num_examples = 6
  config.eval.batch_size = 4
  config.eval.unconditional_num = 4
  workdir = str(tmp_path_factory.mktemp('eval_mixed'))
  train.train_and_evaluate(config, workdir)
  return config, workdir


def test_f1_and_caption_nll_eval(trained_mixed):
  config, workdir = trained_mixed
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'f1,caption_nll'
  record = evaluate.evaluate(config, workdir)
  f1 = record['results']['f1']
  # The proper subsets lacking the mask or the attributes generate them: 14 proper subsets
  # of 4 modalities, less the 3 holding both ({mask, attributes}, with m0, with caption).
  assert len(f1['per_subset']) == 11 and 'mask,attributes' not in f1['per_subset']
  assert set(f1['per_subset']['m0']) == {'mask', 'attributes', 'mean'}
  assert set(f1['by_num_given']) == {'1', '2', '3'}
  assert all(0.0 <= v <= 1.0 for v in f1['by_num_given'].values())
  out_dir = os.path.join(workdir, 'eval', 'step_2')
  with np.load(os.path.join(out_dir, 'given_m0.npz')) as z:
    scores = z['f1:mask/scores']
    nll, tokens = z['caption_nll:caption/nll'], z['caption_nll:caption/tokens']
  assert scores.shape == (6,)
  assert f1['per_subset']['m0']['mask'] == pytest.approx(scores.mean())
  per_token = record['results']['caption_nll']['nll_per_token']['per_subset']['m0']['caption']
  assert per_token == pytest.approx(nll.sum() / tokens.sum())
  assert np.all(tokens >= 2)   # A synthetic caption has at least one word and <eos>.
  # An untrained caption decoder is near uniform: per-token NLL about log(vocabulary size).
  vocab = evaluate.pipeline.load_vocabulary(config.data)
  assert 0.5 * np.log(vocab.size) < per_token < 2.0 * np.log(vocab.size)
  assert 'coherence' not in record['results'] and record['skipped'] == {}


def test_no_unconditional_samples(trained):
  """eval.unconditional_num = 0 evaluates the conditional tasks only: the unconditional parts
  and the latent gap are skipped with the reason, not computed from zero samples (which
  crashed)."""
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.eval.metrics = 'coherence'
  config.eval.unconditional_num = 0
  record = evaluate.evaluate(config, workdir)
  figures = record['results']['coherence']
  assert 'unconditional' not in figures and figures['conditional']['by_num_given']
  assert 'latent_gap' not in record['results']
  assert 'unconditional_num = 0' in record['skipped']['coherence/unconditional']
  assert 'unconditional_num = 0' in record['skipped']['latent_gap']


def test_guided_eval_keeps_its_own_file_and_tasks(trained, tmp_path):
  """sample.guidance = w is in every generating part's fingerprint: a guided eval recomputes
  the tasks an unguided one stored (and back), rather than reusing samples drawn at another
  w, and writes metrics_<prior>_guidance<w>.json beside metrics_<prior>.json."""
  config, trained_workdir = trained
  config = config.copy_and_resolve_references()
  config.model.diffusion.z_dropout = 0.1    # A model guidance applies to: trained with it.
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config, workdir)
  config.eval.metrics = 'coherence'
  config.eval.classifier_dir = os.path.join(trained_workdir, 'classifiers')
  task = os.path.join(workdir, 'eval', 'step_2', 'given_label.npz')

  def m0_fingerprint():
    with np.load(task) as z:
      meta = json.loads(str(z['meta']))
    return json.loads(meta['coherence:m0'])

  unguided = evaluate.evaluate(config, workdir)
  assert 'guidance' not in m0_fingerprint()
  config.sample.guidance = 2.0
  guided = evaluate.evaluate(config, workdir)
  assert m0_fingerprint()['guidance'] == 2.0
  assert guided['provenance']['guidance'] == 2.0 and unguided['provenance']['guidance'] == 0.0
  step_dir = os.path.join(workdir, 'eval', 'step_2')
  with open(os.path.join(step_dir, 'metrics_gaussian_guidance2.json')) as f:
    assert json.load(f) == guided
  with open(os.path.join(step_dir, 'metrics_gaussian.json')) as f:
    assert json.load(f) == unguided
  config.sample.guidance = 0.0
  evaluate.evaluate(config, workdir)
  assert 'guidance' not in m0_fingerprint()
