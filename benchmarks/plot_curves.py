"""Learning curves of one or more runs side by side: one PNG and one JSON.

  .venv/bin/python benchmarks/plot_curves.py \
      --runs=diffusion=runs/compare/diffusion_s0,mopoe=runs/compare/mopoe_s0 \
      --out=results/curves/compare_polymnist

Reads each workdir's curves.jsonl (written by --mode=train with train.curve_every > 0,
diffmvae_jax/curves.py) and metrics.jsonl (the loss terms), and writes
``<out>.png`` (panels: coherence given 1, coherence given 2, mean latent probe, KL; one line
per run, chance level dashed) and ``<out>.json`` ({run: {'curves': rows, 'losses': rows}}).
``--x=minutes`` puts training wall-clock minutes on the x axis instead of steps (each
point at the ``train_seconds`` that metrics.jsonl records at its step, so runs of different
step costs compare at equal budget). Seconds on a CPU. Needs matplotlib (requirements.txt).
"""

import json
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffmvae_jax import curves as curves_lib  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
PANELS = (('coherence/given_1', 'coherence given 1'), ('coherence/given_2', 'coherence given 2'),
          ('probe/mean', 'latent probe (mean over q(z|m))'), ('kl', 'KL (nats)'))


def define_flags():
  """The command's flags (defined only when run as a script, so tests can import it)."""
  flags.DEFINE_string('runs', None, 'Comma-separated name=workdir pairs.', required=True)
  flags.DEFINE_string('out', None, 'Output path without extension (.png and .json).',
                      required=True)
  flags.DEFINE_float('chance', 0.1, 'Chance level drawn on the coherence and probe panels.')
  flags.DEFINE_enum('x', 'step', ['step', 'minutes'],
                    'x axis: training step, or training wall-clock minutes (train_seconds).')
  flags.DEFINE_integer('loss_every', 0, 'Keep the loss rows of every k-th step (and the last) '
                       'in the plot and the JSON; 0 keeps every logged row.')


def parse_runs(text: str) -> dict:
  """'a=DIR,b=DIR2' -> {'a': 'DIR', 'b': 'DIR2'} (ValueError on a malformed item)."""
  runs = {}
  for item in filter(None, (s.strip() for s in text.split(','))):
    name, sep, path = item.partition('=')
    if not sep or not name or not path:
      raise ValueError(f'--runs: expected name=workdir items, got {item!r}')
    runs[name.strip()] = path.strip()
  return runs


def read_losses(workdir: str) -> list:
  """metrics.jsonl rows, the last row of each step kept, sorted by step."""
  return curves_lib.read_step_rows(os.path.join(workdir, 'metrics.jsonl'))


def thin_rows(rows: list, every: int) -> list:
  """The rows whose step is a multiple of `every`, and the last row (every <= 0: all)."""
  if every <= 0 or not rows:
    return rows
  return [r for r in rows[:-1] if r['step'] % every == 0] + [rows[-1]]


def collect(runs: dict, loss_every: int = 0) -> dict:
  """{run: {'curves': curves.jsonl rows, 'losses': metrics.jsonl rows}}.

  loss_every: keep the loss rows of every k-th step and the last (thin_rows; 0 = all).

  Raises:
    FileNotFoundError: a run without a curves.jsonl (train with train.curve_every > 0).
  """
  out = {}
  for name, workdir in runs.items():
    rows = curves_lib.read_curves(workdir)
    if not rows:
      raise FileNotFoundError(f'{os.path.join(workdir, curves_lib.CURVES_FILE)} is missing or '
                              'empty: train that run with --config.train.curve_every=K')
    out[name] = {'curves': rows, 'losses': thin_rows(read_losses(workdir), loss_every)}
  return out


def train_minutes(losses: list, step: int) -> float:
  """Training minutes at `step`: ``train_seconds`` of the last metrics row at or before it.

  Step 0 (before any training) is 0. Raises ValueError when no row up to `step` records
  train_seconds (runs written before the loop recorded it: use --x=step).
  """
  if step == 0:
    return 0.0
  seconds = [r['train_seconds'] for r in losses if r['step'] <= step and 'train_seconds' in r]
  if not seconds:
    raise ValueError(f'no train_seconds in metrics.jsonl up to step {step}: this run predates '
                     'the wall-clock record; plot it with --x=step')
  return seconds[-1] / 60.0


def plot(data: dict, path: str, chance: float, x: str = 'step') -> str:
  """Writes the four-panel PNG of `data` (collect's form) to `path`; returns it.

  Args:
    data: collect's {run: {'curves', 'losses'}}.
    path: the PNG to write.
    chance: the level drawn dashed on the coherence and probe panels.
    x: 'step' (training step) or 'minutes' (training wall-clock, train_minutes).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.4))
  for ax, (key, title) in zip(axes, PANELS):
    for name, run in data.items():
      rows = run['losses'] if key == 'kl' else run['curves']
      if x == 'minutes':
        points = [(train_minutes(run['losses'], r['step']), r[key]) for r in rows if key in r]
      else:
        points = [(r['step'], r[key]) for r in rows if key in r]
      if points:
        ax.plot(*zip(*points), marker='o' if key != 'kl' else None, ms=3, label=name)
    if key != 'kl':
      ax.axhline(chance, color='grey', ls='--', lw=1, label='chance')
      ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.set_xlabel('training step' if x == 'step' else 'training minutes (train_seconds / 60)')
    ax.grid(alpha=0.3)
  axes[0].legend()
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def main(argv):
  del argv
  data = collect(parse_runs(FLAGS.runs), FLAGS.loss_every)
  png = plot(data, FLAGS.out + '.png', FLAGS.chance, FLAGS.x)
  with open(FLAGS.out + '.json', 'w') as f:
    json.dump(data, f, indent=1, sort_keys=True)
  print(json.dumps({'png': png, 'json': FLAGS.out + '.json',
                    'last': {n: d['curves'][-1] for n, d in data.items()}}, indent=1))


if __name__ == '__main__':
  define_flags()
  app.run(main)
