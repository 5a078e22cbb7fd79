"""How many nats each image decoder gets out of z: the true z against another example's z.

For a checkpoint's EMA parameters and the first --num test examples, every image modality m
is scored under z = the posterior mean of three conditioning sets: m itself ('self', what
reconstruction uses), each other single modality ('cross', what coherence given one uses;
averaged over them) and all modalities ('all'). The same score with the z of the next
example in the batch (a shuffled z: another digit 9 times in 10) gives the gap

  nats(m | set) = E[ -log p(x_m | z_shuffled) ] - E[ -log p(x_m | z_true) ],

how much the decoder's likelihood of x_m depends on that z being the right one. For a
feed-forward decoder that is its NLL difference. For a diffusion decoder it is the bound's
difference, sum_t w_t (||eps - eps_theta(x_t, t, z_shuf)||^2 - ||eps - eps_theta(x_t, t, z)||^2)
(the bound's constant terms cancel), estimated with t drawn in proportion to w_t (--num_t
draws per example, common noise for both z), and also reported on a grid of t values as
the squared-error gap and w_t times it, to show at which noise levels z is used. A decoder that
ignores z gives 0; MoPoE's decoders, whose code forms, give the scale to compare against.

  .venv/bin/python benchmarks/z_usage.py --config=configs/protocol_polymnist.py:diffusion \
      --workdir=$HOME/runs/p13/diffusion_s0 --out=results/protocol_polymnist/z_usage_diffusion_s0.json

Cost: the protocol's Diff-MVAE at --num=256: ~40k U-Net image evaluations, 5-10 minutes
on one CPU core; MoPoE seconds.
"""

import functools
import json
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
from diffmvae_jax.data import pipeline
from diffmvae_jax.diffusion import schedules
from diffmvae_jax.models import diffmvae
from diffmvae_jax.tasks import vae

FLAGS = flags.FLAGS
T_GRID = (1, 10, 50, 150, 300, 600, 900)


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', None, 'Config of the checkpoint.')
  flags.DEFINE_string('workdir', None, 'Workdir with the VAE checkpoint.', required=True)
  flags.DEFINE_integer('num', 256, 'Test examples.')
  flags.DEFINE_integer('batch', 128, 'Examples per batch.')
  flags.DEFINE_integer('num_t', 4, 'Importance-sampled t per example (diffusion decoders).')
  flags.DEFINE_string('out', '', 'Also write the JSON here.')


def conditioning_sets(names, target):
  """{'self': [(target,)], 'cross': [(other,) ...], 'all': [names]} for one target."""
  return {'self': [(target,)], 'cross': [(n,) for n in names if n != target],
          'all': [tuple(names)]}


def make_scorers(model, config):
  """Jitted per-example scores of one image modality given z.

  Returns:
    (posterior_mean(params, batch, given) -> (B, D),
     ff_nll(params, name, x, z) -> (B,) nats,
     diffusion_sq(params, name, x0, t, noise, z) -> (B,) ||eps - eps_theta||^2,
     schedule).
  """
  schedule = diffmvae.make_diffusion_schedule(config.model)

  @functools.partial(jax.jit, static_argnums=(2,))
  def posterior_mean(params, batch, given):
    mu, _ = model.apply({'params': params}, batch, given, method=diffmvae.DiffMVAE.posterior)
    return mu

  modality = {m.name: m for m in model.modalities}

  @functools.partial(jax.jit, static_argnums=(1,))
  def ff_nll(params, name, x, z):
    def fn(module):
      return module.feedforward_nll(modality[name], module.decode_feedforward(name, z), x)
    return model.apply({'params': params}, method=fn)

  @functools.partial(jax.jit, static_argnums=(1,))
  def diffusion_sq(params, name, x0, t, noise, z):
    # Under model.diffusion.residual the diffusion models x0 - c(z) (zeros otherwise).
    x0 = x0 - model.apply({'params': params}, name, z,
                          method=diffmvae.DiffMVAE.residual_offset)
    x_t = schedules.q_sample(schedule, x0, t, noise)
    eps = model.apply({'params': params}, name, x_t, t, z,
                      method=diffmvae.DiffMVAE.eps_prediction)
    return jnp.sum(jnp.square(noise - eps).reshape(x0.shape[0], -1), axis=-1)

  return posterior_mean, ff_nll, diffusion_sq, schedule


def shuffled(z):
  """Each example gets the next example's z (the last gets the first's)."""
  return jnp.roll(z, -1, axis=0)


def batch_gaps(params, scorers, model, batch, key, num_t):
  """Per-example nats gaps of one batch: {target: {set: (B,) array}} and the t-grid gaps.

  Returns:
    (gaps, grid): gaps[target][set] float64 (B,); grid[target][set] float64 (len(T_GRID), B)
    of the squared-error gap at each t of T_GRID (diffusion targets only; empty for
    feed-forward ones).
  """
  posterior_mean, ff_nll, diffusion_sq, schedule = scorers
  images = [m.name for m in model.modalities if m.kind == 'image']
  weights = np.asarray(schedule.vlb_weights, np.float64)
  proposal = schedules.t_proposal(schedule, 'importance')
  gaps, grid = {}, {}
  means = {}
  for target in images:
    gaps[target], grid[target] = {}, {}
    diffusion = target in model.diffusion_names
    x = batch[target]
    size = x.shape[0]
    for set_name, sets in conditioning_sets(model.names, target).items():
      per_set, per_grid = [], []
      for given in sets:
        if given not in means:
          means[given] = posterior_mean(params, batch, given)
        z = means[given]
        if not diffusion:
          per_set.append(np.asarray(ff_nll(params, target, x, shuffled(z)), np.float64)
                         - np.asarray(ff_nll(params, target, x, z), np.float64))
          continue
        draws = []
        for k in range(num_t):
          key_t, key_noise = jax.random.split(jax.random.fold_in(key, k))
          t = schedules.sample_t(key_t, schedule.num_timesteps, (size,), proposal)
          noise = jax.random.normal(key_noise, x.shape, x.dtype)
          gap = (np.asarray(diffusion_sq(params, target, x, t, noise, shuffled(z)), np.float64)
                 - np.asarray(diffusion_sq(params, target, x, t, noise, z), np.float64))
          draws.append(weights.sum() * gap)   # w_t / p(t) = sum_s w_s under this proposal.
        per_set.append(np.mean(draws, axis=0))
        rows = []  # Per t: the squared-error gap (weighted by w_t later).
        for i, t_value in enumerate(T_GRID):
          noise = jax.random.normal(jax.random.fold_in(key, 1000 + i), x.shape, x.dtype)
          t = jnp.full((size,), t_value, jnp.int32)
          gap = (np.asarray(diffusion_sq(params, target, x, t, noise, shuffled(z)), np.float64)
                 - np.asarray(diffusion_sq(params, target, x, t, noise, z), np.float64))
          rows.append(gap)
        per_grid.append(np.stack(rows))
      gaps[target][set_name] = np.mean(per_set, axis=0)
      if per_grid:
        grid[target][set_name] = np.mean(per_grid, axis=0)
  return gaps, grid


def summarise(gaps_list, grid_list, weights=None):
  """Mean and standard error over examples of the gaps; for the t grid, the mean
  squared-error gap and (with the bound's `weights` (T,)) w_t times it, in nats."""
  out = {}
  for target in gaps_list[0]:
    out[target] = {}
    for set_name in gaps_list[0][target]:
      values = np.concatenate([g[target][set_name] for g in gaps_list])
      entry = {'nats': float(values.mean()),
               'stderr': float(values.std(ddof=1) / np.sqrt(len(values)))}
      if grid_list[0].get(target):
        rows = np.concatenate([g[target][set_name] for g in grid_list], axis=1).mean(1)
        entry['sq_gap_by_t'] = {str(t): float(v) for t, v in zip(T_GRID, rows)}
        if weights is not None:
          entry['w_t_x_sq_gap_by_t'] = {str(t): float(weights[t] * v)
                                        for t, v in zip(T_GRID, rows)}
      out[target][set_name] = entry
  return out


def main(argv):
  del argv
  config = FLAGS.config
  model, state, step = vae.restore_vae(config, FLAGS.workdir)
  scorers = make_scorers(model, config)
  iterator = pipeline.make_eval_iterator(config.data, split='test', global_batch_size=FLAGS.batch,
                                         num_examples=FLAGS.num)
  key = jax.random.PRNGKey(0)
  gaps_list, grid_list, num = [], [], 0
  for i, local in enumerate(iterator):
    valid = np.asarray(local['valid'], bool)
    num += int(valid.sum())
    batch = {k: jnp.asarray(np.asarray(local[k])[valid]) for k in model.names}
    gaps, grid = batch_gaps(state.ema_params, scorers, model, batch,
                            jax.random.fold_in(key, i), FLAGS.num_t)
    gaps_list.append(gaps)
    grid_list.append(grid)
  report = {'workdir': FLAGS.workdir, 'checkpoint_step': int(step),
            'num': num,
            'num_t': FLAGS.num_t, 't_grid': list(T_GRID),
            'z': 'posterior mean of the conditioning set; shuffled = the next example\'s',
            'decoders': {m.name: m.decoder for m in model.modalities if m.kind == 'image'},
            'vlb_weights_on_grid': {str(t): float(scorers[3].vlb_weights[t]) for t in T_GRID},
            'nats_true_vs_shuffled_z': summarise(
                gaps_list, grid_list, np.asarray(scorers[3].vlb_weights, np.float64))}
  text = json.dumps(report, indent=1)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  define_flags()
  app.run(main)
