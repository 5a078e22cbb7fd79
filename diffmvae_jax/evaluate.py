"""``--mode=eval``: coherence and FID of a checkpoint, the multimodal-VAE literature's way.

  python -m diffmvae_jax.main --config=configs/polymnist.py --workdir=DIR --mode=eval
  # once per dataset beforehand (classifiers for coherence; a few minutes on a CPU):
  python -m diffmvae_jax.main --config=configs/polymnist.py --workdir=DIR --mode=train_classifiers

Metrics (``eval.metrics``), DESIGN.md §4:
- coherence: for every non-empty proper subset S of the model's modalities, z from the
  PoE of S, every missing modality generated and classified by the project's digit
  classifiers, compared with the true label; reported per subset and averaged by |S|
  (the MoPoE table). Unconditional coherence: ``eval.unconditional_num`` joint samples
  from the prior (``sample.prior``), the fraction whose modalities all get one class.
- fid: per image modality, the Fréchet distance between Inception-v3 pool3 features of
  the unconditional samples and of ``eval.num_examples`` test images of that modality.

Everything is written to ``<workdir>/eval/step_<step>/`` (per-task .npz files, so an
interrupted evaluation resumes where it stopped) and summarised with its provenance in
``<workdir>/eval/step_<step>/metrics_<sample.prior>.json`` and TensorBoard. Run it
with ``--config.sample.prior=gaussian`` and ``=sde`` to compare the two priors on the
same checkpoint (the conditional tasks are shared).
"""

import itertools
import json
import os
import time

from absl import logging
from clu import metric_writers
import jax
import numpy as np

from diffmvae_jax import checkpoint as checkpoint_lib
from diffmvae_jax import coherence as coherence_lib
from diffmvae_jax import generate as generate_lib
from diffmvae_jax import parallel
from diffmvae_jax import sample as sample_lib
from diffmvae_jax.data import pipeline
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.metrics import classifiers as classifiers_lib
from diffmvae_jax.metrics import fid as fid_lib
from diffmvae_jax.metrics import inception
from diffmvae_jax.metrics import torchscript_weights

METRICS = ('coherence', 'fid')


class Progress:
  """Logs done/total, rate and ETA at most every `every_secs`."""

  def __init__(self, total: int, what: str, every_secs: float = 30.0):
    self.total, self.what, self.every = total, what, every_secs
    self.done, self.start, self.last = 0, time.time(), 0.0

  def update(self, n: int) -> None:
    self.done += n
    now = time.time()
    if now - self.last >= self.every or self.done >= self.total:
      rate = self.done / max(now - self.start, 1e-9)
      eta = (self.total - self.done) / max(rate, 1e-9)
      logging.info('%s: %d/%d (%.1f/s, ETA %.0f s)', self.what, self.done, self.total, rate, eta)
      self.last = now


def _proper_subsets(names):
  for size in range(1, len(names)):
    yield from itertools.combinations(names, size)


def _cached(path: str, compute):
  """Loads {name: array} from `path` (.npz) or computes, saves atomically and returns it."""
  if os.path.exists(path):
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  result = compute()
  tmp = path + '.tmp.npz'
  np.savez(tmp, **result)
  os.replace(tmp, path)
  return result


class Evaluator:
  """Holds a restored model and runs each metric as resumable tasks."""

  def __init__(self, config, workdir: str):
    self.config, self.workdir = config, workdir
    requested = [m.strip() for m in config.eval.metrics.split(',') if m.strip()]
    unknown = sorted(set(requested) - set(METRICS))
    if unknown:
      raise ConfigError(f'Unknown eval.metrics {unknown}; choose from {METRICS}.')
    self.metrics = requested
    self.mesh = parallel.make_mesh()
    parallel.check_batch_size(config.eval.batch_size, 'eval.batch_size')
    step = None if config.eval.step < 0 else config.eval.step
    self.model, state, self.step = sample_lib.restore_latest(config, workdir, step=step)
    self.params = {'params': state.ema_params if config.sample.use_ema else state.params}
    self.out_dir = os.path.join(workdir, 'eval', f'step_{self.step}')
    os.makedirs(self.out_dir, exist_ok=True)
    self.rep = parallel.replicated(self.mesh)
    self.shard = parallel.batch_sharded(self.mesh)

  # -------------------------------------------------------------- data
  def _test_batches(self, names):
    it = pipeline.make_eval_iterator(
        self.config.data, split=self.config.eval.split,
        global_batch_size=self.config.eval.batch_size, num_examples=self.config.eval.num_examples,
        process_index=jax.process_index(), process_count=jax.process_count())
    for batch in it:
      yield {k: batch[k] for k in (*names, 'label', 'valid')}

  def _num_test(self) -> int:
    n = self.config.eval.num_examples
    total = pipeline.num_records(self.config.data, self.config.eval.split)
    return total if n <= 0 else min(n, total)

  # -------------------------------------------------------------- generation
  def _conditional_predictions(self, given, classify):
    missing = tuple(n for n in self.model.names if n not in given)
    fn = jax.jit(generate_lib.make_conditional_generate_fn(
        self.model, self.config.sample, given, names=missing),
        in_shardings=(self.rep, self.shard, self.rep), out_shardings=self.shard)
    preds = {m: [] for m in missing}
    labels = []
    progress = Progress(self._num_test(), f'coherence given {",".join(given)}')
    for i, batch in enumerate(self._test_batches(given)):
      inputs = parallel.global_batch({k: batch[k] for k in given}, self.mesh)
      key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed), i)
      samples = fn(self.params, inputs, key)
      valid = batch['valid']
      for m in missing:
        preds[m].append(self._classes(m, samples[m], classify)[valid])
      labels.append(batch['label'][valid])
      progress.update(int(valid.sum()))
    out = {f'generated_{m}': np.concatenate(p) for m, p in preds.items()}
    out['true_label'] = np.concatenate(labels)   # (A modality may itself be called 'label'.)
    return out

  def _classes(self, name, samples, classify) -> np.ndarray:
    kind = self.model.modalities[self.model.names.index(name)].kind
    samples = np.asarray(jax.device_get(samples))
    if kind == 'label':
      return samples.astype(np.int64)
    return np.asarray(np.argmax(classify(name, samples), axis=-1), np.int64)

  def _unconditional_samples(self):
    """{name: array} of eval.unconditional_num joint samples (images in [-1, 1])."""
    num, batch = self.config.eval.unconditional_num, self.config.eval.batch_size
    fn = jax.jit(generate_lib.make_unconditional_generate_fn(
        self.model, self.config.sample, sample_lib.latent_sampler_for(self.config, self.workdir)),
        static_argnums=2, out_shardings=self.shard)
    chunks, progress = [], Progress(num, 'unconditional samples')
    for i in range(-(-num // batch)):
      key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed + 7), i)
      chunks.append(jax.device_get(fn(self.params, key, batch)))
      progress.update(batch)
    return {m: np.concatenate([c[m] for c in chunks])[:num] for m in self.model.names}

  # -------------------------------------------------------------- metrics
  def coherence(self, unconditional) -> tuple:
    classifier_dir = self.config.eval.classifier_dir or os.path.join(self.workdir, 'classifiers')
    classify, infos = classifiers_lib.load_classifiers(classifier_dir)
    needed = [m.name for m in self.model.modalities if m.kind != 'label']
    missing = [n for n in needed if n not in infos]
    if missing:
      raise classifiers_lib.ClassifierError(
          f'No classifier for {missing} in {classifier_dir}; rerun --mode=train_classifiers.')
    predicted, labels = {}, None
    for given in _proper_subsets(self.model.names):
      tag = '-'.join(given)
      result = _cached(os.path.join(self.out_dir, f'coherence_given_{tag}.npz'),
                       lambda g=given: self._conditional_predictions(g, classify))
      labels = result.pop('true_label')
      predicted[given] = {k[len('generated_'):]: v for k, v in result.items()}
    conditional = coherence_lib.conditional_coherence(predicted, labels)
    uncond_preds = {m: self._classes(m, unconditional[m], classify) for m in self.model.names}
    provenance = {n: {'sha256': i.sha256, 'test_accuracy': i.test_accuracy}
                  for n, i in infos.items() if n in needed}
    return {'conditional': conditional,
            'unconditional': coherence_lib.unconditional_coherence(uncond_preds)}, provenance

  def fid(self, unconditional) -> tuple:
    path = self.config.eval.fid_weights or torchscript_weights.default_inception_path()
    variables = inception.load_inception_params(path)   # Verifies the sha256.
    sha = torchscript_weights.INCEPTION_SHA256
    feature_fn = inception.make_feature_fn(variables)
    cache = fid_lib.FeatureStatsCache(self.config.eval.fid_cache_dir or
                                      os.path.join(self.workdir, 'fid_stats'))
    builder = pipeline.prepare_dataset(self.config.data)
    dataset = f'{builder.name}/{builder.builder_config.name}'
    batch = self.config.eval.batch_size
    results = {}
    for m in self.model.modalities:
      if m.kind != 'image':
        continue
      key = fid_lib.StatsKey(dataset=f'{dataset}:{m.name}:n{self._num_test()}',
                             split=self.config.eval.split, resolution=m.shape[0],
                             preprocessing=inception.PREPROCESSING_TAG, weights_sha256=sha)

      def reference(name=m.name):
        progress = Progress(self._num_test(), f'FID reference features {name}')
        acc = fid_lib.StatsAccumulator()
        for b in self._test_batches((name,)):
          acc.update(np.asarray(feature_fn((b[name] + 1.0) / 2.0))[b['valid']])
          progress.update(int(b['valid'].sum()))
        return acc.result()

      ref = cache.get_or_compute(key, reference)
      progress = Progress(len(unconditional[m.name]), f'FID sample features {m.name}')
      acc = fid_lib.StatsAccumulator()
      for start in range(0, len(unconditional[m.name]), batch):
        images = unconditional[m.name][start:start + batch]
        acc.update(np.asarray(feature_fn((images + 1.0) / 2.0)))
        progress.update(len(images))
      gen = acc.result()
      results[m.name] = fid_lib.frechet_distance(gen.mu, gen.sigma, ref.mu, ref.sigma)
    return results, {'weights': path, 'weights_sha256': sha,
                     'preprocessing': inception.PREPROCESSING_TAG,
                     'reference': f'{self.config.eval.split}, first {self._num_test()} images',
                     'generated': f'{self.config.eval.unconditional_num} unconditional samples'}

  def run(self) -> dict:
    unconditional = _cached(
        os.path.join(self.out_dir, f'unconditional_samples_{self.config.sample.prior}.npz'),
        self._unconditional_samples)
    results, provenance = {}, self._provenance()
    if 'coherence' in self.metrics:
      results['coherence'], provenance['classifiers'] = self.coherence(unconditional)
    if 'fid' in self.metrics:
      results['fid'], provenance['fid'] = self.fid(unconditional)
    record = {'results': results, 'provenance': provenance}
    path = os.path.join(self.out_dir, f'metrics_{self.config.sample.prior}.json')
    with open(path + '.tmp', 'w') as f:
      json.dump(record, f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)
    self._write_scalars(results)
    logging.info('Evaluation of step %d written to %s', self.step, path)
    return record

  def _provenance(self) -> dict:
    builder = pipeline.prepare_dataset(self.config.data)
    s = self.config.sample
    return {
        'dataset': f'{builder.name}/{builder.builder_config.name}',
        'split': self.config.eval.split, 'num_examples': self._num_test(),
        'unconditional_num': self.config.eval.unconditional_num,
        'sampler': s.sampler, 'sampler_steps': s.steps if s.sampler == 'ddim' else None,
        'eta': s.eta, 'ema': s.use_ema, 'prior': s.prior,
        'preprocessing': 'images scaled to [-1, 1] for the model, [0, 1] for Inception',
        'checkpoint_step': self.step, 'seed': self.config.seed,
        'modalities': [(m.name, m.decoder) for m in self.model.modalities],
    }

  def _write_scalars(self, results: dict) -> None:
    writer = metric_writers.create_default_writer(
        os.path.join(self.workdir, 'eval'), just_logging=jax.process_index() > 0)
    scalars = {}
    coherence = results.get('coherence')
    if coherence:
      for k, v in coherence['conditional']['by_num_given'].items():
        scalars[f'coherence/given_{k}'] = v
      scalars['coherence/unconditional'] = coherence['unconditional']
    for name, value in results.get('fid', {}).items():
      scalars[f'fid/{name}'] = value
    writer.write_scalars(self.step, scalars)
    writer.flush()


def evaluate(config, workdir: str) -> dict:
  """Evaluates the checkpoint ``eval.step`` (latest if -1) of `workdir`; returns the record."""
  return Evaluator(config, workdir).run()
