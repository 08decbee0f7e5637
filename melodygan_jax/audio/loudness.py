"""Loudness: BS.1770 integrated loudness, true peak and the gain that meets both.

Prepare normalizes every song with these, and reconstruction gives its input
the same level, so a model hears what it was trained on.
"""
import librosa
import numpy as np
import pyloudnorm

from melodygan_jax.audio import contract

# BS.1770's absolute gate: anything quieter has no measurable loudness.
ABSOLUTE_GATE_LUFS = -70.0
TARGET_LUFS = -18.0  # Prepare's default --target_lufs.
TRUE_PEAK_CEILING_DBTP = -1.0  # Prepare's default --true_peak_ceiling_dbtp.
_TRUE_PEAK_BLOCK = 1024


class UnmeasurableLoudness(ValueError):
  """Silence, or a clip shorter than one 400 ms loudness block; str() says which."""


def integrated_loudness(samples: np.ndarray) -> float:
  """ITU-R BS.1770-4 integrated loudness in LUFS (-inf for silence)."""
  meter = pyloudnorm.Meter(contract.SAMPLE_RATE_HZ)
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
    oversampled = librosa.resample(samples[lo:hi], orig_sr=contract.SAMPLE_RATE_HZ,
                                   target_sr=4 * contract.SAMPLE_RATE_HZ, res_type='soxr_hq')
    inner_lo = 4 * (start_block * _TRUE_PEAK_BLOCK - lo)
    inner_hi = len(oversampled) - 4 * (hi - min(len(samples), end_block * _TRUE_PEAK_BLOCK))
    peak = max(peak, float(np.abs(oversampled[inner_lo:inner_hi]).max(initial=0.0)))
  return 20.0 * np.log10(max(peak, 1e-12))


def loudness_gain(samples: np.ndarray, target_lufs: float,
                  true_peak_ceiling_dbtp: float) -> float:
  """Linear gain to `target_lufs`, lowered if needed to keep under the ceiling.

  Raises:
    UnmeasurableLoudness: silence (loudness -inf, which would put NaN into features)
      or a clip shorter than one 400 ms loudness block.
  """
  if len(samples) < int(0.4 * contract.SAMPLE_RATE_HZ):
    raise UnmeasurableLoudness('too short to measure loudness (< 0.4 s)')
  loudness = integrated_loudness(samples)
  if not np.isfinite(loudness) or loudness < ABSOLUTE_GATE_LUFS:
    raise UnmeasurableLoudness(f'silent: loudness below {ABSOLUTE_GATE_LUFS:.0f} LUFS')
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
