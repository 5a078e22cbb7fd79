"""benchmarks/op_profile.py: HLO parsing, op classification and the per-op trace reading."""

import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))
import op_profile  # pylint: disable=g-import-not-at-top


class _TinyNet(nn.Module):

  @nn.compact
  def __call__(self, x):
    h = nn.silu(nn.GroupNorm(num_groups=2)(nn.Conv(4, (3, 3))(x)))
    return nn.Dense(3)(h.reshape(h.shape[0], -1))


def _compiled_grad_step():
  net = _TinyNet()
  x = jnp.ones((2, 8, 8, 1))
  params = net.init(jax.random.PRNGKey(0), x)

  def step(params, x):
    grads = jax.grad(lambda p: jnp.sum(net.apply(p, x) ** 2))(params)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

  return jax.jit(step).lower(params, x).compile(), params, x


def test_parse_and_classify_a_real_compiled_step():
  compiled, _, _ = _compiled_grad_step()
  ops = op_profile.parse_hlo(compiled.as_text())
  assert ops, 'no instruction parsed'
  kinds = {op_profile.classify(name, op) for name, op in ops.items()}
  # The forward conv, its gradients and the dense layer are found in their phases.
  assert ('forward', 'convolution') in kinds
  assert ('backward', 'convolution') in kinds
  assert {k for _, k in kinds} & {'dense', 'group norm', 'silu', 'other elementwise'}
  assert {p for p, _ in kinds} <= {'forward', 'backward', 'update'}


def test_classify_rules():
  fwd = {'opcode': 'fusion', 'op_name': 'jit(f)/jvp(M)/unet/Conv_0/conv_general_dilated',
         'inner': {'convolution'}}
  bwd_norm = {'opcode': 'fusion', 'op_name': 'jit(f)/transpose(jvp(M))/x/GroupNorm_0/div',
              'inner': {'divide'}}
  layout = {'opcode': 'fusion', 'op_name': '', 'inner': {'transpose', 'copy', 'parameter'}}
  im2col = {'opcode': 'concatenate', 'op_name': 'jit(f)/jvp(M)/enc/conv1/concatenate',
            'inner': set()}
  arithmetic = {'opcode': 'fusion', 'op_name': '', 'inner': {'transpose', 'multiply'}}
  update = {'opcode': 'fusion', 'op_name': 'jit(f)/mul', 'inner': {'multiply'}}
  assert op_profile.classify('a', fwd) == ('forward', 'convolution')
  assert op_profile.classify('b', bwd_norm) == ('backward', 'group norm')
  assert op_profile.classify('c', layout) == ('backward', 'data movement')
  assert op_profile.classify('e', im2col) == ('forward', 'data movement')
  assert op_profile.classify('f', arithmetic) == ('backward', 'other elementwise')
  assert op_profile.classify('d', update) == ('update', 'other elementwise')


def test_trace_times_sum_to_the_summary(tmp_path):
  compiled, params, x = _compiled_grad_step()
  ops = op_profile.parse_hlo(compiled.as_text())
  jax.block_until_ready(compiled(params, x))
  with jax.profiler.trace(str(tmp_path), create_perfetto_trace=True):
    for _ in range(2):
      jax.block_until_ready(compiled(params, x))
  times = op_profile.op_times(str(tmp_path), ops, steps=2)
  assert times, 'the trace holds no event of the compiled ops'
  assert set(times) <= set(ops)
  summary = op_profile.summarise(times, ops, top=3)
  assert abs(sum(g['share'] for g in summary['by_kind'].values()) - 1) < 1e-9
  assert abs(sum(g['ms'] for g in summary['by_phase_and_kind'].values())
             - summary['op_ms_per_step']) < 1e-6
  assert len(summary['top_ops']) == min(3, len(times))
