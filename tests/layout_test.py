"""The package's imports point one way, down the pipeline, and form no cycle."""
import ast
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# What each stage of the library may import (besides itself and SHARED_TOP_LEVEL).
# Training and generation both reach runs through runs/: neither imports the other.
ALLOWED = {
    'models': set(),
    'audio': {'models'},  # The neural vocoder's synthesis runs its generator.
    'data': {'audio'},
    'runs': {'audio', 'data', 'models'},
    'generation': {'audio', 'data', 'models', 'runs'},
    'evaluation': {'audio', 'data', 'models', 'runs', 'generation'},
    'training': {'audio', 'data', 'models', 'runs', 'evaluation'},
}
SHARED_TOP_LEVEL = ('melodygan_jax.atomic_files', 'melodygan_jax.errors',
                    'melodygan_jax.input_files', 'melodygan_jax.jax_versions',
                    'melodygan_jax.compilation_cache')
# data_prep builds the data set from the library's contract and schema only.
DATA_PREP_ALLOWED = SHARED_TOP_LEVEL + ('melodygan_jax.audio.',
                     'melodygan_jax.data.records', 'melodygan_jax.data.normalization')


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO_ROOT).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports_of(path: pathlib.Path) -> set[str]:
  """Every project module `path` imports, at the top or inside a function."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        candidate = f'{node.module}.{alias.name}'
        found.add(candidate if module_path(candidate) else node.module)
  return {name for name in found if name.split('.')[0] in ('melodygan_jax', 'data_prep',
                                                           'configs')}


def module_path(name: str) -> pathlib.Path | None:
  base = REPO_ROOT.joinpath(*name.split('.'))
  for candidate in (base.with_suffix('.py'), base / '__init__.py'):
    if candidate.exists():
      return candidate
  return None


def project_graph() -> dict[str, set[str]]:
  graph = {}
  for package in ('melodygan_jax', 'data_prep'):
    for path in sorted((REPO_ROOT / package).rglob('*.py')):
      graph[module_name(path)] = imports_of(path)
  return graph


def stage(module: str) -> str | None:
  parts = module.split('.')
  return parts[1] if len(parts) > 2 and parts[1] in ALLOWED else None


def stage_violations(graph: dict[str, set[str]]) -> list[str]:
  """Each import of a library module that goes up the pipeline, to data_prep or configs, or
  to a top-level (CLI) module."""
  violations = []
  for module, imported in graph.items():
    if not module.startswith('melodygan_jax.'):
      continue
    for name in imported:
      if name.split('.')[0] in ('data_prep', 'configs'):
        violations.append(f'{module} imports {name}')
      elif stage(module) and stage(name) and stage(name) != stage(module):
        if stage(name) not in ALLOWED[stage(module)]:
          violations.append(f'{module} ({stage(module)}) imports {name} ({stage(name)})')
      elif stage(module) and not stage(name) and name not in SHARED_TOP_LEVEL:
        violations.append(f'{module} imports the top-level {name}')  # A CLI module.
  return sorted(violations)


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
  """Each cycle a depth-first walk of the graph meets, as 'a -> b -> a'."""
  state, cycles = {}, []

  def visit(module, trail):
    state[module] = 'open'
    for name in sorted(graph.get(module, ())):
      if name not in graph:
        continue
      if state.get(name) == 'open':
        cycles.append(' -> '.join(trail[trail.index(name):] + [name]))
      elif name not in state:
        visit(name, trail + [name])
    state[module] = 'done'

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
  return cycles


def test_library_stages_import_only_earlier_stages():
  violations = stage_violations(project_graph())
  assert not violations, '\n'.join(violations)


def test_data_prep_uses_only_the_contract_and_schema():
  violations = [f'{module} imports {name}' for module, imported in project_graph().items()
                if module.startswith('data_prep') for name in imported
                if name.startswith('melodygan_jax') and not name.startswith(DATA_PREP_ALLOWED)]
  assert not violations, '\n'.join(sorted(violations))


def test_no_import_cycles():
  cycles = import_cycles(project_graph())
  assert not cycles, '\n'.join(cycles)


def test_the_checks_see_a_back_edge(tmp_path):
  """The walker finds imports inside functions too, and the checks flag what breaks the
  rules (a check that cannot fail proves nothing)."""
  source = tmp_path / 'example.py'
  source.write_text('def f():\n  from melodygan_jax.training import loop\n')
  assert imports_of(source) == {'melodygan_jax.training.loop'}
  # A model importing the trainer: up the pipeline; and a module importing a CLI.
  assert stage_violations({'melodygan_jax.models.vqvae': imports_of(source)}) == [
      'melodygan_jax.models.vqvae (models) imports melodygan_jax.training.loop (training)']
  assert stage_violations({'melodygan_jax.audio.x': {'melodygan_jax.sample'}}) == [
      'melodygan_jax.audio.x imports the top-level melodygan_jax.sample']
  assert not stage_violations({'melodygan_jax.training.loop': {'melodygan_jax.models.vqvae'}})
  assert import_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a -> b -> c -> a']
  assert not import_cycles({'a': {'b'}, 'b': {'c'}, 'c': set()})
