"""The Optuna sweep runs short trials, keeps its study on disk and resumes it."""
import optuna

from configs import vqvae_tiny
from melodygan_jax.training import sweep


def test_sweep_runs_trials_and_resumes(prepared_dir, tmp_path):
  config = vqvae_tiny.get_config()
  config.data.dataset_dir = str(prepared_dir)
  config.train.log_every_steps = 10
  study = sweep.sweep(config, str(tmp_path), 'tiny', num_trials=2, trial_steps=20)
  finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
  assert len(finished) == 2
  assert all(0 < t.value < 10 for t in finished)
  assert set(finished[0].params) == set(sweep.SEARCH_SPACES['vqvae'])
  assert (tmp_path / 'optuna.db').exists() and (tmp_path / 'trial_1' / 'config.json').exists()
  again = sweep.sweep(config, str(tmp_path), 'tiny', num_trials=2, trial_steps=20)
  assert len(again.trials) == 2  # Nothing left to run: the stored study is reused.
