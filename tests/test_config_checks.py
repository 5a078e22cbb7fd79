"""Every config key and CLI flag: a bad value is one line naming key, value and rule.

Each bad value goes through the CLI's own code (main.parse_flags + main.check_inputs, the
path `python -m diffmvae_jax.main` takes before any mode starts) in-process, so the whole
list costs seconds; a few cases also run as real subprocesses to prove the exit path.
"""

import os
import subprocess
import sys

import ml_collections
import pytest

from configs import default
from diffmvae_jax import config_checks
from diffmvae_jax import errors
from diffmvae_jax import eval_metrics
from diffmvae_jax import main
from diffmvae_jax.data import pipeline
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import modalities as modalities_lib
from diffmvae_jax.tasks import score_prior

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Keys whose every CLI value has the right type and meaning here: free text whose names are
# checked against the dataset's modalities (tests/test_model.py), and booleans (absl
# refuses anything but a boolean, see test_cli_type_errors_are_one_line).
NO_BAD_CLI_VALUE = {'data.modalities', 'model.decoder_overrides', 'loss.weight_overrides',
                    'sample.given', 'data.crop_to_bbox', 'model.use_prior_expert',
                    'model.diffusion.shared_unet', 'sample.use_ema', 'eval.fid_conditional',
                    'eval.latent_gap', 'prior.joint', 'model.diffusion.coarse_condition',
                    'model.diffusion.residual', 'prior.gaussian_residual'}
CUB_ONLY = {'data.image_size', 'data.crop_to_bbox', 'data.validation_fraction'}


def _bad_values(a_file):
  bad = {
      'seed': '-1',
      'data.dataset': 'imagenet', 'data.num_image_modalities': '0', 'data.build_seed': '-1',
      'data.max_examples_per_split': '-5', 'data.data_dir': a_file,
      'data.manual_dir': '/nonexistent/mnist', 'data.num_workers': '-1',
      'data.image_size': '0', 'data.validation_fraction': '1.0',
      'model.latent_dim': '0', 'model.image_likelihood_scale': 'nan',
      'model.image_encoder.channels': '(32,0)', 'model.image_encoder.hidden': '0',
      'model.image_ff_decoder.channels': '()', 'model.image_ff_decoder.hidden': '-1',
      'model.text.embed_dim': '0', 'model.text.channels': '(64,-1)', 'model.text.hidden': '0',
      'model.label_hidden': '0', 'model.attributes_hidden': '-3',
      'model.diffusion.schedule': 'sigmoid', 'model.diffusion.loss': 'hybrid', 'model.diffusion.num_timesteps': '1',
      'model.diffusion.t_sampling': 'stratified', 'model.diffusion.prediction': 'x0',
      'model.diffusion.beta_start': '0', 'model.diffusion.beta_end': '1.5',
      'model.diffusion.modality_subsample': '-1',
      'model.diffusion.example_subsample': '-2', 'model.diffusion.base_channels': '0',
      'model.diffusion.channel_mults': '(1,0)', 'model.diffusion.num_res_blocks': '0',
      'model.diffusion.attention_resolutions': '(7,-1)', 'model.diffusion.num_groups': '0',
      'model.diffusion.dropout': '1.0', 'model.diffusion.compute_dtype': 'float16',
      'model.diffusion.coarse_weight': '-0.5',
      'model.diffusion.z_dropout': '1.0',
      'loss.beta': '-1', 'loss.kl_estimator': 'iwae', 'loss.subset_sampling': 'chunks',
      'train.num_steps': '-1', 'train.batch_size': '0', 'train.learning_rate': 'nan',
      'train.warmup_steps': '-1', 'train.end_learning_rate_factor': '-0.1',
      'train.weight_decay': '-1', 'train.grad_clip_norm': 'inf', 'train.ema_decay': '1.0',
      'train.log_every': '0', 'train.checkpoint_every': '0', 'train.keep_checkpoints': '0',
      'train.steps_per_dispatch': '0',
      'train.sample_every': '-1', 'train.curve_every': '-1', 'train.curve_num': '1',
      'train.curve_sampler': 'euler', 'train.curve_sampler_steps': '0',
      'sample.num': '0', 'sample.sampler': 'euler', 'sample.steps': '0', 'sample.eta': '-1',
      'sample.prior': 'flow',
      'sample.guidance': '-1',
      'sample.t_start': '0',
      'eval.step': '-2', 'eval.split': 'dev', 'eval.num_examples': '-1',
      'eval.batch_size': '0', 'eval.metrics': 'coherence,accuracy',
      'eval.classifier_dir': a_file, 'eval.classifier_steps': '0',
      'eval.unconditional_num': '-1', 'eval.fid_weights': '/nonexistent/inception.pt',
      'eval.fid_cache_dir': a_file,
      'prior.sde': 'cld', 'prior.beta_min': '0', 'prior.beta_max': '-1',
      'prior.sigma_min': '0', 'prior.sigma_max': 'inf', 'prior.width': '0',
      'prior.depth': '0', 'prior.embed_dim': '0', 'prior.latents': 'mode',
      'prior.num_steps': '-1', 'prior.batch_size': '0', 'prior.learning_rate': '0',
      'prior.warmup_steps': '-1', 'prior.end_learning_rate_factor': '-1',
      'prior.weight_decay': '-1', 'prior.grad_clip_norm': '-1', 'prior.ema_decay': '1',
      'prior.log_every': '0', 'prior.checkpoint_every': '0', 'prior.sampler': 'rk4',
      'prior.sampler_steps': '0', 'prior.snr': '0',
  }
  for kind in modalities_lib.DECODERS_BY_KIND:
    bad[f'model.decoders.{kind}'] = 'wavelet'
    bad[f'loss.weights.{kind}'] = '-1'
  return bad


def _leaf_keys(config, prefix=''):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaf_keys(value, f'{prefix}{key}.')
    else:
      yield prefix + key


def _cli_error(monkeypatch, *overrides, config='configs/default.py', workdir='/tmp/unused'):
  """Runs the CLI's parsing and checks in-process; returns the one-line error or None."""
  argv = ['diffmvae_jax.main', f'--config={os.path.join(REPO, config)}',
          f'--workdir={workdir}', *overrides]
  monkeypatch.setattr(sys, 'argv', argv)   # ml_collections reads overrides from sys.argv.
  if main.FLAGS.is_parsed():
    main.FLAGS.unparse_flags()
  try:
    main.parse_flags(argv)
    main.check_inputs(main.FLAGS.config, main.FLAGS.workdir)
  except errors.ConfigError as e:
    return f'error (ConfigError): {e}'
  except SystemExit as e:
    return str(e.code)
  finally:
    main.FLAGS.unparse_flags()
    for name in [n for n in main.FLAGS if n.startswith('config.')]:
      delattr(main.FLAGS, name)   # Override flags are registered per parse; start clean.
  return None


def test_every_default_key_has_a_rule_and_every_rule_a_key():
  keys = set(_leaf_keys(default.get_config()))
  assert keys - set(config_checks.RULES) == set(), 'give these keys a rule in config_checks'
  assert set(config_checks.RULES) - keys == CUB_ONLY


def test_name_tables_match_their_modules():
  assert config_checks.KL_ESTIMATORS == diffmvae.KL_ESTIMATORS
  assert config_checks.PRIOR_LATENTS == score_prior.LATENT_KINDS
  assert sorted(config_checks.EVAL_METRICS) == list(eval_metrics.names()), (
      'a metric module in diffmvae_jax/eval_metrics/ needs its name in config_checks.EVAL_METRICS')


@pytest.mark.parametrize('config', ['default.py', 'demo.py', 'test_tiny.py', 'polymnist.py',
                                    'polymnist_mopoe.py', 'compare_polymnist.py:diffusion',
                                    'compare_polymnist.py:mopoe', 'paper_recipe.py', 'cub.py',
                                    'celebamask_hq.py', 'protocol_polymnist.py:mopoe',
                                    'protocol_polymnist.py:diffusion',
                                    'protocol_polymnist.py:diffusion_simple',
                                    'protocol_polymnist.py:diffusion_importance',
                                    'protocol_polymnist.py:diffusion_coarse',
                                    'protocol_polymnist.py:diffusion_residual_v',
                                    'protocol_polymnist.py:diffusion_residual_v_guided',
                                    'protocol_polymnist.py:diffusion_residual_v_guided_c16',
                                    'protocol_polymnist.py:mopoe_published'])
def test_shipped_configs_pass(monkeypatch, tmp_path, config):
  assert _cli_error(monkeypatch, config=f'configs/{config}', workdir=str(tmp_path)) is None


def test_every_key_refuses_a_bad_value_in_one_line(monkeypatch, tmp_path):
  a_file = tmp_path / 'a_file'
  a_file.write_text('not a directory')
  bad = _bad_values(str(a_file))
  assert set(bad) == set(config_checks.RULES) - NO_BAD_CLI_VALUE
  for key, value in bad.items():
    config = 'configs/cub.py' if key in CUB_ONLY else 'configs/default.py'
    line = _cli_error(monkeypatch, f'--config.{key}={value}', config=config,
                      workdir=str(tmp_path / 'w'))
    assert line is not None, f'{key}={value} was accepted'
    assert line.startswith(f'error (ConfigError): {key}='), line
    assert '\n' not in line and 'must' in line, line
  assert not (tmp_path / 'w').exists()   # Nothing was created.


@pytest.mark.parametrize('overrides,starts', [
    (('--config.model.diffusion.beta_start=0.05',), 'model.diffusion.beta_start=0.05: must be '
     'below model.diffusion.beta_end'),
    (('--config.sample.steps=1001',), 'sample.steps=1001: must be <= model.diffusion.num_'),
    (('--config.sample.sampler=dpmpp_2m', '--config.sample.steps=1001'), 'sample.steps=1001'),
    (('--config.model.diffusion.num_groups=7',), 'model.diffusion.num_groups=7: must divide'),
    (('--config.prior.beta_min=30.0',), 'prior.beta_min=30.0: must be below prior.beta_max'),
    (('--config.prior.sigma_min=60.0',), 'prior.sigma_min=60.0: must be below'),
    (('--config.prior.embed_dim=127',), 'prior.embed_dim=127: must be even'),
    # A score net narrower than the latent cannot represent -z: the published MoPoE recipe's
    # prior (latent 512, width 256) diverged (README, "What this shows").
    (('--config.model.latent_dim=64', '--config.prior.width=32'),
     'prior.width=32: must be >= model.latent_dim (64)'),
    (('--config.model.diffusion.t_sampling=importance',),
     "model.diffusion.t_sampling='importance': must be 'uniform' unless"),
    (('--config.train.steps_per_dispatch=4', '--config.prior.joint=True'),
     'train.steps_per_dispatch=4: must be 1 with prior.joint=True'),
    (('--config.train.curve_every=5', '--config.train.curve_sampler=dpmpp_2m',
      '--config.train.curve_sampler_steps=1001'), 'train.curve_sampler_steps=1001: must be <= '
     "model.diffusion.num_timesteps (1000) (network calls of the curves' dpmpp_2m)"),
])
def test_cross_key_rules(monkeypatch, overrides, starts):
  line = _cli_error(monkeypatch, *overrides)
  assert line == f'error (ConfigError): {line[len("error (ConfigError): "):]}'
  assert line[len('error (ConfigError): '):].startswith(starts), line
  # ddpm ignores sample.steps and train.curve_sampler_steps.
  assert _cli_error(monkeypatch, '--config.sample.sampler=ddpm',
                    '--config.sample.steps=5000') is None
  assert _cli_error(monkeypatch, '--config.train.curve_every=5', '--config.train.curve_sampler=ddpm',
                    '--config.train.curve_sampler_steps=5000') is None
  assert _cli_error(monkeypatch, '--config.model.latent_dim=64', '--config.prior.width=64') is None


@pytest.mark.parametrize('overrides,starts', [
    (('--config.data.modalities=m0,m7',), "Unknown modality ['m7'] in data.modalities"),
    (('--config.data.modalities=m0,m0',), 'data.modalities lists a modality twice'),
    (('--config.data.modalities=m0,caption', '--config.model.decoder_overrides=m1=laplace'),
     "model.decoder_overrides names ['m1']"),
    (('--config.data.modalities=m0,caption', '--config.loss.weight_overrides=label=2'),
     "loss.weight_overrides names ['label']"),
    (('--config.model.decoder_overrides=m0=bernoulli_mask',), "Unknown decoder 'bernoulli_mask'"),
])
def test_modality_names_are_checked_before_any_data_is_built(monkeypatch, tmp_path, overrides,
                                                             starts):
  data_dir = tmp_path / 'tfds'
  line = _cli_error(monkeypatch, *overrides, f'--config.data.data_dir={data_dir}')
  assert line is not None and line.startswith(f'error (ConfigError): {starts}'), line
  assert '\n' not in line
  assert not data_dir.exists()   # Nothing was built (or even created).
  for name, kind in pipeline.modality_kinds({'dataset': 'polymnist',
                                             'num_image_modalities': 2}).items():
    assert (name, kind) in (('m0', 'image'), ('m1', 'image'), ('caption', 'caption'),
                            ('label', 'label'), ('mask', 'mask'), ('attributes', 'attributes'))


def test_cli_flag_errors_are_one_line(monkeypatch, tmp_path):
  a_file = tmp_path / 'a_file'
  a_file.write_text('x')
  cases = [
      ((), 'configs/nope.py', str(tmp_path), 'error (ConfigError): --config='),
      ((), 'configs/compare_polymnist.py:bogus', str(tmp_path), "error (flags): flag --config"),
      (('--config.train.nokey=1',), 'configs/default.py', str(tmp_path),
       'error (ConfigError): --config.train.nokey: no such config key'),
      (('--config.train.batch_size=abc',), 'configs/default.py', str(tmp_path),
       'error (flags): flag --config.train.batch_size=abc'),
      (('--config.sample.use_ema=maybe',), 'configs/default.py', str(tmp_path),
       'error (flags): flag --config.sample.use_ema=maybe'),
      (('--mode=fly',), 'configs/default.py', str(tmp_path), 'error (flags): flag --mode=fly'),
      ((), 'configs/default.py', str(a_file),
       f'error (ConfigError): --workdir={a_file}: is an existing file'),
      ((), 'configs/default.py', str(a_file / 'sub'), 'error (ConfigError): --workdir='),
  ]
  for overrides, config, workdir, starts in cases:
    line = _cli_error(monkeypatch, *overrides, config=config, workdir=workdir)
    assert line is not None and line.startswith(starts), (overrides, config, line)
    assert '\n' not in line and 'Traceback' not in line, line


def test_cli_subprocess_one_line_and_checkpoints_untouched(tmp_path):
  """The real command: exit status 1, one stderr line, an existing workdir left as it was."""
  workdir = tmp_path / 'run'
  saved = workdir / 'checkpoints' / '100'
  saved.mkdir(parents=True)
  (saved / 'state').write_bytes(b'checkpoint bytes')
  before = sorted(str(p) for p in workdir.rglob('*'))
  for args, starts in [(['--config.loss.beta=-0.5'], 'error (ConfigError): loss.beta=-0.5'),
                       (['--config.train.nokey=1'], 'error (ConfigError): --config.train.nokey'),
                       (['--config=configs/missing.py'], 'error (ConfigError): --config=')]:
    config = [] if any(a.startswith('--config=') for a in args) else ['--config=configs/demo.py']
    proc = subprocess.run(
        [sys.executable, '-m', 'diffmvae_jax.main', *config, f'--workdir={workdir}', *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(starts), proc.stderr
  assert sorted(str(p) for p in workdir.rglob('*')) == before
  assert (saved / 'state').read_bytes() == b'checkpoint bytes'


def test_residual_v_arm_is_the_coarse_arm_with_the_readme_overrides():
  """configs/protocol_polymnist.py:diffusion_residual_v is exactly the config README's
  v-prediction runs were trained with (:diffusion_coarse plus four overrides)."""
  from configs import protocol_polymnist
  coarse = protocol_polymnist.get_config('diffusion_coarse')
  d = coarse.model.diffusion
  d.coarse_weight, d.loss, d.residual, d.prediction = 4.0, 'simple', True, 'v'
  assert protocol_polymnist.get_config('diffusion_residual_v').to_dict() == coarse.to_dict()
  coarse.model.diffusion.z_dropout, coarse.sample.guidance = 0.1, 2.0
  guided = protocol_polymnist.get_config('diffusion_residual_v_guided')
  assert guided.to_dict() == coarse.to_dict()
  # The research log's coarse-weight-16 runs: the guided arm with --config.model.diffusion.coarse_weight=16.0.
  coarse.model.diffusion.coarse_weight = 16.0
  c16 = protocol_polymnist.get_config('diffusion_residual_v_guided_c16')
  assert c16.to_dict() == coarse.to_dict()
  # The AMD machine's wall-clock run: the c16 arm with --config.train.num_steps=20000 (the
  # grids of the last step then come at 20000, not 14000) and, for its latent prior,
  # --config.prior.gaussian_residual=True.
  coarse.train.num_steps = coarse.train.sample_every = 20000
  coarse.prior.gaussian_residual = True
  c16_20k = protocol_polymnist.get_config('diffusion_residual_v_guided_c16_20k')
  assert c16_20k.to_dict() == coarse.to_dict()
