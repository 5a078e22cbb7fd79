"""Is a diffusion decoder's coherence that of a faithful sampler? K samples from one z each.

  .venv/bin/python benchmarks/sample_agreement.py \
      --config=configs/protocol_polymnist.py:diffusion_residual_v_guided \
      --workdir=$HOME/runs/p13/diffusion_residual_v_guided_s1 \
      --config.eval.classifier_dir=$HOME/runs/p13/classifiers [--samples=4] [--out=F.json]

(pass the run's own --config overrides, as for --mode=eval; the sampler, its steps and the
guidance weight are the eval's: ``sample.sampler``, ``sample.steps``, ``sample.guidance``).
Restores the latest checkpoint (or --step) and, on the learning curves' ``train.curve_num``
test examples, conditions each diffusion-decoded modality on each other single modality:
one z per example drawn from q(z | given) as --mode=eval does, then --samples images of the
target from that same z (independent sampler noise), each classified. Averaged over the
(given, target) pairs it reports:

  coherence: the fraction of samples showing the given example's digit (what the eval's
    conditional coherence measures, here on the curves' examples);
  agreement: the fraction of pairs of samples of the same z that show the same digit, an
    unbiased estimate of E_z[sum_d P(d | z)^2], P(d | z) the decoder's digit distribution;
  plurality_coherence: the fraction whose most frequent digit over the K samples (ties to the
    smaller digit) is the given one, the digit a sharper sampler of the same z would draw;
  coarse_coherence (coarse decoders only): c(z) of the same z.

Why: if the decoder is a calibrated sampler of the digit given z, i.e. the given example's
digit is distributed as P(. | z), then coherence = E_z[sum_d P(d | z)^2] = agreement (see
``agreement_stats``). A decoder whose samples agree with each other more than with the given
digit is overconfident (it draws confident wrong digits); one whose samples agree with each
other less than with the given digit spreads its digit wider than z's uncertainty (e.g. a
fraction of samples that ignore z: for P = a Q + (1 - a) uniform, Q the label's distribution,
coherence - agreement = a (1 - a) (E sum Q^2 - 1/10) >= 0). A faithful decoder's coherence is
still below a mean image's (MoPoE's coherence is that of its decoders' means) unless z is
certain: sum_d Q^2 < max_d Q. Prints one JSON object.

Cost: --samples sampler passes per (given, target) pair on curve_num examples (the protocol's
guided Diff-MVAE, 500 examples, K = 4, DPM-Solver++ 20: 34 minutes with guidance and 23
without, on one CPU core beside a training run on the other).
"""

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
import checkpoint_probe  # benchmarks/ is on sys.path (the script's own folder).
from diffmvae_jax import generate as generate_lib
from diffmvae_jax import rng
from diffmvae_jax.models.diffmvae import DiffMVAE

FLAGS = flags.FLAGS
NUM_CLASSES = 10


def agreement_stats(preds: np.ndarray, labels: np.ndarray) -> dict:
  """Coherence, pairwise agreement and plurality coherence of K samples per example.

  Args:
    preds: int (K, B), K >= 2: the classified digit of sample k of example b (all K of one
      example from the same z).
    labels: int (B,): the given example's digit.

  Returns:
    {'coherence', 'agreement', 'plurality_coherence'} as floats in [0, 1]. Agreement counts,
    per example, the K (K - 1) / 2 pairs of its samples that show one digit; with the
    samples i.i.d. from P(. | z) its expectation is sum_d P(d | z)^2, and if the label is
    also distributed as P(. | z) the coherence has the same expectation.
  """
  preds = np.asarray(preds)
  labels = np.asarray(labels)
  k = preds.shape[0]
  if k < 2:
    raise ValueError(f'Agreement needs at least 2 samples per z, got {k}.')
  counts = np.stack([np.sum(preds == d, axis=0) for d in range(NUM_CLASSES)])   # (10, B)
  agreeing_pairs = np.sum(counts * (counts - 1) / 2, axis=0)                      # (B,)
  return {'coherence': float(np.mean(preds == labels[None])),
          'agreement': float(np.mean(agreeing_pairs / (k * (k - 1) / 2))),
          'plurality_coherence': float(np.mean(np.argmax(counts, axis=0) == labels))}


def make_samples_fn(model: DiffMVAE, sample_config, given: str, target: str, num: int):
  """samples(params, batch, key) -> (images (num, B, H, W, C), coarse (B, H, W, C) or None).

  One z per example from q(z | given) (as generate.make_conditional_generate_fn draws it),
  then `num` decodes of `target` from that z with keys fold_in(key_dec, k).
  """
  decode = generate_lib.make_decode_fn(model, sample_config, (target,))

  def samples(params, batch, key):
    mu, logvar = model.apply(params, batch, (given,), method=DiffMVAE.posterior)
    key_z, key_dec = jax.random.split(key)
    z = mu + jax.numpy.exp(0.5 * logvar) * jax.random.normal(key_z, mu.shape)
    images = jax.numpy.stack([decode(params, z, jax.random.fold_in(key_dec, k))[target]
                              for k in range(num)])
    coarse = (model.apply(params, target, z, method=DiffMVAE.coarse_mean)
              if model.uses_coarse else None)
    return images, coarse

  return jax.jit(samples)


def measure(config, workdir: str, step: int | None = None, num_samples: int = 4) -> dict:
  """The agreement figures (module docstring) of a workdir's checkpoint."""
  if num_samples < 2:
    raise ValueError(f'--samples must be >= 2 (pairs of samples of one z), got {num_samples}.')
  model, params, restored, logger = checkpoint_probe.restore(config, workdir, step)
  params = {'params': params}
  valid, labels = logger.valid, logger.labels
  classify = lambda name, x: checkpoint_probe.classify(logger, name, x)[valid]
  key = rng.key_for(config.seed, 'sample_agreement')
  per_pair, coarse_coherence, pairs = [], [], []
  todo = checkpoint_probe.given_target_pairs(model, logger)
  start = time.time()
  for given, target in todo:
    fn = make_samples_fn(model, config.sample, given, target, num_samples)
    images, coarse = fn(params, logger.inputs, jax.random.fold_in(key, len(pairs)))
    preds = np.stack([classify(target, x) for x in images])
    per_pair.append(agreement_stats(preds, labels[valid]))
    if coarse is not None:
      coarse_coherence.append(float(np.mean(classify(target, coarse) == labels[valid])))
    pairs.append(f'{given}->{target}')
    elapsed = time.time() - start
    logging.info('%s (%d of %d): %s; %.0f s, about %.0f s to go', pairs[-1], len(pairs),
                 len(todo), per_pair[-1], elapsed, elapsed / len(pairs) * (len(todo) - len(pairs)))
  out = {'step': restored, 'samples_per_z': num_samples, 'pairs': pairs,
         'num_examples': int(np.sum(valid)), 'sampler': config.sample.sampler,
         'sampler_steps': int(config.sample.steps),
         'guidance': float(config.sample.get('guidance', 0.0))}
  for name in ('coherence', 'agreement', 'plurality_coherence'):
    out[name] = round(float(np.mean([p[name] for p in per_pair])), 4)
  out['per_pair'] = {p: {k: round(v, 4) for k, v in s.items()} for p, s in zip(pairs, per_pair)}
  if coarse_coherence:
    out['coarse_coherence'] = round(float(np.mean(coarse_coherence)), 4)
  return out


def main(argv):
  del argv
  result = measure(FLAGS.config, FLAGS.workdir, checkpoint_probe.flag_step(), FLAGS.samples)
  checkpoint_probe.report(result, FLAGS.workdir, FLAGS.out)


if __name__ == '__main__':
  checkpoint_probe.define_flags()
  flags.DEFINE_integer('samples', 4, 'Samples K per z (>= 2).')
  flags.adopt_module_key_flags(checkpoint_probe)   # --help lists them.
  app.run(main)
