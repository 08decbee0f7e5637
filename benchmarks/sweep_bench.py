r"""Sweep throughput: trials per hour, tiny and default VQ-VAE configs, 1 and 2 workers.

  python benchmarks/sweep_bench.py [--tiny_steps=100] [--default_steps=20] \
      [--trials_per_worker=2]

Each case starts real `python -m melodygan_jax.sweep` worker processes on one
journal study over real music (Debian's drascula-music, prepared once into
benchmarks/.cache/sweep_data) and counts trials per hour over the study's span,
from the first trial's start to the last trial's end: worker start-up is left
out, each trial's compilation and evaluation are in. Pruning is off, so every
trial trains its full length.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import optuna
from optuna.storages import journal

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from data_prep import prepare  # pylint: disable=wrong-import-position
import real_music  # pylint: disable=wrong-import-position

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / 'benchmarks' / '.cache' / 'sweep_data'
_TINY_STEPS = flags.DEFINE_integer('tiny_steps', 100, 'Train steps per tiny-config trial.')
_DEFAULT_STEPS = flags.DEFINE_integer('default_steps', 20, 'Train steps per default trial.')
_TRIALS_PER_WORKER = flags.DEFINE_integer('trials_per_worker', 2, 'Trials each worker runs.')


def prepared_music() -> pathlib.Path:
  """Five minutes of real music, prepared once."""
  if not (DATA_DIR / 'stats.json').exists():
    files = real_music.music_files(min_seconds=300)
    with tempfile.TemporaryDirectory() as input_dir:
      for path in files:
        os.symlink(path, pathlib.Path(input_dir) / path.name)
      prepare.prepare(prepare.PrepareOptions(input_dir=input_dir, output_dir=str(DATA_DIR),
                                             num_workers=1, show_progress=False))
  return DATA_DIR


def run_case(config_file: str, steps: int, num_workers: int, data_dir) -> dict:
  """Runs one sweep with `num_workers` processes; returns its throughput."""
  num_trials = num_workers * _TRIALS_PER_WORKER.value
  with tempfile.TemporaryDirectory() as sweep_dir:
    command = [
        sys.executable, '-m', 'melodygan_jax.sweep', f'--config={config_file}',
        f'--workdir={sweep_dir}', '--study_name=bench', f'--num_trials={num_trials}',
        f'--config.data.dataset_dir={data_dir}', '--config.sweep.pruner=none',
        f'--config.train.num_steps={steps}', f'--config.train.eval_every_steps={steps}',
        f'--config.train.checkpoint_every_steps={steps}',
        f'--config.train.log_every_steps={steps}',
        f'--config.train.warmup_steps={max(1, steps // 10)}']
    env = {**os.environ, 'PYTHONPATH': str(REPO_ROOT), 'TF_CPP_MIN_LOG_LEVEL': '2'}
    workers = [subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
               for _ in range(num_workers)]
    for worker in workers:
      _, stderr = worker.communicate()
      if worker.returncode:
        raise RuntimeError(f'a sweep worker failed:\n{stderr[-3000:]}')
    study = optuna.load_study(study_name='bench', storage=journal.JournalStorage(
        journal.JournalFileBackend(os.path.join(sweep_dir, 'optuna.journal'))))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
  span_s = (max(t.datetime_complete for t in done)
            - min(t.datetime_start for t in done)).total_seconds()
  return {'trials': len(done), 'span_s': span_s, 'trials_per_hour': len(done) / span_s * 3600,
          'mean_trial_s': sum((t.datetime_complete - t.datetime_start).total_seconds()
                              for t in done) / len(done)}


def main(argv):
  del argv
  data_dir = prepared_music()
  cases = {'tiny': ('configs/vqvae_tiny.py', _TINY_STEPS.value),
           'default': ('configs/vqvae.py', _DEFAULT_STEPS.value)}
  load_before = os.getloadavg()[0]
  results = {}
  print(f'{"config":<8} {"steps/trial":>11} {"workers":>7} {"trials":>6} {"mean trial s":>12} '
        f'{"trials/hour":>11}')
  for name, (config_file, steps) in cases.items():
    results[name] = {'steps_per_trial': steps}
    for num_workers in (1, 2):
      started = time.perf_counter()
      case = run_case(config_file, steps, num_workers, data_dir)
      case['wall_s'] = time.perf_counter() - started
      results[name][f'{num_workers}_worker'] = case
      print(f'{name:<8} {steps:>11} {num_workers:>7} {case["trials"]:>6} '
            f'{case["mean_trial_s"]:>12.1f} {case["trials_per_hour"]:>11.0f}')
    results[name]['speedup_vs_1_worker'] = (results[name]['2_worker']['trials_per_hour']
                                            / results[name]['1_worker']['trials_per_hour'])
  results['cpu_count'] = os.cpu_count()
  results['load_average_1min_before_after'] = [load_before, os.getloadavg()[0]]
  print(f'{os.cpu_count()} CPUs; 1-minute load average {load_before:.1f} before, '
        f'{os.getloadavg()[0]:.1f} after (other work on the machine slows every figure)')
  print(json.dumps(results))


if __name__ == '__main__':
  app.run(main)
