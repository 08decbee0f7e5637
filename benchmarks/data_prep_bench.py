"""Throughput of data_prep.prepare on real compressed music vs a naive librosa loop,
and the built-in separator's speed and quality.

  python benchmarks/data_prep_bench.py [--minutes=10] [--skip_separation]

Input: >= 10 minutes of 44.1 kHz stereo OGG (Debian's drascula-music).
Baseline, same files, same process: for each file librosa.load(sr=22050) +
librosa.feature.melspectrogram + librosa.feature.mfcc, one process.
Measured: the full prepare (decode, clean, features, TFRecord shards, stats)
with 1 worker and with 2 worker processes (a pool started and warmed first).
Figures are audio-seconds per wall-second ("x real time").

Separation (--separation=dsp): its real-time factor on the first 3 minutes of
the same music, and its SDR improvement over the plain mixture on the demo
corpus (8 songs of 30 s with true stems), beside HPSS alone (harmonic part as
the vocals, percussive part as the instrumental) as a second baseline.
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import librosa  # pylint: disable=wrong-import-position

from data_prep import demo_corpus  # pylint: disable=wrong-import-position
from data_prep import prepare  # pylint: disable=wrong-import-position
from data_prep import score_separation  # pylint: disable=wrong-import-position
from data_prep import separation  # pylint: disable=wrong-import-position
from data_prep import song  # pylint: disable=wrong-import-position
from data_prep import workers  # pylint: disable=wrong-import-position
from melodygan_jax.audio import audio_io  # pylint: disable=wrong-import-position
import real_music  # pylint: disable=wrong-import-position


def naive_librosa(paths) -> None:
  for path in paths:
    samples, _ = librosa.load(str(path), sr=22050)
    librosa.feature.melspectrogram(y=samples, sr=22050, n_fft=1024, hop_length=256,
                                   n_mels=80, fmax=8000)
    librosa.feature.mfcc(y=samples, sr=22050, n_mfcc=20, n_fft=1024, hop_length=256,
                         n_mels=80, fmax=8000)


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


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--minutes', type=float, default=10.0)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--skip_separation', action='store_true')
  args = parser.parse_args()
  paths = real_music.music_files(args.minutes * 60)
  audio_s = real_music.total_seconds(paths)
  work = pathlib.Path(tempfile.mkdtemp(prefix='data_prep_bench_'))
  inputs = link_inputs(paths, work / 'in')
  warmup_inputs = link_inputs(paths[:1], work / 'warmup_in')

  # Prepare always works in pool workers: both pools start (and warm up) before timing.
  one_pool = workers.make_executor(1)
  pool = workers.make_executor(2)
  # Warm-up: imports, numba caches, TensorFlow, and every pool worker.
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
  one_pool.shutdown()
  pool.shutdown()

  rows = [('librosa naive loop (1 process)', naive_s), ('prepare, 1 worker', one_s),
          ('prepare, 2 workers', two_s)]
  print(f'{len(paths)} OGG files, {audio_s / 60:.1f} min of 44.1 kHz stereo audio, '
        f'{os.cpu_count()} CPU cores')
  print(f'{"":34s} {"wall s":>8s} {"x real time":>12s}')
  for name, seconds in rows:
    print(f'{name:34s} {seconds:8.2f} {audio_s / seconds:12.0f}')
  figures = {
      'audio_seconds': round(audio_s, 1),
      'real_time_librosa_naive': round(audio_s / naive_s, 1),
      'real_time_1_worker': round(audio_s / one_s, 1),
      'real_time_2_workers': round(audio_s / two_s, 1),
      'speedup_vs_librosa_naive': round(naive_s / two_s, 3),
      'speedup_1_worker_vs_librosa_naive': round(naive_s / one_s, 3),
  }
  if not args.skip_separation:
    separated = separation_figures(paths, work)
    print(f'dsp separation: {separated["real_time_dsp_separation"]:.0f}x real time (1 process); '
          'SDR improvement over the mixture on the demo corpus, dB:')
    for method in ('dsp', 'hpss'):
      print(f'  {method:5s} vocals {separated[f"{method}_vocals_sdr_improvement_db"]:+6.2f}  '
            f'instrumental {separated[f"{method}_instrumental_sdr_improvement_db"]:+6.2f}')
    figures.update(separated)
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
