"""Throughput of data_prep.prepare on real compressed music vs a naive librosa loop,
where its time goes, its memory on a 3-hour file, and the built-in separator.

  python benchmarks/data_prep_bench.py [--minutes=30] [--long_hours=3] [--skip_separation]

Input: >= 30 minutes of real OGG/Vorbis, files taken in turn from Debian's
drascula-music (44.1 kHz stereo) and singularity-music (48 kHz stereo).
Baseline, same files, same process: for each file librosa.load(sr=22050) +
librosa.feature.melspectrogram + librosa.feature.mfcc, one process.
Measured, all in this invocation on the same files:
  - the per-stage profile of one file's work, before and after this
    version's changes (benchmarks/prepare_profile.py);
  - the full prepare (decode, clean, features, WAVs, TFRecord shards, stats)
    with 1 and 2 worker processes (pools started and warmed first);
  - the prepare command line (start-up included) of this tree and of
    --before_commit (older code), each run whole with 2 workers, and this
    tree's on Beam's DirectRunner (2 threads, each with its worker process);
  - the peak resident memory of the worker and of the main process (which
    writes the shards) on one --long_hours file of 48 kHz stereo 16-bit WAV
    (the real music, looped), from report.json, and the kernel's largest
    resident set of any of the command's processes (GNU time's %M).
Figures are audio-seconds per wall-second ("x real time"). On a machine
shared with other work, absolute figures drop; ratios hold, as both sides
run in the same invocation.

Separation (--separation=dsp): its real-time factor on the first 3 minutes of
the same music, and its SDR improvement over the plain mixture on the demo
corpus (8 songs of 30 s with true stems), beside HPSS alone (harmonic part as
the vocals, percussive part as the instrumental) as a second baseline.
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import librosa  # pylint: disable=wrong-import-position
import soundfile  # pylint: disable=wrong-import-position

from data_prep import demo_corpus  # pylint: disable=wrong-import-position
from data_prep import prepare  # pylint: disable=wrong-import-position
from data_prep import score_separation  # pylint: disable=wrong-import-position
from data_prep import separation  # pylint: disable=wrong-import-position
from data_prep import song  # pylint: disable=wrong-import-position
from data_prep import workers  # pylint: disable=wrong-import-position
from melodygan_jax.audio import audio_io  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
import prepare_profile  # pylint: disable=wrong-import-position
import real_music  # pylint: disable=wrong-import-position

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def naive_librosa(paths) -> None:
  for path in paths:
    samples, _ = librosa.load(str(path), sr=22050)
    # The features of the audio contract, as librosa's examples compute them.
    librosa.feature.melspectrogram(y=samples, sr=22050, n_fft=1024, hop_length=256,
                                   n_mels=contract.NUM_MELS, fmax=contract.MEL_FMAX_HZ)
    librosa.feature.mfcc(y=samples, sr=22050, n_mfcc=contract.NUM_MFCC, n_fft=1024,
                         hop_length=256, n_mels=contract.NUM_MELS, fmax=contract.MEL_FMAX_HZ)


def link_inputs(paths, folder: pathlib.Path) -> pathlib.Path:
  folder.mkdir(parents=True)
  for path in paths:
    (folder / path.name).symlink_to(path)
  return folder


def run_prepare(input_dir, output_dir, num_workers, executor) -> None:
  report = prepare.prepare(prepare.PrepareOptions(
      input_dir=str(input_dir), output_dir=str(output_dir), num_workers=num_workers,
      show_progress=False, song=song.SongOptions()), executor=executor)
  assert report['num_skipped'] == 0, report


def best_of(repeats, fn) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def separation_figures(paths, work: pathlib.Path) -> dict:
  """dsp speed on real music; dsp and HPSS SDR improvement on the demo corpus."""
  samples = audio_io.read_mono(paths[0])[:180 * 22050]
  separation.dsp_vocals(samples[:10 * 22050], separation.DspOptions())  # Warm-up.
  start = time.perf_counter()
  separation.dsp_vocals(samples, separation.DspOptions())
  real_time = len(samples) / 22050 / (time.perf_counter() - start)
  corpus = work / 'demo_corpus'
  demo_corpus.build_corpus(corpus, num_songs=8, seconds=30.0, seed=0)
  gains = {method: {stem: [] for stem in score_separation.STEMS} for method in ('dsp', 'hpss')}
  for index in range(8):
    name = f'song_{index:02d}'
    mix = audio_io.read_mono(corpus / 'songs' / f'{name}.wav')
    references = {stem: audio_io.read_mono(corpus / 'stems' / name / f'{stem}.wav')
                  for stem in score_separation.STEMS}
    baseline = score_separation.score(references, {stem: mix for stem in score_separation.STEMS})
    vocals = separation.dsp_vocals(mix, separation.DspOptions())
    harmonic, percussive = separation.hpss_split(mix)
    estimates = {'dsp': {'vocals': vocals, 'instrumental': mix - vocals},
                 'hpss': {'vocals': harmonic, 'instrumental': percussive}}
    for method, stems in estimates.items():
      scores = score_separation.score(references, stems)
      for stem in score_separation.STEMS:
        gains[method][stem].append(scores[stem]['sdr'] - baseline[stem]['sdr'])
  figures = {'real_time_dsp_separation': round(real_time, 1)}
  for method, stems in gains.items():
    for stem, values in stems.items():
      figures[f'{method}_{stem}_sdr_improvement_db'] = round(float(sum(values) / len(values)), 2)
  return figures


def export_tree(commit: str, folder: pathlib.Path) -> pathlib.Path | None:
  """The code of `commit` (data_prep, melodygan_jax, configs) in `folder`, or None without git."""
  folder.mkdir(parents=True)
  archive = subprocess.run(['git', '-C', str(REPO_ROOT), 'archive', commit, 'data_prep',
                            'melodygan_jax', 'configs'], capture_output=True, check=False)
  if archive.returncode != 0:
    return None
  subprocess.run(['tar', '-x', '-C', str(folder)], input=archive.stdout, check=True)
  return folder


def cli_seconds(tree: pathlib.Path, input_dir, output_dir, *flags: str) -> float:
  """Wall time of the whole prepare command (start-up included) run from `tree`.

  One process per run, as a user runs it; for the Beam DirectRunner this is
  also what keeps runs apart (a second multi-threaded DirectRunner pipeline in
  one process can fail in Beam's own shuffle, "Invalid PaneInfoEncoding",
  Beam 2.77).
  """
  start = time.perf_counter()
  subprocess.run([sys.executable, '-m', 'data_prep.prepare', f'--input_dir={input_dir}',
                  f'--output_dir={output_dir}', '--num_workers=2', *flags], cwd=tree,
                 check=True, env={**os.environ, 'PYTHONPATH': str(tree)}, capture_output=True)
  return time.perf_counter() - start


def write_long_file(paths, hours: float, path: pathlib.Path) -> None:
  """`hours` of 48 kHz stereo 16-bit WAV: the 48 kHz files of `paths`, looped."""
  sources = [p for p in paths if soundfile.info(str(p)).samplerate == 48000]
  needed = int(hours * 3600 * 48000)
  written = 0
  with soundfile.SoundFile(str(path), 'w', 48000, 2, subtype='PCM_16') as f:
    while written < needed:
      for source in sources:
        samples, _ = soundfile.read(str(source), dtype='float32', always_2d=True)
        samples = samples[:needed - written]
        f.write(samples)
        written += len(samples)
        if written >= needed:
          break


def long_file_figures(paths, hours: float, work: pathlib.Path) -> dict:
  """The prepare command on one long file, 1 worker: its worker's peak memory and speed.

  Run as the command line, so the worker holds what a user's does (this
  script's own imports, TensorFlow among them, would inflate it).
  """
  folder = work / 'long_in'
  folder.mkdir()
  write_long_file(paths, hours, folder / 'long_mix.wav')
  output_dir = work / 'long_out'
  # Run from a fresh interpreter that reports the largest resident set of any
  # process it waited for (the command and its workers), as GNU time's %M does.
  largest_of_tree = ('import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, '
                     'capture_output=True); '
                     'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)')
  start = time.perf_counter()
  largest_mb = float(subprocess.run(
      [sys.executable, '-c', largest_of_tree, sys.executable, '-m', 'data_prep.prepare',
       f'--input_dir={folder}', f'--output_dir={output_dir}', '--num_workers=1'],
      cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout)
  seconds = time.perf_counter() - start
  report = json.loads((output_dir / 'report.json').read_text())
  assert report['num_used'] == 1, report
  (folder / 'long_mix.wav').unlink()
  return {'long_file_hours': hours,
          'long_file_worker_peak_rss_mb': report['run']['worker_peak_rss_mb'],
          'long_file_main_peak_rss_mb': report['run']['main_peak_rss_mb'],
          'long_file_largest_process_rss_mb': round(largest_mb, 1),
          'long_file_real_time_1_worker': round(hours * 3600 / seconds, 1)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--minutes', type=float, default=30.0)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--long_hours', type=float, default=3.0,
                      help='length of the memory test file; 0 skips it')
  parser.add_argument('--before_commit', default='5ae9b0c',
                      help='the code the command-line comparison runs as "before"')
  parser.add_argument('--skip_separation', action='store_true')
  args = parser.parse_args()
  paths = real_music.music_files(args.minutes * 60, ('drascula-music', 'singularity-music'))
  audio_s = real_music.total_seconds(paths)
  work = pathlib.Path(tempfile.mkdtemp(prefix='data_prep_bench_'))
  inputs = link_inputs(paths, work / 'in')
  warmup_inputs = link_inputs(paths[:1], work / 'warmup_in')

  with workers.make_executor(1) as profiler:  # A prepare worker's single-threaded BLAS.
    profiler.submit(prepare_profile.profile, paths[:1], 5.0).result()  # Warm-up.
    profile_s, before, after = profiler.submit(prepare_profile.profile, paths).result()
    decoders = profiler.submit(prepare_profile.decoder_comparison, paths[0], str(work)).result()

  # Prepare always works in pool workers: both pools start (and warm up) before timing.
  one_pool = workers.make_executor(1)
  pool = workers.make_executor(2)
  # Warm-up: imports, numba caches, TensorFlow, Beam, and every pool worker.
  naive_librosa(paths[:1])
  run_prepare(warmup_inputs, work / 'warmup_1', 1, one_pool)
  list(pool.map(song.process_song, prepare.make_tasks(prepare.PrepareOptions(
      input_dir=str(work / 'in'), output_dir=str(work / 'warmup_2')))[:2]))

  runs = iter(range(1000))
  naive_s = best_of(args.repeats, lambda: naive_librosa(paths))
  one_s = best_of(args.repeats,
                  lambda: run_prepare(inputs, work / f'one_{next(runs)}', 1, one_pool))
  two_s = best_of(args.repeats,
                  lambda: run_prepare(inputs, work / f'two_{next(runs)}', 2, pool))
  beam_s = min(cli_seconds(REPO_ROOT, inputs, work / f'beam_{i}', '--runner=direct',
                          '--beam_options=--direct_num_workers=2 '
                          '--direct_running_mode=multi_threading')
               for i in range(args.repeats))
  one_pool.shutdown()
  pool.shutdown()
  cli_s = min(cli_seconds(REPO_ROOT, inputs, work / f'cli_after_{i}')
              for i in range(args.repeats))
  before_tree = export_tree(args.before_commit, work / 'before_tree')
  cli_rows = [('command line, 2 workers', cli_s),
              ('command line, Beam DirectRunner, 2', beam_s)]
  if before_tree:
    cli_rows.insert(0, (f'command line, before ({args.before_commit})',
                        min(cli_seconds(before_tree, inputs, work / f'cli_before_{i}')
                            for i in range(args.repeats))))

  print(f'{len(paths)} OGG files, {audio_s / 60:.1f} min of 44.1/48 kHz stereo audio, '
        f'{os.cpu_count()} CPU cores (timings on a shared machine: compare within a table)')
  print()
  print(prepare_profile.table(profile_s, before, after))
  print()
  print(f'decoding 3 min of the same music, x real time: {"format":>6s} {"libsndfile":>11s} '
        f'{"ffmpeg":>8s}')
  for extension, row in decoders.items():
    print(f'{"":44s} {extension:>6s} {row["audio_s"] / row["libsndfile"]:11.0f} '
          f'{row["audio_s"] / row["ffmpeg"]:8.0f}')
  print()
  rows = [('librosa naive loop (1 process)', naive_s), ('prepare, 1 worker', one_s),
          ('prepare, 2 workers', two_s), *cli_rows]
  print(f'{"":40s} {"wall s":>8s} {"x real time":>12s}')
  for name, seconds in rows:
    print(f'{name:40s} {seconds:8.2f} {audio_s / seconds:12.0f}')
  figures = {
      'audio_seconds': round(audio_s, 1),
      'real_time_librosa_naive': round(audio_s / naive_s, 1),
      'real_time_1_worker': round(audio_s / one_s, 1),
      'real_time_2_workers': round(audio_s / two_s, 1),
      'real_time_beam_direct_2': round(audio_s / beam_s, 1),
      'speedup_vs_librosa_naive': round(naive_s / two_s, 3),
      'speedup_1_worker_vs_librosa_naive': round(naive_s / one_s, 3),
      'speedup_command_line_vs_beam_direct': round(beam_s / cli_s, 3),
      'profile_real_time_before': round(profile_s / prepare_profile.default_stages(before), 1),
      'profile_real_time_after': round(profile_s / prepare_profile.default_stages(after), 1),
      'speedup_profile_vs_before': round(prepare_profile.default_stages(before) /
                                         prepare_profile.default_stages(after), 3),
  }
  for extension, row in decoders.items():
    figures[f'speedup_libsndfile_vs_ffmpeg_{extension}'] = round(row['ffmpeg'] / row['libsndfile'], 3)
  if before_tree:
    figures['speedup_command_line_vs_before'] = round(cli_rows[0][1] / cli_s, 3)
  if args.long_hours > 0:
    long_figures = long_file_figures(paths, args.long_hours, work)
    print(f'{args.long_hours:g} h file of 48 kHz stereo WAV, prepare command, 1 worker: peak '
          f'{long_figures["long_file_worker_peak_rss_mb"]:.0f} MB resident in the worker, '
          f'{long_figures["long_file_main_peak_rss_mb"]:.0f} MB in the main process (largest '
          f'process by the kernel: {long_figures["long_file_largest_process_rss_mb"]:.0f} MB), '
          f'{long_figures["long_file_real_time_1_worker"]:.0f}x real time')
    figures.update(long_figures)
  if not args.skip_separation:
    separated = separation_figures(paths, work)
    print(f'dsp separation: {separated["real_time_dsp_separation"]:.0f}x real time (1 process); '
          'SDR improvement over the mixture on the demo corpus, dB:')
    for method in ('dsp', 'hpss'):
      print(f'  {method:5s} vocals {separated[f"{method}_vocals_sdr_improvement_db"]:+6.2f}  '
            f'instrumental {separated[f"{method}_instrumental_sdr_improvement_db"]:+6.2f}')
    figures.update(separated)
  shutil.rmtree(work, ignore_errors=True)
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
