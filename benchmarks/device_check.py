"""The steps of benchmarks/device_check.sh that are Python: environment, data build, the
training runs' loss curves, and the summary. Each writes one JSON file into --out_dir.

  python benchmarks/device_check.py env --out_dir=DIR
  python benchmarks/device_check.py build --out_dir=DIR --data_dir=D --variants=5:500,3:10000
  python benchmarks/device_check.py curve --out_dir=DIR --arm=mopoe --workdir=W
  python benchmarks/device_check.py summary --out_dir=DIR

`summary` gathers every step's JSON (throughput_*.json and fid_features.json are written by
benchmarks/throughput.py and fid_features.py, whose stdout the shell script keeps) into
summary.json and prints the figures, marking a step that failed or timed out.
"""

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# Packages the lent machine lacks (they travel as wheels) or cannot have (TensorFlow).
PROBED_MODULES = ('tensorflow', 'tensorflow_datasets', 'clu', 'grain', 'array_record',
                  'ml_collections', 'mnist', 'tensorboard', 'flax', 'optax', 'orbax.checkpoint',
                  'chex', 'skimage', 'matplotlib')
BF16_NOTE = ('model.diffusion.compute_dtype=bfloat16: the U-Net\'s convolutions, dense '
             'layers and attention in bfloat16, parameters, norms and the residual stream in '
             'float32; the encoders and feed-forward decoders stay float32, so MoPoE has no '
             'bfloat16 figure')


def _write(out_dir: str, name: str, payload: dict) -> str:
  path = os.path.join(out_dir, name)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(payload, f, indent=1, allow_nan=True)
  os.replace(tmp, path)
  return path


def _importable(name: str) -> bool:
  try:
    return importlib.util.find_spec(name) is not None
  except (ImportError, ValueError):
    return False


def cmd_env(args) -> None:
  """env.json: Python, JAX and its devices, which packages import, which backends are used."""
  import jax  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from diffmvae_jax import metric_writer
  from diffmvae_jax.data import storage_backend
  payload = {
      'python': platform.python_version(), 'jax': jax.__version__,
      'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()],
      'device_kind': jax.devices()[0].device_kind, 'cpu_count': os.cpu_count(),
      'importable': {m: _importable(m) for m in PROBED_MODULES},
      'data_storage_backend': storage_backend.backend(),
      'metric_writer': 'clu' if metric_writer.clu_available() else 'EventWriter (no TF)',
      'dry_run': args.dry_run,
  }
  _write(args.out_dir, 'env.json', payload)
  print(json.dumps(payload, indent=1))


def cmd_build(args) -> None:
  """build_data.json: builds PolyMNIST variants 'M:N' (M modalities, N examples per split)."""
  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from diffmvae_jax.data import pipeline
  from diffmvae_jax.data import storage_backend
  rows = []
  for variant in args.variants.split(','):
    modalities, examples = (int(v) for v in variant.split(':'))
    data_config = {'dataset': 'polymnist', 'data_dir': args.data_dir, 'manual_dir': '',
                   'num_workers': 0, 'num_image_modalities': modalities, 'build_seed': 0,
                   'max_examples_per_split': examples}
    start = time.perf_counter()
    builder = pipeline.prepare_dataset(data_config)
    rows.append({'num_image_modalities': modalities, 'max_examples_per_split': examples,
                 'seconds': time.perf_counter() - start, 'data_dir': str(builder.data_dir),
                 'splits': {s: builder.info.splits[s].num_examples
                            for s in ('train', 'validation', 'test')}})
  payload = {'storage_backend': storage_backend.backend(), 'builds': rows}
  _write(args.out_dir, 'build_data.json', payload)
  print(json.dumps(payload, indent=1))


def _read_rows(path: str) -> list:
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          continue  # A line cut short by the kill.
  return rows


def cmd_curve(args) -> None:
  """train_<arm>.json (+ .png): the loss curve of a time-boxed run from its metrics.jsonl."""
  rows = _read_rows(os.path.join(args.workdir, 'metrics.jsonl'))
  keys = ('step', 'train_seconds', 'loss', 'elbo', 'kl')
  curve = [{k: r[k] for k in keys if k in r} for r in rows]
  payload = {'arm': args.arm, 'workdir': args.workdir, 'wall_limit_s': args.wall_limit_s,
             'rows': len(curve), 'curve': curve}
  if len(curve) >= 2:
    first, last = curve[0], curve[-1]
    payload.update(
        last_step=last['step'], last_train_seconds=last['train_seconds'],
        last_loss=last.get('loss'),
        # Rate after the first logged row, so compilation does not count.
        steps_per_s_after_first_row=((last['step'] - first['step'])
                                     / max(last['train_seconds'] - first['train_seconds'],
                                           1e-9)))
  elif curve:
    payload.update(last_step=curve[-1]['step'], last_loss=curve[-1].get('loss'))
  _write(args.out_dir, f'train_{args.arm}.json', payload)
  if curve:
    _plot(curve, args.arm, os.path.join(args.out_dir, f'train_{args.arm}.png'))
  print(json.dumps({k: v for k, v in payload.items() if k != 'curve'}, indent=1))


def _plot(curve: list, arm: str, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.plot([r['train_seconds'] for r in curve], [r.get('loss', math.nan) for r in curve])
  ax.set_xlabel('training seconds (compilation included)')
  ax.set_ylabel('loss')
  ax.set_title(f'compare_polymnist:{arm}')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _load(out_dir: str, name: str):
  path = os.path.join(out_dir, name)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError:  # A benchmark's stdout: the JSON object is its last part.
    start = text.rfind('\n{')
    try:
      return json.loads(text[start + 1 if start >= 0 else 0:])
    except json.JSONDecodeError:
      return None


def cmd_summary(args) -> None:
  """summary.json: the figures of every step; prints them. Exit 1 if a figure is missing."""
  env = _load(args.out_dir, 'env.json') or {}
  mopoe = _load(args.out_dir, 'throughput_polymnist_mopoe.json') or {}
  diff = _load(args.out_dir, 'throughput_polymnist.json') or {}
  bf16 = _load(args.out_dir, 'throughput_polymnist_bf16.json') or {}
  fid = _load(args.out_dir, 'fid_features.json') or {}
  steps = _read_rows(os.path.join(args.out_dir, 'steps.jsonl'))
  ddim = next((v for k, v in diff.get('generation', {}).items() if k.startswith('ddim')), {})
  ddim_bf16 = next((v for k, v in bf16.get('generation', {}).items()
                    if k.startswith('ddim')), {})
  figures = {
      'mopoe_train_samples_per_s': mopoe.get('train', {}).get('samples_per_s'),
      'mopoe_train_batch': mopoe.get('train', {}).get('batch_size'),
      'mopoe_compile_s': mopoe.get('train', {}).get('compile_s'),
      'diffmvae_train_samples_per_s_float32': diff.get('train', {}).get('samples_per_s'),
      'diffmvae_train_batch': diff.get('train', {}).get('batch_size'),
      'diffmvae_compile_s': diff.get('train', {}).get('compile_s'),
      'diffmvae_train_samples_per_s_bfloat16': bf16.get('train', {}).get('samples_per_s'),
      'diffmvae_compile_s_bfloat16': bf16.get('train', {}).get('compile_s'),
      'ddim_images_per_s': ddim.get('images_per_s'),
      'ddim_first_call_s': ddim.get('first_call_s'),
      'ddim_images_per_s_bfloat16': ddim_bf16.get('images_per_s'),
      'fid_features_images_per_s': fid.get('images_per_s', {}).get('median'),
      'fid_features_first_call_s': fid.get('first_call_s_incl_compile'),
  }
  for arm in ('diffusion', 'mopoe'):
    run = _load(args.out_dir, f'train_{arm}.json') or {}
    figures[f'compare_{arm}_last_step'] = run.get('last_step')
    figures[f'compare_{arm}_last_loss'] = run.get('last_loss')
    figures[f'compare_{arm}_steps_per_s'] = run.get('steps_per_s_after_first_row')
  payload = {
      'device': env.get('device_kind'), 'backend': env.get('backend'),
      'jax': env.get('jax'), 'python': env.get('python'), 'dry_run': env.get('dry_run'),
      'data_storage_backend': env.get('data_storage_backend'),
      'metric_writer': env.get('metric_writer'),
      'figures': figures,
      'notes': {
          'bfloat16': BF16_NOTE,
          'fid_features': fid.get('weights', 'missing'),
          'throughput': 'random input tensors of the right shapes (pipeline excluded); '
                        'median of the timed repetitions after a warm-up; compilation '
                        'reported separately (compile_s)',
          'compare_polymnist': 'each arm trained for a wall-clock limit (SIGTERM, then the '
                               'loop saves a checkpoint and stops, so rc 124 from timeout is '
                               'the expected end of train_*); train_seconds include '
                               'compilation',
      },
      'steps': steps,
  }
  _write(args.out_dir, 'summary.json', payload)
  print(json.dumps(payload, indent=1))
  missing = sorted(k for k, v in figures.items()
                   if not (isinstance(v, (int, float)) and math.isfinite(v)))
  if missing:
    print(f'missing or non-finite figures: {missing}', file=sys.stderr)
    sys.exit(1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('command', choices=('env', 'build', 'curve', 'summary'))
  parser.add_argument('--out_dir', required=True)
  parser.add_argument('--data_dir', default='')
  parser.add_argument('--variants', default='5:500,3:10000')
  parser.add_argument('--arm', default='')
  parser.add_argument('--workdir', default='')
  parser.add_argument('--wall_limit_s', type=float, default=0.0)
  parser.add_argument('--dry_run', action='store_true')
  args = parser.parse_args()
  os.makedirs(args.out_dir, exist_ok=True)
  {'env': cmd_env, 'build': cmd_build, 'curve': cmd_curve, 'summary': cmd_summary}[
      args.command](args)


if __name__ == '__main__':
  main()
