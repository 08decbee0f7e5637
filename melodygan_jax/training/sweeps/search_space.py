"""The search space a config declares in its `sweep.space` section.

`sweep.space` mirrors the config's own sections, one distribution per searched
field, written as a short call:

  config.sweep.space.train.learning_rate = 'log_uniform(1e-4, 3e-3)'
  config.sweep.space.model.codebook_size = 'choice(256, 512, 1024)'
  config.sweep.space.model.num_res_blocks = 'int(1, 3)'

Distributions: uniform(low, high), log_uniform(low, high), int(low, high[, step]),
log_int(low, high) and choice(a, b, ...). A field fixed on the command line
(--config.train.learning_rate=1e-3) is not searched.
"""
import ast
import re

import ml_collections
import optuna

from melodygan_jax.training import config_checks


_CALL = re.compile(r'^\s*(\w+)\s*\((.*)\)\s*$')


def flatten(config: ml_collections.ConfigDict, prefix: str = '') -> dict:
  """Dotted field -> value for every leaf of `config`."""
  flat = {}
  for name, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      flat.update(flatten(value, f'{prefix}{name}.'))
    else:
      flat[f'{prefix}{name}'] = value
  return flat


def parse_distribution(field: str, spec: str) -> optuna.distributions.BaseDistribution:
  """One `sweep.space` entry as an Optuna distribution.

  Args:
    field: the dotted config field it searches (for the error message).
    spec: e.g. 'log_uniform(1e-4, 3e-3)'.

  Returns:
    The distribution.

  Raises:
    errors.ConfigError: the spec does not parse or its bounds are wrong.
  """
  name = f'config.sweep.space.{field}'
  match = _CALL.match(spec) if isinstance(spec, str) else None
  try:
    args = ast.literal_eval(f'({match.group(2)},)') if match else None
  except (ValueError, SyntaxError):
    args = None
  config_checks.require(args is not None, name, spec,
                        'write a distribution call, e.g. log_uniform(1e-4, 3e-3), int(1, 3), '
                        'choice(256, 512)')
  kind = match.group(1)
  if kind == 'choice':
    config_checks.require(len(args) >= 1, name, spec, 'choice() needs at least one value')
    return optuna.distributions.CategoricalDistribution(args)
  kinds = {'uniform': (float, False), 'log_uniform': (float, True),
           'int': (int, False), 'log_int': (int, True)}
  config_checks.require(kind in kinds, name, spec,
                        f'unknown distribution {kind}: use {", ".join([*kinds, "choice"])}')
  value_type, log = kinds[kind]
  config_checks.require(len(args) in ((2, 3) if kind == 'int' else (2,)), name, spec,
                        f'{kind}() takes (low, high{", step" if kind == "int" else ""})')
  low, high = args[0], args[1]
  config_checks.require(all(isinstance(x, (int, float)) for x in args) and low < high, name,
                        spec, 'needs numbers with low < high')
  config_checks.require(not log or low > 0, name, spec, 'a log scale needs low > 0')
  if value_type is int:
    config_checks.require(all(isinstance(x, int) for x in args), name, spec,
                          f'{kind}() takes integers')
    step = args[2] if len(args) == 3 else 1
    return optuna.distributions.IntDistribution(low, high, log=log, step=step)
  return optuna.distributions.FloatDistribution(float(low), float(high), log=log)


def search_space(config: ml_collections.ConfigDict, fixed_fields=()) -> dict:
  """The searched fields of `config`: dotted field -> Optuna distribution.

  Args:
    config: a config with a `sweep.space` section.
    fixed_fields: dotted fields set on the command line; they are not searched.

  Returns:
    Field -> distribution, sorted by field.

  Raises:
    errors.ConfigError: no sweep section, a field the config lacks, a
      spec that does not parse or whose values do not fit the field's type.
  """
  config_checks.require('sweep' in config, 'config.sweep', None,
                        'this config declares no sweep section (see configs/vqvae.py)')
  fields = flatten(config)
  space = {}
  for field, spec in flatten(config.sweep.space).items():
    config_checks.require(field in fields and not field.startswith('sweep.'),
                          f'config.sweep.space.{field}', spec,
                          f'the config has no field {field} to search')
    distribution = parse_distribution(field, spec)
    _check_type(field, fields[field], spec, distribution)
    if field not in fixed_fields:
      space[field] = distribution
  return space


def _check_type(field: str, current, spec: str, distribution) -> None:
  name = f'config.sweep.space.{field}'
  if isinstance(distribution, optuna.distributions.CategoricalDistribution):
    values = distribution.choices
  else:
    values = (distribution.low, distribution.high)
  if isinstance(current, bool):
    ok = all(isinstance(v, bool) for v in values)
  elif isinstance(current, int):
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
  elif isinstance(current, float):
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
  else:
    ok = all(type(v) is type(current) for v in values)  # pylint: disable=unidiomatic-typecheck
  config_checks.require(ok, name, spec, f'values must be of the field\'s type '
                        f'{type(current).__name__} (config.{field}={current!r})')


def suggest(trial: optuna.Trial, config: ml_collections.ConfigDict, space: dict) -> None:
  """Sets every searched field of `config` (in place) to the trial's suggestion."""
  for field, distribution in space.items():
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
      value = trial.suggest_categorical(field, distribution.choices)
    elif isinstance(distribution, optuna.distributions.IntDistribution):
      value = trial.suggest_int(field, distribution.low, distribution.high,
                                step=distribution.step, log=distribution.log)
    else:
      value = trial.suggest_float(field, distribution.low, distribution.high,
                                  log=distribution.log)
    set_field(config, field, value)


def set_field(config: ml_collections.ConfigDict, field: str, value) -> None:
  section, _, name = field.rpartition('.')
  holder = config
  for part in section.split('.') if section else ():
    holder = holder[part]
  holder[name] = value
