"""Optuna sweeps: the config's search space, pruning, failures, shared studies, dead workers.

The in-process sweep runs enqueued trials (a good one twice, a learning rate
too small to learn, one that diverges), so each outcome is known in advance.
The multi-worker tests start real `python -m melodygan_jax.sweep` processes
and kill one with SIGKILL mid-trial.
"""
import os
import pathlib
import signal
import subprocess
import sys
import time

from absl import flags
import ml_collections
from ml_collections import config_flags
import optuna
from optuna.storages import journal
import pytest

from configs import gan
from configs import vqvae_tiny

from melodygan_jax import errors
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training.sweeps import search_space
from melodygan_jax.training.sweeps import sweep
from melodygan_jax.training.sweeps import results as sweep_results
from melodygan_jax.training.sweeps import storage as sweep_storage
from melodygan_jax.training import train


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = {'train.num_steps': 20, 'train.eval_every_steps': 10,
         'train.checkpoint_every_steps': 10, 'train.log_every_steps': 10,
         'train.num_summary_examples': 0, 'train.warmup_steps': 2}
GOOD = {'train.learning_rate': 3e-3, 'model.codebook_size': 64, 'model.num_res_blocks': 1,
        'model.commitment_cost': 0.25}
TrialState = optuna.trial.TrialState


def tiny_sweep_config(dataset_dir) -> ml_collections.ConfigDict:
  config = vqvae_tiny.get_config()
  config.data.dataset_dir = str(dataset_dir)
  for field, value in STEPS.items():
    search_space.set_field(config, field, value)
  config.sweep.pruner_startup_trials = 2
  return config


def journal_study(sweep_dir, name: str) -> optuna.Study:
  path = os.path.join(sweep_dir, sweep_storage.JOURNAL_FILENAME)
  return optuna.load_study(study_name=name,
                           storage=journal.JournalStorage(journal.JournalFileBackend(path)))


# ---------------------------------------------------------------- no training


def test_search_space_comes_from_the_config_and_overrides_fix_fields():
  config = vqvae_tiny.get_config()
  space = search_space.search_space(config, fixed_fields=('train.learning_rate',))
  assert set(space) == {'model.codebook_size', 'model.num_res_blocks', 'model.commitment_cost'}
  assert space['model.codebook_size'].choices == (32, 64)
  assert isinstance(space['model.num_res_blocks'], optuna.distributions.IntDistribution)
  full = search_space.search_space(config)
  assert full['train.learning_rate'].log and full['train.learning_rate'].low == 3e-4
  assert set(search_space.search_space(gan.get_config())) == {
      'train.generator_learning_rate', 'train.discriminator_learning_rate', 'loss.r1_gamma',
      'loss.code_usage_weight'}


def test_a_resumed_trial_may_change_the_sweep_section_but_not_what_it_trains(
    tmp_path, current_normalization):
  config = vqvae_tiny.get_config()
  workdir_lib.write_or_check_config(config, str(tmp_path))
  (tmp_path / 'checkpoints' / '10').mkdir(parents=True)  # As if trained to step 10.
  workdir_lib.write_normalization(str(tmp_path), current_normalization)
  config.sweep.grace_period_s = 5
  workdir_lib.write_or_check_config(config, str(tmp_path))
  config.model.codebook_size = 32
  with pytest.raises(errors.ConfigError, match='config.model.codebook_size=32'):
    workdir_lib.write_or_check_config(config, str(tmp_path))


@pytest.mark.parametrize('field, spec, problem', [
    ('model.codebook_size', 'choice(1.5, 2)', "field's type int"),
    ('train.learning_rate', 'log_uniform(0, 1)', 'log scale needs low > 0'),
    ('train.learning_rate', 'gaussian(0, 1)', 'unknown distribution gaussian'),
    ('model.num_res_blocks', 'int(3, 1)', 'low < high'),
])
def test_a_bad_space_entry_is_one_line_naming_it(field, spec, problem):
  config = vqvae_tiny.get_config()
  search_space.set_field(config.sweep.space, field, spec)
  with pytest.raises(errors.ConfigError, match=problem) as raised:
    search_space.search_space(config)
  assert str(raised.value).startswith(f'config.sweep.space.{field}=')
  assert '\n' not in str(raised.value)


def test_a_password_in_the_storage_flag_is_refused():
  with pytest.raises(errors.ConfigError, match='PGPASSWORD'):
    sweep_storage.check_storage_url('postgresql://user:secret@db.example/optuna')
  sweep_storage.check_storage_url('postgresql://user@db.example/optuna')
  assert sweep_storage.redacted('postgresql://u:secret@h/db') == 'postgresql://u:***@h/db'


def test_a_torn_last_journal_line_is_repaired(tmp_path):
  storage = sweep_storage.make_storage(None, str(tmp_path), sweep_storage.Liveness(60, 300, 3))
  study = optuna.create_study(study_name='torn', storage=storage)
  study.optimize(lambda trial: trial.suggest_float('x', 0, 1), n_trials=2)
  path = tmp_path / sweep_storage.JOURNAL_FILENAME
  with open(path, 'ab') as f:
    f.write(b'{"op_code": 4, "worker_id": "dead')  # A writer killed mid-line.
  assert sweep_storage.repair_torn_journal(str(path))
  again = optuna.load_study(study_name='torn', storage=sweep_storage.make_storage(
      None, str(tmp_path), sweep_storage.Liveness(60, 300, 3)))
  again.optimize(lambda trial: trial.suggest_float('x', 0, 1), n_trials=1)
  assert [t.state for t in journal_study(tmp_path, 'torn').trials] == [TrialState.COMPLETE] * 3


# ---------------------------------------------------------------- one worker, in process


@pytest.fixture(scope='module')
def finished_sweep(prepared_dir, tmp_path_factory):
  """Four enqueued trials: good, good, too small a learning rate, diverging."""
  sweep_dir = str(tmp_path_factory.mktemp('sweep'))
  config = tiny_sweep_config(prepared_dir)
  study = sweep.open_study(config, sweep_dir, 'tiny')
  study.enqueue_trial(GOOD)
  study.enqueue_trial({**GOOD, 'model.codebook_size': 32})
  study.enqueue_trial({**GOOD, 'train.learning_rate': 1e-7})  # Learns nothing: pruned.
  study.enqueue_trial({**GOOD, 'train.learning_rate': 1e6})  # Overflows: non-finite loss.
  study = sweep.sweep(config, sweep_dir, 'tiny', num_trials=4)
  text = sweep.write_results(study, config, sweep_dir, 'tiny')
  return sweep_dir, study, text


@pytest.mark.end_to_end
def test_a_clearly_bad_trial_is_pruned_with_its_partial_curve(finished_sweep):
  _, study, _ = finished_sweep
  slow = study.trials[2]
  assert slow.state == TrialState.PRUNED
  assert list(slow.intermediate_values) == [10]  # Stopped at its first evaluation.
  completed_at_10 = [t.intermediate_values[10] for t in study.trials[:2]]
  assert slow.intermediate_values[10] > max(completed_at_10)


@pytest.mark.end_to_end
def test_a_diverging_trial_is_failed_with_its_reason_and_the_sweep_goes_on(finished_sweep):
  _, study, text = finished_sweep
  diverged = study.trials[3]
  assert diverged.state == TrialState.FAIL
  assert diverged.user_attrs[sweep_results.FAIL_REASON_ATTR].startswith(
      'NonFiniteLossError: non-finite loss')
  assert [t.state for t in study.trials[:2]] == [TrialState.COMPLETE] * 2
  assert 'NonFiniteLossError' in text and 'PRUNED' in text


@pytest.mark.end_to_end
def test_the_best_config_and_plots_are_written(finished_sweep):
  sweep_dir, study, _ = finished_sweep
  best = study.best_trial
  assert best.number in (0, 1)
  source = pathlib.Path(sweep_dir, 'best_config.py').read_text()
  assert f'Best trial {best.number}' in source
  for name in sweep_results.PLOTS:
    assert pathlib.Path(sweep_dir, name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name


@pytest.mark.end_to_end
def test_the_best_config_trains(finished_sweep, tmp_path):
  """best_config.py loads through the same config flag as `train --config=` and trains."""
  sweep_dir, study, _ = finished_sweep
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'config', flag_values=flag_values,
                                  lock_config=True)
  flag_values(['train', f'--config={sweep_dir}/best_config.py'])
  config = flag_values.config
  config.train.num_steps, config.train.warmup_steps = 4, 1
  for field, value in study.best_trial.params.items():
    assert search_space.flatten(config)[field] == value, field
  state = train.load_trainer(config).train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 4


@pytest.mark.end_to_end
def test_a_wall_clock_budget_gives_a_costlier_trial_fewer_steps(prepared_dir, tmp_path):
  """sweep.train_seconds: each trial's steps are measured for its own config, and a
  re-run of the trial keeps the steps it started with."""
  config = tiny_sweep_config(prepared_dir)
  config.sweep.train_seconds = 2.0
  config.sweep.pruner = 'none'
  # Unpruned: evaluated and saved at the end only (every 10 steps was 19 saves a trial).
  config.train.eval_every_steps = config.train.checkpoint_every_steps = 10_000
  with config.unlocked():
    config.sweep.space.train.batch_size = 'choice(2, 128)'
  study = sweep.open_study(config, str(tmp_path), 'budget')
  for batch_size in (2, 128):
    study.enqueue_trial({**GOOD, 'train.batch_size': batch_size})
  study = sweep.sweep(config, str(tmp_path), 'budget', num_trials=2)
  assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
  steps = {}
  for trial in study.trials:
    trial_dir = trial.user_attrs[sweep.TRIAL_DIR_ATTR]
    trained = workdir_lib.read_config(trial_dir, 'vqvae')
    steps[trained.train.batch_size] = trained.train.num_steps
    assert workdir_lib.latest_step(trial_dir) == trained.train.num_steps
    assert sweep.steps_within_budget(trial_config_of(config, trial), trial_dir) == (
        trained.train.num_steps)  # Kept, not measured again.
  # 64x the examples a step: well under half the steps in the same time (at 16x a tiny
  # codec's per-step overhead left it at 0.54 of the steps on a busy machine).
  assert 0 < steps[128] < 0.5 * steps[2], steps


def trial_config_of(config, trial) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(config.to_dict())
  for field, value in trial.params.items():
    search_space.set_field(config, field, value)
  return config


# ---------------------------------------------------------------- several workers, killed


def worker_command(sweep_dir, dataset_dir, *extra) -> list[str]:
  # Trials of 60 steps checkpointed every 10: a worker is killed between its trial's first
  # checkpoint and its end, a window of seconds even when the machine is busy.
  overrides = [f'--config.{field}={value}'
               for field, value in dict(STEPS, **{'train.num_steps': 60}).items()]
  return [sys.executable, '-m', 'melodygan_jax.sweep', '--config=configs/vqvae_tiny.py',
          f'--workdir={sweep_dir}', '--study_name=shared', '--num_trials=2',
          f'--config.data.dataset_dir={dataset_dir}', '--config.sweep.pruner=none',
          *overrides, *extra]


def start_worker(command, log_path):
  log = open(log_path, 'w')  # pylint: disable=consider-using-with
  return subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                          env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)})


def kill_mid_trial(workers, load_study, timeout_s=300) -> list:
  """SIGKILLs each worker once its running trial has saved a checkpoint.

  Returns:
    The killed trials, in the order of `workers`.
  """
  killed = {}
  deadline = time.time() + timeout_s
  while len(killed) < len(workers):
    assert time.time() < deadline, 'no checkpoint of a worker\'s trial appeared in time'
    try:
      running = load_study().get_trials(states=(TrialState.RUNNING,))
    except KeyError:  # The study is not created yet.
      running = []
    for trial in running:
      pid = trial.user_attrs.get(sweep_storage.WORKER_ATTR, {}).get('pid')
      trial_dir = trial.user_attrs.get(sweep.TRIAL_DIR_ATTR)
      for worker in workers:
        if worker.pid == pid and pid not in killed and workdir_lib.latest_step(trial_dir):
          os.kill(pid, signal.SIGKILL)
          worker.wait()
          killed[pid] = trial
    for worker in workers:
      assert worker.pid in killed or worker.poll() is None, 'a worker ended before its kill'
    time.sleep(0.1)
  return [killed[worker.pid] for worker in workers]


def wait_all(workers, logs, timeout_s=400):
  for worker, log in zip(workers, logs):
    try:
      assert worker.wait(timeout=timeout_s) == 0, pathlib.Path(log).read_text()[-3000:]
    finally:
      worker.kill()


def check_killed_trials_were_rerun(study, killed_numbers, num_trials=2):
  """Each killed trial failed, and its one re-run finished from its own checkpoint."""
  trials = study.trials
  assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
  for number in killed_numbers:
    assert trials[number].state == TrialState.FAIL
    reruns = [t for t in trials if t.system_attrs.get('failed_trial') == number]
    assert len(reruns) == 1 and reruns[0].state == TrialState.COMPLETE
    rerun = reruns[0]
    assert rerun.params == trials[number].params
    assert rerun.user_attrs[sweep.TRIAL_DIR_ATTR].endswith(f'trial_{number}')
    assert rerun.user_attrs[sweep.RESUMED_FROM_ATTR] >= 10  # Resumed, not restarted.
  counted = [t for t in trials if t.number not in killed_numbers]
  assert len(counted) == num_trials
  assert len({t.user_attrs[sweep.TRIAL_DIR_ATTR] for t in counted}) == num_trials


@pytest.fixture(scope='module')
def killed_journal_sweep(prepared_dir, tmp_path_factory):
  """Two workers on one journal, both SIGKILLed mid-trial; then one restarts the sweep."""
  sweep_dir = tmp_path_factory.mktemp('shared')
  command = worker_command(sweep_dir, prepared_dir)
  logs = [sweep_dir / f'worker_{i}.log' for i in range(3)]
  workers = [start_worker(command, logs[0]), start_worker(command, logs[1])]
  killed = kill_mid_trial(workers, lambda: journal_study(sweep_dir, 'shared'))
  with open(sweep_dir / sweep_storage.JOURNAL_FILENAME, 'ab') as f:
    f.write(b'{"op_code": 5, "worker_id": "kil')  # As if killed mid-append.
  restarted = start_worker(command, logs[2])
  wait_all([restarted], logs[2:])
  return sweep_dir, journal_study(sweep_dir, 'shared'), killed, workers


@pytest.mark.multiprocess
def test_two_journal_workers_share_one_study(killed_journal_sweep):
  _, study, killed, workers = killed_journal_sweep
  assert {t.user_attrs[sweep_storage.WORKER_ATTR]['pid'] for t in killed} == {
      worker.pid for worker in workers}
  assert killed[0].number != killed[1].number and killed[0].params != killed[1].params
  assert len(study.trials) == 4  # Two trials and their re-runs: none drawn twice.


@pytest.mark.multiprocess
def test_a_sweep_killed_mid_trial_and_restarted_finishes(killed_journal_sweep):
  sweep_dir, study, killed, _ = killed_journal_sweep
  check_killed_trials_were_rerun(study, [t.number for t in killed])
  assert (sweep_dir / sweep_storage.JOURNAL_FILENAME).read_bytes().endswith(b'\n')
  assert (sweep_dir / 'best_config.py').exists()


# ---------------------------------------------------------------- PostgreSQL


def postgres_binaries() -> pathlib.Path | None:
  for folder in sorted(pathlib.Path('/usr/lib/postgresql').glob('*/bin'), reverse=True):
    if (folder / 'initdb').exists() and (folder / 'pg_ctl').exists():
      return folder
  return None


@pytest.fixture
def postgres_url():
  """A PostgreSQL server of its own on a unix socket in a temporary folder."""
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  binaries = postgres_binaries()
  if binaries is None:
    pytest.skip('PostgreSQL binaries (Debian package postgresql) are not installed')
  folder = pathlib.Path(tempfile.mkdtemp(prefix='pg'))  # Short: unix socket paths are limited.
  run_as = []
  if os.geteuid() == 0:  # initdb refuses root.
    shutil.chown(folder, 'postgres')
    run_as = ['runuser', '-u', 'postgres', '--']
  data = folder / 'data'
  subprocess.run([*run_as, binaries / 'initdb', '-D', data, '-U', 'postgres', '--auth=trust'],
                 check=True, capture_output=True)
  subprocess.run([*run_as, binaries / 'pg_ctl', '-D', data, '-w', '-l', folder / 'log', '-o',
                  f"-k {folder} -c listen_addresses='' -p 5432", 'start'],
                 check=True, capture_output=True)
  try:
    yield f'postgresql+psycopg2://postgres@/postgres?host={folder}&port=5432'
  finally:
    subprocess.run([*run_as, binaries / 'pg_ctl', '-D', data, '-m', 'immediate', 'stop'],
                   check=False, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
def test_postgres_workers_share_a_study_and_heartbeats_rerun_a_killed_trial(
    prepared_dir, tmp_path, postgres_url):
  command = worker_command(tmp_path, prepared_dir, f'--storage={postgres_url}',
                           '--config.sweep.heartbeat_interval_s=1',
                           '--config.sweep.grace_period_s=4')
  logs = [tmp_path / 'worker_0.log', tmp_path / 'worker_1.log']
  first, second = start_worker(command, logs[0]), start_worker(command, logs[1])
  storage = optuna.storages.RDBStorage(postgres_url)  # One connection pool for every poll.
  load = lambda: optuna.load_study(study_name='shared', storage=storage)
  killed, = kill_mid_trial([first], load)
  wait_all([second], logs[1:])  # It waits for the killed trial to go stale, then re-runs it.
  study = load()
  check_killed_trials_were_rerun(study, [killed.number])
  assert {t.user_attrs[sweep_storage.WORKER_ATTR]['pid'] for t in study.trials} == {
      first.pid, second.pid}
