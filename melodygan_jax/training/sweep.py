r"""Tune a config with Optuna: each trial is a short training run.

  python -m melodygan_jax.sweep --config=configs/vqvae.py --workdir=sweeps/s1 --study_name=s1 \
      [--num_trials=20] [--trial_steps=2000] [--config.data.dataset_dir=data/]

The study lives in WORKDIR/optuna.db (SQLite), so a sweep that is stopped and
started again goes on where it was, and several processes may share it. Trial
n trains in WORKDIR/trial_n (a killed trial resumes from its checkpoint) and
is scored by its last validation metric: eval/mse for the VQ-VAE,
eval/latent_frechet for the GAN (lower is better). The search spaces are
below; every other field comes from --config and its overrides.
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from melodygan_jax.training import metric_writer
from melodygan_jax.training import run_files
from melodygan_jax.training import train

OBJECTIVES = {'vqvae': 'eval/mse', 'gan': 'eval/latent_frechet'}


# Config field -> (low, high, log scale) for floats, or a list of choices.
SEARCH_SPACES = {
    'vqvae': {
        'train.learning_rate': (1e-4, 3e-3, True),
        'model.commitment_cost': (0.05, 1.0, True),
        'model.ema_decay': (0.9, 0.999, False),
        'model.num_levels': [4, 8],
        'model.quantizer_dropout': (0.0, 1.0, False),
        'loss.l1_weight': (0.0, 1.0, False),
    },
    'gan': {
        'train.generator_learning_rate': (3e-5, 1e-3, True),
        'train.discriminator_learning_rate': (3e-5, 3e-3, True),
        'loss.r1_gamma': (0.1, 10.0, True),
        'loss.instance_noise': (0.0, 1.0, False),
        'loss.code_usage_weight': (0.0, 3.0, False),
    },
}


def suggest(trial, config: ml_collections.ConfigDict) -> None:
  """Sets every searched field of `config` to the trial's suggestion."""
  for field, space in SEARCH_SPACES[config.trainer].items():
    section, name = field.split('.')
    if isinstance(space, list):
      config[section][name] = trial.suggest_categorical(field, space)
    else:
      low, high, log = space
      config[section][name] = trial.suggest_float(field, low, high, log=log)


def run_trial(trial, base_config: ml_collections.ConfigDict, workdir: str,
              trial_steps: int) -> float:
  """Trains one trial's config and returns its last validation objective."""
  config = ml_collections.ConfigDict(base_config.to_dict())
  suggest(trial, config)
  if trial_steps:
    config.train.num_steps = trial_steps
    config.train.eval_every_steps = min(config.train.eval_every_steps, trial_steps)
    config.train.checkpoint_every_steps = min(config.train.checkpoint_every_steps, trial_steps)
    if 'warmup_steps' in config.train and config.train.warmup_steps >= trial_steps:
      config.train.warmup_steps = trial_steps // 10
  trainer_module = train.load_trainer(config)
  checked = trainer_module.check_config(config)
  trial_dir = os.path.join(workdir, f'trial_{trial.number}')
  os.makedirs(trial_dir, exist_ok=True)
  run_files.write_or_check_config(config, trial_dir)
  trainer_module.train_and_evaluate(config, trial_dir, checked)
  objective = OBJECTIVES[config.trainer]
  values = [row[objective] for row in metric_writer.read_metrics(trial_dir) if objective in row]
  if not values:
    raise RuntimeError(f'{trial_dir}: no {objective} was written')
  return values[-1]


def sweep(base_config, workdir: str, study_name: str, num_trials: int, trial_steps: int):
  import optuna  # pylint: disable=g-import-not-at-top
  os.makedirs(workdir, exist_ok=True)
  study = optuna.create_study(
      study_name=study_name, storage=f'sqlite:///{os.path.abspath(workdir)}/optuna.db',
      direction='minimize', load_if_exists=True,
      sampler=optuna.samplers.TPESampler(seed=base_config.seed))
  remaining = num_trials - len([t for t in study.trials if t.state.is_finished()])
  if remaining > 0:
    study.optimize(lambda trial: run_trial(trial, base_config, workdir, trial_steps),
                   n_trials=remaining, catch=(FloatingPointError,))
  return study


def main(argv):
  if len(argv) > 1:
    sys.exit(f'sweep: unexpected arguments: {" ".join(argv[1:])}')
  config = flags.FLAGS.config
  try:
    train.load_trainer(config).check_config(config)
  except ValueError as e:
    sys.exit(f'sweep: {e}')
  study = sweep(config, flags.FLAGS.workdir, flags.FLAGS.study_name, flags.FLAGS.num_trials,
                flags.FLAGS.trial_steps)
  best = study.best_trial
  logging.info('best trial %d: %s = %.4g with %s', best.number, OBJECTIVES[config.trainer],
               best.value, best.params)
  print(f'best trial {best.number}: {OBJECTIVES[config.trainer]} = {best.value:.4g}')
  for name, value in best.params.items():
    print(f'  --config.{name}={value}')


def run():
  config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'The study database and one folder per trial.')
  flags.DEFINE_string('study_name', None, 'Optuna study name.')
  flags.DEFINE_integer('num_trials', 20, 'Trials in the study (finished ones count).')
  flags.DEFINE_integer('trial_steps', 0, 'Train steps per trial (0: the config\'s).')
  flags.mark_flags_as_required(['config', 'workdir', 'study_name'])
  app.run(main)


if __name__ == '__main__':
  run()
