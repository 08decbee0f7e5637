"""What a sweep leaves in SWEEP_DIR: a table, the best config and plots."""
import ast
import os
import pprint
import warnings

import ml_collections
import optuna

from melodygan_jax import atomic_files

BEST_CONFIG_FILENAME = 'best_config.py'
FAIL_REASON_ATTR = 'fail_reason'
PLOTS = {
    'optimization_history.png': 'plot_optimization_history',
    'param_importances.png': 'plot_param_importances',
    'intermediate_values.png': 'plot_intermediate_values',
}


def summary_table(study: optuna.Study, metric: str) -> str:
  """One row per trial: number, state, score, last reported step, parameters or reason."""
  rows = [('trial', 'state', metric, 'step', 'parameters / reason')]
  for trial in study.get_trials(deepcopy=False):
    value = '' if trial.value is None else f'{trial.value:.4g}'
    step = trial.last_step if trial.last_step is not None else ''
    params = ' '.join(f'{name}={_short(v)}' for name, v in trial.params.items())
    reason = trial.user_attrs.get(FAIL_REASON_ATTR, '')
    retried = trial.system_attrs.get('failed_trial')
    if retried is not None:
      params += f' (retry of trial {retried})'
    rows.append((str(trial.number), trial.state.name, value, str(step),
                 f'{params}  {reason}'.strip()))
  widths = [max(len(row[i]) for row in rows) for i in range(4)]
  lines = ['  '.join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + '  ' + row[4]
           for row in rows]
  return '\n'.join(lines)


def _short(value) -> str:
  return f'{value:.4g}' if isinstance(value, float) else str(value)


def best_config_source(config: ml_collections.ConfigDict, study_name: str,
                       trial: optuna.trial.FrozenTrial, metric: str) -> str:
  """A config file (`get_config()`) holding the best trial's whole config."""
  literal = pprint.pformat(config.to_dict(), indent=1, width=96, sort_dicts=False)
  ast.literal_eval(literal)  # Fails here, not at train time, if a value has no literal.
  overrides = '\n'.join(f'    --config.{name}={value!r}' for name, value in trial.params.items())
  return (
      f'r"""Best trial {trial.number} of sweep {study_name!r}: {metric} = {trial.value:.6g}.\n\n'
      '  python -m melodygan_jax.train --config=THIS_FILE --workdir=runs/best \\\n'
      '      [--config.train.num_steps=N]\n\n'
      f'Searched values:\n{overrides}\n"""\n'
      'import ml_collections\n\n\n'
      'def get_config() -> ml_collections.ConfigDict:\n'
      f'  return ml_collections.ConfigDict({literal}).lock()\n')


def write_best_config(sweep_dir: str, source: str) -> str:
  """Writes SWEEP_DIR/best_config.py atomically; returns its path."""
  path = os.path.join(sweep_dir, BEST_CONFIG_FILENAME)
  with atomic_files.atomic_path(path) as tmp_path:
    tmp_path.write_text(source)
  return path


def write_plots(study: optuna.Study, sweep_dir: str) -> dict[str, str]:
  """Optuna's matplotlib plots as PNGs in `sweep_dir`.

  Returns:
    File name -> 'written' or the one-line reason it was not (e.g. too few trials).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  from optuna.visualization import matplotlib as optuna_plots  # pylint: disable=g-import-not-at-top
  outcome = {}
  complete = [t for t in study.get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.COMPLETE]
  for filename, function_name in PLOTS.items():
    if function_name == 'plot_param_importances' and (
        len(complete) < 2 or not complete[0].params):
      outcome[filename] = 'skipped: needs 2 complete trials with searched parameters'
      continue
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # Optuna marks its matplotlib plots experimental.
        axes = getattr(optuna_plots, function_name)(study)
      figure = (axes.flat[0] if hasattr(axes, 'flat') else axes).figure
      figure.set_size_inches(8, 5)
      figure.tight_layout()
      with atomic_files.atomic_path(os.path.join(sweep_dir, filename)) as tmp_path:
        figure.savefig(tmp_path, format='png', dpi=100)
      pyplot.close(figure)
      outcome[filename] = 'written'
    except (ValueError, RuntimeError) as e:
      outcome[filename] = f'skipped: {str(e).splitlines()[0]}'
  return outcome
