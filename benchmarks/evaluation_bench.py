r"""Sound-quality metrics on real music: speed, memory, and whether they separate.

  python benchmarks/evaluation_bench.py [--music_dir=DIR ...] [--max_tracks=N]
      [--clip_seconds=10] [--num_resamples=200] [--visqol_clips=8]

Reads every *.ogg/*.wav/*.flac in the music folders (by default the two
Debian soundtracks), decodes to 22 050 Hz mono and cuts 10 s clips. Then:

1. musicnn embeddings of every clip: clips/s, x real time, peak memory.
2. The real-vs-real floor: two disjoint halves of the clips, whole tracks
   on each side; FAD and KAD on clip embeddings and FAD∞ on 3 s patch
   embeddings, each with a bootstrap interval.
3. The same against trivially bad versions of the second half's clips
   (low-passed at 4 kHz; noise shaped by each clip's spectrum and loudness
   envelope; Griffin-Lim from an 80-band 8 kHz mel): does any interval
   overlap the floor's?
4. ViSQOL, MR-STFT and mel distance time per clip (real vs low-passed).
5. The time and memory those figures imply for 8 hours of audio.
Ends with one JSON line of every figure.
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time
import tracemalloc

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# The distances are many small BLAS calls; on a shared 2-core CPU two OpenBLAS
# threads spin against each other and other processes (10x slower measured).
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import librosa  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import scipy.signal  # pylint: disable=wrong-import-position

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from melodygan_jax.evaluation import clip_plans  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import distances  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import embeddings  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import reconstruction  # pylint: disable=wrong-import-position

SAMPLE_RATE_HZ = 22_050
DEFAULT_MUSIC_DIRS = ('/work/music/x/usr/share/games/singularity/music',
                      '/work/music/x/usr/share/scummvm/drascula/audio')
EIGHT_HOURS_S = 8 * 3600.0


def peak_rss_mb() -> float:
  """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited on exec)."""
  try:
    with open('/proc/self/status') as status:
      for line in status:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_clips(music_dirs, clip_seconds: float, max_tracks: int | None):
  """[num_clips, samples] float32 clips and the track index of each."""
  paths = sorted(p for folder in music_dirs for p in pathlib.Path(folder).glob('*')
                 if p.suffix.lower() in ('.ogg', '.wav', '.flac'))[:max_tracks]
  clip_samples = int(clip_seconds * SAMPLE_RATE_HZ)
  clips, tracks = [], []
  for track, path in enumerate(paths):
    samples, _ = librosa.load(str(path), sr=SAMPLE_RATE_HZ, mono=True)
    for start in range(0, len(samples) - clip_samples + 1, clip_samples):
      clips.append(samples[start:start + clip_samples])
      tracks.append(track)
  return np.stack(clips).astype(np.float32), np.asarray(tracks), len(paths)


def low_passed(clip: np.ndarray, cutoff_hz: float = 4_000.0) -> np.ndarray:
  sos = scipy.signal.butter(8, cutoff_hz, fs=SAMPLE_RATE_HZ, output='sos')
  return scipy.signal.sosfiltfilt(sos, clip).astype(np.float32)


def griffin_lim_from_mel(clip: np.ndarray, seed: int, n_iter: int = 32) -> np.ndarray:
  """The clip through an 80-band, 0-8 kHz magnitude mel and back by Griffin-Lim.

  As the pipeline's own inversion sees it (1024-point STFT, hop 256); the mel
  is undone by the filterbank's pseudo-inverse (clipped at 0), not NNLS, for speed.
  """
  filterbank = librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=1024, n_mels=80, fmax=8_000.0)
  mel = filterbank @ np.abs(librosa.stft(clip, n_fft=1024, hop_length=256))
  magnitude = np.maximum(np.linalg.pinv(filterbank) @ mel, 0.0)
  return librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=256, n_fft=1024,
                            length=len(clip), random_state=seed).astype(np.float32)


def shaped_noise(clip: np.ndarray, seed: int) -> np.ndarray:
  """White noise with the clip's long-term spectrum and its loudness envelope."""
  spectrum = np.abs(librosa.stft(clip, n_fft=2048)).mean(axis=1, keepdims=True)
  envelope = librosa.feature.rms(y=clip, frame_length=2048, hop_length=512)[0]
  noise = np.random.default_rng(seed).standard_normal(len(clip)).astype(np.float32)
  noise_stft = librosa.stft(noise, n_fft=2048, hop_length=512)
  shaped = librosa.istft(noise_stft * spectrum / (np.abs(noise_stft).mean() + 1e-9),
                         hop_length=512, length=len(clip))
  gain = np.interp(np.arange(len(clip)), np.arange(len(envelope)) * 512, envelope)
  shaped *= gain / (np.sqrt(np.mean(shaped**2)) + 1e-9)
  return shaped.astype(np.float32)


def embed_all(embedder, clips_iterable):
  """Per-clip mean embeddings [n, 200], per-patch embeddings [p, 200], clip of each patch."""
  means, patches, owners = [], [], []
  for index, clip_patches in enumerate(embedder.iter_patch_embeddings(clips_iterable,
                                                                      SAMPLE_RATE_HZ)):
    means.append(clip_patches.mean(axis=0))
    patches.append(clip_patches)
    owners.append(np.full(len(clip_patches), index))
  return np.stack(means), np.concatenate(patches), np.concatenate(owners)


def compare(name, reference_clips, reference_patches, reference_owner,
            evaluated_clips, evaluated_patches, evaluated_owner, num_resamples):
  """FAD, KAD (clip level) and FAD∞ (patch level) with bootstrap intervals."""
  seconds = {}
  started = time.perf_counter()
  fad = distances.fad_interval(reference_clips, evaluated_clips, num_resamples=num_resamples,
                               seed=1)
  seconds['fad'] = time.perf_counter() - started
  started = time.perf_counter()
  kad_interval = distances.kad_interval(reference_clips, evaluated_clips,
                                        num_resamples=num_resamples, seed=2)
  seconds['kad'] = time.perf_counter() - started

  def fad_inf(reference, evaluated):
    return distances.fad_infinity(reference, evaluated, num_points=10, seed=3).value
  started = time.perf_counter()
  # Clusters: a clip's patches are resampled together.
  fad_inf_interval = distances.bootstrap_interval(
      fad_inf, reference_patches, evaluated_patches, num_resamples=max(num_resamples // 4, 20),
      seed=4, groups_a=reference_owner, groups_b=evaluated_owner)
  seconds['fad_inf'] = time.perf_counter() - started
  fit = distances.fad_infinity(reference_patches, evaluated_patches, num_points=10, seed=3)
  result = {f'{name}/{metric}_seconds': value for metric, value in seconds.items()}
  for metric, interval in (('fad', fad), ('kad', kad_interval), ('fad_inf', fad_inf_interval)):
    result[f'{name}/{metric}'] = interval.value
    result[f'{name}/{metric}_low'] = interval.low
    result[f'{name}/{metric}_high'] = interval.high
  result[f'{name}/fad_inf_r2'] = fit.r2
  print(f'{name:>16s}: FAD {fad.value:8.3f} [{fad.low:8.3f}, {fad.high:8.3f}]   '
        f'KAD {kad_interval.value:8.3f} [{kad_interval.low:8.3f}, {kad_interval.high:8.3f}]   '
        f'FAD∞ {fad_inf_interval.value:8.3f} [{fad_inf_interval.low:8.3f}, '
        f'{fad_inf_interval.high:8.3f}] (R² {fit.r2:.2f})   {sum(seconds.values()):.1f} s')
  return result, {'fad': fad, 'kad': kad_interval, 'fad_inf': fad_inf_interval}


def embedder_peak_rss_mb(num_clips: int, clip_seconds: float, batch_size: int) -> float:
  """Peak RSS of a fresh process that embeds `num_clips` generated clips, streaming."""
  code = (f'import sys; sys.argv = ["x", "--memory_probe={num_clips}", '
          f'"--clip_seconds={clip_seconds}", "--batch_size={batch_size}"]; '
          f'sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r}); '
          'import evaluation_bench; evaluation_bench.main()')
  output = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                          text=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}).stdout
  return float(output.strip().splitlines()[-1])


def memory_probe(num_clips: int, clip_seconds: float, batch_size: int):
  embedder = embeddings.Embedder(batch_size=batch_size)
  rng = np.random.default_rng(0)
  clips = (0.1 * rng.standard_normal(int(clip_seconds * SAMPLE_RATE_HZ)).astype(np.float32)
           for _ in range(num_clips))
  embedder.embed(clips, SAMPLE_RATE_HZ)
  print(peak_rss_mb())


def time_distances_at_eight_hours(clip_seconds: float, num_resamples: int) -> dict:
  """Times one floor-style comparison of two 8 h sets (random 200-d embeddings).

  Costs do not depend on the values, so Gaussian rows of the right count
  stand in for real ones. FAD∞'s interval runs 10 resamples, scaled to the
  count `compare` uses (its cost is linear in it).
  """
  rng = np.random.default_rng(0)
  num_clips = int(EIGHT_HOURS_S / clip_seconds)
  patches_per_clip = int(clip_seconds // embeddings.PATCH_SECONDS)
  clips_a, clips_b = (rng.standard_normal((num_clips, embeddings.EMBEDDING_DIM))
                      for _ in range(2))
  patches_a, patches_b = (rng.standard_normal((num_clips * patches_per_clip,
                                               embeddings.EMBEDDING_DIM)) for _ in range(2))
  owners = np.repeat(np.arange(num_clips), patches_per_clip)

  def fad_inf(reference, evaluated):
    return distances.fad_infinity(reference, evaluated, num_points=10, seed=3).value
  fad_inf_resamples = max(num_resamples // 4, 20)
  runs = {'fad': lambda: distances.fad_interval(clips_a, clips_b, num_resamples=num_resamples),
          'kad': lambda: distances.kad_interval(clips_a, clips_b, num_resamples=num_resamples),
          'fad_inf': lambda: distances.bootstrap_interval(
              fad_inf, patches_a, patches_b, num_resamples=10, groups_a=owners,
              groups_b=owners)}
  scale = {'fad': 1.0, 'kad': 1.0, 'fad_inf': fad_inf_resamples / 10}
  figures = {}
  tracemalloc.start()  # NumPy reports its buffers to tracemalloc.
  for name, run in runs.items():
    started = time.perf_counter()
    run()
    figures[f'eight_hours_{name}_interval_seconds'] = (
        (time.perf_counter() - started) * scale[name])
  figures['eight_hours_distances_minutes_per_comparison'] = sum(figures.values()) / 60
  figures['eight_hours_distances_peak_mb'] = tracemalloc.get_traced_memory()[1] / 2**20
  tracemalloc.stop()
  return figures


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--music_dir', action='append', default=None)
  parser.add_argument('--max_tracks', type=int, default=None)
  parser.add_argument('--clip_seconds', type=float, default=10.0)
  parser.add_argument('--num_resamples', type=int, default=200)
  parser.add_argument('--visqol_clips', type=int, default=8)
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--griffin_lim', action=argparse.BooleanOptionalAction, default=True,
                      help='Also compare Griffin-Lim-from-mel versions (~1 s a clip).')
  parser.add_argument('--memory_probe', type=int, default=0,
                      help='Internal: embed this many generated clips, print the peak RSS.')
  args = parser.parse_args()
  if args.memory_probe:
    return memory_probe(args.memory_probe, args.clip_seconds, args.batch_size)
  figures = {'cpu_count': os.cpu_count(), 'load_average_1min_at_start': os.getloadavg()[0],
             'openblas_num_threads': os.environ['OPENBLAS_NUM_THREADS']}

  started = time.perf_counter()
  clips, tracks, num_tracks = load_clips(args.music_dir or DEFAULT_MUSIC_DIRS,
                                         args.clip_seconds, args.max_tracks)
  audio_seconds = len(clips) * args.clip_seconds
  figures.update(num_tracks=num_tracks, num_clips=len(clips), audio_seconds=audio_seconds,
                 decode_seconds=time.perf_counter() - started)
  print(f'{len(clips)} clips of {args.clip_seconds:g} s from {num_tracks} tracks '
        f'({audio_seconds / 60:.1f} min), decoded in {figures["decode_seconds"]:.1f} s')

  started = time.perf_counter()
  embedder = embeddings.Embedder(batch_size=args.batch_size)
  embedder.embed(clips[:1], SAMPLE_RATE_HZ)  # Compiles.
  figures['embedder_build_seconds'] = time.perf_counter() - started
  started = time.perf_counter()
  real_clip, real_patch, real_owner = embed_all(embedder, iter(clips))
  embed_seconds = time.perf_counter() - started
  figures.update(
      embed_seconds=embed_seconds, embed_clips_per_second=len(clips) / embed_seconds,
      embed_x_real_time=audio_seconds / embed_seconds,
      embedder_peak_rss_mb_20_clips=embedder_peak_rss_mb(20, args.clip_seconds,
                                                          args.batch_size),
      embedder_peak_rss_mb_400_clips=embedder_peak_rss_mb(400, args.clip_seconds,
                                                           args.batch_size))
  print(f'musicnn: {figures["embed_clips_per_second"]:.2f} clips/s = '
        f'{figures["embed_x_real_time"]:.0f}x real time (build + compile '
        f'{figures["embedder_build_seconds"]:.1f} s); a fresh process embedding 20 / 400 '
        f'clips peaks at {figures["embedder_peak_rss_mb_20_clips"]:.0f} / '
        f'{figures["embedder_peak_rss_mb_400_clips"]:.0f} MB RSS')

  half_a, half_b = clip_plans.split_halves(len(clips), groups=tracks, seed=0)
  figures['half_clips'] = len(half_a)
  patch_mask_a, patch_mask_b = np.isin(real_owner, half_a), np.isin(real_owner, half_b)
  reference = (real_clip[half_a], real_patch[patch_mask_a], real_owner[patch_mask_a])
  print(f'floor: {len(half_a)} clips a side, tracks disjoint')
  result, floor = compare('real_vs_real', *reference, real_clip[half_b],
                          real_patch[patch_mask_b], real_owner[patch_mask_b],
                          args.num_resamples)
  figures.update(result)
  degradations = {'lowpass_4k': lambda i: low_passed(clips[i]),
                  'shaped_noise': lambda i: shaped_noise(clips[i], seed=int(i))}
  if args.griffin_lim:
    degradations['griffin_lim_mel'] = lambda i: griffin_lim_from_mel(clips[i], seed=int(i))
  for name, degrade in degradations.items():
    bad_clip, bad_patch, bad_owner = embed_all(embedder, (degrade(i) for i in half_b))
    result, bad = compare(name, *reference, bad_clip, bad_patch, bad_owner, args.num_resamples)
    figures.update(result)
    for metric in ('fad', 'kad', 'fad_inf'):
      figures[f'{name}/{metric}_overlaps_floor'] = bad[metric].overlaps(floor[metric])
  figures['peak_rss_mb'] = peak_rss_mb()

  visqol = reconstruction.Visqol()
  visqol.score(clips[0][:3 * SAMPLE_RATE_HZ], clips[0][:3 * SAMPLE_RATE_HZ], SAMPLE_RATE_HZ)
  timings = {'visqol': [], 'mr_stft': [], 'mel': []}
  scores = {'visqol': [], 'mr_stft': [], 'mel': []}
  for index in range(min(args.visqol_clips, len(clips))):
    degraded = low_passed(clips[index])
    for name, score in (
        ('visqol', lambda: visqol.score(clips[index], degraded, SAMPLE_RATE_HZ)),
        ('mr_stft', lambda: reconstruction.multi_resolution_stft_distance(
            clips[index], degraded)['total']),
        ('mel', lambda: reconstruction.mel_distance(clips[index], degraded, SAMPLE_RATE_HZ))):
      started = time.perf_counter()
      scores[name].append(score())
      timings[name].append(time.perf_counter() - started)
  for name in timings:
    figures[f'{name}_seconds_per_clip'] = float(np.median(timings[name]))
    figures[f'{name}_lowpass_4k_mean'] = float(np.mean(scores[name]))
  per_clip = figures['visqol_seconds_per_clip'] * 10.0 / args.clip_seconds
  print(f'ViSQOL {per_clip:.2f} s per 10 s clip (low-pass 4 kHz: MOS-LQO '
        f'{figures["visqol_lowpass_4k_mean"]:.2f}); MR-STFT '
        f'{figures["mr_stft_seconds_per_clip"]:.3f} s, mel {figures["mel_seconds_per_clip"]:.3f} s')

  figures.update(time_distances_at_eight_hours(args.clip_seconds, args.num_resamples))
  figures['eight_hours_embed_minutes'] = EIGHT_HOURS_S / figures['embed_x_real_time'] / 60
  figures['eight_hours_visqol_minutes'] = EIGHT_HOURS_S / 10.0 * per_clip / 60
  figures['visqol_clips_in_10_minutes'] = int(600 / per_clip)
  print(f'8 h of audio: embedding ~{figures["eight_hours_embed_minutes"]:.1f} min; FAD, KAD and '
        f'FAD∞ with intervals {figures["eight_hours_distances_minutes_per_comparison"]:.1f} min '
        f'per comparison of two 8 h sets (their arrays peak at '
        f'{figures["eight_hours_distances_peak_mb"]:.0f} MB); ViSQOL '
        f'~{figures["eight_hours_visqol_minutes"]:.0f} min, so use --max_clips '
        f'(~{figures["visqol_clips_in_10_minutes"]} clips fit in 10 min)')
  figures['load_average_1min_at_end'] = os.getloadavg()[0]
  print(json.dumps({k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in figures.items()}))


if __name__ == '__main__':
  main()
