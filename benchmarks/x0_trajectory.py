"""Where along the sampler a diffusion decoder decides the digit: coherence of x0_hat per step.

  .venv/bin/python benchmarks/x0_trajectory.py --config=configs/protocol_polymnist.py:diffusion_coarse \
      --workdir=$HOME/runs/p13/diffusion_residual_w4_simple_s0 \
      --config.eval.classifier_dir=$HOME/runs/p13/classifiers [--config.model.diffusion...=...] \
      [--steps=10] [--out=trajectory.json]

(pass the run's own --config overrides, as for --mode=eval). Restores the latest checkpoint
(or --step) and, on the learning curves' `train.curve_num` test examples, conditions each
diffusion-decoded image on each other single modality (z = the posterior mean, where the
curves draw z from the posterior; the curves' coarse images use the mean too) and runs deterministic DDIM with --steps steps. At every step it classifies the
sampler's prediction of the clean image, x0_hat (plus c(z) under model.diffusion.residual),
and reports, averaged over the (given, target) pairs:

  coherence: the fraction whose x0_hat shows the given example's digit;
  agrees_with_final: the fraction whose x0_hat shows the digit the final sample shows;
  and, with coarse decoders, the coherence of the coarse image c(z) itself.

A decoder that uses z at high noise has coherent x0_hat from the first steps on; one that
draws its own digit shows chance coherence early and agreement with the final sample rising
only as t falls. Prints one JSON object.

Cost: --steps U-Net calls per (given, target) pair on curve_num examples (the protocol's
Diff-MVAE, 500 examples, 10 steps: ~2 minutes on one CPU core).
"""

import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
import checkpoint_probe  # benchmarks/ is on sys.path (the script's own folder).
from diffmvae_jax import generate as generate_lib
from diffmvae_jax import rng
from diffmvae_jax.diffusion import samplers
from diffmvae_jax.models.diffmvae import DiffMVAE
from diffmvae_jax.models.diffmvae import make_diffusion_schedule

FLAGS = flags.FLAGS


def make_trajectory_fn(model: DiffMVAE, given: str, target: str, num_steps: int,
                       guidance: float = 0.0):
  """trajectory(params, batch, key) -> (x0_hats (S, B, H, W, C), coarse (B, H, W, C) or None).

  x0_hats[i] is step i's clean-image prediction in image space (c(z) added for a residual
  model); the last one is the final sample, samplers.ddim_sample's (eta 0) with the same key.
  guidance: sample.guidance (generate.make_eps_fn).
  """
  guidance = generate_lib.check_guidance(model, guidance)
  schedule = make_diffusion_schedule(model.model_config)
  ts = samplers.ddim_timesteps(schedule.num_timesteps, num_steps)
  ts_prev = np.concatenate([ts[1:], [-1]]).astype(np.int32)
  shape = next(m.shape for m in model.modalities if m.name == target)

  def trajectory(params, batch, key):
    z, _ = model.apply(params, batch, (given,), method=DiffMVAE.posterior)
    eps_fn = generate_lib.make_eps_fn(model, params, target, z, guidance)
    offset = model.apply(params, target, z, method=DiffMVAE.residual_offset)
    coarse = (model.apply(params, target, z, method=DiffMVAE.coarse_mean)
              if model.uses_coarse else None)
    init_key, _ = jax.random.split(key)     # As ddim_sample draws its x_T.
    x = jax.random.normal(init_key, (z.shape[0],) + tuple(shape), jnp.float32)
    x0_hats = []
    for t, t_prev in zip(ts, ts_prev):
      full = lambda v: jnp.full((z.shape[0],), v, jnp.int32)
      x, x0 = samplers.ddim_step(eps_fn, schedule, x, full(t), full(t_prev), jnp.zeros_like(x),
                                 0.0, x0_offset=offset if model.residual else None)
      x0_hats.append(x0 + offset)
    return jnp.stack(x0_hats), coarse

  return jax.jit(trajectory), [int(t) for t in ts]


def measure(config, workdir: str, step: int | None = None, num_steps: int = 10) -> dict:
  """The trajectory figures (module docstring) of a workdir's checkpoint."""
  model, params, restored, logger = checkpoint_probe.restore(config, workdir, step)
  params = {'params': params}
  valid, labels = logger.valid, logger.labels
  key = rng.key_for(config.seed, 'curves')
  coherence, agreement, coarse_coherence, pairs = [], [], [], []
  for given, target in checkpoint_probe.given_target_pairs(model, logger):
    fn, ts = make_trajectory_fn(model, given, target, num_steps,
                                config.sample.get('guidance', 0.0))
    x0_hats, coarse = fn(params, logger.inputs, jax.random.fold_in(key, len(pairs)))
    preds = np.stack([checkpoint_probe.classify(logger, target, x)[valid] for x in x0_hats])
    coherence.append(np.mean(preds == labels[valid], axis=1))
    agreement.append(np.mean(preds == preds[-1:], axis=1))
    if coarse is not None:
      c = checkpoint_probe.classify(logger, target, coarse)[valid]
      coarse_coherence.append(float(np.mean(c == labels[valid])))
    pairs.append(f'{given}->{target}')
  out = {'step': restored, 'ddim_steps': num_steps,
         'guidance': float(config.sample.get('guidance', 0.0)), 't': ts, 'pairs': pairs,
         'num_examples': int(np.sum(valid)),
         'coherence': [round(float(v), 4) for v in np.mean(coherence, axis=0)],
         'agrees_with_final': [round(float(v), 4) for v in np.mean(agreement, axis=0)]}
  if coarse_coherence:
    out['coarse_coherence'] = round(float(np.mean(coarse_coherence)), 4)
  return out


def main(argv):
  del argv
  result = measure(FLAGS.config, FLAGS.workdir, checkpoint_probe.flag_step(), FLAGS.steps)
  checkpoint_probe.report(result, FLAGS.workdir, FLAGS.out)


if __name__ == '__main__':
  checkpoint_probe.define_flags()
  flags.DEFINE_integer('steps', 10, 'DDIM steps.')
  flags.adopt_module_key_flags(checkpoint_probe)   # --help lists them.
  app.run(main)
