"""What limits inversion from a mel: the magnitude it implies, or the phase found for it.

  python benchmarks/phase_retrieval_probe.py [--num_clips=5] [--clip_seconds=8]
      [--iterations 0 4 8 16] [--dataset_dir=benchmarks/.cache/codec_data]

On vocoder_bench.py's held-out real-music clips, inverts each clip's STFT
from a magnitude and a phase chosen from:
  - magnitude: the NNLS inverse of its log-mel (what Griffin-Lim and the
    vocoder's prior start from), or the clip's true STFT magnitude;
  - phase: 32 iterations of fast Griffin-Lim from random phases (inversion.py),
    the clip's true phase, or phase gradient heap integration (PGHI: Prusa,
    Balazs and Sondergaard, IEEE/ACM TASLP 2017; phase derivatives from the
    log-magnitude's, with the Gaussian that matches a Hann window) followed by
    the same 32 Griffin-Lim iterations;
  - and, for each of --iterations k, fast Griffin-Lim of k iterations from
    random phases, from PGHI, and from PGHI's phase advance per frame summed
    along each bin (no heap: one cumulative sum): how many iterations a better
    start saves at equal quality, which is what a phase prior costs.
Prints the multi-resolution STFT distance and the mel distance of each against
the clip (vocoder_bench.py's figures), and one JSON line. The rows say how far
each ingredient alone can take a mel-to-audio model: the true phase on the NNLS
magnitude, the true magnitude under Griffin-Lim's phase, and whether a better
non-learned phase start (PGHI) closes any of the gap.
"""
import argparse
import functools
import heapq
import json
import os
import pathlib
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

import vocoder_bench  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.audio import inversion  # pylint: disable=wrong-import-position
from melodygan_jax.data import audio_crops  # pylint: disable=wrong-import-position
from melodygan_jax.data import records  # pylint: disable=wrong-import-position

# Coefficients this far below the largest get random phases (as peak_locked_phase's).
_PGHI_TOLERANCE = inversion.PEAK_TOLERANCE


def _phase_derivatives(log_magnitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """inversion.phase_derivatives, in float64 for the heap's long sums."""
  per_frame, per_bin = inversion.phase_derivatives(jnp.asarray(log_magnitude, jnp.float32))
  return np.asarray(per_frame, np.float64), np.asarray(per_bin, np.float64)


def pghi_phase(magnitude: np.ndarray, seed: int = 0) -> np.ndarray:
  """[frames, bins] STFT magnitude -> unit phasors by phase gradient heap integration.

  The STFT's phase is referred to each frame's start (as inversion.stft's), so
  for a Gaussian window the phase advances per frame by 2 pi hop f_inst, with
  f_inst = k / N + N / (2 pi lambda) d(log|X|)/dk, and per bin by
  -(lambda / (hop N)) d(log|X|)/dn - pi. Integration starts at the largest
  coefficient and always continues from the largest one reached (the heap),
  with the trapezoid rule between neighbours.
  """
  log_magnitude = np.log(np.maximum(magnitude, 1e-12))
  per_frame, per_bin = _phase_derivatives(log_magnitude)
  num_frames, num_bins = magnitude.shape
  phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, magnitude.shape)
  done = log_magnitude < log_magnitude.max() + np.log(_PGHI_TOLERANCE)
  order, next_start = np.argsort(-log_magnitude, axis=None), 0
  while True:
    while next_start < order.size and done.flat[order[next_start]]:
      next_start += 1
    if next_start == order.size:
      break
    frame, bin_ = divmod(int(order[next_start]), num_bins)
    phase[frame, bin_], done[frame, bin_] = 0.0, True
    heap = [(-log_magnitude[frame, bin_], frame, bin_)]
    while heap:
      _, n, k = heapq.heappop(heap)
      for m, j in ((n + 1, k), (n - 1, k), (n, k + 1), (n, k - 1)):
        if 0 <= m < num_frames and 0 <= j < num_bins and not done[m, j]:
          step = ((m - n) * (per_frame[n, k] + per_frame[m, j]) if m != n
                  else (j - k) * (per_bin[n, k] + per_bin[m, j]))
          phase[m, j], done[m, j] = phase[n, k] + step / 2, True
          heapq.heappush(heap, (-log_magnitude[m, j], m, j))
  return np.exp(1j * phase)


def frame_integrated_phase(magnitude: np.ndarray) -> np.ndarray:
  """PGHI's phase advance per frame, summed along each bin's frames from zero (no heap, no
  integration across bins): one cumulative sum, as cheap as a compiled program gets."""
  per_frame, _ = _phase_derivatives(np.log(np.maximum(magnitude, 1e-12)))
  steps = (per_frame[1:] + per_frame[:-1]) / 2
  phase = np.concatenate([np.zeros((1, magnitude.shape[1])), np.cumsum(steps, axis=0)])
  return np.exp(1j * phase)


def griffin_lim_from(magnitude: np.ndarray, phase: np.ndarray, iterations: int = 32) -> np.ndarray:
  """inversion.griffin_lim's fast iterations, from a given phase instead of a random one."""
  if iterations == 0:
    return inverse_stft(magnitude, phase)
  found = inversion.griffin_lim_phase(jnp.asarray(magnitude)[None], None, iterations,
                                      initial_phase=jnp.asarray(phase)[None])
  return inverse_stft(magnitude, np.asarray(found[0]))


def inverse_stft(magnitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
  spectrum = jnp.asarray(magnitude * phase)[None]
  return np.asarray(inversion.istft(spectrum, (len(magnitude) - 1) * contract.HOP_LENGTH)[0])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--dataset_dir', default=None,
                      help='A prepared data set (default: vocoder_bench.py\'s real music)')
  parser.add_argument('--num_clips', type=int, default=5)
  parser.add_argument('--clip_seconds', type=float, default=8.0)
  parser.add_argument('--iterations', type=int, nargs='*', default=[0, 4, 8, 16],
                      help='Griffin-Lim iterations after each phase start, beside the 32 rows')
  args = parser.parse_args()
  start = time.perf_counter()
  dataset_dir = (pathlib.Path(args.dataset_dir) if args.dataset_dir
                 else vocoder_bench.prepare_data())
  clip_samples = int(args.clip_seconds * contract.SAMPLE_RATE_HZ) // contract.HOP_LENGTH * (
      contract.HOP_LENGTH)
  held_out = audio_crops.split_audio(str(dataset_dir), records.VALIDATION_SPLIT, clip_samples)
  clips = audio_crops.validation_clips(held_out, clip_samples, args.num_clips)
  names = [path.name for path in held_out.paths[:args.num_clips]]
  rows = {}
  peak_locked = jax.jit(inversion.peak_locked_phase)
  for index, clip in enumerate(clips):
    log_mel = contract.log_mel(clip)
    spectrum = np.asarray(inversion.stft(jnp.asarray(clip)[None], len(log_mel))[0])
    true_magnitude, true_phase = np.abs(spectrum), np.exp(1j * np.angle(spectrum))
    nnls = np.asarray(inversion.mel_to_magnitude(  # As GriffinLimVocoder computes it.
        jnp.exp(jnp.asarray(log_mel))[None], inversion.GriffinLimVocoder().nnls_iterations)[0])
    key = jax.random.fold_in(jax.random.key(0), index)[None]
    nnls_pghi, nnls_frames = pghi_phase(nnls, index), frame_integrated_phase(nnls)
    nnls_peaks = np.asarray(peak_locked(jnp.asarray(nnls)[None])[0])
    candidates = {
        'NNLS magnitude, Griffin-Lim 32': lambda: np.asarray(
            inversion.griffin_lim(jnp.asarray(nnls)[None], key, 32)[0]),
        'NNLS magnitude, true phase': lambda: inverse_stft(nnls, true_phase),
        'NNLS magnitude, PGHI + Griffin-Lim 32': lambda: griffin_lim_from(nnls, nnls_pghi),
        'true magnitude, Griffin-Lim 32': lambda: np.asarray(
            inversion.griffin_lim(jnp.asarray(true_magnitude)[None], key, 32)[0]),
        'true magnitude, PGHI + Griffin-Lim 32': lambda: griffin_lim_from(
            true_magnitude, pghi_phase(true_magnitude, index)),
    }
    # Fewer iterations from a better start: what a phase prior costs at equal quality.
    for iterations in args.iterations:
      candidates[f'NNLS magnitude, Griffin-Lim {iterations}'] = (
          lambda iterations=iterations: np.asarray(
              inversion.griffin_lim(jnp.asarray(nnls)[None], key, iterations)[0]))
      candidates[f'NNLS magnitude, PGHI + Griffin-Lim {iterations}'] = (
          lambda iterations=iterations: griffin_lim_from(nnls, nnls_pghi, iterations))
      candidates[f'NNLS magnitude, frame sum + Griffin-Lim {iterations}'] = (
          lambda iterations=iterations: griffin_lim_from(nnls, nnls_frames, iterations))
      candidates[f'NNLS magnitude, peak-locked + Griffin-Lim {iterations}'] = (
          lambda iterations=iterations: griffin_lim_from(nnls, nnls_peaks, iterations))
    for name, invert in candidates.items():
      rows.setdefault(name, []).append(vocoder_bench.score_clip(None, clip, invert()))

  baseline = 'NNLS magnitude, Griffin-Lim 32'
  print(f'{len(clips)} held-out clips of {args.clip_seconds:.0f} s from {dataset_dir}: '
        + ', '.join(names))
  print(f'{"magnitude, phase":48s} {"MR-STFT":>8s} {"vs GL-32":>9s} {"mel dist":>9s}')
  figures = {'clips': names, 'clip_seconds': args.clip_seconds}
  for name, scores in rows.items():
    mr_stft = float(np.mean([s['mr_stft'] for s in scores]))
    mel_distance = float(np.mean([s['mel_distance'] for s in scores]))
    change = mr_stft / np.mean([s['mr_stft'] for s in rows[baseline]]) - 1
    print(f'{name:48s} {mr_stft:8.3f} {change:+9.1%} {mel_distance:9.3f}')
    key_name = name.replace(', ', '__').replace(' + ', '_').replace(' ', '_').replace('-', '_')
    figures[f'mr_stft__{key_name}'] = round(mr_stft, 4)
    figures[f'mel_distance__{key_name}'] = round(mel_distance, 4)
  # What each start costs, compiled, on the last clip (median of 5 after a warm-up call).
  magnitude = jnp.asarray(nnls)[None]
  timed = {'peak-locked phase': inversion.peak_locked_phase}
  for iterations in sorted(set(args.iterations) | {32}):
    if iterations:
      timed[f'Griffin-Lim {iterations}'] = functools.partial(
          inversion.griffin_lim_phase, rngs=key, iterations=iterations)
  print(f'{"compiled, one clip":48s} {"ms":>8s}')
  for name, function in timed.items():
    milliseconds = vocoder_bench.compiled_median_ms(function, magnitude)
    print(f'{name:48s} {milliseconds:8.1f}')
    figures[f'ms__{name.replace(" ", "_").replace("-", "_")}'] = round(milliseconds, 1)
  figures['wall_s'] = round(time.perf_counter() - start, 1)
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
