"""Coherence (DESIGN §4): is what was generated of the same class as the given examples?

Conditional: for every subset S that lacks a modality m, the class of the m generated from
z ~ q_S (the project's classifier's argmax for images and captions, the argmax label for a
label modality) against the test example's true label, per subset and averaged by |S|.
Unconditional: the fraction of joint samples whose modalities all get one class, and its
independence baseline. Stored per part: pred int64 (N,), true_label int64 (N,).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from diffmvae_jax import coherence as coherence_lib
from diffmvae_jax.eval_metrics import base
from diffmvae_jax.metrics import classifiers as classifiers_lib

LABEL_FIELD = 'label'


@jax.jit
def _argmax(logits):
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)


class CoherenceAccumulator(base.Accumulator):
  """Classes of the generated modality (classifier argmax, or the generated label)."""

  def __init__(self, part, classify):
    super().__init__(part)
    self.classify = classify
    self.pred, self.true = [], []

  def device(self, samples, nll):
    x = samples[self.part.modality]
    return x if self.part.kind == 'label' else _argmax(self.classify(self.part.modality, x))

  def host(self, fetched, truth, valid):
    self.pred.append(np.asarray(fetched, np.int64)[valid])
    if LABEL_FIELD in truth:
      self.true.append(np.asarray(truth[LABEL_FIELD], np.int64)[valid])

  def arrays(self):
    out = self._named(pred=np.concatenate(self.pred))
    if self.true:
      out.update(self._named(true_label=np.concatenate(self.true)))
    return out


class Coherence(base.Metric):
  """Conditional and unconditional coherence with the project's classifiers."""
  name = 'coherence'
  kinds = ('image', 'caption', 'label')
  has_unconditional = True

  def __init__(self, context):
    super().__init__(context)
    self._classifiers = None

  @classmethod
  def truth(cls, part):
    return (LABEL_FIELD,)

  @classmethod
  def skip(cls, has_label):
    if not has_label:
      return "the dataset has no 'label' field to compare generated classes with"
    return None

  @classmethod
  def unconditional_skip(cls, targets):
    if len(targets) < 2:
      return (f'needs at least two classified modalities (image, caption or label); the model '
              f'has {targets}')
    return None

  def classifiers(self):
    """(classify, infos) of the modalities with coherence parts (label ones need none)."""
    if self._classifiers is None:
      ctx = self.context
      directory = ctx.config.eval.classifier_dir or os.path.join(ctx.workdir, 'classifiers')
      classify, infos = classifiers_lib.load_classifiers(directory, sharding=ctx.rep)
      needed = [n for n in ctx.plan.modalities_for(self.name) if ctx.kinds[n] != 'label']
      missing = [n for n in needed if n not in infos]
      if missing:
        raise classifiers_lib.ClassifierError(
            f'No classifier for {missing} in {directory}; rerun --mode=train_classifiers.')
      self._classifiers = (classify, {n: infos[n] for n in needed})
    return self._classifiers

  def accumulator(self, part):
    return CoherenceAccumulator(part, self.classifiers()[0])

  def fingerprint(self, part):
    if part.kind == 'label':
      return {}
    return {'classifier_sha256': self.classifiers()[1][part.modality].sha256}

  def figures(self, conditional, unconditional):
    def accuracy(arrays, key):
      return float(np.mean(arrays[f'{key}/pred'] == arrays[f'{key}/true_label']))
    figures = {'conditional': self.conditional_table(conditional, accuracy)}
    preds = {p.modality: unconditional[f'{p.key}/pred'] for p in self.unconditional_parts()}
    if preds:
      figures['unconditional'] = coherence_lib.unconditional_coherence(preds)
      figures['unconditional_independence_baseline'] = (
          coherence_lib.unconditional_independence_baseline(preds))
    return figures

  def provenance(self):
    return {'classifiers': {n: {'sha256': i.sha256, 'test_accuracy': i.test_accuracy}
                            for n, i in self.classifiers()[1].items()}}

  def scalars(self, figures):
    out = base.by_num_given('coherence', figures['conditional'])
    if 'unconditional' in figures:
      out['coherence/unconditional'] = figures['unconditional']
    return out


METRIC = Coherence
