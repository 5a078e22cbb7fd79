"""Executes the notebooks in this directory top to bottom, or strips their outputs.

  # what CI runs (tests/test_notebooks.py): every notebook in seconds-sized settings
  python notebooks/run_notebooks.py --smoke --cwd=/tmp/nb_run
  # the real sizes (configs/notebook.py: 'cpu' on a CPU), in the order they build on
  python notebooks/run_notebooks.py --cwd=/tmp/nb_run
  # one of them
  python notebooks/run_notebooks.py --smoke --cwd=/tmp/nb_run evaluation
  # keep the executed copies (with their pictures and tables) to look at
  python notebooks/run_notebooks.py --smoke --cwd=/tmp/nb_run --save_to=/tmp/nb_run/executed
  # before committing: outputs and execution counts out (CI fails on committed outputs)
  python notebooks/run_notebooks.py --strip

Each notebook runs in a fresh Jupyter kernel of this Python (nbclient + ipykernel) with
`--cwd` as its working directory, so their runs/ directory goes there. The kernel imports
whatever diffmvae_jax this Python sees: run it outside the checkout after `pip install .` to
test the installed package, or with PYTHONPATH=<checkout> to test the source tree.
"""

import argparse
import os
import resource
import sys
import tempfile
import time

import nbclient
import nbformat

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
# The order they build on: the quickstart trains the run the other two read (each would
# train it too when run alone).
ORDER = ('quickstart', 'any_to_any', 'evaluation')
SMOKE_ENV = 'DIFFMVAE_NOTEBOOK_SMOKE'
DATA_DIR_ENV = 'DIFFMVAE_DATA_DIR'


def notebook_paths() -> list[str]:
  """Every notebook of this directory, ORDER first, then the others by name."""
  found = sorted(f[:-len('.ipynb')] for f in os.listdir(DIRECTORY) if f.endswith('.ipynb'))
  names = [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]
  return [os.path.join(DIRECTORY, f'{n}.ipynb') for n in names]


def execute(path: str, cwd: str, env: dict | None = None, timeout: int = 1800):
  """Runs one notebook in a fresh kernel and returns it with its outputs.

  Args:
    path: the .ipynb file (left unchanged on disk).
    cwd: the kernel's working directory.
    env: the kernel's environment (default: this process's).
    timeout: seconds any one cell may run.

  Returns:
    the executed nbformat.NotebookNode.

  Raises:
    nbclient.exceptions.CellExecutionError: a cell raised; the message names the cell and
      carries its traceback.
  """
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name='python3',
                                   resources={'metadata': {'path': cwd}})
  client.execute(env=dict(os.environ) if env is None else env)
  return nb


def outputs_of(nb) -> list[int]:
  """Indices of the code cells that hold outputs or an execution count."""
  return [i for i, cell in enumerate(nb.cells) if cell.cell_type == 'code'
          and (cell.get('outputs') or cell.get('execution_count') is not None)]


def strip(path: str) -> bool:
  """Removes outputs and execution counts from a notebook file; True if it changed."""
  nb = nbformat.read(path, as_version=4)
  if not outputs_of(nb):
    return False
  for cell in nb.cells:
    if cell.cell_type == 'code':
      cell.outputs, cell.execution_count = [], None
  nbformat.write(nb, path)
  return True


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('names', nargs='*', help=f'notebooks to run (default: all; {ORDER})')
  parser.add_argument('--smoke', action='store_true',
                      help=f'seconds-sized settings ({SMOKE_ENV}=1)')
  parser.add_argument('--cwd', default='', help='working directory (default: a new temp dir)')
  parser.add_argument('--data_dir', default='',
                      help=f'PolyMNIST data dir for the notebooks ({DATA_DIR_ENV})')
  parser.add_argument('--save_to', default='', help='directory for the executed notebooks')
  parser.add_argument('--strip', action='store_true', help='strip outputs instead of running')
  args = parser.parse_args(argv)
  if args.strip:
    for path in notebook_paths():
      print(('stripped ' if strip(path) else 'clean    ') + os.path.relpath(path))
    return 0
  cwd = args.cwd or tempfile.mkdtemp(prefix='diffmvae_notebooks_')
  os.makedirs(cwd, exist_ok=True)
  env = dict(os.environ)
  if args.smoke:
    env[SMOKE_ENV] = '1'
  if args.data_dir:
    env[DATA_DIR_ENV] = args.data_dir
  paths = notebook_paths()
  unknown = set(args.names) - {os.path.basename(p)[:-len('.ipynb')] for p in paths}
  if unknown:
    parser.error(f'no notebook named {sorted(unknown)} in {DIRECTORY}')
  for path in paths:
    if args.names and os.path.basename(path)[:-len('.ipynb')] not in args.names:
      continue
    start, cpu = time.time(), _children_cpu_seconds()
    nb = execute(path, cwd, env)
    print(f'ok {os.path.basename(path)}: {time.time() - start:.0f} s, kernel CPU '
          f'{_children_cpu_seconds() - cpu:.0f} s (working dir {cwd})', flush=True)
    if args.save_to:
      os.makedirs(args.save_to, exist_ok=True)
      nbformat.write(nb, os.path.join(args.save_to, os.path.basename(path)))
  return 0


def _children_cpu_seconds() -> float:
  """User + system CPU of the finished child processes (the kernels, once shut down)."""
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


if __name__ == '__main__':
  sys.exit(main())
