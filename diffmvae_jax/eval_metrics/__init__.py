"""Evaluation metrics as plug-ins: one module per metric, found by its name.

``eval.metrics=coherence,fid`` names modules of this package; each defines ``METRIC``, a
`base.Metric` subclass that says which modality kinds it scores, whether it has an
unconditional part, what each part stores, its fingerprint, figures, provenance and
TensorBoard scalars (big_vision's evaluators are the model). `evaluate.Evaluator` and
`eval_plan` know no metric by name. Adding a metric is adding one module here (and its
name to `config_checks.EVAL_METRICS`, which checks the flag before anything starts;
tests/test_config_checks.py says so if it is missing).
"""

import importlib
import pkgutil

from diffmvae_jax.errors import ConfigError

_NOT_METRICS = ('base',)


def names() -> tuple:
  """The metric names this package holds, sorted."""
  return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                      if m.name not in _NOT_METRICS))


def get(name: str):
  """The `base.Metric` subclass of metric `name`.

  Raises:
    ConfigError: no such metric.
  """
  if name not in names():
    raise ConfigError(f'Unknown eval.metrics {name!r}; choose from {names()}.')
  return importlib.import_module(f'{__name__}.{name}').METRIC
