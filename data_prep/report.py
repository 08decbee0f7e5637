"""report.json: every input file's outcome and the run's figures, for every runner."""
import os
import pathlib
import resource

from melodygan_jax import atomic_files
from melodygan_jax.data import records

REUSED_KEY = 'reused'  # Set in memory on outcomes an earlier run finished; never stored.


def clean_wav_paths(tasks, output_dir) -> dict[str, str]:
  """Source -> its cleaned WAV relative to the output folder (listening pages play it)."""
  return {task.source: pathlib.PurePath(os.path.relpath(task.clean_path, output_dir)).as_posix()
          for task in tasks}


def peak_rss_mb() -> float:
  """This process's peak resident memory so far, in MiB.

  Linux's VmHWM where there is one: getrusage's ru_maxrss also counts the
  pages a spawned worker shared with its parent before it exec'd Python.
  """
  try:
    with open('/proc/self/status') as status:
      for line in status:
        if line.startswith('VmHWM:'):
          return round(int(line.split()[1]) / 1024, 1)
  except OSError:
    pass
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux.


def build_report(input_dir: str, outcomes: list[dict], stats: dict | None, seconds: float,
                 runner: str, clean_wavs: dict[str, str] | None = None) -> dict:
  """The report of one run.

  Args:
    input_dir: the folder that was prepared.
    outcomes: every file's outcome; those finished by an earlier run carry
      `REUSED_KEY`.
    stats: stats.json's contents (for each song's split), or None when
      nothing was usable.
    seconds: wall time of the run.
    runner: 'local' (the process pool) or the Beam runner's name.
    clean_wavs: source -> its cleaned WAV relative to the output folder.

  Returns:
    Files (sorted by source, each with its split), counts, hours of audio,
    and for the files processed in this run: their audio hours, the
    throughput in x real time and the peak resident memory of any worker and
    of the process that builds the report (the one that wrote the shards).
  """
  files, processed = [], []
  for outcome in outcomes:
    outcome = dict(outcome)
    if not outcome.pop(REUSED_KEY, False):
      processed.append(outcome)
    if stats and outcome['source'] in stats['splits']:
      outcome['split'] = stats['splits'][outcome['source']]
      if clean_wavs and outcome['source'] in clean_wavs:
        outcome['clean_wav'] = clean_wavs[outcome['source']]
    files.append(outcome)
  files.sort(key=lambda outcome: outcome['source'])
  used = [outcome for outcome in files if outcome['status'] == 'used']
  processed_s = sum(outcome.get('duration_s', 0.0) for outcome in processed)
  return {
      'input_dir': str(input_dir),
      'files': files,
      'num_used': len(used),
      'num_skipped': len(files) - len(used),
      'num_segments': sum(o['num_segments'] * len(o['stems']) for o in used),
      'audio_hours': round(sum(o.get('duration_s', 0.0) for o in used) / 3600, 4),
      'clean_audio_hours': round(sum(o.get('clean_duration_s', 0.0) for o in used) / 3600, 4),
      'run': {
          'runner': runner,
          'files_processed': len(processed),
          'files_reused': len(files) - len(processed),
          'processed_audio_hours': round(processed_s / 3600, 4),
          'x_real_time': round(processed_s / seconds, 1) if seconds > 0 else None,
          'worker_peak_rss_mb': max((o.get('worker_peak_rss_mb', 0.0) for o in processed),
                                    default=None),
          'main_peak_rss_mb': peak_rss_mb(),
      },
      'seconds': round(seconds, 2),
  }


def write_report(output_dir: str | os.PathLike, report: dict) -> None:
  """Writes OUT/report.json atomically."""
  atomic_files.write_json(os.path.join(output_dir, records.REPORT_FILENAME), report)


def summarize(report: dict) -> str:
  """A few lines for the terminal: counts, hours, speed, memory, every skipped file."""
  run = report['run']
  lines = [f'{report["num_used"]} files used ({report["clean_audio_hours"] * 60:.1f} min after '
           f'cleaning, {report["num_segments"]} segments), {report["num_skipped"]} skipped, '
           f'in {report["seconds"]:.1f} s']
  if run['files_processed']:
    lines.append(f'{run["runner"]}: {run["files_processed"]} files processed '
                 f'({run["processed_audio_hours"]:.2f} h of audio, {run["x_real_time"]:.0f}x '
                 f'real time, peak {run["worker_peak_rss_mb"]:.0f} MB per worker, '
                 f'{run["main_peak_rss_mb"]:.0f} MB in the main process), '
                 f'{run["files_reused"]} finished earlier')
  for outcome in report['files']:
    if outcome['status'] == 'skipped':
      lines.append(f'  skipped {outcome["source"]}: {outcome["reason"]}')
  return '\n'.join(lines)
