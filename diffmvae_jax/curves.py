"""Learning curves logged during training: coherence given 1 and given 2 and the latent probe.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=DIR --mode=train_classifiers
  python -m diffmvae_jax.main --config=configs/demo.py --workdir=DIR \
      --config.train.curve_every=250
  .venv/bin/python benchmarks/plot_curves.py --runs=diffusion=DIR,mopoe=DIR2 --out=curves.png

With ``train.curve_every=k`` (> 0), --mode=train measures, at step 0 (a fresh run), every k
steps and at the last step, on the first ``train.curve_num`` test examples:
- conditional coherence (coherence.py's MoPoE-table averages, the same arithmetic as
  --mode=eval) given every subset of 1 and of 2 modalities: z ~ q_S, the missing classified
  modalities (image, caption, label) generated with ``train.curve_sampler`` (default DDIM)
  at ``train.curve_sampler_steps`` network calls (eta 0, ``sample.guidance`` as set;
  feed-forward decoders return their mean), classified with the classifiers of
  --mode=train_classifiers (``eval.classifier_dir``, default <workdir>/classifiers);
- the latent probe (metrics/latent_probe.py): nearest-class-mean accuracy of each unimodal
  posterior mean, fitted on the first half of those examples and scored on the second;
- with coarse decoders (model.diffusion.coarse_weight / coarse_condition):
  'coarse_coherence/given_1', the coherence of the coarse decoders' mean images of the
  posterior mean given each single modality (what the U-Net is shown), so a curve can tell
  a code that has not formed from a U-Net that does not follow it.
The parameters are those generation uses (EMA unless ``sample.use_ema`` is False); keys
come from rng.key_for(seed, 'curves'), the same at every step, so the curve moves only with
the model. Rows go to ``<workdir>/curves.jsonl`` ({'step', 'coherence/given_1', ...,
'probe/q(z|m0)', ..., 'probe/mean', 'seconds'}) and to TensorBoard as 'curve/...'. A run
resumed after a crash may write a step's row twice; readers keep the last one.

Cost per point: one sampler pass per missing image and subset, e.g. 3 modalities, 200
examples, DDIM-10: 9 x 200 images x 10 U-Net calls (about a minute on a 2-core CPU);
DPM-Solver++ at 20 calls doubles it, guidance doubles it again.
"""

from __future__ import annotations

import functools
import json
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from diffmvae_jax import coherence as coherence_lib
from diffmvae_jax import eval_plan
from diffmvae_jax import eval_tasks
from diffmvae_jax import generate as generate_lib
from diffmvae_jax import parallel
from diffmvae_jax import rng
from diffmvae_jax.data import pipeline
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.metrics import classifiers as classifiers_lib
from diffmvae_jax.metrics import latent_probe
from diffmvae_jax.models.diffmvae import DiffMVAE

CURVES_FILE = 'curves.jsonl'
CLASSIFIED_KINDS = ('image', 'caption', 'label')
MAX_GIVEN = 2   # Subsets of 1 and 2 given modalities.


def read_step_rows(path: str) -> list:
  """The rows of a JSONL file of {'step', ...} records (curves.jsonl, metrics.jsonl), the last
  row of each step kept (a resumed run may repeat one), sorted by step; [] if absent."""
  rows = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        if line.strip():
          row = json.loads(line)
          rows[row['step']] = row
  return [rows[s] for s in sorted(rows)]


def read_curves(workdir: str) -> list:
  """The rows of <workdir>/curves.jsonl (read_step_rows)."""
  return read_step_rows(os.path.join(workdir, CURVES_FILE))


class CurveLogger:
  """Measures and writes one curve point per call (module docstring).

  Args:
    model: the DiffMVAE.
    config: the run's config (train.curve_*, eval.classifier_dir, sample.use_ema, seed).
    workdir: the training workdir (curves.jsonl; default classifier directory).
    mesh: the ('data',) mesh.
    writer: a clu writer for 'curve/...' scalars, or None.

  Raises:
    ConfigError: a dataset without a 'label' field, fewer than two classified modalities,
      or train.curve_num not divisible by the devices.
    ClassifierError: no classifier for a classified image or caption modality.
  """

  def __init__(self, model: DiffMVAE, config, workdir: str, mesh, writer=None):
    self.model, self.config, self.workdir, self.mesh, self.writer = (
        model, config, workdir, mesh, writer)
    t = config.train
    specs = pipeline.modality_specs(config.data)
    if 'label' not in specs or specs['label'].kind != 'label':
      raise ConfigError(f'train.curve_every={t.curve_every}: learning curves measure '
                        f'coherence, which needs a label field; dataset {config.data.dataset!r} '
                        'has none. Set train.curve_every=0.')
    kinds = {m.name: m.kind for m in model.modalities}
    self.classified = tuple(n for n, k in kinds.items() if k in CLASSIFIED_KINDS)
    if len(self.classified) < 2:
      raise ConfigError(f'train.curve_every={t.curve_every}: coherence needs two classified '
                        f'modalities (image, caption or label); the model has {kinds}.')
    parallel.check_batch_size(t.curve_num, 'train.curve_num')
    directory = config.eval.classifier_dir or os.path.join(workdir, 'classifiers')
    rep = parallel.replicated(mesh)
    self.classify, infos = classifiers_lib.load_classifiers(directory, sharding=rep)
    missing = [n for n in self.classified if kinds[n] != 'label' and n not in infos]
    if missing:
      raise classifiers_lib.ClassifierError(
          f'No classifier for {missing} in {directory}: learning curves need them; run '
          '--mode=train_classifiers first (or set eval.classifier_dir).')
    self.kinds = kinds
    local = next(iter(pipeline.make_eval_iterator(
        config.data, split='test', global_batch_size=t.curve_num, num_examples=t.curve_num,
        process_index=jax.process_index(), process_count=jax.process_count())))
    self.inputs = parallel.global_batch({n: local[n] for n in model.names}, mesh)
    host = eval_tasks.fetch(eval_tasks.host_rows(
        {'label': local['label'], 'valid': local['valid']}, mesh))
    self.valid = np.asarray(host['valid'], bool)
    self.labels = np.asarray(host['label'], np.int64)
    sample_config = config.sample.copy_and_resolve_references()
    sample_config.sampler, sample_config.steps, sample_config.eta = (
        t.get('curve_sampler', 'ddim'), int(t.curve_sampler_steps), 0.0)
    shard = parallel.batch_sharded(mesh)
    self.subsets = [g for g in eval_plan.proper_subsets(model.names) if len(g) <= MAX_GIVEN]
    self._generate = {}
    for given in self.subsets:
      targets = tuple(n for n in self.classified if n not in given)
      if targets:
        self._generate[given] = (targets, jax.jit(
            generate_lib.make_conditional_generate_fn(model, sample_config, given, targets),
            in_shardings=(rep, shard, rep), out_shardings=shard))
    self._encode = jax.jit(
        lambda params, batch: model.apply(params, batch, method=DiffMVAE.encode)[0],
        in_shardings=(rep, shard), out_shardings=shard)
    self._argmax = jax.jit(lambda logits: jnp.argmax(logits, -1).astype(jnp.int32))
    self._coarse = {}
    if model.uses_coarse:
      for name in model.names:
        targets = tuple(n for n in model.diffusion_names if n != name and n in self.classified)
        if targets:
          self._coarse[name] = (targets, jax.jit(
              functools.partial(_coarse_images, model, (name,), targets),
              in_shardings=(rep, shard), out_shardings=shard))
    self.path = os.path.join(workdir, CURVES_FILE)

  def _classes(self, name: str, x):
    return x if self.kinds[name] == 'label' else self._argmax(self.classify(name, x))

  def measure(self, params) -> dict:
    """One point: {'coherence/given_k': ..., 'probe/q(z|m)': ..., 'probe/mean': ...}.

    Args:
      params: the VAE parameters to measure (the 'params' collection).
    """
    variables = {'params': params}
    key = rng.key_for(self.config.seed, 'curves')
    values = {}
    for i, (given, (targets, generate)) in enumerate(self._generate.items()):
      samples = generate(variables, self.inputs, jax.random.fold_in(key, i))
      preds = eval_tasks.fetch({n: self._classes(n, samples[n]) for n in targets})
      values[given] = {n: float(np.mean(np.asarray(preds[n])[self.valid] ==
                                        self.labels[self.valid])) for n in targets}
    row = {f'coherence/given_{k}': v for k, v in
           coherence_lib.subset_averages(values)['by_num_given'].items()}
    coarse = {}
    for given, (targets, images_fn) in self._coarse.items():
      images = images_fn(variables, self.inputs)
      preds = eval_tasks.fetch({n: self._classes(n, images[n]) for n in targets})
      coarse[(given,)] = {n: float(np.mean(np.asarray(preds[n])[self.valid] ==
                                           self.labels[self.valid])) for n in targets}
    if coarse:
      row['coarse_coherence/given_1'] = coherence_lib.subset_averages(coarse)['by_num_given'][1]
    mu = np.asarray(eval_tasks.fetch(self._encode(variables, self.inputs)))[self.valid]
    probes = {f'probe/q(z|{n})': latent_probe.nearest_class_mean_accuracy(
        mu[:, i], self.labels[self.valid]) for i, n in enumerate(self.model.names)}
    row.update(probes)
    row['probe/mean'] = float(np.mean(list(probes.values())))
    return row

  def write(self, params, step: int) -> dict:
    """Measures at `step`, appends the row to curves.jsonl (lead) and writes 'curve/...'."""
    start = time.time()
    row = {'step': int(step), **self.measure(params)}
    row['seconds'] = round(time.time() - start, 2)
    logging.info('Learning curve at step %d: %s', step,
                 ', '.join(f'{k} {v:.3f}' for k, v in row.items() if k != 'step'))
    if jax.process_index() == 0:
      with open(self.path, 'a') as f:
        f.write(json.dumps(row, sort_keys=True) + '\n')
    if self.writer is not None:
      self.writer.write_scalars(step, {f'curve/{k}': v for k, v in row.items()
                                       if k not in ('step', 'seconds')})
    return row


def _coarse_images(model: DiffMVAE, given: tuple, targets: tuple, variables, batch) -> dict:
  """{target: coarse mean image in [-1, 1] (B, H, W, C)} of the posterior mean given `given`."""
  def fn(module):
    mu, _ = module.posterior(batch, given)
    return {n: module.coarse_mean(n, mu) for n in targets}
  return model.apply(variables, method=fn)
