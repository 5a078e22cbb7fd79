"""What one evaluation metric supplies (`Metric`) and how it streams a pass (`Accumulator`).

A metric is planned from class attributes alone (eval_plan.make_plan: which modality kinds
it scores, whether it has an unconditional part and when a part is skipped), then
instantiated once per evaluation with the `evaluate.Evaluator` as its context, from which it
reads what it needs lazily: ``config``, ``workdir``, ``mesh``, ``rep`` (replicated
sharding), ``plan``, ``kinds`` (modality -> kind), ``specs``, ``num_test`` and
``test_batches()``.

One part is one metric of one modality inside a task (eval_plan.Part); its arrays are stored
in the task file under '<metric>:<modality>/<field>' (eval_tasks.TaskStore).
"""

from __future__ import annotations

import numpy as np

from diffmvae_jax import coherence as coherence_lib


class Accumulator:
  """One part's running state: device(samples, nll) -> what to fetch; host(...) scores it."""

  def __init__(self, part):
    self.part = part

  def device(self, samples: dict, nll: dict):
    """What to fetch for this batch (dispatched, not blocked on), from the pass's outputs."""
    raise NotImplementedError

  def host(self, fetched, truth: dict, valid: np.ndarray) -> None:
    """Scores one fetched batch; `truth` holds the part's truth fields, valid (B,) bool."""
    raise NotImplementedError

  def arrays(self) -> dict:
    """{'<part key>/<field>': array} to store."""
    raise NotImplementedError

  def _named(self, **fields) -> dict:
    return {f'{self.part.key}/{k}': np.asarray(v) for k, v in fields.items()}


class Metric:
  """One metric of --mode=eval. Subclasses set the class attributes and implement
  `accumulator` and `figures`; the rest has defaults.

  Class attributes:
    name: the eval.metrics name (also the results key).
    kinds: modality kinds it scores (of the generated or, for caption_nll, decoded one).
    has_unconditional: it also scores unconditional samples.
    generates: its parts need generated samples (False: the PoE mean is decoded).
  """
  name = ''
  kinds: tuple = ()
  has_unconditional = False
  generates = True

  def __init__(self, context):
    self.context = context

  # ------------------------------------------------------------ planning (no context)
  @classmethod
  def truth(cls, part) -> tuple:
    """The dataset fields a part compares with, per example."""
    del part
    return ()

  @classmethod
  def skip(cls, has_label: bool) -> str | None:
    """Why the whole metric does not apply to this dataset, or None."""
    del has_label
    return None

  @classmethod
  def conditional_skip(cls, options: dict) -> str | None:
    """Why its conditional parts are switched off (options: eval settings), or None."""
    del options
    return None

  @classmethod
  def unconditional_skip(cls, targets: list) -> str | None:
    """Why its unconditional part cannot be computed for these modalities, or None."""
    del targets
    return None

  # ------------------------------------------------------------ one evaluation
  def accumulator(self, part) -> Accumulator:
    raise NotImplementedError

  def fingerprint(self, part) -> dict:
    """Settings a stored part depends on beyond the evaluator's own (sampler, N, ...)."""
    del part
    return {}

  def figures(self, conditional: dict, unconditional: dict):
    """Stored arrays -> the figures reported under results[name].

    Args:
      conditional: given subset -> that task's arrays.
      unconditional: the unconditional task's arrays ({} without one).
    """
    raise NotImplementedError

  def provenance(self) -> dict:
    """Entries added to the evaluation's provenance block."""
    return {}

  def scalars(self, figures) -> dict:
    """TensorBoard scalars of the figures."""
    del figures
    return {}

  # ------------------------------------------------------------ helpers for subclasses
  def conditional_table(self, conditional: dict, value_of):
    """MoPoE-table averages (coherence.subset_averages) of value_of(arrays, part key) over
    every conditional part of this metric; None when there is none."""
    values = {}
    for given, parts in self.context.plan.conditional.items():
      row = {p.modality: value_of(conditional[given], p.key) for p in parts
             if p.metric == self.name}
      if row:
        values[given] = row
    return coherence_lib.subset_averages(values) if values else None

  def unconditional_parts(self) -> list:
    return [p for p in self.context.plan.unconditional if p.metric == self.name]


def by_num_given(prefix: str, averaged) -> dict:
  """{'<prefix>/given_<k>': value} of a conditional_table's by_num_given."""
  return {f'{prefix}/given_{k}': v for k, v in (averaged or {}).get('by_num_given', {}).items()}
