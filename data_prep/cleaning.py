"""Cleaning steps applied to every song before features are computed.

Each step is a pure function of mono float samples at the contract's rate.
"""
import dataclasses

import librosa
import numpy as np

from melodygan_jax.audio import contract
from melodygan_jax.audio import loudness
_FADE_S = 0.01  # Fades at the joins of removed silences, so joins do not click.


class UnusableAudio(Exception):
  """Audio that decodes but cannot become training data; str() is the reason."""


@dataclasses.dataclass(frozen=True)
class CleaningOptions:
  """How prepare cleans each song (each field is a prepare flag)."""
  remove_silence: bool = True
  silence_threshold_db: float = 60.0  # Below the song's peak RMS.
  min_silence_s: float = 1.0  # Shorter pauses are music, not silence.
  normalize_loudness: bool = True
  target_lufs: float = loudness.TARGET_LUFS
  true_peak_ceiling_dbtp: float = loudness.TRUE_PEAK_CEILING_DBTP
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
  min_gap = int(min_silence_s * contract.SAMPLE_RATE_HZ)
  merged = []
  for start, end in intervals:
    if merged and start - merged[-1][1] < min_gap:
      merged[-1] = (merged[-1][0], int(end))
    else:
      merged.append((int(start), int(end)))
  return merged


def keep_intervals(samples: np.ndarray, intervals) -> np.ndarray:
  """Joins the kept ranges, with short fades wherever something was cut."""
  fade = int(_FADE_S * contract.SAMPLE_RATE_HZ)
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


def reduce_noise(samples: np.ndarray, strength: float) -> np.ndarray:
  """Stationary spectral gating (noisereduce), for hiss and hum."""
  import noisereduce  # pylint: disable=g-import-not-at-top  # Slow import, rarely on.
  return noisereduce.reduce_noise(
      y=samples, sr=contract.SAMPLE_RATE_HZ, stationary=True,
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
    try:
      gain = loudness.loudness_gain(samples, options.target_lufs, options.true_peak_ceiling_dbtp)
    except loudness.UnmeasurableLoudness as e:
      raise UnusableAudio(str(e)) from e
    samples = np.asarray(samples, np.float32) * np.float32(gain)
  elif np.max(np.abs(samples), initial=0.0) == 0.0:
    raise UnusableAudio('silent: all samples are zero')
  return samples, CleaningEdits(kept_intervals=kept, gain=gain)


def apply_edits(samples: np.ndarray, edits: CleaningEdits, options: CleaningOptions) -> np.ndarray:
  """Gives a stem of a song the cuts and gain `clean` gave the song itself."""
  if options.reduce_noise:
    samples = reduce_noise(samples, options.noise_reduction)
  if edits.kept_intervals is not None:
    samples = keep_intervals(samples, edits.kept_intervals)
  return np.asarray(samples, np.float32) * np.float32(edits.gain)
