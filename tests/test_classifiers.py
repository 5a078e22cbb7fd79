"""Coherence classifiers: training, files, manifest, verification, loading."""

import hashlib
import json
import os
import shutil

from flax import traverse_util
import numpy as np
import pytest

from diffmvae_jax.data import pipeline
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.metrics import classifiers
from diffmvae_jax.tasks import classifiers as classifier_training

STEPS = 3


@pytest.fixture(scope='module')
def trained(tiny_data_dir, tmp_path_factory):
  """Classifiers for every modality of the tiny dataset, a few steps each."""
  from configs import test_tiny
  config = test_tiny.get_config()
  config.data.data_dir = tiny_data_dir
  out_dir = str(tmp_path_factory.mktemp('classifiers'))
  infos = classifier_training.train_classifiers(config.data, out_dir, num_steps=STEPS, batch_size=16)
  return config.data, out_dir, infos


def _sha(path):
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def test_files_and_manifest(trained):
  _, out_dir, infos = trained
  assert sorted(infos) == ['caption', 'm0', 'm1', 'm2']
  assert sorted(os.listdir(out_dir)) == ['caption.npz', 'm0.npz', 'm1.npz', 'm2.npz',
                                         'manifest.json']
  with open(os.path.join(out_dir, 'manifest.json')) as f:
    manifest = json.load(f)
  for name, info in infos.items():
    assert info.modality == name
    assert info.kind == ('caption' if name == 'caption' else 'image')
    assert info.dataset == 'poly_mnist/m3_s0_n64'
    assert info.num_train_steps == STEPS
    assert 0.0 <= info.test_accuracy <= 1.0
    assert info.sha256 == _sha(os.path.join(out_dir, f'{name}.npz'))
    assert manifest['classifiers'][name]['info']['sha256'] == info.sha256
  with np.load(os.path.join(out_dir, 'm0.npz')) as z:
    assert 'conv0/kernel' in z.files and z['conv0/kernel'].shape == (3, 3, 3, 16)


def test_rerun_skips_trained_and_retrains_changed(trained, tmp_path):
  data_config, out_dir, infos = trained
  copy = str(tmp_path / 'c')
  shutil.copytree(out_dir, copy)
  mtime = os.path.getmtime(os.path.join(copy, 'm0.npz'))
  again = classifier_training.train_classifiers(data_config, copy, num_steps=STEPS, batch_size=16)
  assert again == infos
  assert os.path.getmtime(os.path.join(copy, 'm0.npz')) == mtime
  changed = classifier_training.train_classifiers(data_config, copy, modalities=['caption'],
                                          num_steps=STEPS + 1, batch_size=16)
  assert changed['caption'].num_train_steps == STEPS + 1
  _, loaded = classifiers.load_classifiers(copy)
  assert loaded['caption'].num_train_steps == STEPS + 1 and loaded['m0'] == infos['m0']
  with pytest.raises(ConfigError, match='label'):
    classifier_training.train_classifiers(data_config, copy, modalities=['label'], num_steps=1)


def test_load_round_trip(trained):
  data_config, out_dir, infos = trained
  classify, loaded = classifiers.load_classifiers(out_dir)
  assert loaded == infos
  batch = next(iter(pipeline.make_eval_iterator(data_config, split='test',
                                                global_batch_size=16)))
  for name, model in (('m0', classifiers.ImageClassifier()),
                      ('caption', classifiers.CaptionClassifier(
                          pipeline.modality_specs(data_config)['caption'].num_classes))):
    with np.load(os.path.join(out_dir, f'{name}.npz')) as z:
      flat = {tuple(k.split('/')): z[k] for k in z.files}
    params = traverse_util.unflatten_dict(flat)
    want = model.apply({'params': params}, batch[name])
    got = classify(name, batch[name])
    assert got.shape == (16, 10)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
  # The accuracy of the loaded classifier is the one measured after training.
  for name in ('m1', 'caption'):
    test = pipeline.make_eval_iterator(data_config, split='test', global_batch_size=500)
    assert classifiers.accuracy(classify, name, test) == infos[name].test_accuracy
  with pytest.raises(classifiers.ClassifierError, match='label'):
    classify('label', batch['label'])


def test_tampered_or_missing_files_raise(trained, tmp_path):
  _, out_dir, _ = trained
  copy = str(tmp_path / 'c')
  shutil.copytree(out_dir, copy)
  path = os.path.join(copy, 'm1.npz')
  with np.load(path) as z:
    arrays = {k: z[k] for k in z.files}
  arrays['logits/bias'] = arrays['logits/bias'] + 1.0
  np.savez(path, **arrays)
  with pytest.raises(classifiers.ClassifierError, match='sha256'):
    classifiers.load_classifiers(copy)
  os.remove(path)
  with pytest.raises(classifiers.ClassifierError, match='missing'):
    classifiers.load_classifiers(copy)


def test_missing_dir_names_the_command(tmp_path):
  with pytest.raises(classifiers.ClassifierError, match='--mode=train_classifiers'):
    classifiers.load_classifiers(str(tmp_path / 'nothing'))


@pytest.mark.slow
def test_full_polymnist_accuracy(tmp_path):
  """Full m5 PolyMNIST (built in the TFDS default dir if needed): every classifier > 98%."""
  from configs import default
  infos = classifier_training.train_classifiers(default.get_config().data, str(tmp_path))
  assert sorted(infos) == ['caption', 'm0', 'm1', 'm2', 'm3', 'm4']
  for name, info in infos.items():
    assert info.dataset == 'poly_mnist/m5_s0'
    assert info.test_accuracy > 0.98, (name, info.test_accuracy)
