r"""Tune a config with Optuna: each trial is a short training run.

  python -m melodygan_jax.sweep --config=configs/vqvae.py --workdir=sweeps/s1 --study_name=s1 \
      --num_trials=20 --config.data.dataset_dir=data/ \
      --config.train.num_steps=2000 --config.train.eval_every_steps=250
  bash launch/sweep.sh configs/vqvae.py sweeps/s1 ...    # several workers on one study

The search space is the config's `sweep.space` section (search_space.py); a
field set on the command line is fixed, not searched. Trial K trains with the
same trainer as `melodygan_jax.train` in SWEEP_DIR/trial_K, reports the
config's `sweep.metric` at every evaluation to the pruner (`sweep.pruner`) and
is scored by its last value (lower is better).

The study lives in SWEEP_DIR/optuna.journal unless --storage names another
(storage.py): start this command again, on this machine or others, to
add workers; the study ends at --num_trials. A trial that fails (non-finite
loss, out of memory, a sampled config the checks refuse) is recorded with its
reason and the sweep goes on; a dead worker's trial is failed and re-run by
the next worker, resuming from its checkpoints. At the end: a table, the best
trial's config as SWEEP_DIR/best_config.py (a `train --config=` file) and
plots as PNG.
"""
import os
import sys
import time
import zlib

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import optuna

from melodygan_jax import errors
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import calibration
from melodygan_jax.training import config_checks
from melodygan_jax.training import train
from melodygan_jax.training.sweeps import results as sweep_results
from melodygan_jax.training.sweeps import search_space
from melodygan_jax.training.sweeps import storage as sweep_storage


PRUNERS = ('median', 'hyperband', 'none')
TRIAL_DIR_ATTR = 'trial_dir'
RESUMED_FROM_ATTR = 'resumed_from_step'


class TrialFailure(Exception):
  """A trial that cannot finish; str() is the one-line reason recorded with it."""


class WorkerPreempted(Exception):
  """SIGTERM stopped this worker mid-trial; the trial is queued to resume."""


def _is_out_of_memory(error: Exception) -> bool:
  text = str(error)
  return isinstance(error, MemoryError) or (
      isinstance(error, jax.errors.JaxRuntimeError)
      and ('RESOURCE_EXHAUSTED' in text or 'out of memory' in text.lower()))


def one_line(error: Exception) -> str:
  lines = str(error).strip().splitlines() or ['']
  return f'{type(error).__name__}: {lines[0]}'[:400]


def check_sweep_section(config: ml_collections.ConfigDict, fixed_fields=()) -> dict:
  """Validates the config's sweep section; returns its search space.

  Raises:
    errors.ConfigError: one line naming the field.
  """
  space = search_space.search_space(config, fixed_fields)
  sweep = config.sweep
  config_checks.require(bool(sweep.metric), 'config.sweep.metric', sweep.metric,
                        'name the validation metric to minimize, e.g. eval/mse')
  config_checks.require(sweep.pruner in PRUNERS, 'config.sweep.pruner', sweep.pruner,
                        f'choose one of {", ".join(PRUNERS)}')
  config_checks.check_positive(sweep, 'config.sweep', (
      'heartbeat_interval_s', 'grace_period_s'))
  config_checks.require(sweep.grace_period_s > sweep.heartbeat_interval_s,
                        'config.sweep.grace_period_s', sweep.grace_period_s,
                        'must exceed config.sweep.heartbeat_interval_s')
  return space


def make_pruner(config: ml_collections.ConfigDict) -> optuna.pruners.BasePruner:
  """The config's pruner; steps are train steps."""
  sweep = config.sweep
  if sweep.pruner == 'median':
    return optuna.pruners.MedianPruner(n_startup_trials=sweep.pruner_startup_trials,
                                       n_warmup_steps=sweep.pruner_warmup_steps)
  if sweep.pruner == 'hyperband':
    return optuna.pruners.HyperbandPruner(min_resource=config.train.eval_every_steps,
                                          max_resource=config.train.num_steps)
  return optuna.pruners.NopPruner()


def liveness_of(config: ml_collections.ConfigDict) -> sweep_storage.Liveness:
  return sweep_storage.Liveness(int(config.sweep.heartbeat_interval_s),
                                int(config.sweep.grace_period_s),
                                int(config.sweep.max_retries))


def trial_config(base_config: ml_collections.ConfigDict, trial, space: dict):
  """`base_config` with the trial's values of the searched fields (a copy)."""
  config = ml_collections.ConfigDict(base_config.to_dict())
  search_space.suggest(trial, config, space)
  return config.lock()


def frozen_trial(trial: optuna.Trial) -> optuna.trial.FrozenTrial:
  """The stored record of a running trial (its system attributes, curve so far)."""
  return next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)


def trial_dir_of(sweep_dir: str, trial: optuna.trial.FrozenTrial) -> str:
  """SWEEP_DIR/trial_K; a re-run of a dead worker's trial keeps K (and its checkpoints)."""
  number = trial.system_attrs.get('failed_trial', trial.number)
  return os.path.join(os.path.abspath(sweep_dir), f'trial_{number}')


def last_value(trial_dir: str, metric: str) -> float:
  values = [row[metric] for row in workdir_lib.read_metrics(trial_dir) if metric in row]
  if not values:
    raise TrialFailure(f'{trial_dir}: no {metric} was written (is config.sweep.metric one of '
                       'the trainer\'s eval/ metrics?)')
  return values[-1]


def steps_within_budget(config: ml_collections.ConfigDict, trial_dir: str) -> int:
  """The trial's train steps for `config.sweep.train_seconds` of this machine.

  Measured once, when the trial starts; a re-run of a dead worker's trial keeps
  the steps it started with (its config.json), so it resumes the same run.
  """
  if workdir_lib.path(trial_dir, workdir_lib.CONFIG_FILENAME).exists():
    return int(workdir_lib.read_config(trial_dir, config.trainer).train.num_steps)
  steps = calibration.steps_within(config, float(config.sweep.train_seconds))
  logging.info('%s: %d steps fit config.sweep.train_seconds=%g', trial_dir, steps,
               config.sweep.train_seconds)
  return steps


def run_trial(trial: optuna.Trial, base_config: ml_collections.ConfigDict, space: dict,
              sweep_dir: str, liveness: sweep_storage.Liveness, journal: bool) -> float:
  """Trains one trial through the config's trainer; returns its last validation score.

  Raises:
    TrialFailure: the trial cannot finish (recorded as failed with the reason).
    optuna.TrialPruned: its validation curve trailed the others'.
    WorkerPreempted: SIGTERM; the trial is queued again.
  """
  trial_dir = trial_dir_of(sweep_dir, frozen_trial(trial))
  trial.set_user_attr(TRIAL_DIR_ATTR, trial_dir)
  metric = base_config.sweep.metric
  with sweep_storage.JournalHeartbeat(trial, liveness, enabled=journal):
    try:
      config = trial_config(base_config, trial, space)
      if float(config.sweep.get('train_seconds', 0.0)) > 0:
        config.train.num_steps = steps_within_budget(config, trial_dir)
      trainer_module = train.load_trainer(config)
      checked = trainer_module.check_config(config)
      os.makedirs(trial_dir, exist_ok=True)
      workdir_lib.write_or_check_config(config, trial_dir)
      trial.set_user_attr(RESUMED_FROM_ATTR, workdir_lib.latest_step(trial_dir) or 0)

      def report(step: int, metrics: dict) -> None:
        if metric not in metrics:
          raise TrialFailure(f'config.sweep.metric={metric!r} is not among the validation '
                             f'metrics {", ".join(sorted(metrics))}')
        trial.report(metrics[metric], step)
        if trial.should_prune():
          raise optuna.TrialPruned(f'at step {step}: {metric}={metrics[metric]:.4g}')

      trainer_module.train_and_evaluate(config, trial_dir, checked, eval_callback=report)
    except (errors.UserError, TrialFailure) as e:  # A bad sampled config, a NaN loss, ...
      _record_failure(trial, e)
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
      if not _is_out_of_memory(e):
        raise
      _record_failure(trial, e)
  if (workdir_lib.latest_step(trial_dir) or 0) < config.train.num_steps:
    _queue_again(trial, liveness)
    raise WorkerPreempted(f'trial {trial.number} stopped by SIGTERM; queued to resume')
  try:
    return last_value(trial_dir, metric)
  except TrialFailure as e:
    _record_failure(trial, e)


def _record_failure(trial: optuna.Trial, error: Exception):
  reason = one_line(error)
  trial.set_user_attr(sweep_results.FAIL_REASON_ATTR, reason)
  raise TrialFailure(reason) from error


def _queue_again(trial: optuna.Trial, liveness: sweep_storage.Liveness) -> None:
  sweep_storage.retry_callback(liveness)(trial.study, frozen_trial(trial))


def should_start_trial(study: optuna.Study, num_trials: int) -> bool:
  """Whether the study still wants a trial: a queued re-run, or fewer than `num_trials`.

  A trial that was re-queued counts once: its failed run is not counted.
  """
  trials = study.get_trials(deepcopy=False)
  superseded = {n for t in trials for n in t.system_attrs.get('retry_history', ())}
  if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
    return True
  return len([t for t in trials if t.number not in superseded]) < num_trials


def worker_seed(seed: int) -> int:
  """The sampler's seed: the config's, made distinct per worker.

  Workers sharing one seed would draw the same first (random) trials.
  """
  worker = sweep_storage.this_worker()
  return zlib.crc32(f'{seed}:{worker["host"]}:{worker["pid"]}'.encode())


def open_study(config: ml_collections.ConfigDict, sweep_dir: str, study_name: str,
               storage_url: str | None = None) -> optuna.Study:
  """Creates the study, or joins it when another worker already has."""
  storage = sweep_storage.make_storage(storage_url, sweep_dir, liveness_of(config))
  return optuna.create_study(
      study_name=study_name, storage=storage, direction='minimize', load_if_exists=True,
      sampler=optuna.samplers.TPESampler(seed=worker_seed(config.seed)),
      pruner=make_pruner(config))


def sweep(base_config: ml_collections.ConfigDict, sweep_dir: str, study_name: str,
          num_trials: int, storage_url: str | None = None, fixed_fields=(),
          baseline_trial: bool = False) -> optuna.Study:
  """Runs trials until the study has `num_trials` (every worker's count), all finished.

  Args:
    base_config: the config to tune; its `sweep` section says how.
    sweep_dir: trial_K folders, the journal (by default) and the results.
    study_name: the Optuna study; workers with the same name share it.
    num_trials: trials in the study, counting every worker's and earlier runs'.
    storage_url: an Optuna storage URL or `journal:PATH`; None: SWEEP_DIR/optuna.journal.
    fixed_fields: dotted fields set on the command line, kept out of the search.
    baseline_trial: queue the config's own values as a trial (once per study), so
      the table shows what the search gained over them.

  Returns:
    The study.
  """
  space = check_sweep_section(base_config, fixed_fields)
  liveness = liveness_of(base_config)
  os.makedirs(sweep_dir, exist_ok=True)
  study = open_study(base_config, sweep_dir, study_name, storage_url)
  journal = sweep_storage.uses_journal(study)
  if baseline_trial:
    fields = search_space.flatten(base_config)
    study.enqueue_trial({field: fields[field] for field in space}, skip_if_exists=True)
  while True:
    sweep_storage.fail_stale_trials(study, liveness)
    if should_start_trial(study, num_trials):
      study.optimize(
          lambda trial: run_trial(trial, base_config, space, sweep_dir, liveness, journal),
          n_trials=1, catch=(TrialFailure,), gc_after_trial=True)
    elif study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
      # Other workers' trials: wait for them, so that a trial whose worker dies
      # is still re-run, and the results below see every trial.
      time.sleep(liveness.heartbeat_interval_s)
    else:
      return study


def write_results(study: optuna.Study, base_config: ml_collections.ConfigDict,
                  sweep_dir: str, study_name: str, fixed_fields=()) -> str:
  """Writes best_config.py and the plots into `sweep_dir`.

  Returns:
    The text to print: the trial table and what was written.
  """
  metric = base_config.sweep.metric
  lines = [sweep_results.summary_table(study, metric)]
  complete = [t for t in study.get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.COMPLETE]
  if complete:
    best = study.best_trial
    space = search_space.search_space(base_config, fixed_fields)
    config = trial_config(base_config, optuna.trial.FixedTrial(best.params), space)
    path = sweep_results.write_best_config(
        sweep_dir, sweep_results.best_config_source(config, study_name, best, metric))
    lines.append(f'best: trial {best.number}, {metric} = {best.value:.4g}; its config: {path}')
  else:
    lines.append('no trial completed: no best config')
  for filename, outcome in sweep_results.write_plots(study, sweep_dir).items():
    lines.append(f'{os.path.join(sweep_dir, filename)}: {outcome}')
  return '\n'.join(lines)


def main(argv):
  config = flags.FLAGS.config
  sweep_dir = flags.FLAGS.workdir
  fixed_fields = tuple(config_flags.get_override_values(flags.FLAGS['config']))
  storage_url = flags.FLAGS.storage or os.environ.get(sweep_storage.STORAGE_ENV) or None
  with errors.exit_on_user_error('sweep'):  # Before any compile.
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    if flags.FLAGS.storage:
      sweep_storage.check_storage_url(flags.FLAGS.storage)
    config_checks.require(flags.FLAGS.num_trials >= 1, '--num_trials', flags.FLAGS.num_trials,
                          'must be at least 1')
    trainer_module = train.load_trainer(config)
    workdir_lib.absolute_paths(config)
    trainer_module.check_config(config)
    workdir_lib.absolute_paths(config)
    space = check_sweep_section(config, fixed_fields)
  logging.info('searching %s; fixed on the command line: %s', ', '.join(space) or 'nothing',
               ', '.join(fixed_fields) or 'nothing')
  logging.info('study %s in %s', flags.FLAGS.study_name,
               sweep_storage.redacted(storage_url) if storage_url else sweep_dir)
  try:
    study = sweep(config, sweep_dir, flags.FLAGS.study_name, flags.FLAGS.num_trials,
                  storage_url, fixed_fields, flags.FLAGS.baseline_trial)
  except WorkerPreempted as e:
    sys.exit(f'sweep: {e}')
  print(write_results(study, config, sweep_dir, flags.FLAGS.study_name, fixed_fields))


def run():
  config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Trial folders, the journal and the results.')
  flags.DEFINE_string('study_name', None, 'Optuna study name; workers sharing it share trials.')
  flags.DEFINE_integer('num_trials', 20, 'Trials in the study (every worker\'s count).')
  flags.DEFINE_string('storage', None,
                      'Optuna storage URL (postgresql://user@host/db, journal:PATH); default '
                      f'${sweep_storage.STORAGE_ENV} or WORKDIR/optuna.journal. No passwords '
                      'here: PGPASSWORD, ~/.pgpass or the environment variable.')
  flags.DEFINE_bool('baseline_trial', False,
                    'Also run the config\'s own values of the searched fields as a trial.')
  flags.mark_flags_as_required(['config', 'workdir', 'study_name'])
  app.run(main)


if __name__ == '__main__':
  run()
