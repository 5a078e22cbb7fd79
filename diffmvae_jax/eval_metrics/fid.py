"""FID per image modality (DESIGN §4): Fréchet distance of Inception-v3 pool3 features of
generated images against the first ``eval.num_examples`` test images.

Conditional (generated from every subset that lacks the image, on those test examples;
``eval.fid_conditional``) and unconditional. Stored per part: mu float64 (2048,),
sigma_triu float64 (2048 * 2049 / 2,) (the covariance's upper triangle: exact and half the
size), n, and fid (the distance, computed once: a 2048-d sqrtm costs seconds to a minute on
a CPU). The reference statistics are cached in ``eval.fid_cache_dir`` (default
<workdir>/fid_stats), keyed by dataset, split, N, resolution, preprocessing and weights.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from diffmvae_jax import eval_tasks
from diffmvae_jax import parallel
from diffmvae_jax.data import pipeline
from diffmvae_jax.eval_metrics import base
from diffmvae_jax.metrics import fid as fid_lib
from diffmvae_jax.metrics import inception
from diffmvae_jax.metrics import torchscript_weights


@jax.jit
def inception_features(variables, images):
  """Images (B, H, W, 1|3) in [-1, 1] -> pool3 features (B, 2048) (the FID features)."""
  return inception.InceptionV3().apply(variables, inception.preprocess((images + 1.0) / 2.0))


def pack_symmetric(matrix) -> np.ndarray:
  """The upper triangle (row-major) of a symmetric (D, D) matrix, (D (D + 1) / 2,)."""
  matrix = np.asarray(matrix)
  return matrix[np.triu_indices(matrix.shape[0])]


class FIDAccumulator(base.Accumulator):
  """Streaming Inception statistics of the generated images; FID against `reference`."""

  def __init__(self, part, variables, reference):
    super().__init__(part)
    self.variables, self.reference = variables, reference
    self.stats = fid_lib.StatsAccumulator()

  def device(self, samples, nll):
    return inception_features(self.variables, samples[self.part.modality])

  def host(self, fetched, truth, valid):
    self.stats.update(np.asarray(fetched)[valid])

  def arrays(self):
    stats = self.stats.result()
    out = self._named(mu=stats.mu, sigma_triu=pack_symmetric(stats.sigma), n=stats.n)
    if self.reference is not None:   # None on processes other than 0: nothing to report.
      out.update(self._named(fid=fid_lib.frechet_distance(
          stats.mu, stats.sigma, self.reference.mu, self.reference.sigma)))
    return out


class FID(base.Metric):
  """Conditional and unconditional FID of every image modality."""
  name = 'fid'
  kinds = ('image',)
  has_unconditional = True

  def __init__(self, context):
    super().__init__(context)
    self._inception = None
    self._references = {}

  @classmethod
  def conditional_skip(cls, options):
    if not options.get('fid_conditional', True):
      return 'eval.fid_conditional is False'
    return None

  def inception_variables(self):
    """Inception-v3 weights (sha256 verified), replicated over the mesh."""
    if self._inception is None:
      path = (self.context.config.eval.fid_weights or
              torchscript_weights.default_inception_path())
      variables = inception.load_inception_params(path)   # Raises on a hash mismatch.
      self._inception = (jax.device_put(variables, self.context.rep), path)
    return self._inception[0]

  def reference_stats(self, name: str) -> fid_lib.FeatureStats:
    """Inception statistics of the first num_test test images of `name` (cached on disk)."""
    if name in self._references:
      return self._references[name]
    ctx = self.context
    variables = self.inception_variables()
    builder = pipeline.prepare_dataset(ctx.config.data)
    key = fid_lib.StatsKey(
        dataset=f'{builder.name}/{builder.builder_config.name}:{name}:n{ctx.num_test}',
        split=ctx.config.eval.split, resolution=int(ctx.specs[name].shape[0]),
        preprocessing=inception.PREPROCESSING_TAG,
        weights_sha256=torchscript_weights.INCEPTION_SHA256)
    cache = fid_lib.FeatureStatsCache(ctx.config.eval.fid_cache_dir or
                                      os.path.join(ctx.workdir, 'fid_stats'))
    stats = cache.load(key) if eval_tasks.is_lead() else None
    compute = eval_tasks.lead_decides([stats is None])[0]
    if compute:
      progress = eval_tasks.Progress(ctx.num_test, f'FID reference features {name}')
      acc = fid_lib.StatsAccumulator()
      for batch in ctx.test_batches():
        images = parallel.global_batch({name: batch[name]}, ctx.mesh)[name]
        fetched = eval_tasks.fetch({
            'features': inception_features(variables, images),
            'valid': eval_tasks.host_rows({'valid': batch['valid']}, ctx.mesh)['valid']})
        valid = np.asarray(fetched['valid'], bool)
        acc.update(fetched['features'][valid])
        progress.update(int(valid.sum()))
      stats = acc.result()
      if eval_tasks.is_lead():
        cache.save(key, stats)
    self._references[name] = stats
    return stats

  def accumulator(self, part):
    reference = self.reference_stats(part.modality)
    return FIDAccumulator(part, self.inception_variables(),
                          reference if eval_tasks.is_lead() else None)

  def fingerprint(self, part):
    return {'inception_sha256': torchscript_weights.INCEPTION_SHA256,
            'reference': (self.context.config.eval.split, self.context.num_test)}

  def figures(self, conditional, unconditional):
    return {'conditional': self.conditional_table(conditional, lambda a, k: float(a[f'{k}/fid'])),
            'unconditional': {p.modality: float(unconditional[f'{p.key}/fid'])
                              for p in self.unconditional_parts()}}

  def provenance(self):
    e = self.context.config.eval
    # Not loaded when every FID part was reused: those task files' fingerprints hold the
    # weights' sha256, so the hash below still names the network that made them.
    return {'fid': {'weights': (self._inception[1] if self._inception else
                                'not loaded in this run: every FID part was reused'),
                    'weights_sha256': torchscript_weights.INCEPTION_SHA256,
                    'preprocessing': inception.PREPROCESSING_TAG,
                    'reference': f'{e.split}, first {self.context.num_test} images',
                    'generated': (f'conditional: one sample per test example per subset; '
                                  f'unconditional: {e.unconditional_num} joint samples')}}

  def scalars(self, figures):
    out = base.by_num_given('fid', figures['conditional'])
    for name, value in figures['unconditional'].items():
      out[f'fid/unconditional_{name}'] = value
    return out


METRIC = FID
