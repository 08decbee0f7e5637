r"""Prepare a folder of songs as a training data set.

  python -m data_prep.prepare --input_dir=raw/ --output_dir=data/ [--num_workers=N]
  python -m data_prep.prepare ... --runner=direct|dataflow|flink|spark [--beam_options=...]
  python -m data_prep.prepare --config=configs/prepare.py --input_dir=raw/ --output_dir=data/ \
      --config.cleaning.target_lufs=-16 --config.dataset.segment_frames=128

The settings are a config (configs/prepare.py, the default --config): any
field can be overridden with --config.SECTION.FIELD=VALUE, and every older
flag (--segment_frames, --separation, --highpass_hz, ...) still sets its
field; a flag given on the command line wins over the config file.

Writes under --output_dir:
  clean/              mono 22 050 Hz 16-bit WAVs, mirroring the input folders
  tfds/               sharded TFRecords of log-mel/MFCC segments (TFDS-readable)
  stats.json          per-band log-mel mean/std of the train split
  report.json         every input file: used, or skipped and why
  prepare_config.json the settings it was made with; a re-run that would
                      change what is written (segment length, cleaning,
                      separation...) is refused, the workers and runner may differ
  work/               per-file progress; a re-run skips files finished here

Unreadable, silent or too-short files are skipped and reported; the exit
status is non-zero only when no usable segment came out.
"""
import collections
import concurrent.futures
import concurrent.futures.process
import dataclasses
import os
import pathlib
import re
import sys
import time
from typing import Any, Mapping

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

from data_prep import cleaning
from data_prep import prepare_config
from data_prep import report as report_lib
from data_prep import separation
from data_prep import shards
from data_prep import song as song_lib
from data_prep import workers
from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax import input_files
from melodygan_jax.audio import contract
from melodygan_jax.data import records

FLAGS = flags.FLAGS
BEAM_RUNNERS = ('direct', 'dataflow', 'flink', 'spark')
# configs/ sits beside data_prep/ in a checkout and in an installed package alike.
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              'configs', 'prepare.py')


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


def check_options(options: PrepareOptions, flag_names: Mapping[str, str] | None = None) -> None:
  """Rejects unusable options before any work.

  Args:
    options: what to check.
    flag_names: how the messages name each older flag (`--highpass_hz`, or the
      `--config.cleaning.highpass_hz` it was set through: prepare_config.flag_names);
      by default the flag.

  Raises:
    ValueError: one line naming the flag and what is wrong; also when OUT holds
      a data set made with other output-changing settings.
  """
  name = lambda flag: (flag_names or {}).get(flag, f'--{flag}')
  input_dir = pathlib.Path(options.input_dir)
  if not input_dir.is_dir():
    raise errors.ConfigError(f'{name("input_dir")}={options.input_dir}: no such folder')
  if not options.output_dir:
    raise errors.ConfigError(f'{name("output_dir")} is required')
  if pathlib.Path(options.output_dir).resolve() == input_dir.resolve():
    raise errors.ConfigError(f'{name("output_dir")} must differ from {name("input_dir")}')
  if options.song.segment_frames < song_lib.MIN_SEGMENT_FRAMES:
    raise errors.ConfigError(f'{name("segment_frames")}={options.song.segment_frames}: '
                     f'must be at least {song_lib.MIN_SEGMENT_FRAMES}')
  if not 0.0 <= options.validation_fraction < 1.0:
    raise errors.ConfigError(f'{name("validation_fraction")}={options.validation_fraction}: '
                     'must be in [0, 1)')
  if options.num_workers < 1:
    raise errors.ConfigError(f'{name("num_workers")}={options.num_workers}: must be at least 1')
  if options.shard_size_mb <= 0:
    raise errors.ConfigError(f'{name("shard_size_mb")}={options.shard_size_mb}: must be positive')
  unknown = set(options.song.separation.stems) - set(contract.STEM_KINDS)
  if unknown or not options.song.separation.stems:
    raise errors.ConfigError(f'{name("stems")}={",".join(options.song.separation.stems)}: '
                     f'each must be one of {", ".join(contract.STEM_KINDS)}')
  check_cleaning(options.song.cleaning, name)
  separation.check_options(options.song.separation, flag_names)
  if options.runner:
    if options.runner not in BEAM_RUNNERS:
      raise errors.ConfigError(f'{name("runner")}={options.runner}: choose one of '
                       f'{", ".join(BEAM_RUNNERS)} (or leave it out for the local process pool)')
    try:
      import apache_beam  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise errors.ConfigError(f'{name("runner")}={options.runner} needs Apache Beam: '
                       "pip install -e '.[beam]'") from None
  elif options.beam_options:
    raise errors.ConfigError(f'{name("beam_options")} needs {name("runner")}')
  prepare_config.check_unchanged(options.output_dir, settings_of(options), flag_names)


def check_cleaning(options: cleaning.CleaningOptions, name) -> None:
  """The cleaning settings' ranges; `name(flag)` is how a message names a flag."""
  nyquist_hz = contract.SAMPLE_RATE_HZ / 2
  if not 0.0 <= options.highpass_hz < nyquist_hz / 10:
    raise errors.ConfigError(f'{name("highpass_hz")}={options.highpass_hz}: must be in '
                     f'[0, {nyquist_hz / 10:g}) (0 turns the high-pass off)')
  if options.silence_threshold_db <= 0:
    raise errors.ConfigError(f'{name("silence_threshold_db")}={options.silence_threshold_db}: must be '
                     'positive (dB below the loudest frame)')
  if options.min_silence_s < 0:
    raise errors.ConfigError(f'{name("min_silence_s")}={options.min_silence_s}: must be at least 0')
  if options.target_lufs >= 0:
    raise errors.ConfigError(f'{name("target_lufs")}={options.target_lufs}: must be negative '
                     '(music is mastered at about -23 to -9 LUFS)')
  if options.true_peak_ceiling_dbtp > 0:
    raise errors.ConfigError(f'{name("true_peak_ceiling_dbtp")}={options.true_peak_ceiling_dbtp}: '
                     'must be at most 0 (full scale)')
  if not 0.0 <= options.noise_reduction <= 1.0:
    raise errors.ConfigError(f'{name("noise_reduction")}={options.noise_reduction}: must be in [0, 1]')


def options_from_config(config: ml_collections.ConfigDict) -> PrepareOptions:
  """The options a config (configs/prepare.py's shape) asks for.

  Args:
    config: the resolved config; `run.num_workers` 0 means one per core.

  Returns:
    The options, unchecked (check_options).
  """
  separation_fields = {name: value for name, value in config.separation.items() if name != 'dsp'}
  return PrepareOptions(
      input_dir=config.input_dir, output_dir=config.output_dir,
      song=song_lib.SongOptions(
          cleaning=cleaning.CleaningOptions(**config.cleaning),
          segment_frames=config.dataset.segment_frames,
          separation=separation.SeparationOptions(
              **{**separation_fields,
                 'stems': prepare_config.split_stems(config.separation.stems)},
              dsp=separation.DspOptions(**config.separation.dsp))),
      validation_fraction=config.dataset.validation_fraction,
      shard_size_mb=config.dataset.shard_size_mb,
      num_workers=config.run.num_workers or os.cpu_count() or 1,
      show_progress=config.run.show_progress,
      runner=config.run.runner, beam_options=config.run.beam_options)


def settings_of(options: PrepareOptions) -> dict[str, Any]:
  """The options as configs/prepare.py lays them out: what prepare_config.json holds."""
  song = dataclasses.asdict(options.song)
  for folder in ('stems_dir', 'uvr_model_dir'):
    song['separation'][folder] = _absolute(song['separation'][folder])
  return {
      'input_dir': _absolute(options.input_dir),
      'output_dir': _absolute(options.output_dir),
      'dataset': {'segment_frames': options.song.segment_frames,
                  'validation_fraction': options.validation_fraction,
                  'shard_size_mb': options.shard_size_mb},
      'cleaning': song['cleaning'],
      'separation': song['separation'],
      'run': {'num_workers': options.num_workers, 'runner': options.runner,
              'beam_options': options.beam_options, 'show_progress': options.show_progress},
  }


def _absolute(path: str) -> str:
  return os.path.abspath(path) if path and not atomic_files.is_url(path) else path


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


def _size_or_zero(path: str) -> int:
  """The file's size; 0 for a broken link or a file gone since the listing (its worker
  reports it as skipped)."""
  try:
    return os.path.getsize(path)
  except OSError:
    return 0


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
  todo.sort(key=lambda task: -_size_or_zero(task.input_path))
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
    options: what to prepare and how; checked first, then written to
      OUT/prepare_config.json. Without `runner`, in a local process pool; with
      one, as an Apache Beam pipeline (data_prep.beam_pipeline), which writes
      the same data set.
    executor: a pool to run songs on; by default one of `num_workers`
      processes with single-threaded BLAS (also for a single worker).

  Returns:
    The report, also written to report.json.
  """
  check_options(options)
  started = time.perf_counter()
  output_dir = pathlib.Path(options.output_dir)
  # First, so a run stopped half-way still says what it was making (and a resume
  # with other settings is refused).
  prepare_config.write(options.output_dir, settings_of(options))
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


def define_flags(flag_values: flags.FlagValues = FLAGS, argv: list[str] | None = None) -> None:
  """Defines the command line's flags (only when run as a program).

  Args:
    flag_values: where to define them.
    argv: the command line the `--config.` overrides are read from (default:
      sys.argv, when parsed).
  """
  config_flags.DEFINE_config_file(
      'config', DEFAULT_CONFIG, 'The settings: a config file (default: configs/prepare.py); '
      'override a field with --config.SECTION.FIELD=VALUE.', flag_values=flag_values,
      lock_config=True, sys_argv=argv)

  def define(kind, name: str, help_string: str, **kwargs) -> None:
    # No default: a flag left out leaves its field to the config.
    kind(name, None, help=f'{help_string} Sets config.{prepare_config.FLAG_FIELDS[name]}.',
         flag_values=flag_values, **kwargs)

  define(flags.DEFINE_string, 'input_dir', 'Folder of audio files, read recursively.')
  define(flags.DEFINE_string, 'output_dir', 'Where the data set is written.')
  define(flags.DEFINE_integer, 'num_workers', 'Worker processes (default: all cores).')
  define(flags.DEFINE_string, 'runner', 'Run as an Apache Beam pipeline on this runner: '
         f'{", ".join(BEAM_RUNNERS)} (default: the local process pool).')
  define(flags.DEFINE_string, 'beam_options', 'With --runner: further Beam pipeline flags, one '
         'string ("--project=P --region=R --temp_location=gs://B/tmp").')
  define(flags.DEFINE_enum, 'separation', 'Vocal/instrumental separation backend.',
         enum_values=separation.BACKENDS)
  define(flags.DEFINE_string, 'stems_dir', "'stems': folder of pre-separated stems "
         '(default: the input folder).')
  define(flags.DEFINE_string, 'uvr_model_dir', "'uvr': folder of UVR5 model files (default: "
         f'{separation.DEFAULT_UVR_MODEL_DIR}); a model not there is downloaded into it on '
         'first use, which needs network.')
  define(flags.DEFINE_string, 'uvr_model', "'uvr': model file name.")
  define(flags.DEFINE_float, 'dsp_similarity_width_s',
         "'dsp': repeated frames are at least this far apart.")
  define(flags.DEFINE_float, 'dsp_vocal_margin', "'dsp': vocal soft-mask margin.")
  define(flags.DEFINE_bool, 'dsp_hpss', "'dsp': send percussion to the instrumental first.")
  define(flags.DEFINE_integer, 'dsp_hpss_kernel', "'dsp': HPSS median filter length.")
  define(flags.DEFINE_float, 'dsp_window_s', "'dsp': repetition search window.")
  define(flags.DEFINE_bool, 'dsp_stereo', "'dsp': separate stereo files from both channels "
         '(the lead vocal is centred); --nodsp_stereo: from the mono mix.')
  define(flags.DEFINE_float, 'dsp_centre_power',
         "'dsp', stereo: higher keeps only the most centred sound as vocals.")
  define(flags.DEFINE_float, 'dsp_vocal_low_hz', "'dsp': vocal band's lower edge.")
  define(flags.DEFINE_float, 'dsp_vocal_high_hz', "'dsp': vocal band's upper edge.")
  define(flags.DEFINE_bool, 'dsp_repet', "'dsp': what repeats (REPET-SIM) goes to the "
         'instrumental.')
  define(flags.DEFINE_list, 'stems', 'Stems in the data set: mix, vocals, instrumental.')
  define(flags.DEFINE_integer, 'segment_frames', 'STFT frames per record.')
  define(flags.DEFINE_float, 'validation_fraction',
         'Share of songs (by hash of their path) held out.')
  define(flags.DEFINE_float, 'shard_size_mb', 'Target size of one shard.')
  define(flags.DEFINE_float, 'highpass_hz',
         'High-pass cutoff that removes DC offset and rumble first (0: off).')
  define(flags.DEFINE_bool, 'remove_silence', 'Remove leading, trailing and long inner silences.')
  define(flags.DEFINE_float, 'silence_threshold_db',
         'Frames this many dB below the loudest frame are silent.')
  define(flags.DEFINE_float, 'min_silence_s', 'Shorter inner silences are kept.')
  define(flags.DEFINE_bool, 'normalize_loudness', 'Normalize integrated loudness (BS.1770).')
  define(flags.DEFINE_float, 'target_lufs', 'Loudness target.')
  define(flags.DEFINE_float, 'true_peak_ceiling_dbtp',
         'Gain is lowered so the true peak stays below this.')
  define(flags.DEFINE_bool, 'reduce_noise', 'Stationary spectral-gating noise reduction.')
  define(flags.DEFINE_float, 'noise_reduction', 'Share of the estimated noise removed (0-1).')


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> ml_collections.ConfigDict:
  """The resolved config: the --config file, its overrides, then the older flags given.

  Raises:
    ValueError: one line, when a flag and a --config. override disagree.
  """
  return prepare_config.apply_flags(flag_values.config, flag_values)


def one_line_flag_error(error: Exception, argv: list[str]) -> str:
  """A command line that does not parse, said in one line (ml_collections' messages
  span several, and a mistyped config field's suggestion comes quoted and escaped)."""
  suggestion = re.search(r'Did you mean "(\w+)" instead of "(\w+)"', str(error))
  if suggestion:
    typed = next((arg.split('=')[0].lstrip('-') for arg in argv
                  if re.search(rf'\.{suggestion[2]}$', arg.split('=')[0])), suggestion[2])
    return f'--{typed}: no such config field (did you mean {suggestion[1]}?)'
  return ' '.join(str(error).split())


# A value that does not parse, a mistyped config field, a config file that does not load.
_FLAG_ERRORS = (flags.Error, AttributeError, KeyError, OSError)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parse, its failures one line each."""
  try:
    return FLAGS(argv)
  except _FLAG_ERRORS as e:
    sys.exit(f'prepare: {one_line_flag_error(e, argv)}')


def main(argv):
  with errors.exit_on_user_error('prepare'):
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    try:
      config = config_from_flags()
    except ValueError as e:
      raise errors.ConfigError(str(e)) from e
    except OSError as e:  # ml_collections reports a config file that did not load at first use.
      raise errors.UserError(
          f'--config={config_flags.get_config_filename(FLAGS["config"])}: '
          f'{str(e).strip().splitlines()[-1].strip()}') from e
    if not config.input_dir:
      raise errors.UserError('--input_dir is required')
    options = options_from_config(config)
    check_options(options, prepare_config.flag_names(FLAGS))
    report = prepare(options)
    print(report_lib.summarize(report))
    if report['num_segments'] == 0:
      raise errors.UserError('no usable audio came out; see report.json for each file')
  print(f'data set: {records.dataset_path(options.output_dir)}')


def run():
  try:
    # The default config is read here, with the --config. overrides of sys.argv.
    define_flags()
  except _FLAG_ERRORS as e:
    sys.exit(f'prepare: {one_line_flag_error(e, sys.argv)}')
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
