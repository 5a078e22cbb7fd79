"""Mask and attribute F1 (the CelebAMask-HQ protocol, DESIGN §4): masks and attributes
generated from every subset that lacks them, thresholded at 0.5, F1 per example against
the truth (metrics/f1.py), averaged over examples. Stored per part: scores float64 (N,).
"""

from __future__ import annotations

import numpy as np

from diffmvae_jax.eval_metrics import base
from diffmvae_jax.metrics import f1 as f1_lib


class F1Accumulator(base.Accumulator):
  """Per-example F1 of the generated mask / attributes against the true ones."""

  def __init__(self, part):
    super().__init__(part)
    self.acc = f1_lib.F1Accumulator()

  def device(self, samples, nll):
    return samples[self.part.modality]

  def host(self, fetched, truth, valid):
    self.acc.update(fetched, truth[self.part.modality], valid=valid)

  def arrays(self):
    return self._named(scores=self.acc.scores)


class F1(base.Metric):
  """Conditional per-example F1 of every mask and attribute modality."""
  name = 'f1'
  kinds = ('mask', 'attributes')

  @classmethod
  def truth(cls, part):
    return (part.modality,)

  def accumulator(self, part):
    return F1Accumulator(part)

  def figures(self, conditional, unconditional):
    return self.conditional_table(conditional, lambda a, k: float(np.mean(a[f'{k}/scores'])))

  def provenance(self):
    return {'f1': {'threshold': 0.5, 'average': 'per example, then mean over examples'}}

  def scalars(self, figures):
    return base.by_num_given('f1', figures)


METRIC = F1
