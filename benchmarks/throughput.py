"""Throughput of a config on this machine: training, generation and the matmul roofline.

  python benchmarks/throughput.py --config=configs/polymnist_mopoe.py --batch_size=64
  python benchmarks/throughput.py --config=configs/demo.py --ddim_steps=50 --gen_batch=16
  python benchmarks/throughput.py --config=configs/compare_polymnist.py:mopoe --noddpm \
      --steps_per_dispatch=8       # also K steps per dispatch (lax.scan over K batches)

Prints one JSON object: train samples/s and achieved FLOP/s of the jit'd train step
(FLOPs from XLA's cost analysis of the compiled step) next to the matmul FLOP/s this
machine reaches in the same run (float32 2048x2048 GEMM); generation images/s for
ancestral DDPM (all T steps) and DDIM-k when the config has diffusion decoders.
Median/min/max over timed repetitions after a warm-up; compilation is excluded and
reported separately. With --steps_per_dispatch=K > 1 it also times K train steps inside one
jit'd lax.scan over K stacked batches (one dispatch, no host work between steps) and reports
the time per step next to the one-step-per-dispatch figure. Data are random tensors of the right shapes (input-pipeline cost
is excluded; the grain pipeline serves ~20 batches/s of 256 on 2 cores).
"""

import json
import os
import statistics
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from diffmvae_jax import generate as generate_lib  # pylint: disable=g-import-not-at-top
from diffmvae_jax import parallel
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.tasks import vae
import random_inputs  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', 'configs/demo.py', 'Config to measure.')
  flags.DEFINE_integer('batch_size', 0, 'Global train batch (0 = the config\'s).')
  flags.DEFINE_integer('repeats', 10, 'Timed repetitions.')
  flags.DEFINE_integer('gen_batch', 16, 'Images per generation call.')
  flags.DEFINE_integer('ddim_steps', 50, 'k of DDIM-k.')
  flags.DEFINE_bool('ddpm', True, 'Also time ancestral DDPM over all T steps (slow on CPU).')
  flags.DEFINE_integer('steps_per_dispatch', 1, 'K > 1 also times K train steps per dispatch '
                       '(lax.scan over K stacked batches).')


def timed(fn, repeats):
  fn()  # Warm-up (compilation happened before).
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return {'median_s': statistics.median(times), 'min_s': min(times), 'max_s': max(times)}


def matmul_flops(repeats):
  n = 2048
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  jax.block_until_ready(f(a))
  t = timed(lambda: jax.block_until_ready(f(a)), repeats)
  return 2 * n ** 3 / t['median_s']


def time_scanned_steps(model, optimizer, config, state, k, repeats):
  """Times k train steps in one dispatch: lax.scan of the train step over k batches.

  Returns ({'steps_per_dispatch', 'median_s' (per step), 'min_s', 'max_s',
  'dispatch_median_s', 'compile_s', 'samples_per_s'}, the state after the timed steps);
  the `state` passed in is donated.
  """
  batch_size = config.train.batch_size
  batches = random_inputs.random_batch(model, batch_size, np.random.default_rng(1), leading=(k,))
  multi = jax.jit(vae.make_multi_train_step(model, optimizer, config), donate_argnums=(0,))
  batches = jax.device_put(batches)
  start = time.perf_counter()
  compiled = multi.lower(state, batches).compile()
  compile_s = time.perf_counter() - start
  holder = {'state': state}

  def run():
    holder['state'], metrics = compiled(holder['state'], batches)
    jax.block_until_ready(metrics)

  t = timed(run, max(1, repeats // k))
  return {'steps_per_dispatch': k, 'median_s': t['median_s'] / k, 'min_s': t['min_s'] / k,
          'max_s': t['max_s'] / k, 'dispatch_median_s': t['median_s'],
          'compile_s': compile_s, 'samples_per_s': batch_size * k / t['median_s']
         }, holder['state']


def main(argv):
  del argv
  config = FLAGS.config
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  batch_size = config.train.batch_size
  model = vae.build_model(config)
  mesh = parallel.make_mesh()
  optimizer = train_state_lib.make_optimizer(config.train)
  state = vae.init_state(config, model, optimizer, mesh)
  rng = np.random.default_rng(0)
  batch = parallel.global_batch(random_inputs.random_batch(model, batch_size, rng), mesh)
  step = jax.jit(vae.make_train_step(model, optimizer, config),
                 in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                 out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                 donate_argnums=(0,))
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  step_flops = float(cost.get('flops', float('nan')))
  holder = {'state': state}

  def run_step():
    holder['state'], metrics = compiled(holder['state'], batch)
    jax.block_until_ready(metrics)

  t = timed(run_step, FLAGS.repeats)
  roofline = matmul_flops(FLAGS.repeats)
  result = {
      'config': FLAGS['config'].config_filename, 'device': str(jax.devices()[0]),
      'device_count': jax.device_count(), 'cpu_count': os.cpu_count(),
      'params': int(sum(x.size for x in jax.tree.leaves(state.params))),
      'train': {'batch_size': batch_size, **t, 'compile_s': compile_s,
                'samples_per_s': batch_size / t['median_s'],
                'flops_per_step_xla': step_flops,
                'achieved_flops_per_s': step_flops / t['median_s']},
      'matmul_flops_per_s_f32': roofline,
  }
  result['train']['fraction_of_matmul_roofline'] = (
      result['train']['achieved_flops_per_s'] / roofline)
  if FLAGS.steps_per_dispatch > 1:
    if jax.process_count() > 1 or jax.device_count() > 1:
      raise SystemExit('--steps_per_dispatch > 1 times one device only.')
    scan, holder['state'] = time_scanned_steps(model, optimizer, config, holder['state'],
                                               FLAGS.steps_per_dispatch, FLAGS.repeats)
    scan['speedup_vs_one_per_dispatch'] = result['train']['median_s'] / scan['median_s']
    result['train_scan'] = scan
  if model.diffusion_names:
    params = {'params': holder['state'].ema_params}
    z = jnp.zeros((FLAGS.gen_batch, config.model.latent_dim))
    gen = {}
    samplers = [('ddim', FLAGS.ddim_steps)] + ([('ddpm', None)] if FLAGS.ddpm else [])
    for sampler, steps in samplers:
      config.sample.sampler = sampler
      config.sample.steps = steps or config.sample.steps
      decode = jax.jit(generate_lib.make_decode_fn(model, config.sample,
                                                   model.diffusion_names[:1]))
      key = jax.random.PRNGKey(0)
      start = time.perf_counter()
      jax.block_until_ready(decode(params, z, key))
      compile_s = time.perf_counter() - start
      t = timed(lambda: jax.block_until_ready(decode(params, z, key)),
                max(1, FLAGS.repeats // 5))
      name = f'ddim_{steps}' if sampler == 'ddim' else f'ddpm_{config.model.diffusion.num_timesteps}'
      gen[name] = {**t, 'first_call_s': compile_s,
                   'images_per_s': FLAGS.gen_batch / t['median_s']}
    result['generation'] = gen
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  define_flags()
  app.run(main)
