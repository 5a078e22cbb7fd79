"""The package's dependency direction (WORKSPACE.md): base -> numerics -> shared machinery ->
tasks -> generation and evaluation -> modes -> main, with no cycles and no mode imported by
another module. Read from the source with `ast`, so nothing is imported."""

import ast
import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'diffmvae_jax')

# Layer of each module (dotted name under diffmvae_jax, or a package prefix ending in '.').
LAYERS = (
    ('base', ('errors', 'rng')),
    ('numerics', ('models.', 'diffusion.', 'metrics.', 'data.')),
    ('machinery', ('parallel', 'checkpoint', 'train_state', 'loop', 'config_checks',
                   'config_files', 'metric_writer', 'progress')),
    ('tasks', ('tasks.',)),
    ('generation and evaluation', ('generate', 'sample_grid', 'visualise', 'coherence',
                                   'eval_plan', 'eval_tasks', 'eval_metrics.', 'curves')),
    ('modes', ('train', 'train_prior', 'sample', 'evaluate')),
    ('entry point', ('main',)),
)
MODES = ('train', 'train_prior', 'sample', 'evaluate')


def _modules() -> dict:
  """dotted module name -> path, for every .py file of the package."""
  out = {}
  for directory, _, files in os.walk(ROOT):
    for name in files:
      if name.endswith('.py'):
        rel = os.path.relpath(os.path.join(directory, name), ROOT)[:-3].replace(os.sep, '.')
        out[rel[:-len('.__init__')] if rel.endswith('__init__') else rel] = os.path.join(
            directory, name)
  out.pop('__init__', None)
  return out


def _layer(module: str) -> int:
  for index, (_, members) in enumerate(LAYERS):
    for member in members:
      if module == member or (member.endswith('.') and
                              (module.startswith(member) or module == member[:-1])):
        return index
  raise AssertionError(f'{module} has no layer in tests/test_layering.py: add it (and to '
                       'WORKSPACE.md)')


def _imports(path: str, modules: dict) -> set:
  """The package modules `path` imports (anywhere in the file, lazily or not)."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      # `from package import module` imports the module; `from module import name`, the module.
      names = [f'{node.module}.{a.name}' for a in node.names]
    for name in names:
      if name.startswith('diffmvae_jax.'):
        name = name[len('diffmvae_jax.'):]
        while name and name not in modules:
          name = name.rpartition('.')[0]
        if name:
          found.add(name)
  return found


def test_every_import_points_up_the_layers_and_no_mode_imports_a_mode():
  modules = _modules()
  bad = []
  for module, path in sorted(modules.items()):
    for dep in sorted(_imports(path, modules) - {module}):
      if module.startswith(dep + '.') or dep == module.rpartition('.')[0]:
        continue  # A package's own __init__.
      if _layer(dep) > _layer(module):
        bad.append(f'{module} ({LAYERS[_layer(module)][0]}) imports {dep} '
                   f'({LAYERS[_layer(dep)][0]})')
      if dep in MODES and module != 'main':
        bad.append(f'{module} imports the mode {dep}')
  assert not bad, '\n'.join(bad)


def test_no_import_cycles():
  modules = _modules()
  graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
  state = {}

  def visit(node, stack):
    state[node] = 'open'
    for dep in graph[node]:
      if state.get(dep) == 'open':
        cycle = stack[stack.index(dep):] + [dep] if dep in stack else [node, dep]
        raise AssertionError('import cycle: ' + ' -> '.join(cycle))
      if dep not in state:
        visit(dep, stack + [dep])
    state[node] = 'done'

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
