r"""Prepare a folder of songs as a training data set.

  python -m data_prep.prepare --input_dir=raw/ --output_dir=data/ [--num_workers=N]
  python -m data_prep.prepare ... --runner=direct|dataflow|flink|spark [--beam_options=...]

Writes under --output_dir:
  clean/        mono 22 050 Hz 16-bit WAVs, mirroring the input folders
  tfds/         sharded TFRecords of log-mel/MFCC segments (TFDS-readable)
  stats.json    per-band log-mel mean/std of the train split
  report.json   every input file: used, or skipped and why
  work/         per-file progress; a re-run skips files finished here

Unreadable, silent or too-short files are skipped and reported; the exit
status is non-zero only when no usable segment came out.
"""
import collections
import concurrent.futures
import concurrent.futures.process
import dataclasses
import os
import pathlib
import sys
import time

from absl import app
from absl import flags

from data_prep import cleaning
from data_prep import input_files
from data_prep import report as report_lib
from data_prep import separation
from data_prep import shards
from data_prep import song as song_lib
from data_prep import workers
from melodygan_jax import atomic_files
from melodygan_jax.audio import contract
from melodygan_jax.data import records

FLAGS = flags.FLAGS
BEAM_RUNNERS = ('direct', 'dataflow', 'flink', 'spark')
_DEFAULTS = cleaning.CleaningOptions()


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
  input_dir: str
  output_dir: str
  song: song_lib.SongOptions = song_lib.SongOptions()
  validation_fraction: float = 0.1
  shard_size_mb: float = 128.0
  num_workers: int = 1
  show_progress: bool = True
  runner: str = ''  # '' for the local process pool, else a Beam runner (BEAM_RUNNERS).
  beam_options: str = ''  # Further Beam flags, one string.


def check_options(options: PrepareOptions) -> None:
  """Rejects unusable options before any work.

  Raises:
    ValueError: one line naming the flag and what is wrong.
  """
  input_dir = pathlib.Path(options.input_dir)
  if not input_dir.is_dir():
    raise ValueError(f'--input_dir={options.input_dir}: no such folder')
  if not options.output_dir:
    raise ValueError('--output_dir is required')
  if pathlib.Path(options.output_dir).resolve() == input_dir.resolve():
    raise ValueError('--output_dir must differ from --input_dir')
  if options.song.segment_frames < song_lib.MIN_SEGMENT_FRAMES:
    raise ValueError(f'--segment_frames={options.song.segment_frames}: '
                     f'must be at least {song_lib.MIN_SEGMENT_FRAMES}')
  if not 0.0 <= options.validation_fraction < 1.0:
    raise ValueError(f'--validation_fraction={options.validation_fraction}: must be in [0, 1)')
  if options.num_workers < 1:
    raise ValueError(f'--num_workers={options.num_workers}: must be at least 1')
  if options.shard_size_mb <= 0:
    raise ValueError(f'--shard_size_mb={options.shard_size_mb}: must be positive')
  unknown = set(options.song.separation.stems) - set(contract.STEM_KINDS)
  if unknown or not options.song.separation.stems:
    raise ValueError(f'--stems={",".join(options.song.separation.stems)}: '
                     f'each must be one of {", ".join(contract.STEM_KINDS)}')
  nyquist_hz = contract.SAMPLE_RATE_HZ / 2
  if not 0.0 <= options.song.cleaning.highpass_hz < nyquist_hz / 10:
    raise ValueError(f'--highpass_hz={options.song.cleaning.highpass_hz}: must be in '
                     f'[0, {nyquist_hz / 10:g}) (0 turns the high-pass off)')
  if not 0.0 <= options.song.cleaning.noise_reduction <= 1.0:
    raise ValueError(f'--noise_reduction={options.song.cleaning.noise_reduction}: '
                     'must be in [0, 1]')
  separation.check_options(options.song.separation)
  if options.runner:
    if options.runner not in BEAM_RUNNERS:
      raise ValueError(f'--runner={options.runner}: choose one of {", ".join(BEAM_RUNNERS)} '
                       '(or leave it out for the local process pool)')
    try:
      import apache_beam  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise ValueError(f'--runner={options.runner} needs Apache Beam: '
                       "pip install -e '.[beam]'") from None
  elif options.beam_options:
    raise ValueError('--beam_options needs --runner')


def make_tasks(options: PrepareOptions) -> list[song_lib.SongTask]:
  """One task per input file, with collision-free output names."""
  input_dir = pathlib.Path(options.input_dir)
  output_dir = pathlib.Path(options.output_dir)
  paths = input_files.list_files(input_dir, skip_dir=output_dir)
  stem_index = {}
  separation_options = options.song.separation
  if separation_options.backend == 'stems':
    stem_index, stem_paths = separation.find_stem_files(
        separation_options.stems_dir or str(input_dir))
    paths = [path for path in paths if os.path.realpath(path) not in stem_paths]
  sources = [path.relative_to(input_dir).as_posix() for path in paths]
  bases = [os.path.splitext(source)[0] for source in sources]
  stems_by_song = separation.match_stem_files(bases, stem_index)
  # `a.mp3` and `a.flac` would both become `a.wav`: keep the suffix for those.
  base_counts = collections.Counter(bases)
  tasks = []
  for path, source, base in zip(paths, sources, bases):
    name = source if base_counts[base] > 1 else base
    tasks.append(song_lib.SongTask(
        input_path=str(path), source=source,
        clean_path=str(output_dir / 'clean' / f'{name}.wav'),
        cache_path=str(output_dir / 'work' / name), options=options.song,
        stem_files=stems_by_song.get(base, {})))
  return tasks


def _run_tasks(tasks, options, executor):
  """Runs the unfinished tasks; yields every task's outcome."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  todo = []
  for task in tasks:
    finished = song_lib.load_finished(task)
    if finished is None:
      todo.append(task)
    else:
      yield {**finished, report_lib.REUSED_KEY: True}
  # Longest first, so no worker is left with one long song at the end.
  todo.sort(key=lambda task: -os.path.getsize(task.input_path))
  progress = tqdm(total=len(todo), unit='file', desc='prepare',
                  disable=not options.show_progress or not todo)
  own_executor = None
  if executor is None and todo:
    # Always a worker, even for one file or one worker: the main process has
    # threaded BLAS, whose sums round differently, and a resumed run must
    # write the same bytes whatever was left to do.
    own_executor = executor = workers.make_executor(min(options.num_workers, len(todo)))
  done = set()
  try:
    outcomes = executor.map(song_lib.process_song, todo) if todo else []
    for task, outcome in zip(todo, outcomes):
      done.add(task.source)
      progress.update()
      yield outcome
  except concurrent.futures.process.BrokenProcessPool:
    # A worker died (a decoder crash on a hostile file, or the OOM killer):
    # finish the rest one process per file, so only the culprit is lost.
    for task in todo:
      if task.source not in done:
        progress.update()
        yield song_lib.load_finished(task) or workers.run_isolated(task)
  finally:
    progress.close()
    if own_executor:
      own_executor.shutdown()


def prepare(options: PrepareOptions,
            executor: concurrent.futures.Executor | None = None) -> dict:
  """Runs the whole preparation; returns the report.

  Args:
    options: what to prepare and how; checked first. Without `runner`, in a
      local process pool; with one, as an Apache Beam pipeline
      (data_prep.beam_pipeline), which writes the same data set.
    executor: a pool to run songs on; by default one of `num_workers`
      processes with single-threaded BLAS (also for a single worker).

  Returns:
    The report, also written to report.json.
  """
  check_options(options)
  started = time.perf_counter()
  output_dir = pathlib.Path(options.output_dir)
  tasks = make_tasks(options)
  if options.runner:
    from data_prep import beam_pipeline  # pylint: disable=g-import-not-at-top  # Beam is an extra.
    return beam_pipeline.run(tasks, options, options.runner, options.beam_options)
  outcomes = list(_run_tasks(tasks, options, executor))
  used = [outcome for outcome in outcomes if outcome['status'] == 'used']
  stats = None
  if used:
    stats = shards.write_dataset(
        output_dir, used, {task.source: task.cache_path for task in tasks},
        options.song.segment_frames, options.validation_fraction, options.shard_size_mb)
    atomic_files.write_json(output_dir / records.STATS_FILENAME, stats)
  report = report_lib.build_report(options.input_dir, outcomes, stats,
                                   time.perf_counter() - started, runner='local',
                                   clean_wavs=report_lib.clean_wav_paths(tasks, output_dir))
  report_lib.write_report(output_dir, report)
  return report


def define_flags() -> None:
  """Defines the command line's flags (only when run as a program)."""
  d = _DEFAULTS
  flags.DEFINE_string('input_dir', None, 'Folder of audio files, read recursively.')
  flags.DEFINE_string('output_dir', None, 'Where the data set is written.')
  flags.DEFINE_integer('num_workers', None, 'Worker processes (default: all cores).')
  flags.DEFINE_string('runner', '', 'Run as an Apache Beam pipeline on this runner: '
                      f'{", ".join(BEAM_RUNNERS)} (default: the local process pool).')
  flags.DEFINE_string('beam_options', '', 'With --runner: further Beam pipeline flags, one '
                      'string ("--project=P --region=R --temp_location=gs://B/tmp").')
  flags.DEFINE_enum('separation', 'none', separation.BACKENDS,
                    'Vocal/instrumental separation backend.')
  dsp = separation.DspOptions()
  flags.DEFINE_string('stems_dir', '', "'stems': folder of pre-separated stems "
                      '(default: the input folder).')
  flags.DEFINE_string('uvr_model_dir', '', "'uvr': folder of UVR5 model files (default: "
                      f'{separation.DEFAULT_UVR_MODEL_DIR}); a model not there is downloaded '
                      'into it on first use, which needs network.')
  flags.DEFINE_string('uvr_model', separation.SeparationOptions().uvr_model,
                      "'uvr': model file name.")
  flags.DEFINE_float('dsp_similarity_width_s', dsp.similarity_width_s,
                     "'dsp': repeated frames are at least this far apart.")
  flags.DEFINE_float('dsp_vocal_margin', dsp.vocal_margin, "'dsp': vocal soft-mask margin.")
  flags.DEFINE_bool('dsp_hpss', dsp.hpss, "'dsp': send percussion to the instrumental first.")
  flags.DEFINE_integer('dsp_hpss_kernel', dsp.hpss_kernel, "'dsp': HPSS median filter length.")
  flags.DEFINE_float('dsp_window_s', dsp.window_s, "'dsp': repetition search window.")
  flags.DEFINE_bool('dsp_stereo', dsp.stereo, "'dsp': separate stereo files from both "
                    'channels (the lead vocal is centred); --nodsp_stereo: from the mono mix.')
  flags.DEFINE_float('dsp_centre_power', dsp.centre_power,
                     "'dsp', stereo: higher keeps only the most centred sound as vocals.")
  flags.DEFINE_float('dsp_vocal_low_hz', dsp.vocal_low_hz, "'dsp': vocal band's lower edge.")
  flags.DEFINE_float('dsp_vocal_high_hz', dsp.vocal_high_hz, "'dsp': vocal band's upper edge.")
  flags.DEFINE_bool('dsp_repet', dsp.repet, "'dsp': what repeats (REPET-SIM) goes to the "
                    'instrumental.')
  flags.DEFINE_list('stems', ['mix'], 'Stems in the data set: mix, vocals, instrumental.')
  flags.DEFINE_integer('segment_frames', 256, 'STFT frames per record.')
  flags.DEFINE_float('validation_fraction', 0.1,
                     'Share of songs (by hash of their path) held out.')
  flags.DEFINE_float('shard_size_mb', 128.0, 'Target size of one shard.')
  flags.DEFINE_float('highpass_hz', d.highpass_hz,
                     'High-pass cutoff that removes DC offset and rumble first (0: off).')
  flags.DEFINE_bool('remove_silence', d.remove_silence,
                    'Remove leading, trailing and long inner silences.')
  flags.DEFINE_float('silence_threshold_db', d.silence_threshold_db,
                     'Frames this many dB below the loudest frame are silent.')
  flags.DEFINE_float('min_silence_s', d.min_silence_s, 'Shorter inner silences are kept.')
  flags.DEFINE_bool('normalize_loudness', d.normalize_loudness,
                    'Normalize integrated loudness (BS.1770).')
  flags.DEFINE_float('target_lufs', d.target_lufs, 'Loudness target.')
  flags.DEFINE_float('true_peak_ceiling_dbtp', d.true_peak_ceiling_dbtp,
                     'Gain is lowered so the true peak stays below this.')
  flags.DEFINE_bool('reduce_noise', d.reduce_noise, 'Stationary spectral-gating noise reduction.')
  flags.DEFINE_float('noise_reduction', d.noise_reduction,
                     'Share of the estimated noise removed (0-1).')


def options_from_flags() -> PrepareOptions:
  return PrepareOptions(
      input_dir=FLAGS.input_dir or '',
      output_dir=FLAGS.output_dir or '',
      song=song_lib.SongOptions(
          cleaning=cleaning.CleaningOptions(
              highpass_hz=FLAGS.highpass_hz,
              remove_silence=FLAGS.remove_silence,
              silence_threshold_db=FLAGS.silence_threshold_db,
              min_silence_s=FLAGS.min_silence_s,
              normalize_loudness=FLAGS.normalize_loudness,
              target_lufs=FLAGS.target_lufs,
              true_peak_ceiling_dbtp=FLAGS.true_peak_ceiling_dbtp,
              reduce_noise=FLAGS.reduce_noise,
              noise_reduction=FLAGS.noise_reduction),
          segment_frames=FLAGS.segment_frames,
          separation=separation.SeparationOptions(
              backend=FLAGS.separation, stems=tuple(FLAGS.stems), stems_dir=FLAGS.stems_dir,
              uvr_model_dir=FLAGS.uvr_model_dir, uvr_model=FLAGS.uvr_model,
              dsp=separation.DspOptions(
                  similarity_width_s=FLAGS.dsp_similarity_width_s,
                  vocal_margin=FLAGS.dsp_vocal_margin, hpss=FLAGS.dsp_hpss,
                  hpss_kernel=FLAGS.dsp_hpss_kernel, window_s=FLAGS.dsp_window_s,
                  stereo=FLAGS.dsp_stereo, centre_power=FLAGS.dsp_centre_power,
                  vocal_low_hz=FLAGS.dsp_vocal_low_hz, vocal_high_hz=FLAGS.dsp_vocal_high_hz,
                  repet=FLAGS.dsp_repet))),
      validation_fraction=FLAGS.validation_fraction,
      shard_size_mb=FLAGS.shard_size_mb,
      runner=FLAGS.runner, beam_options=FLAGS.beam_options,
      num_workers=FLAGS.num_workers or os.cpu_count() or 1)


def main(argv):
  if len(argv) > 1:
    sys.exit(f'prepare: unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS.input_dir:
    sys.exit('prepare: --input_dir is required')
  options = options_from_flags()
  try:
    check_options(options)
  except ValueError as e:
    sys.exit(f'prepare: {e}')
  report = prepare(options)
  print(report_lib.summarize(report))
  if report['num_segments'] == 0:
    sys.exit('prepare: no usable audio came out; see report.json for each file')
  print(f'data set: {records.dataset_path(options.output_dir)}')


def run():
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
