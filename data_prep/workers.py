"""Worker processes for the per-file work: single-threaded BLAS, crash-isolated.

Every file, on every path (the local pool, a Beam worker), is prepared in a
spawned process with single-threaded BLAS, so its numbers (and the shards
written from them) are the same whichever path, worker count or resume point
computed them; a file that kills its process is reported, not lost.
"""
import concurrent.futures
import concurrent.futures.process
import multiprocessing
import os

from data_prep import song as song_lib
from melodygan_jax import atomic_files

_THREAD_ENV_VARS = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')
CRASH_REASON = 'the decoding process crashed on this file'


def make_executor(num_workers: int) -> concurrent.futures.ProcessPoolExecutor:
  """A pool of worker processes, each with single-threaded BLAS.

  The pool is the parallelism: threaded BLAS inside each worker only fights
  the other workers for cores (measured: 2 workers 1.35x faster this way).

  Args:
    num_workers: processes in the pool, all started before this returns.

  Returns:
    The started pool.
  """
  saved = {name: os.environ.get(name) for name in _THREAD_ENV_VARS}
  os.environ.update(dict.fromkeys(_THREAD_ENV_VARS, '1'))
  try:
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=num_workers, mp_context=multiprocessing.get_context('spawn'))
    # Workers start on first use, after the environment is restored: start them now.
    list(executor.map(abs, range(num_workers)))
  finally:
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value
  return executor


def crash_outcome(task: song_lib.SongTask) -> dict:
  """The skipped outcome of a file whose process died; also written to its cache."""
  outcome = {'source': task.source, 'fingerprint': task.fingerprint(), 'status': 'skipped',
             'reason': CRASH_REASON}
  atomic_files.write_json(task.cache_path + '.json', outcome)
  return outcome


def run_isolated(task: song_lib.SongTask) -> dict:
  """Runs one task in a process of its own; a crash becomes a skipped outcome."""
  with make_executor(1) as executor:
    try:
      return executor.submit(song_lib.process_song, task).result()
    except concurrent.futures.process.BrokenProcessPool:
      return crash_outcome(task)
