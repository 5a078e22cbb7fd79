"""Coherence of generated modalities (DESIGN §4), and the MoPoE table's averaging.

`subset_averages` is the averaging every conditional metric of evaluate.py shares
(coherence, F1, conditional FID, caption NLL); `conditional_coherence` and
`unconditional_coherence` work on classifier predictions alone.

Independent of the VAE: the caller generates, classifies with the project's classifiers
(metrics/classifiers.py) and passes predicted class ids here. Report the classifiers' test
accuracies beside every figure (they bound what coherence can show).

How averages are taken (the MoPoE paper's table format):

  acc(S, m)       = mean over the N examples of [predicted[S][m] == labels]
                    (generated modality m, given subset S, m not in S)
  per_subset[S]   = {m: acc(S, m) for every generated m} plus
                    'mean' = unweighted mean of acc(S, m) over the generated m
  by_num_given[k] = unweighted mean of per_subset[S]['mean'] over the given subsets S with
                    |S| = k

  by_num_given_per_modality[k][m] = mean of acc(S, m) over the subsets S with |S| = k
                    that leave m missing

So each subset counts once in by_num_given[k] however many modalities it leaves missing
(with 5 modalities and k = 1: 5 subsets, each the mean over its 4 missing modalities).
Every subset and modality is evaluated on the same N examples, so all accuracies have the
same weight in their mean.
"""

from __future__ import annotations

import numpy as np


def subset_key(subset) -> str:
  """('m0', 'm1') -> 'm0,m1' (the key of per_subset)."""
  return ','.join(subset)


def subset_averages(values: dict) -> dict:
  """The MoPoE table of any per-(subset, generated modality) figure.

  Args:
    values: values[given_subset][generated_modality] = float, for the subsets (tuples of
      modality names) that have something to report; a subset's modalities must not
      include its given ones.

  Returns:
    {'per_subset': {'m0,m1': {'m2': v, ..., 'mean': v}, ...},
     'by_num_given': {k: mean over subsets of size k of their 'mean'},
     'by_num_given_per_modality': {k: {m: mean over subsets of size k that generate m}}},
    every value a Python float, sizes k ascending.

  Raises:
    ValueError: no subset, a subset with no values, or one generating its own givens.
  """
  if not values:
    raise ValueError('subset_averages needs at least one subset')
  per_subset, by_size, by_size_mod = {}, {}, {}
  for subset, generated in values.items():
    subset = tuple(subset)
    if not generated:
      raise ValueError(f'no generated modalities for the given subset {subset}')
    overlap = set(subset) & set(generated)
    if overlap:
      raise ValueError(f'subset {subset} lists its given modalities {sorted(overlap)} as '
                       'generated')
    row = {name: float(v) for name, v in generated.items()}
    row['mean'] = float(np.mean([row[n] for n in generated]))
    per_subset[subset_key(subset)] = row
    by_size.setdefault(len(subset), []).append(row['mean'])
    for name in generated:
      by_size_mod.setdefault(len(subset), {}).setdefault(name, []).append(row[name])
  return {'per_subset': per_subset,
          'by_num_given': {k: float(np.mean(v)) for k, v in sorted(by_size.items())},
          'by_num_given_per_modality': {
              k: {m: float(np.mean(v)) for m, v in mods.items()}
              for k, mods in sorted(by_size_mod.items())}}


def conditional_coherence(predicted: dict, labels: np.ndarray) -> dict:
  """Conditional coherence per given subset and by number of given modalities.

  Args:
    predicted: predicted[given_subset][generated_modality] = int (N,) class ids the
      classifier of `generated_modality` assigns to that modality generated from
      `given_subset` (a tuple of modality names); a subset's generated modalities must not
      include its given ones.
    labels: int (N,) true classes of the N examples that were conditioned on.

  Returns:
    {'per_subset': {'m0,m1': {'m2': acc, ..., 'mean': acc}, ...},
     'by_num_given': {1: acc, 2: acc, ...}, 'by_num_given_per_modality': {1: {'m2': acc,
    ...}, ...}} with the averages of the module docstring (subset_averages); every value
    a Python float.

  Raises:
    ValueError: empty input, shape mismatch, or a subset generating one of its own givens.
  """
  labels = np.asarray(labels).reshape(-1)
  if not predicted or labels.size == 0:
    raise ValueError('conditional_coherence needs predictions for at least one subset and '
                     'at least one label')
  accuracies = {}
  for subset, generated in predicted.items():
    accs = accuracies[tuple(subset)] = {}
    for name, pred in generated.items():
      pred = np.asarray(pred).reshape(-1)
      if pred.shape != labels.shape:
        raise ValueError(f'predicted[{tuple(subset)}][{name!r}] has shape {pred.shape}, '
                         f'labels {labels.shape}')
      accs[name] = float(np.mean(pred == labels))
  return subset_averages(accuracies)


def unconditional_coherence(predicted: dict) -> float:
  """Fraction of joint samples whose modalities all get the same class.

  Args:
    predicted: modality -> int (N,) class ids of the N unconditionally generated samples
      (at least two modalities).
  """
  if len(predicted) < 2:
    raise ValueError('unconditional coherence needs at least two modalities')
  preds = np.stack([np.asarray(p).reshape(-1) for p in predicted.values()])
  if preds.shape[1] == 0:
    raise ValueError('unconditional coherence over no samples')
  return float(np.mean(np.all(preds == preds[:1], axis=0)))


def unconditional_independence_baseline(predicted: dict) -> float:
  """The agreement unconditional_coherence would show if the modalities were unrelated.

  sum_c prod_m p_m(c), with p_m the frequency of class c among modality m's predictions:
  the chance that independent draws from those marginals all agree. Unconditional coherence
  is informative only above this (1/K^(M-1) for uniform predictions over K classes, more
  when the classifiers favour a few classes on poor samples).

  Args:
    predicted: modality -> int (N,) class ids, as for unconditional_coherence.
  """
  if len(predicted) < 2:
    raise ValueError('the independence baseline needs at least two modalities')
  preds = [np.asarray(p).reshape(-1) for p in predicted.values()]
  if preds[0].size == 0:
    raise ValueError('the independence baseline over no samples')
  classes = np.unique(np.concatenate(preds))
  marginals = np.stack([(p[:, None] == classes[None]).mean(0) for p in preds])
  return float(np.sum(np.prod(marginals, axis=0)))
