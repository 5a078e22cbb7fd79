"""NHWC against NCHW for the U-Net's 3x3 convolutions on XLA:CPU: forward + both gradients.

  python benchmarks/conv_layout.py            # the protocol U-Net's shapes, batch 32

Times value_and_grad of sum(conv(x, w)^2) with respect to x and w, a stride-1 3x3 'SAME'
convolution, for each (H, W, C_in, C_out) in --shapes, written once with NHWC/HWIO
dimension numbers (what flax.linen.Conv emits) and once with NCHW/OIHW on the transposed
arrays (the same maths). The two are timed in alternation, --rounds times --repeats calls
each, so a machine whose load drifts affects both alike; prints JSON with the per-layout
medians and their ratio (NCHW / NHWC time: > 1 means NHWC is faster).
"""

import argparse
import json
import statistics
import time

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np


def conv_grad_fn(layout: str):
  """jit'd (x, w) -> (loss, (dx, dw)) for one layout ('NHWC' or 'NCHW')."""
  if layout == 'NHWC':
    dims = ('NHWC', 'HWIO', 'NHWC')
  elif layout == 'NCHW':
    dims = ('NCHW', 'OIHW', 'NCHW')
  else:
    raise ValueError(f'Unknown layout {layout!r}')

  def loss(x, w):
    y = lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=dims)
    return jnp.sum(jnp.square(y))

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def inputs(layout: str, batch: int, height: int, width: int, c_in: int, c_out: int):
  """Random (x, w) of one shape in one layout (the same numbers in both layouts)."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch, height, width, c_in)).astype(np.float32)
  w = (0.1 * rng.standard_normal((3, 3, c_in, c_out))).astype(np.float32)
  if layout == 'NCHW':
    x, w = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
  return jnp.asarray(x), jnp.asarray(w)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--shapes', default='28x28x16x16,28x28x32x32,14x14x32x32,7x7x32x32',
                      help='comma-separated HxWxC_inxC_out')
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args()
  report = {'batch': args.batch, 'rounds': args.rounds, 'repeats': args.repeats,
            'device': str(jax.devices()[0]), 'shapes': {}}
  for shape in args.shapes.split(','):
    h, w_, c_in, c_out = (int(v) for v in shape.split('x'))
    fns = {layout: conv_grad_fn(layout) for layout in ('NHWC', 'NCHW')}
    data = {layout: inputs(layout, args.batch, h, w_, c_in, c_out) for layout in fns}
    values = {layout: jax.block_until_ready(fns[layout](*data[layout])) for layout in fns}
    np.testing.assert_allclose(float(values['NHWC'][0]), float(values['NCHW'][0]), rtol=1e-4)
    times = {layout: [] for layout in fns}
    for _ in range(args.rounds):
      for layout, fn in fns.items():
        for _ in range(args.repeats):
          start = time.perf_counter()
          jax.block_until_ready(fn(*data[layout]))
          times[layout].append(time.perf_counter() - start)
    medians = {layout: statistics.median(t) for layout, t in times.items()}
    report['shapes'][shape] = {'median_s': medians,
                               'nchw_over_nhwc': medians['NCHW'] / medians['NHWC']}
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  main()
