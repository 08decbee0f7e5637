"""Where a study lives, and how a worker that died is noticed.

Default: an Optuna journal file, SWEEP_DIR/optuna.journal (appends under a file
lock: no lock contention between workers, unlike SQLite). Any Optuna storage
URL also works: `postgresql://user@host/db` (heartbeats: a killed worker's
trial is failed and re-queued by the next worker), or `journal:PATH` for a
journal on storage several machines share. Passwords come from the
environment (PGPASSWORD, ~/.pgpass, or the whole URL in
MELODYGAN_SWEEP_STORAGE), never from a flag: flags reach logs.

Journal storage has no heartbeat of its own, so each worker records its host,
pid and a heartbeat time on its running trial; a worker starting a trial first
fails (and re-queues) every RUNNING trial whose worker is gone: a dead pid on
this host, or a heartbeat older than the grace period.
"""
import dataclasses
import os
import socket
import threading
import time
import urllib.parse

from absl import logging
import optuna
from optuna.storages import journal

from melodygan_jax import errors


JOURNAL_FILENAME = 'optuna.journal'
STORAGE_ENV = 'MELODYGAN_SWEEP_STORAGE'
WORKER_ATTR = 'worker'  # {'host', 'pid'} of the worker running a trial.
HEARTBEAT_ATTR = 'heartbeat_unix_s'


@dataclasses.dataclass(frozen=True)
class Liveness:
  """How often a running trial proves its worker alive, and how long it may not."""
  heartbeat_interval_s: int
  grace_period_s: int
  max_retries: int


def check_storage_url(url: str, flag: str = '--storage') -> None:
  """Refuses a URL that carries a password in a flag.

  Raises:
    errors.ConfigError: one line naming the flag.
  """
  if '://' in url and urllib.parse.urlsplit(url).password:
    raise errors.ConfigError(
        f'{flag}: the URL holds a password, and flags reach logs: put it in PGPASSWORD or '
        f'~/.pgpass, or pass the whole URL in ${STORAGE_ENV}')


def redacted(url: str) -> str:
  """The URL with any password replaced by ***, for logs."""
  parts = urllib.parse.urlsplit(url)
  if not parts.password:
    return url
  netloc = parts.netloc.replace(f':{parts.password}@', ':***@')
  return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def journal_path(url: str | None, sweep_dir: str) -> str | None:
  """The journal file a storage spec names (None for an RDB URL)."""
  if not url:
    return os.path.join(os.path.abspath(sweep_dir), JOURNAL_FILENAME)
  if url.startswith('journal:'):
    return os.path.abspath(url.removeprefix('journal:').removeprefix('//'))
  if '://' not in url:
    return os.path.abspath(url)
  return None


def repair_torn_journal(path: str) -> bool:
  """Cuts a last line that a killed writer left without its newline.

  Optuna appends whole lines; a line cut short makes the next append join it
  and the journal unreadable from there on. Done under the journal's own lock.

  Returns:
    True when a torn line was removed.
  """
  if not os.path.exists(path) or os.path.getsize(path) == 0:
    return False
  lock = journal.JournalFileSymlinkLock(path)  # The lock Optuna's appends take.
  lock.acquire()
  try:
    with open(path, 'rb+') as f:
      data = f.read()
      if data.endswith(b'\n'):
        return False
      keep = data.rfind(b'\n') + 1
      f.truncate(keep)
  finally:
    lock.release()
  logging.warning('%s: removed a torn last line of %d bytes (a worker died mid-write)',
                  path, len(data) - keep)
  return True


def make_storage(url: str | None, sweep_dir: str, liveness: Liveness):
  """The Optuna storage for `url` (None: the journal in `sweep_dir`).

  Returns:
    An optuna storage: JournalStorage for journal files, RDBStorage with
    heartbeats and re-queueing of stale trials otherwise.
  """
  path = journal_path(url, sweep_dir)
  if path is not None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    repair_torn_journal(path)
    return journal.JournalStorage(journal.JournalFileBackend(path))
  import sqlalchemy.exc  # pylint: disable=g-import-not-at-top
  for attempt in range(3):
    try:
      return optuna.storages.RDBStorage(
          url, heartbeat_interval=liveness.heartbeat_interval_s,
          grace_period=liveness.grace_period_s,
          heartbeat_stale_trial_callback=retry_callback(liveness))
    except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
      # Workers started together on a new database race to create its tables.
      if attempt == 2:
        raise
      time.sleep(1.0)


def retry_callback(liveness: Liveness):
  """Re-queues a dead worker's trial with its parameters and its curve so far."""
  return optuna.storages.RetryHeartbeatStaleTrialCallback(
      max_retry=liveness.max_retries, inherit_intermediate_values=True)


def uses_journal(study: optuna.Study) -> bool:
  return isinstance(study._storage, journal.JournalStorage)  # pylint: disable=protected-access


def this_worker() -> dict:
  return {'host': socket.gethostname(), 'pid': os.getpid()}


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def is_stale(trial: optuna.trial.FrozenTrial, liveness: Liveness, now_s: float) -> bool:
  """Whether a RUNNING journal trial's worker is gone."""
  worker = trial.user_attrs.get(WORKER_ATTR)
  if worker and worker['host'] == socket.gethostname() and worker['pid'] != os.getpid():
    if not _pid_alive(worker['pid']):
      return True
  last_sign_s = trial.user_attrs.get(HEARTBEAT_ATTR)
  if last_sign_s is None and trial.datetime_start is not None:
    last_sign_s = trial.datetime_start.timestamp()
  return last_sign_s is not None and now_s - last_sign_s > liveness.grace_period_s


def fail_stale_trials(study: optuna.Study, liveness: Liveness) -> list[int]:
  """Fails the trials of dead workers and queues each again.

  RDB storage: Optuna's heartbeat check. Journal storage: the host/pid and
  heartbeat time each worker records on its trial.

  Returns:
    The numbers of the trials failed here.
  """
  if not uses_journal(study):
    before = {t.number for t in study.get_trials(deepcopy=False,
                                                 states=(optuna.trial.TrialState.RUNNING,))}
    optuna.storages.fail_stale_trials(study)
    running = {t.number for t in study.get_trials(deepcopy=False,
                                                  states=(optuna.trial.TrialState.RUNNING,))}
    return sorted(before - running)
  failed = []
  now_s = time.time()
  for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
    if not is_stale(trial, liveness, now_s):
      continue
    try:
      study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
      continue  # Another worker failed it first (and re-queues it).
    logging.warning('trial %d: its worker %s is gone; failed and queued again', trial.number,
                    trial.user_attrs.get(WORKER_ATTR))
    retry_callback(liveness)(study, trial)
    failed.append(trial.number)
  return failed


class JournalHeartbeat:
  """Records this worker on a running journal trial, and a heartbeat every interval."""

  def __init__(self, trial: optuna.Trial, liveness: Liveness, enabled: bool):
    self._trial = trial
    self._interval_s = liveness.heartbeat_interval_s
    self._stop = threading.Event()
    self._thread = None
    trial.set_user_attr(WORKER_ATTR, this_worker())
    if enabled:
      trial.set_user_attr(HEARTBEAT_ATTR, time.time())
      self._thread = threading.Thread(target=self._beat, daemon=True)

  def _beat(self):
    while not self._stop.wait(self._interval_s):
      self._trial.set_user_attr(HEARTBEAT_ATTR, time.time())

  def __enter__(self):
    if self._thread is not None:
      self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
