"""In-graph generation: conditional (any subset given) and from N(0, I).

Conditional generation for a set S of given modalities draws
z ~ q_S(z | X_S), the product of the given experts (DESIGN.md §2.6), then decodes
every modality from z: diffusion decoders run a DDIM, DPM-Solver++ (2M) or ancestral DDPM sampler
(lax loops, jit-compiled, deterministic for a key), optionally with classifier-free guidance
on z (sample.guidance, make_eps_fn) and optionally shallow, from the coarse decoder's mean
image noised to sample.t_start (start_timestep); feed-forward decoders return
their mean (images), their Bernoulli probabilities (masks, attributes), or argmax
(captions, labels).

What `decode` returns per modality kind (B = number of z):
  image       float32 (B, H, W, C) in [-1, 1] (a diffusion sample, or the mean image)
  mask        float32 (B, H, W, 1) in [0, 1]: per-pixel probabilities sigmoid(logits),
              not a binary sample; metrics.f1 and visualise threshold them at 0.5
  attributes  float32 (B, K) in [0, 1]: per-attribute probabilities sigmoid(logits)
  caption     int32 (B, L) per-position argmax token ids
  label       int32 (B,) argmax class
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from diffmvae_jax.diffusion import samplers
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.models import decoders as decoders_lib
from diffmvae_jax.models.diffmvae import DiffMVAE, make_diffusion_schedule


def parse_given(given: str, model: DiffMVAE) -> tuple:
  """'m0,m2' -> ('m0', 'm2'), checked against the model's modalities ('' -> first)."""
  names = tuple(s.strip() for s in given.split(',') if s.strip()) or model.names[:1]
  unknown = [n for n in names if n not in model.names]
  if unknown:
    raise ConfigError(f'sample.given names unknown modalities {unknown}; the model has '
                      f'{list(model.names)}.')
  return names


def check_guidance(model: DiffMVAE, guidance: float) -> float:
  """Returns sample.guidance as a float, or raises ConfigError when the model cannot guide."""
  guidance = float(guidance)
  if guidance < 0:
    raise ConfigError(f'sample.guidance must be >= 0 (0 = no guidance), got {guidance}.')
  if guidance > 0 and model.diffusion_names and not (
      model.model_config.diffusion.get('z_dropout', 0.0) > 0):
    raise ConfigError(
        f'sample.guidance={guidance} needs a model trained with model.diffusion.z_dropout > 0 '
        '(the unconditional branch guidance extrapolates from); this one was trained with 0. '
        'Set sample.guidance=0, or train with e.g. --config.model.diffusion.z_dropout=0.1.')
  return guidance


def start_timestep(model: DiffMVAE, t_start: float) -> int | None:
  """sample.t_start as the samplers' first timestep: None for 1 (pure noise at T - 1).

  t_start in (0, 1) starts the diffusion decoders at round(t_start (T - 1)) from the coarse
  mean image c(z) noised to that step (shallow diffusion; samplers module docstring), so
  it needs the coarse decoders of model.diffusion.coarse_weight > 0.

  Raises:
    ConfigError: t_start outside (0, 1], or < 1 for a model without a trained coarse decoder.
  """
  t_start = float(t_start)
  if not 0.0 < t_start <= 1.0:
    raise ConfigError(f'sample.t_start must be in (0, 1] (1 = from pure noise), got {t_start}.')
  if t_start == 1.0 or not model.diffusion_names:
    return None
  if not model.model_config.diffusion.get('coarse_weight', 0.0) > 0:
    raise ConfigError(
        f'sample.t_start={t_start} starts from the coarse decoder\'s mean image, and this model '
        'has none (model.diffusion.coarse_weight = 0). Set sample.t_start=1.')
  return samplers.start_index(model.model_config.diffusion.num_timesteps, t_start)


def shallow_tag(sample_config) -> str:
  """'_tstart<s>' for sample.t_start = s < 1, else '': keeps shallow outputs' files apart."""
  t_start = float(sample_config.get('t_start', 1.0))
  return f'_tstart{t_start:g}' if t_start < 1.0 else ''


def make_eps_fn(model: DiffMVAE, params, name: str, z, guidance: float = 0.0) -> Callable:
  """eps(x_t, t) of modality `name`'s diffusion decoder given z (B, D), for the samplers.

  With guidance w > 0 (classifier-free guidance on z, Ho & Salimans 2022) it is
  (1 + w) eps(x_t, t, z) - w eps(x_t, t, no z): both branches in one U-Net call over 2B
  rows, the second with z (and the coarse image of z) left out as in training under
  model.diffusion.z_dropout. w = 0 is the plain conditional eps.

  Args:
    model, params: the DiffMVAE and its variables ({'params': ...}).
    name: a diffusion-decoded modality.
    z: float32 (B, D).
    guidance: w >= 0 (check_guidance).

  Returns:
    eps_fn(x_t (B, H, W, C), t (B,) int32) -> float32 (B, H, W, C).
  """
  if not guidance:
    return lambda x_t, t: model.apply(params, name, x_t, t, z, method=DiffMVAE.eps_prediction)
  num = z.shape[0]
  z_keep = jnp.concatenate([jnp.ones((num,), jnp.float32), jnp.zeros((num,), jnp.float32)])
  z_both = jnp.concatenate([z, z])

  def eps_fn(x_t, t):
    both = model.apply(params, name, jnp.concatenate([x_t, x_t]), jnp.concatenate([t, t]),
                       z_both, z_keep=z_keep, method=DiffMVAE.eps_prediction)
    eps_cond, eps_uncond = both[:num], both[num:]
    return (1.0 + guidance) * eps_cond - guidance * eps_uncond

  return eps_fn


def make_decode_fn(model: DiffMVAE, sample_config, names: Sequence[str] | None = None
                   ) -> Callable:
  """Returns decode(params, z, key) -> {name: sample} for `names` (default: all).

  Images come back in [-1, 1] (B, H, W, C); masks float32 (B, H, W, 1) and attributes
  float32 (B, K) as probabilities in [0, 1] (sigmoid of the logits; threshold at 0.5 for
  binary values); captions int32 (B, L); labels int32 (B,). Modality i always uses
  fold_in(key, i), so a sample does not depend on which other modalities are decoded
  with it. sample_config.guidance (default 0) guides the diffusion decoders on z
  (make_eps_fn); sample_config.t_start (default 1) < 1 starts them from the coarse mean image
  (start_timestep).
  """
  names = tuple(model.names if names is None else names)
  schedule = (make_diffusion_schedule(model.model_config)
              if model.diffusion_names else None)
  if sample_config.sampler not in samplers.SAMPLER_NAMES:
    raise ConfigError(f'Unknown sample.sampler {sample_config.sampler!r}; use one of '
                      f'{", ".join(samplers.SAMPLER_NAMES)}.')
  guidance = check_guidance(model, sample_config.get('guidance', 0.0))
  t_start = start_timestep(model, sample_config.get('t_start', 1.0))

  def decode(params, z, key):
    out = {}
    for i, m in enumerate(model.modalities):
      if m.name not in names:
        continue
      if m.decoder == 'diffusion':
        eps_fn = make_eps_fn(model, params, m.name, z, guidance)
        shape = (z.shape[0],) + tuple(m.shape)
        key_m = jax.random.fold_in(key, i)
        offset = x0_start = None
        if model.residual:   # Image = c(z) + a sampled residual (model.diffusion.residual).
          offset = model.apply(params, m.name, z, method=DiffMVAE.residual_offset)
        elif t_start is not None:   # A residual's shallow start is 0, the image's c(z).
          x0_start = model.apply(params, m.name, z, method=DiffMVAE.coarse_mean)
        image = samplers.sample(sample_config.sampler, eps_fn, schedule, key_m, shape,
                                num_steps=sample_config.steps, eta=sample_config.eta,
                                x0_offset=offset, t_start=t_start, x0_start=x0_start)
        out[m.name] = image if offset is None else image + offset
        continue
      raw = model.apply(params, m.name, z, method=DiffMVAE.decode_feedforward)
      if m.kind == 'image':
        out[m.name] = decoders_lib.image_mean(m.decoder, raw)
      elif m.kind in ('mask', 'attributes'):
        out[m.name] = jax.nn.sigmoid(raw)
      else:
        out[m.name] = jnp.argmax(raw, axis=-1).astype(jnp.int32)
    return out

  return decode


def make_conditional_generate_fn(model: DiffMVAE, sample_config, given: Sequence[str],
                                 names: Sequence[str] | None = None) -> Callable:
  """Returns generate(params, batch, key) -> {name: sample} given `given` modalities.

  `names` chooses what to decode (default: every modality, the given ones are then
  reconstructions).

  Args (of the returned function):
    params: model variables ({'params': ...}).
    batch: dict holding at least the given modalities' arrays (B, ...), optionally
      'available' (B, M) bool (DiffMVAE.posterior leaves unavailable experts out).
    key: PRNG key; the same key gives the same samples.
  """
  given = tuple(given)
  decode = make_decode_fn(model, sample_config, names)

  def generate(params, batch, key):
    mu_s, logvar_s = model.apply(params, batch, given, method=DiffMVAE.posterior)
    key_z, key_dec = jax.random.split(key)
    z = mu_s + jnp.exp(0.5 * logvar_s) * jax.random.normal(key_z, mu_s.shape)
    return decode(params, z, key_dec)

  return generate


def make_unconditional_generate_fn(model: DiffMVAE, sample_config,
                                   latent_sampler: Callable | None = None) -> Callable:
  """Returns generate(params, key, num) -> samples of every modality from one z each.

  Args:
    model, sample_config: as make_decode_fn.
    latent_sampler: sample(key, num) -> z (num, D), e.g. the trained latent SDE prior
      (tasks.score_prior.latent_sampler_for); None draws z ~ N(0, I).

  `num` must be static (jit with static_argnums=2).
  """
  decode = make_decode_fn(model, sample_config)
  latent_dim = model.model_config.latent_dim

  def generate(params, key, num):
    key_z, key_dec = jax.random.split(key)
    if latent_sampler is None:
      z = jax.random.normal(key_z, (num, latent_dim))
    else:
      z = latent_sampler(key_z, num)
    return decode(params, z, key_dec)

  return generate
