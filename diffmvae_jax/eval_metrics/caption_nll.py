"""Caption NLL (DESIGN §4): -log p(true caption | z = PoE mean of S) per token and its
perplexity, for every subset S that lacks the caption. No sampling: the caption decoder's
logits at the posterior mean score the true tokens. Stored per part: nll float64 (N,)
summed over each caption's non-<pad> tokens (<eos> included), tokens int64 (N,) their count.
"""

from __future__ import annotations

import math

import numpy as np

from diffmvae_jax.eval_metrics import base


def caption_figures(arrays: dict, key: str) -> dict:
  """Per-token NLL (total NLL / total tokens), perplexity, NLL per caption, counts."""
  nll, tokens = arrays[f'{key}/nll'], arrays[f'{key}/tokens']
  per_token = float(nll.sum() / max(int(tokens.sum()), 1))
  return {'nll_per_token': per_token, 'perplexity': float(math.exp(per_token)),
          'nll_per_caption': float(nll.mean()), 'num_tokens': int(tokens.sum()),
          'num_examples': int(nll.size)}


class CaptionNLLAccumulator(base.Accumulator):
  """-log p(true caption | PoE mean) per example and its token count."""

  def __init__(self, part):
    super().__init__(part)
    self._nll, self._tokens = [], []

  def device(self, samples, nll):
    return nll[self.part.modality]

  def host(self, fetched, truth, valid):
    nll, tokens = fetched
    self._nll.append(np.asarray(nll, np.float64)[valid])
    self._tokens.append(np.asarray(tokens, np.int64)[valid])

  def arrays(self):
    return self._named(nll=np.concatenate(self._nll), tokens=np.concatenate(self._tokens))


class CaptionNLL(base.Metric):
  """Conditional caption NLL per token and perplexity."""
  name = 'caption_nll'
  kinds = ('caption',)
  generates = False

  @classmethod
  def truth(cls, part):
    return (part.modality,)

  def accumulator(self, part):
    return CaptionNLLAccumulator(part)

  def figures(self, conditional, unconditional):
    return {field: self.conditional_table(
        conditional, lambda a, k, f=field: caption_figures(a, k)[f])
            for field in ('nll_per_token', 'perplexity')}

  def scalars(self, figures):
    return base.by_num_given('caption_nll_per_token', figures['nll_per_token'])


METRIC = CaptionNLL
