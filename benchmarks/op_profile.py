"""Where a train step's time goes: XLA ops of the compiled step, grouped by what they compute.

  python benchmarks/op_profile.py --config=configs/protocol_polymnist.py:diffusion
  python benchmarks/op_profile.py --config=configs/compare_polymnist.py:mopoe --top=15
  python benchmarks/op_profile.py --fid      # the FID Inception-v3 features, batch 32, 299x299

Traces --steps executions of the jit'd train step (random inputs of the config's shapes, as
benchmarks/throughput.py) with jax.profiler, reads the per-op events of the XLA runtime
and maps every op back to the compiled HLO: its phase (forward, backward = the transpose
of the forward, update = optimiser/EMA/RNG outside the model) from the op's source
metadata, and its kind (convolution, dense, group norm, SiLU, attention, data movement,
other elementwise) from the metadata or, for others, from the ops inside the fusion: data movement = copies,
transposes, slices, concatenations and pads only (layout changes, the im2col of the patch
convolutions). Prints one JSON object: op time per step by phase and kind (ms and share of all
op time), the --top single ops with their source path, and the wall time of the traced
steps, with XLA's FLOP count of the function and the FLOP/s it reached. With --fid it
profiles the FID feature function instead (Inception-v3 pool3 on --batch_size random
299x299 images, default 32; random weights: the same FLOPs as the real ones, so the same
speed). The XLA runtime may run independent ops at once on several cores, so op time can
exceed wall time. Shares are what this is for: a loaded machine inflates every op alike, roughly,
but measure on a quiet one before quoting milliseconds.
"""

import collections
import glob
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from diffmvae_jax import parallel  # pylint: disable=g-import-not-at-top
from diffmvae_jax import train_state as train_state_lib
from diffmvae_jax.tasks import vae
import random_inputs  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  config_flags.DEFINE_config_file('config', 'configs/demo.py', 'Config to profile.')
  flags.DEFINE_integer('batch_size', 0, 'Global train batch (0 = the config\'s).')
  flags.DEFINE_integer('steps', 5, 'Traced train steps (after 3 untraced warm-up steps).')
  flags.DEFINE_integer('top', 20, 'How many single ops to list.')
  flags.DEFINE_bool('fid', False, 'Profile the FID Inception features instead of a train step.')


_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = \S+ (\w[\w\-]*)\(')
_COMPUTATION = re.compile(r'^%?([\w.\-]+) [^\n]*\{\s*$')
# (kind, pattern in an op's source path), first match wins.
_KINDS = (('convolution', 'conv_general_dilated'), ('attention', 'Attention'),
          ('group norm', 'GroupNorm'), ('silu', 'silu'), ('dense', 'dot_general'))
# Ops that only move or rearrange data (no arithmetic): a fusion of these is a copy.
_DATA_MOVEMENT = {'fusion', 'parameter', 'constant', 'copy', 'transpose', 'bitcast', 'reshape',
                  'broadcast', 'slice', 'dynamic-slice', 'concatenate', 'pad', 'reverse',
                  'tuple', 'get-tuple-element'}


def parse_hlo(text: str) -> dict:
  """Instructions of a compiled module's HLO text.

  Returns:
    {instruction name: {'opcode', 'op_name' (source metadata, '' if none),
     'inner' (set of opcodes inside a fusion's called computation)}}.
  """
  bodies, current = {}, None
  for line in text.splitlines():
    m = _COMPUTATION.match(line)
    if m and '=' not in line.split('{')[0]:
      current = bodies.setdefault(m.group(1), set())
      continue
    m = _INSTRUCTION.match(line)
    if m and current is not None:
      current.add(m.group(2))
  ops = {}
  for line in text.splitlines():
    m = _INSTRUCTION.match(line)
    if not m:
      continue
    op_name = re.search(r'op_name="([^"]*)"', line)
    callee = re.search(r'calls=%?([\w.\-]+)', line)
    ops[m.group(1)] = {'opcode': m.group(2), 'op_name': op_name.group(1) if op_name else '',
                       'inner': bodies.get(callee.group(1), set()) if callee else set()}
  return ops


def classify(name: str, op: dict) -> tuple:
  """(phase, kind) of one instruction (see the module docstring)."""
  path = op['op_name']
  if 'transpose(jvp(' in path:
    phase = 'backward'
  elif 'jvp(' in path:
    phase = 'forward'
  elif path:
    phase = 'update'
  else:  # No metadata: the layout passes and weight gradients XLA adds for the backward.
    phase = 'backward'
  for kind, pattern in _KINDS:
    if pattern in path:
      return phase, kind
  inner = op['inner'] | {op['opcode']}
  if 'convolution' in inner:
    return phase, 'convolution'
  if 'dot' in inner:
    return phase, 'dense'
  if inner <= _DATA_MOVEMENT:
    return phase, 'data movement'
  return phase, 'other elementwise'


def op_times(trace_dir: str, ops: dict, steps: int) -> collections.Counter:
  """Microseconds per step of every HLO instruction in the trace under trace_dir."""
  files = glob.glob(os.path.join(trace_dir, '**', '*.trace.json.gz'), recursive=True)
  if not files:
    raise RuntimeError(f'jax.profiler wrote no trace under {trace_dir}')
  with gzip.open(files[0]) as f:
    events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  times = collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and e.get('name') in ops:
      times[e['name']] += e['dur'] / steps
  return times


def summarise(times: collections.Counter, ops: dict, top: int) -> dict:
  """Groups per-op microseconds by (phase, kind); lists the `top` single ops."""
  total = sum(times.values())
  groups, kinds = collections.Counter(), collections.Counter()
  for name, us in times.items():
    phase, kind = classify(name, ops[name])
    groups[f'{phase}/{kind}'] += us
    kinds[kind] += us
  return {
      'op_ms_per_step': total / 1e3,
      'by_kind': {k: {'ms': v / 1e3, 'share': v / total} for k, v in kinds.most_common()},
      'by_phase_and_kind': {k: {'ms': v / 1e3, 'share': v / total}
                            for k, v in groups.most_common()},
      'top_ops': [{'op': name, 'ms': us / 1e3, 'share': us / total,
                   'kind': '/'.join(classify(name, ops[name])),
                   'source': ops[name]['op_name']} for name, us in times.most_common(top)],
  }


def train_step_call(config, batch_size):
  """(compiled train step, run(): one step, blocking) on random inputs of the config."""
  if batch_size:
    config.train.batch_size = batch_size
  model = vae.build_model(config)
  mesh = parallel.make_mesh()
  optimizer = train_state_lib.make_optimizer(config.train)
  holder = {'state': vae.init_state(config, model, optimizer, mesh)}
  batch = parallel.global_batch(
      random_inputs.random_batch(model, config.train.batch_size, np.random.default_rng(0)), mesh)
  compiled = jax.jit(vae.make_train_step(model, optimizer, config),
                     donate_argnums=(0,)).lower(holder['state'], batch).compile()

  def run():
    holder['state'], metrics = compiled(holder['state'], batch)
    jax.block_until_ready(metrics)

  return compiled, run


def fid_features_call(batch_size):
  """(compiled FID feature function, run(): one batch, blocking), random weights."""
  import fid_features  # pylint: disable=g-import-not-at-top
  from diffmvae_jax.metrics import inception  # pylint: disable=g-import-not-at-top
  variables = jax.device_put(fid_features.random_variables())
  size = inception.INPUT_SIZE
  images = jax.device_put(np.random.default_rng(0).uniform(
      size=(batch_size or 32, size, size, 3)).astype(np.float32))
  compiled = inception._features.lower(variables, images).compile()  # pylint: disable=protected-access
  return compiled, lambda: jax.block_until_ready(compiled(variables, images))


def main(argv):
  del argv
  if FLAGS.fid:
    compiled, run = fid_features_call(FLAGS.batch_size)
    what = {'function': 'FID Inception-v3 features (random weights)',
            'batch_size': FLAGS.batch_size or 32}
  else:
    compiled, run = train_step_call(FLAGS.config, FLAGS.batch_size)
    what = {'config': FLAGS['config'].config_filename,
            'batch_size': FLAGS.config.train.batch_size}
  ops = parse_hlo(compiled.as_text())
  cost = compiled.cost_analysis()
  flops = float((cost[0] if isinstance(cost, (list, tuple)) else cost).get('flops', 'nan'))
  for _ in range(3):
    run()
  walls = []
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(FLAGS.steps):
        start = time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
    times = op_times(trace_dir, ops, FLAGS.steps)
  wall = statistics.median(walls)
  result = {**what, 'cpu_count': os.cpu_count(), 'traced_steps': FLAGS.steps,
            'wall_ms_per_step_traced': wall * 1e3, 'flops_per_call_xla': flops,
            'achieved_flops_per_s_traced': flops / wall,
            **summarise(times, ops, FLAGS.top)}
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  define_flags()
  app.run(main)
