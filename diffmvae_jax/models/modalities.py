"""Resolves which modalities a model uses and how each one is decoded and weighted.

The dataset says what modalities exist (``ModalitySpec``: name, kind, shape); the
config chooses a subset of them, a decoder per modality (by kind, with per-modality
overrides) and a likelihood weight lambda_m. The result is a static, hashable tuple
that the Flax model takes as a field.
"""

import dataclasses
from typing import Mapping

from diffmvae_jax.errors import ConfigError

DECODERS_BY_KIND = {
    'image': ('diffusion', 'laplace', 'gaussian', 'bernoulli'),
    'mask': ('bernoulli',),
    'attributes': ('bernoulli',),
    'caption': ('categorical',),
    'label': ('categorical',),
}
# Kinds whose batches are float32 (everything else is int32 ids); see data/dataset_api.py.
FLOAT_KINDS = ('image', 'mask', 'attributes')


@dataclasses.dataclass(frozen=True)
class Modality:
  """One modality as the model sees it.

  Attributes:
    name: batch key, e.g. 'm0', 'mask', 'attributes', 'caption', 'label'.
    kind: 'image' | 'mask' | 'attributes' | 'caption' | 'label' (data/dataset_api.KINDS).
    shape: per-example shape: (H, W, C) images, (H, W, 1) masks, (K,) attributes,
      (L,) captions, () labels.
    num_classes: vocabulary size for captions, class count for labels, number of
      attributes for attributes, else 0.
    decoder: one of DECODERS_BY_KIND[kind].
    weight: lambda_m, the scale of this modality's log-likelihood in the ELBO.
  """
  name: str
  kind: str
  shape: tuple
  num_classes: int
  decoder: str
  weight: float


def parse_assignments(text: str, what: str) -> dict:
  """Parses 'a=x,b=y' into {'a': 'x', 'b': 'y'}; '' gives {}."""
  out = {}
  for item in filter(None, (s.strip() for s in text.split(','))):
    if '=' not in item:
      raise ConfigError(f'{what}: expected name=value items separated by commas, got {item!r} '
                        f'in {text!r}.')
    key, value = (s.strip() for s in item.split('=', 1))
    out[key] = value
  return out


def check_modality_names(config, kinds: Mapping[str, str]) -> list:
  """The model's modality names, after checking every name the config uses.

  Needs only the dataset's names and kinds (data.pipeline.modality_kinds), so main.py runs it
  before any data is built.

  Args:
    config: the full ConfigDict (data.modalities, model.decoders, model.decoder_overrides,
      loss.weight_overrides).
    kinds: name -> kind of everything the dataset offers, in dataset order.

  Returns:
    the names, in the order given by data.modalities (default: the image modalities).

  Raises:
    ConfigError: an unknown or repeated modality, none, an override of an unused modality,
      an unsupported kind or an unknown decoder.
  """
  if config.data.modalities:
    names = [s.strip() for s in config.data.modalities.split(',') if s.strip()]
  else:
    names = [n for n, k in kinds.items() if k == 'image']
  unknown = [n for n in names if n not in kinds]
  if unknown:
    raise ConfigError(f'Unknown modality {unknown} in data.modalities={config.data.modalities!r}; '
                      f'dataset {config.data.dataset!r} offers {sorted(kinds)}.')
  if len(set(names)) != len(names):
    raise ConfigError(f'data.modalities lists a modality twice: {names}.')
  if not names:
    raise ConfigError('No modalities selected: set data.modalities.')
  decoder_overrides = parse_assignments(config.model.decoder_overrides, 'model.decoder_overrides')
  weight_overrides = parse_assignments(config.loss.weight_overrides, 'loss.weight_overrides')
  for what, overrides in (('model.decoder_overrides', decoder_overrides),
                          ('loss.weight_overrides', weight_overrides)):
    stray = sorted(set(overrides) - set(names))
    if stray:
      raise ConfigError(f'{what} names {stray}, which the model does not use '
                        f'(modalities: {names}).')
  for name in names:
    kind = kinds[name]
    if kind not in DECODERS_BY_KIND:
      raise ConfigError(f'Modality {name!r} has kind {kind!r}, which the model does not '
                        f'support (kinds: {sorted(DECODERS_BY_KIND)}).')
    decoder = decoder_overrides.get(
        name, config.model.decoders.get(kind, DECODERS_BY_KIND[kind][0]))
    if decoder not in DECODERS_BY_KIND[kind]:
      raise ConfigError(f'Unknown decoder {decoder!r} for {kind} modality {name!r}; '
                        f'choose one of {DECODERS_BY_KIND[kind]} (model.decoders.{kind} '
                        f'or model.decoder_overrides).')
  return names


def resolve_modalities(config, specs: Mapping[str, object]) -> tuple:
  """Builds the model's modality tuple from the config and the dataset's specs.

  Args:
    config: the full ConfigDict (reads data.modalities, model.decoders,
      model.decoder_overrides, loss.weights, loss.weight_overrides).
    specs: name -> data.pipeline.ModalitySpec of everything the dataset offers.

  Returns:
    tuple of Modality, in the order given by data.modalities (default: the
    image modalities in dataset order).

  Raises:
    ConfigError: unknown modality or decoder name, override of an unused modality.
  """
  names = check_modality_names(config, {n: spec.kind for n, spec in specs.items()})
  decoder_overrides = parse_assignments(config.model.decoder_overrides, 'model.decoder_overrides')
  weight_overrides = parse_assignments(config.loss.weight_overrides, 'loss.weight_overrides')
  modalities = []
  for name in names:
    spec = specs[name]
    # A kind missing from model.decoders (a config written before the kind existed)
    # gets the kind's first decoder, the default of configs/default.py (checked above).
    decoder = decoder_overrides.get(
        name, config.model.decoders.get(spec.kind, DECODERS_BY_KIND[spec.kind][0]))
    try:
      weight = float(weight_overrides.get(name, config.loss.weights.get(spec.kind, 1.0)))
    except ValueError as e:
      raise ConfigError(f'loss weight for {name!r} is not a number: {e}') from None
    modalities.append(Modality(name=name, kind=spec.kind, shape=tuple(spec.shape),
                               num_classes=int(spec.num_classes), decoder=decoder, weight=weight))
  return tuple(modalities)

