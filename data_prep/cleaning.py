"""Cleaning steps applied to every song before features are computed.

Each step is a pure function of mono float samples at the contract's rate.
"""
import dataclasses

import librosa
import numpy as np
import pyloudnorm

from melodygan_jax import audio

# BS.1770's absolute gate: anything quieter has no measurable loudness.
ABSOLUTE_GATE_LUFS = -70.0
_FADE_S = 0.01  # Fades at the joins of removed silences, so joins do not click.
_TRUE_PEAK_BLOCK = 1024


class UnusableAudio(Exception):
  """Audio that decodes but cannot become training data; str() is the reason."""


@dataclasses.dataclass(frozen=True)
class CleaningOptions:
  """How prepare cleans each song (each field is a prepare flag)."""
  remove_silence: bool = True
  silence_threshold_db: float = 60.0  # Below the song's peak RMS.
  min_silence_s: float = 1.0  # Shorter pauses are music, not silence.
  normalize_loudness: bool = True
  target_lufs: float = -18.0
  true_peak_ceiling_dbtp: float = -1.0
  reduce_noise: bool = False
  noise_reduction: float = 0.8  # Share of the estimated noise removed.


def audible_intervals(samples: np.ndarray, threshold_db: float,
                      min_silence_s: float) -> list[tuple[int, int]]:
  """Sample ranges to keep: all but leading, trailing and long inner silences.

  Args:
    samples: mono float samples at the contract's rate.
    threshold_db: frames this far below the loudest frame count as silent
      (librosa.effects.split).
    min_silence_s: inner silences shorter than this are kept.
  """
  # Non-overlapping 93 ms frames: 4x cheaper than librosa's default hop, and
  # fine enough for silences of a second or more.
  intervals = librosa.effects.split(samples, top_db=threshold_db,
                                    frame_length=2048, hop_length=2048)
  min_gap = int(min_silence_s * audio.SAMPLE_RATE_HZ)
  merged = []
  for start, end in intervals:
    if merged and start - merged[-1][1] < min_gap:
      merged[-1] = (merged[-1][0], int(end))
    else:
      merged.append((int(start), int(end)))
  return merged


def keep_intervals(samples: np.ndarray, intervals) -> np.ndarray:
  """Joins the kept ranges, with short fades wherever something was cut."""
  fade = int(_FADE_S * audio.SAMPLE_RATE_HZ)
  pieces = []
  for index, (start, end) in enumerate(intervals):
    piece = samples[start:min(end, len(samples))].copy()
    ramp = np.linspace(0.0, 1.0, min(fade, len(piece) // 2), dtype=np.float32)
    if index > 0 or start > 0:
      piece[:len(ramp)] *= ramp
    if index < len(intervals) - 1 or end < len(samples):
      piece[len(piece) - len(ramp):] *= ramp[::-1]
    pieces.append(piece)
  return np.concatenate(pieces) if pieces else samples[:0]


def remove_silence(samples: np.ndarray, threshold_db: float,
                   min_silence_s: float) -> np.ndarray:
  """Drops leading, trailing and long inner silences; joins the rest with fades."""
  return keep_intervals(samples, audible_intervals(samples, threshold_db, min_silence_s))


def integrated_loudness(samples: np.ndarray) -> float:
  """ITU-R BS.1770-4 integrated loudness in LUFS (-inf for silence)."""
  meter = pyloudnorm.Meter(audio.SAMPLE_RATE_HZ)
  return float(meter.integrated_loudness(samples.astype(np.float64)))


def true_peak_dbtp(samples: np.ndarray) -> float:
  """Peak of the 4x oversampled signal in dBTP (BS.1770-4, annex 2).

  Only blocks whose sample peak is within 6 dB of the whole signal's are
  oversampled: inter-sample peaks of band-limited audio exceed the samples
  around them by far less than that, so no other block can hold the true
  peak. On real music this oversamples 10-40% of the signal.
  """
  num_blocks = -(-len(samples) // _TRUE_PEAK_BLOCK)
  padded = np.zeros(num_blocks * _TRUE_PEAK_BLOCK, np.float32)
  padded[:len(samples)] = np.abs(samples)
  block_peaks = padded.reshape(num_blocks, _TRUE_PEAK_BLOCK).max(axis=1)
  peak = float(block_peaks.max(initial=0.0))
  candidates = block_peaks >= 0.5 * peak
  # Runs of candidate blocks: their starts and (exclusive) ends.
  edges = np.diff(np.concatenate([[0], candidates.astype(np.int8), [0]]))
  margin = 64  # Context so the resampler's edge transients stay outside.
  for start_block, end_block in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
    lo = max(0, start_block * _TRUE_PEAK_BLOCK - margin)
    hi = min(len(samples), end_block * _TRUE_PEAK_BLOCK + margin)
    # soxr's 4x upsampler: ~2x faster than a polyphase FIR of the same quality.
    oversampled = librosa.resample(samples[lo:hi], orig_sr=audio.SAMPLE_RATE_HZ,
                                   target_sr=4 * audio.SAMPLE_RATE_HZ, res_type='soxr_hq')
    inner_lo = 4 * (start_block * _TRUE_PEAK_BLOCK - lo)
    inner_hi = len(oversampled) - 4 * (hi - min(len(samples), end_block * _TRUE_PEAK_BLOCK))
    peak = max(peak, float(np.abs(oversampled[inner_lo:inner_hi]).max(initial=0.0)))
  return 20.0 * np.log10(max(peak, 1e-12))


def loudness_gain(samples: np.ndarray, target_lufs: float,
                  true_peak_ceiling_dbtp: float) -> float:
  """Linear gain to `target_lufs`, lowered if needed to keep under the ceiling.

  Raises:
    UnusableAudio: silence (loudness -inf, which would put NaN into features)
      or a clip shorter than one 400 ms loudness block.
  """
  if len(samples) < int(0.4 * audio.SAMPLE_RATE_HZ):
    raise UnusableAudio('too short to measure loudness (< 0.4 s)')
  loudness = integrated_loudness(samples)
  if not np.isfinite(loudness) or loudness < ABSOLUTE_GATE_LUFS:
    raise UnusableAudio(f'silent: loudness below {ABSOLUTE_GATE_LUFS:.0f} LUFS')
  gain = 10.0 ** ((target_lufs - loudness) / 20.0)
  peak = true_peak_dbtp(samples * np.float32(gain))
  if peak > true_peak_ceiling_dbtp:
    gain *= 10.0 ** ((true_peak_ceiling_dbtp - peak) / 20.0)
  return float(gain)


def normalize_loudness(samples: np.ndarray, target_lufs: float,
                       true_peak_ceiling_dbtp: float) -> np.ndarray:
  """Scales to `target_lufs`, then down if needed to stay under the ceiling."""
  gain = loudness_gain(samples, target_lufs, true_peak_ceiling_dbtp)
  return (samples * np.float32(gain)).astype(np.float32)


def reduce_noise(samples: np.ndarray, strength: float) -> np.ndarray:
  """Stationary spectral gating (noisereduce), for hiss and hum."""
  import noisereduce  # pylint: disable=g-import-not-at-top  # Slow import, rarely on.
  return noisereduce.reduce_noise(
      y=samples, sr=audio.SAMPLE_RATE_HZ, stationary=True,
      prop_decrease=strength).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class CleaningEdits:
  """What `clean` did to a song, so its stems can be given exactly the same."""
  kept_intervals: tuple[tuple[int, int], ...] | None  # None: nothing was cut.
  gain: float


def clean(samples: np.ndarray, options: CleaningOptions) -> tuple[np.ndarray, CleaningEdits]:
  """Runs the enabled steps in order: noise, silence, loudness.

  Returns:
    The cleaned samples, and the edits (cuts and gain) that made them.
  """
  if options.reduce_noise:
    samples = reduce_noise(samples, options.noise_reduction)
  kept = None
  if options.remove_silence:
    kept = tuple(audible_intervals(samples, options.silence_threshold_db, options.min_silence_s))
    samples = keep_intervals(samples, kept)
    if len(samples) == 0:
      raise UnusableAudio('silent: nothing above the silence threshold')
  gain = 1.0
  if options.normalize_loudness:
    gain = loudness_gain(samples, options.target_lufs, options.true_peak_ceiling_dbtp)
    samples = (samples * np.float32(gain)).astype(np.float32)
  elif np.max(np.abs(samples), initial=0.0) == 0.0:
    raise UnusableAudio('silent: all samples are zero')
  return samples, CleaningEdits(kept_intervals=kept, gain=gain)


def apply_edits(samples: np.ndarray, edits: CleaningEdits, options: CleaningOptions) -> np.ndarray:
  """Gives a stem of a song the cuts and gain `clean` gave the song itself."""
  if options.reduce_noise:
    samples = reduce_noise(samples, options.noise_reduction)
  if edits.kept_intervals is not None:
    samples = keep_intervals(samples, edits.kept_intervals)
  return (samples * np.float32(edits.gain)).astype(np.float32)
