"""Cleaning steps applied to every song before features are computed.

Each step is a pure function of mono float samples at the contract's rate.
"""
import dataclasses

import librosa
import numpy as np
import scipy.ndimage
import scipy.signal

from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.audio import loudness

_FADE_S = 0.01  # Fades at the joins of removed silences, so joins do not click.
_MOVE_SAMPLES = 2**20  # Moved per step when cutting in place.


class UnusableAudio(errors.UserError):
  """Audio that decodes but cannot become training data; str() is the reason."""


@dataclasses.dataclass(frozen=True)
class CleaningOptions:
  """How prepare cleans each song (each field is config.cleaning.FIELD and a prepare flag)."""
  # DC offset and sub-sonic rumble go first: no mel band holds them (the DC bin has
  # no weight), yet they leak into the lowest band, eat headroom under the true-peak
  # ceiling and hide silences. 0 keeps them.
  highpass_hz: float = 20.0
  remove_silence: bool = True
  silence_threshold_db: float = 60.0  # Below the song's peak RMS.
  min_silence_s: float = 1.0  # Shorter pauses are music, not silence.
  normalize_loudness: bool = True
  target_lufs: float = loudness.TARGET_LUFS
  true_peak_ceiling_dbtp: float = loudness.TRUE_PEAK_CEILING_DBTP
  reduce_noise: bool = False
  noise_reduction: float = 0.8  # Share of the estimated noise removed.


_SILENCE_FRAME = 2048  # Non-overlapping 93 ms frames: 4x cheaper than librosa's default hop.
_CHUNK_FRAMES = 512  # Silence frames measured per step: bounds the temporary copies.


def frame_rms(samples: np.ndarray, frame_length: int = _SILENCE_FRAME) -> np.ndarray:
  """librosa.feature.rms(center=True) with hop = frame, computed piece by piece.

  Each frame's value is librosa's own (the same frames, the same arithmetic);
  only the zero-padded copy of the whole signal that librosa makes is avoided.
  """
  half = frame_length // 2
  num_frames = 1 + len(samples) // frame_length
  values = []
  for first in range(0, num_frames, _CHUNK_FRAMES):
    count = min(_CHUNK_FRAMES, num_frames - first)
    lo, hi = first * frame_length - half, (first + count) * frame_length - half
    piece = np.zeros(hi - lo, np.float32)
    piece[max(0, -lo):max(0, -lo) + len(samples[max(lo, 0):hi])] = samples[max(lo, 0):hi]
    values.append(librosa.feature.rms(y=piece, frame_length=frame_length,
                                      hop_length=frame_length, center=False)[0])
  return np.concatenate(values)


def audible_intervals(samples: np.ndarray, threshold_db: float,
                      min_silence_s: float) -> list[tuple[int, int]]:
  """Sample ranges to keep: all but leading, trailing and long inner silences.

  Args:
    samples: mono float samples at the contract's rate.
    threshold_db: frames this far below the loudest frame count as silent
      (as librosa.effects.split decides, over the whole signal).
    min_silence_s: inner silences shorter than this are kept.

  Returns:
    (start, end) sample ranges, in order.
  """
  rms = frame_rms(samples)
  non_silent = librosa.amplitude_to_db(rms, ref=np.max, top_db=None) > -threshold_db
  # librosa.effects.split's edges, from the frames' verdicts.
  edges = [np.flatnonzero(np.diff(non_silent.astype(int))) + 1]
  if non_silent[0]:
    edges.insert(0, np.array([0]))
  if non_silent[-1]:
    edges.append(np.array([len(non_silent)]))
  edges = np.minimum(np.concatenate(edges) * _SILENCE_FRAME, len(samples)).reshape(-1, 2)
  min_gap = int(min_silence_s * contract.SAMPLE_RATE_HZ)
  merged = []
  for start, end in edges:
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


def keep_intervals_in_place(samples: np.ndarray, intervals) -> np.ndarray:
  """`keep_intervals`, written over `samples` itself: no second copy of a long song.

  Returns:
    A view of the start of `samples` holding the kept audio (the rest of
    `samples` is left over).
  """
  fade = int(_FADE_S * contract.SAMPLE_RATE_HZ)
  written = 0
  for index, (start, end) in enumerate(intervals):
    end = min(end, len(samples))
    if start != written:  # Kept audio only moves left, so a forward copy is safe.
      for offset in range(0, end - start, _MOVE_SAMPLES):
        piece = samples[start + offset:min(end, start + offset + _MOVE_SAMPLES)]
        samples[written + offset:written + offset + len(piece)] = piece
    piece = samples[written:written + end - start]
    ramp = np.linspace(0.0, 1.0, min(fade, len(piece) // 2), dtype=np.float32)
    if index > 0 or start > 0:
      piece[:len(ramp)] *= ramp
    if index < len(intervals) - 1 or end < len(samples):
      piece[len(piece) - len(ramp):] *= ramp[::-1]
    written += end - start
  return samples[:written]


def remove_silence(samples: np.ndarray, threshold_db: float,
                   min_silence_s: float) -> np.ndarray:
  """Drops leading, trailing and long inner silences; joins the rest with fades."""
  return keep_intervals(samples, audible_intervals(samples, threshold_db, min_silence_s))


_HIGHPASS_ORDER = 2  # 12 dB/octave: bass at 40 Hz loses 0.3 dB, at 30 Hz 0.8 dB.
_HIGHPASS_LEAD_IN = 1024  # Samples whose mean is taken as the level before the file.


def remove_rumble(samples: np.ndarray, cutoff_hz: float, in_place: bool = False) -> np.ndarray:
  """A Butterworth high-pass at `cutoff_hz`: DC offset and rumble removed.

  Runs through scipy's `sosfilt` in float32, a chunk at a time with the filter's
  state carried over (the same samples as one call); in place when asked, so a
  long song is not copied. The filter starts settled at the level of the file's
  first 46 ms, so a file with a DC offset does not begin with a thump.
  """
  sos = scipy.signal.butter(_HIGHPASS_ORDER, cutoff_hz, 'highpass', fs=contract.SAMPLE_RATE_HZ,
                            output='sos').astype(np.float32)
  lead_in = np.mean(samples[:_HIGHPASS_LEAD_IN], dtype=np.float64) if len(samples) else 0.0
  state = (scipy.signal.sosfilt_zi(sos) * lead_in).astype(np.float32)
  out = samples if in_place else np.empty(len(samples), np.float32)
  for start in range(0, len(samples), _MOVE_SAMPLES):
    piece = np.asarray(samples[start:start + _MOVE_SAMPLES], np.float32)
    out[start:start + len(piece)], state = scipy.signal.sosfilt(sos, piece, zi=state)
  return out


_NOISE_FFT = 1024  # noisereduce's own STFT size.
_NOISE_FRAMES = 2_000  # Frames spread over a song to find its noise floor: bounded work.
# Gaussian noise's power in one STFT bin is exponential: its 10th percentile is -ln(0.9) of
# its mean, and its median 6.6 times its 10th percentile; music spreads wider.
_FLOOR_TO_MEAN = 1.0 / -np.log(0.9)
_NOISE_LIKE_SPREAD = 7.5
_FLOOR_SMOOTH_BINS = 31  # 670 Hz: wider than a held note's peak, narrower than hiss' slopes.
_NOISE_REFERENCE_S = 4.0


def noise_reference(samples: np.ndarray, seed: int = 0) -> np.ndarray:
  """Seconds of noise with the recording's noise floor: noisereduce's `y_noise`.

  The floor is each frequency bin's 10th percentile of power over the song
  (minimum statistics: between the notes, what is left is the floor), scaled
  up to the mean it implies for noise only where the bin's quieter half spreads
  as noise does (in dense music the percentile is music, and scaled it took
  most of the music for noise), then median-filtered across frequency so that a
  held note or a drone (a narrow peak in every frame) is not taken for noise.
  noisereduce's own estimate, from the whole signal, takes every steady
  partial for noise.
  """
  samples = np.asarray(samples, np.float32)
  if len(samples) < _NOISE_FFT:
    samples = np.pad(samples, (0, _NOISE_FFT - len(samples)))
  starts = np.unique(np.linspace(0, len(samples) - _NOISE_FFT, _NOISE_FRAMES).astype(np.int64))
  window = scipy.signal.get_window('hann', _NOISE_FFT).astype(np.float32)
  frames = samples[starts[:, None] + np.arange(_NOISE_FFT)] * window
  power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
  floor, median = np.percentile(power, [10.0, 50.0], axis=0)
  noise_like = median < _NOISE_LIKE_SPREAD * floor
  floor = np.where(noise_like, floor * _FLOOR_TO_MEAN, floor)
  floor = scipy.ndimage.median_filter(floor, size=_FLOOR_SMOOTH_BINS, mode='nearest')
  # White noise shaped by a smooth gain: each framed bin's mean power is then
  # gain**2 * sum(window**2), the floor.
  length = int(_NOISE_REFERENCE_S * contract.SAMPLE_RATE_HZ)
  white = np.fft.rfft(np.random.default_rng(seed).standard_normal(length))
  frame_hz = np.fft.rfftfreq(_NOISE_FFT, 1 / contract.SAMPLE_RATE_HZ)
  gain = np.sqrt(np.interp(np.fft.rfftfreq(length, 1 / contract.SAMPLE_RATE_HZ), frame_hz,
                           floor) / np.sum(window.astype(np.float64) ** 2))
  return np.fft.irfft(white * gain, length).astype(np.float32)


def reduce_noise(samples: np.ndarray, strength: float) -> np.ndarray:
  """Stationary spectral gating (noisereduce) against the recording's noise floor, for
  hiss; steady notes and drones are kept (see noise_reference).

  The gate is smoothed over 50 ms but not across frequency: noisereduce's default
  500 Hz smoothing spreads a narrow partial's open bins into their gated
  neighbours (a held tone lost 35% with the true noise as reference), and its
  zero-padded edge took 3.8 dB off everything under 200 Hz with nothing gated.
  """
  import noisereduce  # pylint: disable=g-import-not-at-top  # Slow import, rarely on.
  return noisereduce.reduce_noise(
      y=samples, sr=contract.SAMPLE_RATE_HZ, stationary=True, y_noise=noise_reference(samples),
      prop_decrease=strength, n_fft=_NOISE_FFT, freq_mask_smooth_hz=None,
      time_mask_smooth_ms=50).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class CleaningEdits:
  """What `clean` did to a song, so its stems can be given exactly the same."""
  kept_intervals: tuple[tuple[int, int], ...] | None  # None: nothing was cut.
  gain: float


def clean(samples: np.ndarray, options: CleaningOptions,
          in_place: bool = False) -> tuple[np.ndarray, CleaningEdits]:
  """Runs the enabled steps in order: rumble, noise, silence, loudness.

  Args:
    samples: mono float32 samples at the contract's rate.
    options: which steps, with what settings.
    in_place: cut and scale `samples` itself (a long song is then held once,
      not two or three times); the caller must not use it afterwards.

  Returns:
    The cleaned samples, and the edits (cuts and gain) that made them.
  """
  if options.highpass_hz > 0:
    samples = remove_rumble(samples, options.highpass_hz,
                            in_place=in_place and samples.dtype == np.float32)
    in_place = True  # Filtered where it lay, or a fresh array now.
  if options.reduce_noise:
    samples = reduce_noise(samples, options.noise_reduction)
    in_place = True  # A fresh array now.
  kept = None
  if options.remove_silence:
    kept = tuple(audible_intervals(samples, options.silence_threshold_db, options.min_silence_s))
    if in_place:
      samples = keep_intervals_in_place(samples, kept)
    else:
      samples = keep_intervals(samples, kept)
      in_place = True
    if len(samples) == 0:
      raise UnusableAudio('silent: nothing above the silence threshold')
  gain = 1.0
  if options.normalize_loudness:
    try:
      gain = loudness.loudness_gain(samples, options.target_lufs, options.true_peak_ceiling_dbtp)
    except loudness.UnmeasurableLoudness as e:
      raise UnusableAudio(str(e)) from e
    if in_place and samples.dtype == np.float32:
      samples *= np.float32(gain)
    else:
      samples = np.asarray(samples, np.float32) * np.float32(gain)
  elif np.max(np.abs(samples), initial=0.0) == 0.0:
    raise UnusableAudio('silent: all samples are zero')
  return samples, CleaningEdits(kept_intervals=kept, gain=gain)


def apply_edits(samples: np.ndarray, edits: CleaningEdits, options: CleaningOptions) -> np.ndarray:
  """Gives a stem of a song the cuts and gain `clean` gave the song itself."""
  if options.highpass_hz > 0:
    samples = remove_rumble(samples, options.highpass_hz)
  if options.reduce_noise:
    samples = reduce_noise(samples, options.noise_reduction)
  if edits.kept_intervals is not None:
    samples = keep_intervals(samples, edits.kept_intervals)
  return np.asarray(samples, np.float32) * np.float32(edits.gain)
