"""Variance of the training gradient under each way of drawing the diffusion time t.

For one fixed training batch and a checkpoint's parameters, draws `--num_keys` PRNG keys
(each draws z, the MoPoE subsets, t and the noise, as a train step does) and computes the
gradient of the training loss under every setting of model.diffusion.t_sampling. Prints one
JSON: per setting and per parameter group (the encoders, the U-Net, all) the squared norm
of the mean gradient, the mean squared deviation from it (the estimator's variance, trace
of its covariance), an unbiased estimate of the expected gradient's squared norm, and their
ratio (relative variance: > 1 means one example batch's gradient is mostly noise). Same batch, same keys, so the settings differ only in how t is drawn.

  .venv/bin/python benchmarks/grad_variance.py \
      --config=configs/protocol_polymnist.py:diffusion --workdir=$HOME/runs/p13/diffusion_s0 \
      --num_keys=32 --out=results/protocol_polymnist/grad_variance.json

Cost: 2 x num_keys gradient evaluations of the model (~0.4 s each for the protocol's
Diff-MVAE at batch 32 on a 2-core CPU) plus two compilations: ~1-2 minutes.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
from diffmvae_jax.data import pipeline
from diffmvae_jax.diffusion import schedules
from diffmvae_jax.tasks import vae

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', None, 'Config of the checkpoint (loss=elbo).')
  flags.DEFINE_string('workdir', None, 'Workdir with the VAE checkpoint.', required=True)
  flags.DEFINE_integer('num_keys', 32, 'Gradient samples per setting.')
  flags.DEFINE_list('settings', list(schedules.T_SAMPLINGS), 'model.diffusion.t_sampling values.')
  flags.DEFINE_string('out', '', 'Also write the JSON here.')


def gradient_moments(grads_fn, params, keys, groups):
  """Mean-gradient norm and variance of per-key gradients, per parameter group.

  Args:
    grads_fn: (params, key) -> gradient pytree (dict of top-level modules).
    params: the parameters the gradients are taken at.
    keys: PRNG keys (K,), one gradient sample each.
    groups: {group name: predicate on a top-level parameter name}.

  Returns:
    {group: {'mean_sq_norm', 'signal_sq_norm', 'variance', 'relative_variance'}} as floats:
    variance = (1 / (K - 1)) sum_k ||g_k - mean||^2, the unbiased trace of the covariance;
    signal_sq_norm = ||mean||^2 - variance / K, the unbiased estimate of the squared norm of
    the expected gradient (||mean||^2 itself is inflated by the noise); relative_variance =
    variance / signal_sq_norm.
  """
  flat = {name: [] for name in groups}
  for key in keys:
    g = jax.device_get(grads_fn(params, key))
    for name, keep in groups.items():
      leaves = [np.ravel(np.asarray(v, np.float64)) for module, sub in g.items() if keep(module)
                for v in jax.tree_util.tree_leaves(sub)]
      flat[name].append(np.concatenate(leaves))
  out = {}
  for name, rows in flat.items():
    rows = np.stack(rows)
    mean = rows.mean(axis=0)
    variance = float(np.sum((rows - mean) ** 2) / (len(rows) - 1))
    mean_sq = float(np.sum(mean ** 2))
    signal = mean_sq - variance / len(rows)
    out[name] = {'mean_sq_norm': mean_sq, 'signal_sq_norm': signal, 'variance': variance,
                 'relative_variance': variance / signal if signal > 0 else float('inf')}
  return out


def main(argv):
  del argv
  config = FLAGS.config
  if config.model.diffusion.loss != 'elbo':
    raise app.UsageError('t_sampling applies to model.diffusion.loss=elbo configs only.')
  restored, state, step = vae.restore_vae(config, FLAGS.workdir)
  iterator = pipeline.make_train_iterator(config.data, global_batch_size=config.train.batch_size,
                                          seed=config.seed)
  local = next(iter(iterator))
  batch = {k: jnp.asarray(local[k]) for k in restored.names}
  keys = jax.random.split(jax.random.PRNGKey(0), FLAGS.num_keys)
  groups = {'encoders': lambda m: m.startswith('encoder'),
            'unet': lambda m: 'unet' in m.lower(),
            'all': lambda m: True}
  report = {'workdir': FLAGS.workdir, 'checkpoint_step': int(step), 'num_keys': FLAGS.num_keys,
            'batch_size': int(config.train.batch_size),
            'parameter_groups': sorted(jax.device_get(state.params).keys()), 'settings': {}}
  for setting in FLAGS.settings:
    with config.unlocked():
      config.model.diffusion.t_sampling = setting
    model = vae.build_model(config)
    grads_fn = jax.jit(jax.grad(lambda p, k, m=model: m.apply({'params': p}, batch, k)['loss']))
    report['settings'][setting] = gradient_moments(grads_fn, state.params, keys, groups)
  text = json.dumps(report, indent=1)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  define_flags()
  app.run(main)
