"""Learning curves during training (curves.py), their plot (benchmarks/plot_curves.py), the
sampler trajectory benchmark (benchmarks/x0_trajectory.py) and the K-samples-per-z agreement
benchmark (benchmarks/sample_agreement.py)."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffmvae_jax import curves as curves_lib
from diffmvae_jax import generate as generate_lib
from diffmvae_jax import parallel
from diffmvae_jax import train
from diffmvae_jax.diffusion import samplers
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.metrics import classifiers
from diffmvae_jax.models.diffmvae import DiffMVAE
from diffmvae_jax.models.diffmvae import make_diffusion_schedule
from diffmvae_jax.tasks import classifiers as classifier_training
from diffmvae_jax.tasks import vae

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'benchmarks'))
import curve_point  # pylint: disable=g-import-not-at-top
import plot_curves  # pylint: disable=g-import-not-at-top
import sample_agreement  # pylint: disable=g-import-not-at-top
import x0_trajectory  # pylint: disable=g-import-not-at-top


def _curve_config(tiny_config, classifier_dir):
  config = tiny_config
  config.model.decoders.image = 'laplace'   # Cheap to compile; the curves do not care.
  config.data.modalities = 'm0,m1,label'
  config.train.num_steps = 5
  config.train.curve_every = 2
  config.train.curve_num = 8
  config.train.curve_sampler_steps = 2
  config.eval.classifier_dir = classifier_dir
  return config


@pytest.fixture(scope='module')
def classifier_dir(tmp_path_factory, tiny_data_dir):
  from configs import test_tiny
  config = test_tiny.get_config()
  config.data.data_dir = tiny_data_dir
  directory = str(tmp_path_factory.mktemp('curve_classifiers'))
  classifier_training.train_classifiers(config.data, directory, modalities=['m0', 'm1'],
                                        num_steps=3, batch_size=8)
  return directory


def test_training_logs_curves_at_zero_every_k_and_the_end_and_resumes(
    tiny_config, classifier_dir, tmp_path):
  config = _curve_config(tiny_config, classifier_dir)
  workdir = str(tmp_path / 'run')
  config.train.num_steps = 3
  train.train_and_evaluate(config, workdir)
  config.train.num_steps = 5
  train.train_and_evaluate(config, workdir)   # Resumes at 3: no second step-0 row.
  rows = curves_lib.read_curves(workdir)
  assert [r['step'] for r in rows] == [0, 2, 3, 4, 5]
  with open(os.path.join(workdir, curves_lib.CURVES_FILE)) as f:
    assert len(f.readlines()) == 5
  for row in rows:
    for key in ('coherence/given_1', 'coherence/given_2', 'probe/q(z|m0)', 'probe/q(z|m1)',
                'probe/q(z|label)', 'probe/mean'):
      assert 0.0 <= row[key] <= 1.0, (key, row)
  # Fixed keys and examples: the restored step-5 parameters give step 5's point again.
  again = curve_point.curve_point(config, workdir)   # benchmarks/curve_point.py
  assert again == {k: v for k, v in rows[-1].items() if k != 'seconds'}

  out = str(tmp_path / 'plot' / 'curves')
  data = plot_curves.collect(plot_curves.parse_runs(f'a={workdir},b={workdir}'))
  png = plot_curves.plot(data, out + '.png', chance=0.1)
  assert os.path.getsize(png) > 1000
  assert [r['step'] for r in data['a']['losses']] == [1, 2, 3, 4, 5]
  thinned = plot_curves.collect(plot_curves.parse_runs(f'a={workdir}'), loss_every=2)
  assert [r['step'] for r in thinned['a']['losses']] == [2, 4, 5]
  json.dumps(data)
  # Wall-clock x axis: each point at the train_seconds recorded at its step.
  losses = data['a']['losses']
  assert plot_curves.train_minutes(losses, 0) == 0.0
  assert plot_curves.train_minutes(losses, 4) == losses[3]['train_seconds'] / 60
  assert 0 < plot_curves.train_minutes(losses, 2) <= plot_curves.train_minutes(losses, 5)
  assert os.path.getsize(plot_curves.plot(data, out + '_min.png', 0.1, x='minutes')) > 1000
  with pytest.raises(ValueError, match='--x=step'):
    plot_curves.train_minutes([{'step': 1, 'loss': 1.0}], 1)


def test_curve_logging_leaves_training_unchanged(tiny_config, classifier_dir, tmp_path):
  """Curve points draw from their own keys: a run with train.curve_every = 0 trains the same
  parameters as one that logs curves (README's no-curve reruns rely on this)."""
  config = _curve_config(tiny_config, classifier_dir)
  config.train.num_steps = 3
  with_curves, without = str(tmp_path / 'with_curves'), str(tmp_path / 'without')
  train.train_and_evaluate(config, with_curves)
  config.train.curve_every = 0
  train.train_and_evaluate(config, without)
  assert len(curves_lib.read_curves(with_curves)) == 3
  assert not os.path.exists(os.path.join(without, curves_lib.CURVES_FILE))
  _, state_a, step_a = vae.restore_vae(config, with_curves)
  _, state_b, step_b = vae.restore_vae(config, without)
  assert step_a == step_b == 3
  leaves_a, leaves_b = jax.tree.leaves(state_a.params), jax.tree.leaves(state_b.params)
  assert len(leaves_a) == len(leaves_b) > 0
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_curves_without_classifiers_or_labels_are_clear_errors(tiny_config, tmp_path):
  config = _curve_config(tiny_config, str(tmp_path / 'no_classifiers'))
  with pytest.raises(classifiers.ClassifierError, match='train_classifiers'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  config.data.modalities = 'm0,mask'
  with pytest.raises(ConfigError, match='two classified modalities'):
    train.train_and_evaluate(config, str(tmp_path / 'run2'))
  with pytest.raises(ValueError, match='name=workdir'):
    plot_curves.parse_runs('nodir')
  with pytest.raises(FileNotFoundError, match='curve_every'):
    plot_curves.collect({'a': str(tmp_path)})


def test_curve_sampler_reaches_every_generation(tiny_config, classifier_dir, monkeypatch):
  """train.curve_sampler and curve_sampler_steps pick the sampler of every curve subset (eta
  0, the run's guidance kept); the default stays DDIM."""
  from diffmvae_jax import generate as generate_lib
  from diffmvae_jax import train_state
  seen = []
  real = generate_lib.make_conditional_generate_fn

  def spy(model, sample_config, given, targets):
    seen.append((sample_config.sampler, sample_config.steps, sample_config.eta,
                 sample_config.guidance))
    return real(model, sample_config, given, targets)

  monkeypatch.setattr(curves_lib.generate_lib, 'make_conditional_generate_fn', spy)
  config = _curve_config(tiny_config, classifier_dir)
  config.model.decoders.image = 'diffusion'
  config.sample.eta = 0.5
  model = vae.build_model(config)
  mesh = parallel.make_mesh()
  curves_lib.CurveLogger(model, config, 'unused', mesh)
  assert seen and set(seen) == {('ddim', 2, 0.0, 0.0)}
  seen.clear()
  config.train.curve_sampler, config.train.curve_sampler_steps = 'dpmpp_2m', 3
  config.model.diffusion.z_dropout, config.sample.guidance = 0.1, 2.0
  model = vae.build_model(config)
  logger = curves_lib.CurveLogger(model, config, 'unused', mesh)
  assert seen and set(seen) == {('dpmpp_2m', 3, 0.0, 2.0)}
  state = vae.init_state(config, model, train_state.make_optimizer(config.train), mesh)
  row = logger.measure(state.params)
  assert 0.0 <= row['coherence/given_1'] <= 1.0


def test_coarse_coherence_is_the_coarse_images_classified(tiny_config, classifier_dir):
  """With coarse decoders a point carries the coherence of their mean images given one."""
  import numpy as np
  from diffmvae_jax import train_state
  from diffmvae_jax.metrics import classifiers as classifiers_metrics
  config = _curve_config(tiny_config, classifier_dir)
  config.model.decoders.image = 'diffusion'
  config.model.diffusion.coarse_weight = 1.0
  model = vae.build_model(config)
  mesh = parallel.make_mesh()
  state = vae.init_state(config, model, train_state.make_optimizer(config.train), mesh)
  logger = curves_lib.CurveLogger(model, config, 'unused', mesh)
  row = logger.measure(state.params)
  # Brute force: m1's coarse image given m0 and m0's given m1, classified, against the labels.
  classify, _ = classifiers_metrics.load_classifiers(classifier_dir)
  accs = []
  for given, target in (('m0', 'm1'), ('m1', 'm0')):
    images = curves_lib._coarse_images(model, (given,), (target,), {'params': state.params},
                                       logger.inputs)[target]
    pred = np.argmax(np.asarray(classify(target, images)), -1)
    accs.append(np.mean(pred[logger.valid] == logger.labels[logger.valid]))
  assert row['coarse_coherence/given_1'] == pytest.approx(np.mean(accs))
  config.model.diffusion.coarse_weight = 0.0
  plain = vae.build_model(config)
  assert 'coarse_coherence/given_1' not in curves_lib.CurveLogger(plain, config, 'unused',
                                                                  mesh).measure(state.params)


@pytest.fixture(scope='module')
def residual_run(tiny_data_dir, classifier_dir, tmp_path_factory):
  """(config, workdir) of a residual v-prediction diffusion model trained one step, shared by
  the sampler benchmarks' tests (one training compile for both)."""
  from configs import test_tiny
  config = test_tiny.get_config()
  config.data.data_dir = tiny_data_dir
  config = _curve_config(config, classifier_dir)
  config.model.decoders.image = 'diffusion'
  config.model.diffusion.residual = True
  config.model.diffusion.prediction = 'v'
  config.sample.sampler, config.sample.steps = 'ddim', 2
  config.train.num_steps, config.train.curve_every = 1, 0
  workdir = str(tmp_path_factory.mktemp('residual_run'))
  train.train_and_evaluate(config, workdir)
  return config, workdir


def test_x0_trajectory_ends_at_the_ddim_sample(residual_run):
  """benchmarks/x0_trajectory.py on a residual diffusion model: its last x0_hat is
  ddim_sample's image (plus c(z)) for the same key, and the figures are fractions."""
  config, workdir = residual_run
  result = x0_trajectory.measure(config, workdir, num_steps=3)
  assert result['pairs'] == ['m1->m0', 'label->m0', 'm0->m1', 'label->m1']
  assert len(result['t']) == len(result['coherence']) == 3 and result['t'][0] > result['t'][-1]
  assert result['agrees_with_final'][-1] == 1.0
  for v in result['coherence'] + [result['coarse_coherence']]:
    assert 0.0 <= v <= 1.0

  model, state, _ = vae.restore_vae(config, workdir)
  params = {'params': vae.sampling_params(config, state)}
  batch = {'m0': jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 3)),
                             jnp.float32)}
  key = jax.random.PRNGKey(7)
  fn, _ = x0_trajectory.make_trajectory_fn(model, 'm0', 'm1', 3)
  x0_hats, coarse = fn(params, batch, key)
  z, _ = model.apply(params, batch, ('m0',), method=DiffMVAE.posterior)
  offset = model.apply(params, 'm1', z, method=DiffMVAE.residual_offset)
  eps_fn = lambda x_t, t: model.apply(params, 'm1', x_t, t, z, method=DiffMVAE.eps_prediction)
  image = samplers.ddim_sample(eps_fn, make_diffusion_schedule(model.model_config), key,
                               (4, 28, 28, 3), 3, x0_offset=offset)
  np.testing.assert_allclose(x0_hats[-1], image + offset, atol=1e-5)
  np.testing.assert_allclose(coarse, offset, atol=1e-6)


def test_agreement_stats_by_hand_and_the_calibrated_identity():
  """benchmarks/sample_agreement.py's arithmetic: a hand-worked case, and for a calibrated
  sampler (labels and samples i.i.d. from one P(. | z)) coherence = agreement = sum P^2."""
  preds = np.array([[3, 1, 2], [3, 1, 5], [4, 7, 5]])   # K = 3 samples of B = 3 examples.
  labels = np.array([3, 0, 5])
  stats = sample_agreement.agreement_stats(preds, labels)
  # Columns are examples: samples (3, 3, 4), (1, 1, 7) and (2, 5, 5) of labels 3, 0 and 5.
  assert stats['coherence'] == pytest.approx((2 + 0 + 2) / 9)
  # Agreeing pairs of 3: example 0 one (3, 3), example 1 one (1, 1), example 2 one (5, 5).
  assert stats['agreement'] == pytest.approx((1 / 3 + 1 / 3 + 1 / 3) / 3)
  # Pluralities 3, 1 and 5: two of three right.
  assert stats['plurality_coherence'] == pytest.approx(2 / 3)
  with pytest.raises(ValueError, match='at least 2 samples'):
    sample_agreement.agreement_stats(preds[:1], labels)

  rng = np.random.default_rng(0)
  num, k = 20000, 4
  probs = rng.dirichlet(np.full(10, 0.3), size=num)                  # One P(. | z) per z.
  draw = lambda: np.array([rng.choice(10, p=p) for p in probs])
  labels = draw()
  preds = np.stack([draw() for _ in range(k)])
  stats = sample_agreement.agreement_stats(preds, labels)
  sum_sq = float(np.mean(np.sum(probs ** 2, axis=1)))
  assert stats['agreement'] == pytest.approx(sum_sq, abs=0.01)
  assert stats['coherence'] == pytest.approx(sum_sq, abs=0.01)
  # A sampler that ignores z: agreement 0.1, far below the calibrated coherence's level.
  uniform = sample_agreement.agreement_stats(rng.integers(0, 10, (k, num)), labels)
  assert uniform['agreement'] == pytest.approx(0.1, abs=0.01)


def test_sample_agreement_draws_k_decodes_of_one_z(residual_run):
  """benchmarks/sample_agreement.py on a residual diffusion model: sample k is the eval
  decoder's sample for key fold_in(key_dec, k) from the same z, and the figures are
  fractions for every (given, target) pair."""
  config, workdir = residual_run
  result = sample_agreement.measure(config, workdir, num_samples=2)
  assert result['pairs'] == ['m1->m0', 'label->m0', 'm0->m1', 'label->m1']
  assert result['samples_per_z'] == 2 and result['sampler'] == 'ddim'
  for name in ('coherence', 'agreement', 'plurality_coherence', 'coarse_coherence'):
    assert 0.0 <= result[name] <= 1.0, name
  with pytest.raises(ValueError, match='>= 2'):
    sample_agreement.measure(config, workdir, num_samples=1)

  model, state, _ = vae.restore_vae(config, workdir)
  params = {'params': vae.sampling_params(config, state)}
  batch = {'m0': jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 3)),
                             jnp.float32)}
  key = jax.random.PRNGKey(3)
  images, coarse = sample_agreement.make_samples_fn(model, config.sample, 'm0', 'm1', 2)(
      params, batch, key)
  mu, logvar = model.apply(params, batch, ('m0',), method=DiffMVAE.posterior)
  key_z, key_dec = jax.random.split(key)
  z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key_z, mu.shape)
  decode = generate_lib.make_decode_fn(model, config.sample, ('m1',))
  for k in range(2):
    np.testing.assert_allclose(images[k], decode(params, z, jax.random.fold_in(key_dec, k))['m1'],
                               atol=1e-5)
  assert not np.allclose(images[0], images[1])    # Independent sampler noise per sample.
  np.testing.assert_allclose(coarse, model.apply(params, 'm1', z, method=DiffMVAE.coarse_mean),
                             atol=1e-6)
