"""Every config value checked up front: a mistake is one line naming key, value and rule.

`check_config(config)` runs one rule per key of configs/default.py (plus the dataset-specific
keys of CUB / CelebAMask-HQ and a few cross-key rules) before any dataset is built or any
checkpoint is touched, and raises `ConfigError` for the first value outside its meaning:

  loss.beta=-1.0: must be a finite number >= 0 (the KL weight; < 0 would maximise the KL)

`check_workdir(workdir)` does the same for --workdir. main.py calls both before any mode
starts; `train.train_and_evaluate` calls `check_config` too, for library users. Types are
already enforced by ml_collections when a value is overridden (an int key refuses 'abc'),
but not finiteness (float keys accept 'nan' and 'inf'), sign, range or names.
`tests/test_config_checks.py` holds every key of the default config to having a rule.
"""

import math
import os
from typing import Callable, Optional

from diffmvae_jax.data import pipeline
from diffmvae_jax.diffusion import samplers as diffusion_samplers
from diffmvae_jax.diffusion import schedules
from diffmvae_jax.diffusion import sde as sde_lib
from diffmvae_jax.diffusion import sde_samplers
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.models import fusion
from diffmvae_jax.models import modalities as modalities_lib
from diffmvae_jax.models import unet as unet_lib

KL_ESTIMATORS = ('subset_average', 'mixture_mc')
PRIOR_LATENTS = ('mean', 'sample')
SAMPLE_PRIORS = ('gaussian', 'sde')
EVAL_METRICS = ('coherence', 'fid', 'f1', 'caption_nll')

# A rule returns None when the value is fine, else what is allowed (for the message).
Rule = Callable[[object], Optional[str]]


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int | None = None, hi: int | None = None, why: str = '') -> Rule:
  """An int in [lo, hi] (either bound optional)."""
  def rule(v):
    if _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi):
      return None
    bounds = ' and '.join(s for s in (f'>= {lo}' if lo is not None else '',
                                      f'<= {hi}' if hi is not None else '') if s)
    return f'must be an integer{" " + bounds if bounds else ""}{why}'
  return rule


def real(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         hi_open: bool = False, why: str = '') -> Rule:
  """A finite number in the interval given by lo/hi (open or closed ends)."""
  def rule(v):
    ok = _is_real(v) and math.isfinite(v)
    ok = ok and (lo is None or (v > lo if lo_open else v >= lo))
    ok = ok and (hi is None or (v < hi if hi_open else v <= hi))
    if ok:
      return None
    parts = []
    if lo is not None:
      parts.append(f'{">" if lo_open else ">="} {lo}')
    if hi is not None:
      parts.append(f'{"<" if hi_open else "<="} {hi}')
    return f'must be a finite number{" " + " and ".join(parts) if parts else ""}{why}'
  return rule


def boolean() -> Rule:
  return lambda v: None if isinstance(v, bool) else 'must be True or False'


def choice(names) -> Rule:
  names = tuple(names)
  return lambda v: None if v in names else f'must be one of {", ".join(names)}'


def name_list(names, allow_empty: bool = False) -> Rule:
  """A comma-separated list of known names."""
  names = tuple(names)

  def rule(v):
    if not isinstance(v, str):
      return 'must be a comma-separated string'
    items = [s.strip() for s in v.split(',') if s.strip()]
    if (items or allow_empty) and all(s in names for s in items):
      return None
    return f'must be a comma-separated list of {", ".join(names)}'
  return rule


def int_tuple(lo: int = 1, allow_empty: bool = False) -> Rule:
  """A tuple/list of ints, each >= lo."""
  def rule(v):
    if (isinstance(v, (tuple, list)) and (v or allow_empty)
        and all(_is_int(c) and c >= lo for c in v)):
      return None
    return f'must be a {"" if allow_empty else "non-empty "}tuple of integers >= {lo}'
  return rule


def text() -> Rule:
  return lambda v: None if isinstance(v, str) else 'must be a string'


def directory(must_exist: bool) -> Rule:
  """'' or a path that is not a file (and, with must_exist, an existing directory)."""
  def rule(v):
    if not isinstance(v, str):
      return 'must be a path string'
    if not v:
      return None
    path = os.path.expanduser(v)
    if must_exist and not os.path.isdir(path):
      return 'must be an existing directory (or empty)'
    if os.path.exists(path) and not os.path.isdir(path):
      return 'must be a directory, not a file (or empty)'
    return None
  return rule


def existing_file() -> Rule:
  def rule(v):
    if not isinstance(v, str):
      return 'must be a path string'
    if v and not os.path.isfile(os.path.expanduser(v)):
      return 'must be an existing file (or empty for the default)'
    return None
  return rule


_POS = integer(lo=1)
_NONNEG = integer(lo=0)



def _loop_rules(section: str) -> dict:
  """The optimiser and loop keys the VAE (train.*) and the latent prior (prior.*) share."""
  return {f'{section}.{key}': rule for key, rule in (
      ('learning_rate', real(0.0, lo_open=True)), ('warmup_steps', _NONNEG),
      ('end_learning_rate_factor', real(0.0)), ('weight_decay', real(0.0)),
      ('grad_clip_norm', real(0.0, why=' (0 = no clipping)')),
      ('ema_decay', real(0.0, 1.0, hi_open=True)), ('log_every', _POS),
      ('checkpoint_every', _POS))}


RULES: dict[str, Rule] = {
    'seed': integer(lo=0),
    # data
    'data.dataset': choice(pipeline.KNOWN_DATASETS),
    'data.num_image_modalities': _POS,     # The upper bound is the dataset's (one line too).
    'data.build_seed': _NONNEG,
    'data.max_examples_per_split': _NONNEG,
    'data.data_dir': directory(must_exist=False),
    'data.manual_dir': directory(must_exist=True),
    'data.num_workers': _NONNEG,
    'data.modalities': text(),             # Names are checked against the dataset's specs.
    'data.image_size': _POS,               # CUB / CelebAMask-HQ.
    'data.crop_to_bbox': boolean(),
    'data.validation_fraction': real(0.0, 1.0, hi_open=True),
    # model
    'model.latent_dim': _POS,
    'model.use_prior_expert': boolean(),
    'model.decoder_overrides': text(),     # Names are checked against the modalities.
    'model.image_likelihood_scale': real(0.0, lo_open=True),
    'model.image_encoder.channels': int_tuple(),
    'model.image_encoder.hidden': _POS,
    'model.image_ff_decoder.channels': int_tuple(),
    'model.image_ff_decoder.hidden': _NONNEG,
    'model.text.embed_dim': _POS,
    'model.text.channels': int_tuple(),
    'model.text.hidden': _POS,
    'model.label_hidden': _POS,
    'model.attributes_hidden': _POS,
    'model.diffusion.schedule': choice(schedules.SCHEDULE_KINDS),
    'model.diffusion.loss': choice(schedules.DIFFUSION_LOSSES),
    'model.diffusion.t_sampling': choice(schedules.T_SAMPLINGS),
    'model.diffusion.prediction': choice(schedules.PREDICTIONS),
    'model.diffusion.num_timesteps': integer(lo=2),
    'model.diffusion.beta_start': real(0.0, 1.0, lo_open=True, hi_open=True),
    'model.diffusion.beta_end': real(0.0, 1.0, lo_open=True, hi_open=True),
    'model.diffusion.shared_unet': boolean(),
    'model.diffusion.modality_subsample': _NONNEG,
    'model.diffusion.example_subsample': _NONNEG,
    'model.diffusion.base_channels': _POS,
    'model.diffusion.channel_mults': int_tuple(),
    'model.diffusion.num_res_blocks': _POS,
    'model.diffusion.attention_resolutions': int_tuple(allow_empty=True),
    'model.diffusion.num_groups': _POS,
    'model.diffusion.dropout': real(0.0, 1.0, hi_open=True),
    'model.diffusion.compute_dtype': choice(unet_lib.COMPUTE_DTYPES),
    'model.diffusion.coarse_weight': real(0.0),
    'model.diffusion.coarse_condition': boolean(),
    'model.diffusion.residual': boolean(),
    'model.diffusion.z_dropout': real(0.0, 1.0, hi_open=True),
    # loss
    'loss.beta': real(0.0, why=' (the KL weight; < 0 would maximise the KL)'),
    'loss.kl_estimator': choice(KL_ESTIMATORS),
    'loss.subset_sampling': choice(fusion.SUBSET_SAMPLINGS),
    'loss.weight_overrides': text(),       # Names and numbers are checked with the modalities.
    # train
    'train.num_steps': _NONNEG,
    'train.batch_size': _POS,
    'train.steps_per_dispatch': _POS,
    'train.keep_checkpoints': _POS,
    'train.sample_every': integer(lo=0, why=' (0 = only at the end)'),
    'train.curve_every': integer(lo=0, why=' (0 = no learning curves)'),
    'train.curve_num': integer(lo=2, why=' (test examples; the probe fits on half)'),
    'train.curve_sampler': choice(diffusion_samplers.SAMPLER_NAMES),
    'train.curve_sampler_steps': _POS,
    # sample
    'sample.num': _POS,
    'sample.given': text(),                # Names are checked against the modalities.
    'sample.sampler': choice(diffusion_samplers.SAMPLER_NAMES),
    'sample.steps': _POS,
    'sample.eta': real(0.0),
    'sample.guidance': real(0.0),
    'sample.t_start': real(0.0, 1.0, lo_open=True),
    'sample.use_ema': boolean(),
    'sample.prior': choice(SAMPLE_PRIORS),
    # eval
    'eval.step': integer(lo=-1, why=' (-1 = the latest checkpoint)'),
    'eval.split': choice(pipeline.SPLITS),
    'eval.num_examples': integer(lo=0, why=' (0 = the whole split)'),
    'eval.batch_size': _POS,
    'eval.metrics': name_list(EVAL_METRICS),
    'eval.fid_conditional': boolean(),
    'eval.latent_gap': boolean(),
    'eval.classifier_dir': directory(must_exist=False),
    'eval.classifier_steps': _POS,
    'eval.unconditional_num': _NONNEG,
    'eval.fid_weights': existing_file(),
    'eval.fid_cache_dir': directory(must_exist=False),
    # prior
    'prior.sde': choice(sde_lib.SDE_NAMES),
    'prior.beta_min': real(0.0, lo_open=True),
    'prior.beta_max': real(0.0, lo_open=True),
    'prior.sigma_min': real(0.0, lo_open=True),
    'prior.sigma_max': real(0.0, lo_open=True),
    'prior.width': _POS,
    'prior.depth': _POS,
    'prior.embed_dim': _POS,
    'prior.gaussian_residual': boolean(),
    'prior.latents': choice(PRIOR_LATENTS),
    'prior.num_steps': _NONNEG,
    'prior.batch_size': _POS,
    'prior.sampler': choice(sde_samplers.SAMPLER_NAMES),
    'prior.sampler_steps': _POS,
    'prior.snr': real(0.0, lo_open=True),
    'prior.joint': boolean(),
}
RULES.update(_loop_rules('train'))
RULES.update(_loop_rules('prior'))
# Per-kind decoder choices and likelihood weights: model.decoders.<kind>, loss.weights.<kind>.
for _kind, _names in modalities_lib.DECODERS_BY_KIND.items():
  RULES[f'model.decoders.{_kind}'] = choice(_names)
  RULES[f'loss.weights.{_kind}'] = real(0.0)


def _get(config, dotted: str):
  """The value at a dotted key, or a sentinel when any part is absent."""
  node = config
  for part in dotted.split('.'):
    try:
      node = node[part]
    except (KeyError, TypeError, AttributeError):
      return _MISSING
  return node


_MISSING = object()


def _fail(key: str, value, allowed: str):
  raise ConfigError(f'{key}={value!r}: {allowed}.')


def _cross_key_checks(config) -> None:
  """Rules that relate two keys."""
  d = config.model.diffusion
  if d.schedule == 'linear' and not d.beta_start < d.beta_end:
    _fail('model.diffusion.beta_start', d.beta_start,
          f'must be below model.diffusion.beta_end ({d.beta_end})')
  if d.get('t_sampling', 'uniform') != 'uniform' and d.loss != 'elbo':
    _fail('model.diffusion.t_sampling', d.t_sampling,
          "must be 'uniform' unless model.diffusion.loss='elbo' (the simple loss weighs "
          "every t alike)")
  s = config.sample
  if s.sampler != 'ddpm' and s.steps > d.num_timesteps:
    _fail('sample.steps', s.steps, f'must be <= model.diffusion.num_timesteps '
          f'({d.num_timesteps}) for sample.sampler={s.sampler}')
  if s.get('guidance', 0.0) > 0 and not d.get('z_dropout', 0.0) > 0:
    _fail('sample.guidance', s.guidance, 'needs model.diffusion.z_dropout > 0 (the '
          'unconditional branch guidance extrapolates from is trained only then); set '
          'sample.guidance=0 or train with model.diffusion.z_dropout=0.1')
  if s.get('t_start', 1.0) < 1.0 and not d.get('coarse_weight', 0.0) > 0:
    _fail('sample.t_start', s.t_start, 'below 1 starts from the coarse decoder\'s mean image '
          'and needs model.diffusion.coarse_weight > 0; set sample.t_start=1')
  if s.get('t_start', 1.0) < 1.0:
    left = diffusion_samplers.start_index(d.num_timesteps, s.t_start) + 1   # t_start .. 0.
    tr = config.get('train', {})
    for key, sampler, steps in (
        ('sample.steps', s.sampler, s.steps),
        ('train.curve_sampler_steps', tr.get('curve_sampler', 'ddim'),
         tr.get('curve_sampler_steps', 0) if tr.get('curve_every', 0) else 0)):
      if sampler != 'ddpm' and steps > left:
        _fail(key, steps, f'must be <= {left}, the timesteps from sample.t_start='
              f'{s.t_start} down to 0')
  t = config.get('train', {})
  if (t.get('curve_every') and t.get('curve_sampler', 'ddim') != 'ddpm'
      and t.get('curve_sampler_steps', 0) > d.num_timesteps):
    _fail('train.curve_sampler_steps', t.curve_sampler_steps, f'must be <= '
          f'model.diffusion.num_timesteps ({d.num_timesteps}) (network calls of the curves\' '
          f'{t.get("curve_sampler", "ddim")})')
  for mult in d.channel_mults:
    if (d.base_channels * mult) % d.num_groups:
      _fail('model.diffusion.num_groups', d.num_groups,
            f'must divide every U-Net width base_channels * channel_mults '
            f'({d.base_channels} * {tuple(d.channel_mults)})')
  p = config.prior
  if t.get('steps_per_dispatch', 1) > 1 and p.get('joint', False):
    _fail('train.steps_per_dispatch', t.steps_per_dispatch,
          'must be 1 with prior.joint=True (the joint prior steps after every VAE step)')
  if not p.beta_min < p.beta_max:
    _fail('prior.beta_min', p.beta_min, f'must be below prior.beta_max ({p.beta_max})')
  if not p.sigma_min < p.sigma_max:
    _fail('prior.sigma_min', p.sigma_min, f'must be below prior.sigma_max ({p.sigma_max})')
  if p.embed_dim % 2:
    _fail('prior.embed_dim', p.embed_dim, 'must be even (sine and cosine halves)')
  latent_dim = config.get('model', {}).get('latent_dim')
  if latent_dim and p.get('width') and p.width < latent_dim:
    _fail('prior.width', p.width, f'must be >= model.latent_dim ({latent_dim}): the score '
          'net maps the latent through this width, and a narrower one cannot represent the '
          'score of N(0, I) (-z, of full rank) that the latent SDE starts from, so its '
          f'samplers diverge; set --config.prior.width={latent_dim} or more')


def check_config(config) -> None:
  """Raises ConfigError for the first value outside its meaning; touches no files.

  Args:
    config: the full ConfigDict (configs/default.py's keys; absent keys are skipped, so
      partial configs of library users pass through to the modules that need them).

  Raises:
    ConfigError: 'key=value: what is allowed.'
  """
  for key, rule in RULES.items():
    value = _get(config, key)
    if value is _MISSING:
      continue
    allowed = rule(value)
    if allowed:
      _fail(key, value, allowed)
  if all(_get(config, k) is not _MISSING for k in ('model.diffusion', 'sample', 'prior')):
    _cross_key_checks(config)
  if all(_get(config, k) is not _MISSING for k in ('data.dataset', 'data.modalities',
                                                   'model.decoders', 'loss.weight_overrides')):
    # Modality names need only the dataset's names and kinds: nothing is read or built.
    modalities_lib.check_modality_names(config, pipeline.modality_kinds(config.data))


def check_workdir(workdir) -> None:
  """Raises ConfigError unless --workdir is a directory or a path that can become one."""
  if not workdir or not isinstance(workdir, str):
    raise ConfigError(f'--workdir={workdir!r}: must name a directory for checkpoints and logs.')
  path = os.path.abspath(os.path.expanduser(workdir))
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f'--workdir={workdir}: is an existing file, not a directory; choose '
                      'another path.')
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise ConfigError(f'--workdir={workdir}: {parent} is a file, so the directory cannot be '
                      'created; choose another path.')
  if not os.access(parent, os.W_OK):
    raise ConfigError(f'--workdir={workdir}: {parent} is not writable; choose another path.')
