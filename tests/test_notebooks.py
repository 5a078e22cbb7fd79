"""The notebooks (notebooks/*.ipynb): committed without outputs, their install cells in step
with requirements-data.txt, and every one executed top to bottom in a fresh kernel in smoke
mode (DIFFMVAE_NOTEBOOK_SMOKE=1, on the session's tiny PolyMNIST)."""

import ast
import importlib.util
import json
import os
import shutil

import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = ('quickstart', 'any_to_any', 'evaluation')


def _runner():
  spec = importlib.util.spec_from_file_location(
      'run_notebooks', os.path.join(ROOT, 'notebooks', 'run_notebooks.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


runner = _runner()


def _code_cells(path):
  return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == 'code']


def test_the_notebooks_are_committed_valid_and_without_outputs():
  paths = runner.notebook_paths()
  assert [os.path.basename(p) for p in paths] == [f'{n}.ipynb' for n in NOTEBOOKS]
  for path in paths:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert not runner.outputs_of(nb), (
        f'{path} has outputs in code cells {runner.outputs_of(nb)}: run '
        'python notebooks/run_notebooks.py --strip before committing')


def test_install_and_settings_cells_are_shared_and_pin_requirements_data():
  cells = {n: _code_cells(os.path.join(ROOT, 'notebooks', f'{n}.ipynb')) for n in NOTEBOOKS}
  install, settings = cells[NOTEBOOKS[0]][:2]
  for name in NOTEBOOKS[1:]:
    assert cells[name][:2] == [install, settings], f'{name}: the first two code cells differ'
  with open(os.path.join(ROOT, 'requirements-data.txt')) as f:
    pins = [l.strip() for l in f if l.strip() and not l.startswith('#')]
  assigned = {t.id: node.value for node in ast.parse(install).body
              if isinstance(node, ast.Assign) for t in node.targets}
  assert ast.literal_eval(assigned['DATA_PACKAGES']) == pins
  assert 'DIFFMVAE_NOTEBOOK_SMOKE' in settings and 'DIFFMVAE_DATA_DIR' in settings


def test_strip_removes_outputs_and_counts(tmp_path):
  path = str(tmp_path / 'nb.ipynb')
  shutil.copy(runner.notebook_paths()[0], path)
  nb = nbformat.read(path, as_version=4)
  first = next(i for i, c in enumerate(nb.cells) if c.cell_type == 'code')
  nb.cells[first].outputs = [nbformat.v4.new_output('stream', name='stdout', text='x\n')]
  nb.cells[first].execution_count = 3
  nbformat.write(nb, path)
  assert runner.outputs_of(nbformat.read(path, as_version=4)) == [first]
  assert runner.strip(path)
  assert runner.outputs_of(nbformat.read(path, as_version=4)) == []
  assert not runner.strip(path)


def test_every_notebook_runs_in_smoke_mode(tmp_path, tiny_data_dir):
  env = dict(os.environ)
  env.update({runner.SMOKE_ENV: '1', runner.DATA_DIR_ENV: tiny_data_dir,
              'PYTHONPATH': os.pathsep.join(p for p in (ROOT, env.get('PYTHONPATH')) if p),
              'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0.5'})
  cwd = str(tmp_path)
  for path in runner.notebook_paths():
    nb = runner.execute(path, cwd, env, timeout=600)
    code = [c for c in nb.cells if c.cell_type == 'code']
    assert code[0].outputs == [], f'{path}: the install cell did something in a checkout'
    kinds = {k for c in code for o in c.outputs for k in o.get('data', {})}
    assert 'image/png' in kinds and 'text/markdown' in kinds, (path, kinds)
  workdir = os.path.join(cwd, 'runs', 'notebook_smoke')
  with open(os.path.join(workdir, 'eval', 'step_6', 'metrics_sde.json')) as f:
    record = json.load(f)
  assert set(record['results']) == {'coherence', 'latent_gap'}   # Smoke size: no FID.
  assert record['provenance']['prior'] == 'sde'
  assert os.path.isdir(os.path.join(workdir, 'prior_checkpoints'))
