"""``--mode=eval``: the metrics of a checkpoint, the multimodal-VAE literature's way.

  python -m diffmvae_jax.main --config=configs/polymnist.py --workdir=DIR --mode=eval
  # once per dataset beforehand (classifiers for coherence; a few minutes on a CPU):
  python -m diffmvae_jax.main --config=configs/polymnist.py --workdir=DIR --mode=train_classifiers
  # CelebAMask-HQ (no classifiers: F1 and FID only):
  python -m diffmvae_jax.main --config=configs/celebamask_hq.py --workdir=DIR --mode=eval

Metrics (``eval.metrics``, DESIGN.md §4; which modality each applies to: eval_plan.py):
- coherence: for every non-empty proper subset S of the model's modalities, z ~ PoE of S,
  every missing image / caption / label generated and classified by the project's
  classifiers (metrics/classifiers.py), compared with the true label; per subset and
  averaged by |S| (the MoPoE table). Unconditional: ``eval.unconditional_num`` joint samples
  from ``sample.prior``, the fraction whose modalities all get one class.
- fid: per image modality, Fréchet distance of Inception-v3 pool3 features against the
  first ``eval.num_examples`` test images: conditional (generated from every subset that
  lacks the image, on those test examples; ``eval.fid_conditional``) and unconditional.
- f1: masks and attributes generated from every subset that lacks them, thresholded at 0.5,
  F1 per example against the truth, averaged over examples (metrics/f1.py).
- caption_nll: -log p(true caption | z = PoE mean of S) per token and its perplexity, for
  every subset that lacks the caption.
- latent gap (``eval.latent_gap``, any metrics): how far ``sample.prior``'s samples are
  from the aggregate posterior, in latent space: Fréchet distance and RBF MMD² between
  ``eval.unconditional_num`` prior samples and one full-set posterior sample z ~ q(z | X)
  of each of the test examples (metrics/latent_gap.py).

Each conditioning subset and the unconditional sample set is one task; every metric of a
task is computed from one generation pass (eval_tasks.run_pass), and stored per metric part
in ``<workdir>/eval/step_<step>/given_<S>.npz`` / ``unconditional_<prior>.npz`` with the
settings it was computed with: an interrupted evaluation resumes, a rerun reuses what is
unchanged, and a changed setting recomputes. Figures and their provenance go to
``<workdir>/eval/step_<step>/metrics_<sample.prior>.json`` (``metrics_<sample.prior>_guidance<w>
.json`` under sample.guidance = w > 0, ``..._tstart<s>.json`` under sample.t_start = s < 1)
and TensorBoard. Run it with
``--config.sample.prior=gaussian`` and ``=sde`` to compare the two priors on the same
checkpoint (the conditional tasks are shared).
"""

import json
import os

from absl import logging
import jax
import numpy as np

from diffmvae_jax import eval_metrics
from diffmvae_jax import eval_plan
from diffmvae_jax import eval_tasks
from diffmvae_jax import generate as generate_lib
from diffmvae_jax import metric_writer
from diffmvae_jax import parallel
from diffmvae_jax import rng
from diffmvae_jax.data import pipeline
from diffmvae_jax.metrics import latent_gap as latent_gap_lib
from diffmvae_jax.tasks import score_prior
from diffmvae_jax.tasks import vae



def metrics_file_name(sample_config) -> str:
  """metrics_<prior>[_guidance<w>][_tstart<s>].json: w = sample.guidance > 0, s = t_start < 1."""
  guidance = float(sample_config.get('guidance', 0.0))
  tag = (f'_guidance{guidance:g}' if guidance else '') + generate_lib.shallow_tag(sample_config)
  return f'metrics_{sample_config.prior}{tag}.json'


def subset_tag(given) -> str:
  return '-'.join(given)


class Evaluator:
  """A restored model, its evaluation plan, and the resumable tasks that carry it out."""

  def __init__(self, config, workdir: str):
    self.config, self.workdir = config, workdir
    metrics = eval_plan.parse_metrics(config.eval.metrics)
    self.mesh = parallel.make_mesh()
    parallel.check_batch_size(config.eval.batch_size, 'eval.batch_size')
    step = None if config.eval.step < 0 else config.eval.step
    self.model, state, self.step = vae.restore_vae(config, workdir, step)
    self.specs = pipeline.modality_specs(config.data)
    self.plan = eval_plan.make_plan(
        metrics, self.model.modalities, self.specs,
        options={'fid_conditional': bool(config.eval.get('fid_conditional', True)),
                 'unconditional_num': int(config.eval.get('unconditional_num', 1))})
    for what, why in self.plan.skipped.items():
      logging.info('Not computed: %s (%s).', what, why)
    self.rep = parallel.replicated(self.mesh)
    self.shard = parallel.batch_sharded(self.mesh)
    self.params = jax.device_put(
        {'params': vae.sampling_params(config, state)}, self.rep)
    self.kinds = {m.name: m.kind for m in self.model.modalities}
    self.out_dir = os.path.join(workdir, 'eval', f'step_{self.step}')
    if eval_tasks.is_lead():
      os.makedirs(self.out_dir, exist_ok=True)
    self.store = eval_tasks.TaskStore(self.out_dir)
    self.num_test = self._num_test()
    # One instance per requested metric, with this evaluator as its context (it loads its
    # networks and reference statistics lazily).
    self.metrics = {name: eval_metrics.get(name)(self) for name in self.plan.metrics}

  # -------------------------------------------------------------- data
  def _num_test(self) -> int:
    n = self.config.eval.num_examples
    total = pipeline.num_records(self.config.data, self.config.eval.split)
    return total if n <= 0 else min(n, total)

  def test_batches(self):
    """The evaluation split's global batches (eval.batch_size, padded; 'valid' marks rows)."""
    return pipeline.make_eval_iterator(
        self.config.data, split=self.config.eval.split,
        global_batch_size=self.config.eval.batch_size, num_examples=self.config.eval.num_examples,
        process_index=jax.process_index(), process_count=jax.process_count())

  # -------------------------------------------------------------- one task's pass
  def _accumulators(self, parts):
    return [self.metrics[part.metric].accumulator(part) for part in parts]

  def _conditional_pass(self, given, parts) -> dict:
    generated = tuple(dict.fromkeys(p.modality for p in parts if p.generates))
    nll_names = tuple(dict.fromkeys(p.modality for p in parts if not p.generates))
    truth_fields = tuple(dict.fromkeys(f for p in parts for f in p.truth))
    accumulators = self._accumulators(parts)
    step = jax.jit(eval_tasks.make_subset_step(self.model, self.config.sample, given,
                                               generated, nll_names),
                   in_shardings=(self.rep, self.shard, self.rep), out_shardings=self.shard)
    base_key = rng.key_for(self.config.seed, 'eval_conditional')

    def items():
      for i, batch in enumerate(self.test_batches()):
        inputs = parallel.global_batch({k: batch[k] for k in (*given, *nll_names)}, self.mesh)
        samples, nll = step(self.params, inputs, jax.random.fold_in(base_key, i))
        host = {'truth': {f: batch[f] for f in truth_fields}, 'valid': batch['valid']}
        yield samples, nll, eval_tasks.host_rows(host, self.mesh)

    progress = eval_tasks.Progress(self.num_test, f'given {",".join(given)}: {len(parts)} metric parts')
    return eval_tasks.run_pass(items(), accumulators, progress)

  def _unconditional_pass(self, parts) -> dict:
    num, batch_size = self.config.eval.unconditional_num, self.config.eval.batch_size
    generate = jax.jit(generate_lib.make_unconditional_generate_fn(
        self.model, self.config.sample,
        score_prior.latent_sampler_for(self.config, self.workdir)),
        static_argnums=2, out_shardings=self.shard)
    accumulators = self._accumulators(parts)
    base_key = rng.key_for(self.config.seed, 'eval_unconditional')

    def items():
      for i in range(-(-num // batch_size)):
        samples = generate(self.params, jax.random.fold_in(base_key, i), batch_size)
        valid = np.arange(batch_size) < num - i * batch_size
        yield samples, {}, {'truth': {}, 'valid': valid}

    progress = eval_tasks.Progress(num, f'unconditional ({self.config.sample.prior}): {len(parts)} parts')
    return eval_tasks.run_pass(items(), accumulators, progress)

  # -------------------------------------------------------------- latent gap
  def latent_gap(self) -> dict:
    """Prior samples vs full-set posterior samples of the test examples (latent space)."""
    encode = jax.jit(score_prior.make_encode_fn(self.model, 'sample'),
                     in_shardings=(self.rep, self.shard, self.rep), out_shardings=self.shard)
    key = rng.key_for(self.config.seed, 'eval_posterior')
    posterior = []
    for i, batch in enumerate(self.test_batches()):
      inputs = parallel.global_batch({k: batch[k] for k in self.model.names}, self.mesh)
      fetched = eval_tasks.fetch({
          'z': encode(self.params['params'], inputs, jax.random.fold_in(key, i)),
          'valid': eval_tasks.host_rows({'valid': batch['valid']}, self.mesh)['valid']})
      posterior.append(fetched['z'][np.asarray(fetched['valid'], bool)])
    posterior = np.concatenate(posterior)
    num = int(self.config.eval.unconditional_num)
    sampler = score_prior.latent_sampler_for(self.config, self.workdir)
    prior_key = rng.key_for(self.config.seed, 'eval_prior')
    if sampler is None:
      prior = np.asarray(jax.random.normal(prior_key, (num, self.config.model.latent_dim)))
    else:
      prior = eval_tasks.fetch(sampler(prior_key, num))
    gap = latent_gap_lib.latent_gap(posterior, prior)
    logging.info('Latent gap of the %s prior: %s', self.config.sample.prior, gap)
    return {**gap, 'num_posterior': int(len(posterior)), 'num_prior': num}

  # -------------------------------------------------------------- fingerprints
  def _fingerprint(self, part, unconditional: bool) -> dict:
    s, e = self.config.sample, self.config.eval
    fp = {'checkpoint_step': self.step, 'ema': bool(s.use_ema), 'seed': int(self.config.seed),
          'rng': rng.SCHEME, 'batch_size': int(e.batch_size)}
    if part.generates:
      fp['sampler'] = (s.sampler, int(s.steps), float(s.eta))
      if s.get('guidance', 0.0):
        fp['guidance'] = float(s.guidance)
      if s.get('t_start', 1.0) < 1.0:
        fp['t_start'] = float(s.t_start)
    if unconditional:
      fp['num'] = int(e.unconditional_num)
      fp['prior'] = s.prior
      if s.prior == 'sde':
        p = self.config.prior
        fp['prior_sampler'] = (p.sampler, int(p.sampler_steps), float(p.snr))
    else:
      fp['split'], fp['num_examples'] = e.split, self.num_test
    fp.update(self.metrics[part.metric].fingerprint(part))
    return fp

  # -------------------------------------------------------------- run
  def run(self) -> dict:
    plan = self.plan
    tasks = len(plan.conditional) + bool(plan.unconditional)
    conditional = {}
    for k, (given, parts) in enumerate(plan.conditional.items()):
      logging.info('Evaluation task %d/%d: given %s.', k + 1, tasks, ','.join(given))
      conditional[given] = self.store.run(
          f'given_{subset_tag(given)}', parts,
          {p.key: self._fingerprint(p, False) for p in parts},
          lambda todo, g=given: self._conditional_pass(g, todo))
    unconditional = {}
    if plan.unconditional:
      logging.info('Evaluation task %d/%d: unconditional (%s prior).', tasks, tasks,
                   self.config.sample.prior)
      unconditional = self.store.run(
          f'unconditional_{self.config.sample.prior}', plan.unconditional,
          {p.key: self._fingerprint(p, True) for p in plan.unconditional},
          self._unconditional_pass)
    results = self._figures(conditional, unconditional)
    skipped = dict(plan.skipped)
    if self.config.eval.get('latent_gap', True):
      if self.config.eval.get('unconditional_num', 1) > 0:
        results['latent_gap'] = self.latent_gap()
      else:
        skipped['latent_gap'] = 'eval.unconditional_num = 0: no prior samples'
    record = {'results': results, 'provenance': self._provenance(), 'skipped': skipped}
    if eval_tasks.is_lead():
      path = os.path.join(self.out_dir, metrics_file_name(self.config.sample))
      with open(path + '.tmp', 'w') as f:
        json.dump(record, f, indent=2, sort_keys=True)
      os.replace(path + '.tmp', path)
      logging.info('Evaluation of step %d written to %s', self.step, path)
    self._write_scalars(record['results'])
    return json.loads(json.dumps(record))   # The JSON's own view (string keys).

  def _figures(self, conditional: dict, unconditional: dict) -> dict:
    """Task arrays -> the reported figures, per metric (each metric module's `figures`)."""
    return {name: metric.figures(conditional, unconditional)
            for name, metric in self.metrics.items() if self.plan.computes(name)}

  def _provenance(self) -> dict:
    builder = pipeline.prepare_dataset(self.config.data)
    s = self.config.sample
    prov = {
        'dataset': f'{builder.name}/{builder.builder_config.name}',
        'split': self.config.eval.split, 'num_examples': self.num_test,
        'unconditional_num': self.config.eval.unconditional_num,
        'sampler': s.sampler,
        'sampler_steps': s.steps if s.sampler != 'ddpm' else None,
        'eta': s.eta, 'guidance': float(s.get('guidance', 0.0)),
        't_start': float(s.get('t_start', 1.0)), 'ema': s.use_ema,
        'prior': s.prior,
        'preprocessing': 'images scaled to [-1, 1] for the model, [0, 1] for Inception',
        'checkpoint_step': self.step, 'seed': self.config.seed, 'rng': rng.SCHEME,
        'modalities': [(m.name, m.decoder) for m in self.model.modalities],
        'metrics': list(self.plan.metrics),
    }
    if s.prior == 'sde':
      p = self.config.prior
      prov['prior_sampler'] = {'sampler': p.sampler, 'steps': p.sampler_steps, 'snr': p.snr,
                               'sde': p.sde}
    for name, metric in self.metrics.items():
      if self.plan.computes(name):
        prov.update(metric.provenance())
    return prov

  def _write_scalars(self, results: dict) -> None:
    writer = metric_writer.create_writer(
        os.path.join(self.workdir, 'eval'), just_logging=not eval_tasks.is_lead())
    scalars = {}
    for name, metric in self.metrics.items():
      if name in results:
        scalars.update(metric.scalars(results[name]))
    if 'latent_gap' in results:
      scalars['latent_gap/frechet'] = results['latent_gap']['frechet']
      scalars['latent_gap/mmd2'] = results['latent_gap']['mmd2']
    writer.write_scalars(self.step, scalars)
    writer.flush()


def evaluate(config, workdir: str) -> dict:
  """Evaluates checkpoint ``eval.step`` (latest if -1) of `workdir`.

  Args:
    config: the run's config (its eval, sample and prior sections choose what to compute).
    workdir: the training workdir.

  Returns:
    {'results': {metric: figures}, 'provenance': {...}, 'skipped': {what: why}}, as written
    to <workdir>/eval/step_<step>/metrics_<sample.prior>.json.

  Raises:
    ConfigError: unknown or inapplicable eval.metrics.
    CheckpointError: no checkpoint (or not the requested step).
    ClassifierError: coherence without trained classifiers.
    InceptionWeightsError: FID without the verified Inception weights.
  """
  return Evaluator(config, workdir).run()
