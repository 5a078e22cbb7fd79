"""Which evaluation metrics apply to a model, per conditioning subset: the plan of --mode=eval.

Pure bookkeeping over what each metric module declares (eval_metrics/: kinds, unconditional
part, skip rules): from ``eval.metrics``, the model's modalities and the dataset's specs,
decide what each task computes, and what is skipped and why. evaluate.py runs it.

A *part* is one metric of one modality, e.g. ``fid:m0`` or ``f1:mask``. A conditional task
(given subset S, every non-empty proper subset of the model's modalities) holds the parts
of the modalities S leaves missing; the unconditional task holds those of every modality:

  metric       conditional part for a missing m of kind           unconditional
               (today's metrics; each module's class attributes decide)
  coherence    image, caption (project classifier), label (argmax)  same kinds, if >= 2
  fid          image (given-S samples vs the test images)           image
  f1           mask, attributes (vs the true test values)           -- (nothing to compare)
  caption_nll  caption (true test caption at the PoE mean of S)     --

Errors and skips:
- a requested metric with no modality of a kind it needs in the model is a ConfigError
  that names the kinds and the model's modalities (e.g. f1 on an images-only model);
- coherence on a dataset without a 'label' field (CelebAMask-HQ) is skipped, with the
  reason recorded, so the default ``coherence,fid`` runs everywhere there are images;
- unconditional coherence needs at least two classified modalities, conditional parts at
  least two modalities in the model; otherwise that part of the metric is skipped;
- conditional FID can be turned off (``eval.fid_conditional=False``) to save time/disk.
"""

from __future__ import annotations

import dataclasses
import itertools

from diffmvae_jax import eval_metrics
from diffmvae_jax.errors import ConfigError

METRICS = eval_metrics.names()
LABEL_FIELD = 'label'


@dataclasses.dataclass(frozen=True)
class Part:
  """One metric of one modality inside a task."""
  metric: str     # one of METRICS (an eval_metrics module)
  modality: str   # the generated (or, for caption_nll, decoded) modality
  kind: str

  @property
  def key(self) -> str:
    return f'{self.metric}:{self.modality}'

  @property
  def generates(self) -> bool:
    """Needs a generated sample (caption_nll decodes the PoE mean, no sampling)."""
    return eval_metrics.get(self.metric).generates

  @property
  def truth(self) -> tuple:
    """The dataset fields it compares with, per example."""
    return eval_metrics.get(self.metric).truth(self)


@dataclasses.dataclass(frozen=True)
class Plan:
  """What an evaluation computes.

  Attributes:
    metrics: the requested metrics, in request order.
    conditional: given subset (tuple of names) -> its parts, for subsets with any part,
      in the order of proper_subsets.
    unconditional: parts of the unconditional task.
    skipped: '<metric>' or '<metric>/<conditional|unconditional>' -> why it is not computed.
  """
  metrics: tuple
  conditional: dict
  unconditional: tuple
  skipped: dict

  def computes(self, metric: str) -> bool:
    return any(p.metric == metric for parts in (*self.conditional.values(), self.unconditional)
               for p in parts)

  def modalities_for(self, metric: str) -> tuple:
    """Modalities with a part of `metric` anywhere in the plan, in first-seen order."""
    seen = {}
    for parts in (*self.conditional.values(), self.unconditional):
      for p in parts:
        if p.metric == metric:
          seen.setdefault(p.modality, p.kind)
    return tuple(seen)


def parse_metrics(text: str) -> tuple:
  """'coherence, fid' -> ('coherence', 'fid'); ConfigError for unknown or no names."""
  requested = tuple(dict.fromkeys(m.strip() for m in text.split(',') if m.strip()))
  unknown = sorted(set(requested) - set(METRICS))
  if unknown:
    raise ConfigError(f'Unknown eval.metrics {unknown}; choose from {METRICS}.')
  if not requested:
    raise ConfigError(f'eval.metrics is empty; choose from {METRICS}.')
  return requested


def proper_subsets(names):
  """Non-empty proper subsets of `names`, by size, then in combinations order."""
  for size in range(1, len(names)):
    yield from itertools.combinations(names, size)


def make_plan(metrics, modalities, specs, options: dict | None = None) -> Plan:
  """The parts of every task, and the skips.

  Args:
    metrics: requested metric names (parse_metrics).
    modalities: the model's modalities (objects with .name and .kind), in model order.
    specs: the dataset's name -> ModalitySpec (for its 'label' field).
    options: eval settings the metrics' skip rules read (e.g. {'fid_conditional': False};
      {'unconditional_num': 0} skips every unconditional part).

  Raises:
    ConfigError: a requested metric that no modality of the model can be evaluated by.
  """
  options = options or {}
  kinds = {m.name: m.kind for m in modalities}
  names = tuple(kinds)
  label = specs.get(LABEL_FIELD)
  has_label = label is not None and label.kind == 'label'
  skipped = {}
  cond_metrics, uncond_metrics = [], []
  for metric in metrics:
    spec = eval_metrics.get(metric)
    targets = [n for n in names if kinds[n] in spec.kinds]
    if not targets:
      raise ConfigError(
          f'eval.metrics {metric!r} needs a modality of kind '
          f'{" or ".join(spec.kinds)} in the model; it has '
          f'{", ".join(f"{n} ({k})" for n, k in kinds.items())}. Drop {metric!r} from '
          'eval.metrics or add such a modality to data.modalities.')
    why = spec.skip(has_label)
    if why:
      skipped[metric] = why
      continue
    why = spec.conditional_skip(options)
    if len(names) < 2:
      skipped[f'{metric}/conditional'] = 'the model has one modality: no proper subset'
    elif why:
      skipped[f'{metric}/conditional'] = why
    else:
      cond_metrics.append(metric)
    if spec.has_unconditional:
      why = spec.unconditional_skip(targets)
      if options.get('unconditional_num', 1) == 0:
        why = 'eval.unconditional_num = 0: no joint samples'
      if why:
        skipped[f'{metric}/unconditional'] = why
      else:
        uncond_metrics.append(metric)

  def parts_for(metric_list, generated):
    return tuple(Part(metric, n, kinds[n]) for n in generated for metric in metric_list
                 if kinds[n] in eval_metrics.get(metric).kinds)

  conditional = {}
  for given in proper_subsets(names):
    parts = parts_for(cond_metrics, [n for n in names if n not in given])
    if parts:
      conditional[given] = parts
  return Plan(metrics=tuple(metrics), conditional=conditional,
              unconditional=parts_for(uncond_metrics, names), skipped=skipped)
