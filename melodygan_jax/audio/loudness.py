"""Loudness: BS.1770 integrated loudness, true peak and the gain that meets both.

Prepare normalizes every song with these, and reconstruction gives its input
the same level, so a model hears what it was trained on.
"""
import librosa
import numpy as np
from pyloudnorm.iirfilter import IIRfilter
import scipy.signal

from melodygan_jax.audio import contract

# BS.1770's absolute gate: anything quieter has no measurable loudness.
ABSOLUTE_GATE_LUFS = -70.0
TARGET_LUFS = -18.0  # Prepare's default --target_lufs.
TRUE_PEAK_CEILING_DBTP = -1.0  # Prepare's default --true_peak_ceiling_dbtp.
_TRUE_PEAK_BLOCK = 1024
_TRUE_PEAK_PIECE_BLOCKS = 256  # Oversampled at once: 1 MiB of samples, 4 MiB after.
_BLOCK_S = 0.4  # BS.1770 gating block.
_LOUDNESS_STEP_S = 0.1  # Blocks overlap by 75%.
_PIECE_SAMPLES = 2**20


class UnmeasurableLoudness(ValueError):
  """Silence, or a clip shorter than one 400 ms loudness block; str() says which."""


def k_weighting_sos(sample_rate: int = contract.SAMPLE_RATE_HZ) -> np.ndarray:
  """BS.1770's K-weighting (high shelf, then high pass) as float32 second-order sections.

  The same filters pyloudnorm's default meter applies, at any rate.
  """
  stages = (IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate, 'high_shelf'),
            IIRfilter(0.0, 0.5, 38.0, sample_rate, 'high_pass'))
  return np.array([np.concatenate([stage.b, stage.a]) for stage in stages], np.float32)


class LoudnessMeter:
  """BS.1770-4 integrated loudness of a signal fed in pieces of any size.

  The K-weighting runs through scipy's `sosfilt` in float32 with its state
  carried from piece to piece, so the result does not depend on how the
  signal was cut; what is kept is one energy per 100 ms, so memory does not
  grow with the signal's length beyond that. Gating blocks are 400 ms every
  100 ms, as pyloudnorm's meter counts them (it agrees to within 0.01 LU).
  """

  def __init__(self, sample_rate: int = contract.SAMPLE_RATE_HZ):
    self._sample_rate = sample_rate
    self._sos = k_weighting_sos(sample_rate)
    self._state = np.zeros((len(self._sos), 2), np.float32)
    self._step = int(round(_LOUDNESS_STEP_S * sample_rate))
    self._pending = np.zeros(0, np.float32)  # Filtered samples of an unfinished step.
    self._step_energies = []  # Sum of squares of each finished 100 ms step, float64.
    self.num_samples = 0

  def add(self, samples: np.ndarray) -> None:
    """Feeds the next samples (mono float)."""
    filtered, self._state = scipy.signal.sosfilt(
        self._sos, np.asarray(samples, np.float32), zi=self._state)
    self.num_samples += len(filtered)
    filtered = np.concatenate([self._pending, filtered]) if len(self._pending) else filtered
    whole = len(filtered) // self._step * self._step
    steps = filtered[:whole].reshape(-1, self._step).astype(np.float64)
    self._step_energies.extend(np.einsum('ij,ij->i', steps, steps))
    self._pending = filtered[whole:].copy()

  def integrated_loudness(self) -> float:
    """LUFS of everything fed so far (-inf for silence).

    Raises:
      UnmeasurableLoudness: less than one 400 ms block was fed.
    """
    block_steps = int(round(_BLOCK_S / _LOUDNESS_STEP_S))
    if self.num_samples < block_steps * self._step:
      raise UnmeasurableLoudness('too short to measure loudness (< 0.4 s)')
    pending = self._pending.astype(np.float64)
    energies = np.array([*self._step_energies, pending @ pending])
    duration_s = self.num_samples / self._sample_rate
    num_blocks = int(np.round((duration_s - _BLOCK_S) / _LOUDNESS_STEP_S)) + 1
    # A block sums its four steps; the last blocks may run past the end, as in pyloudnorm.
    padded = np.concatenate([energies, np.zeros(block_steps)])
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    starts = np.arange(num_blocks)
    mean_squares = (cumulative[starts + block_steps] - cumulative[starts]) / (
        block_steps * self._step)
    with np.errstate(divide='ignore'):
      block_lufs = -0.691 + 10.0 * np.log10(mean_squares)
      gated = mean_squares[block_lufs >= ABSOLUTE_GATE_LUFS]
      if len(gated) == 0:
        return float('-inf')
      relative_gate = -0.691 + 10.0 * np.log10(gated.mean()) - 10.0
      gated = mean_squares[(block_lufs > relative_gate) & (block_lufs > ABSOLUTE_GATE_LUFS)]
      return float(-0.691 + 10.0 * np.log10(gated.mean() if len(gated) else 0.0))


def integrated_loudness(samples: np.ndarray) -> float:
  """ITU-R BS.1770-4 integrated loudness in LUFS (-inf for silence).

  Args:
    samples: mono float samples at the contract's rate, at least 0.4 s.

  Returns:
    The loudness in LUFS.
  """
  meter = LoudnessMeter()
  for start in range(0, len(samples), _PIECE_SAMPLES):  # Bounds the float64 copies.
    meter.add(samples[start:start + _PIECE_SAMPLES])
  return meter.integrated_loudness()


def true_peak_dbtp(samples: np.ndarray) -> float:
  """Peak of the 4x oversampled signal in dBTP (BS.1770-4, annex 2).

  Only blocks whose sample peak is within 6 dB of the whole signal's are
  oversampled: inter-sample peaks of band-limited audio exceed the samples
  around them by far less than that, so no other block can hold the true
  peak. On real music this oversamples 10-40% of the signal.
  """
  block_peaks = _block_peaks(samples)
  peak = float(block_peaks.max(initial=0.0))
  candidates = block_peaks >= 0.5 * peak
  # Runs of candidate blocks: their starts and (exclusive) ends.
  edges = np.diff(np.concatenate([[0], candidates.astype(np.int8), [0]]))
  margin = 64  # Context so the resampler's edge transients stay outside.
  for start_block, end_block in _pieces(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
    lo = max(0, start_block * _TRUE_PEAK_BLOCK - margin)
    hi = min(len(samples), end_block * _TRUE_PEAK_BLOCK + margin)
    # soxr's 4x upsampler: ~2x faster than a polyphase FIR of the same quality.
    oversampled = librosa.resample(samples[lo:hi], orig_sr=contract.SAMPLE_RATE_HZ,
                                   target_sr=4 * contract.SAMPLE_RATE_HZ, res_type='soxr_hq')
    inner_lo = 4 * (start_block * _TRUE_PEAK_BLOCK - lo)
    inner_hi = len(oversampled) - 4 * (hi - min(len(samples), end_block * _TRUE_PEAK_BLOCK))
    peak = max(peak, float(np.abs(oversampled[inner_lo:inner_hi]).max(initial=0.0)))
  return 20.0 * np.log10(max(peak, 1e-12))


def _block_peaks(samples: np.ndarray) -> np.ndarray:
  """Sample peak of every _TRUE_PEAK_BLOCK samples, a piece at a time (no |x| copy of it all)."""
  num_blocks = -(-len(samples) // _TRUE_PEAK_BLOCK)
  peaks = np.zeros(num_blocks, np.float32)
  step = _TRUE_PEAK_PIECE_BLOCKS * _TRUE_PEAK_BLOCK
  for start in range(0, len(samples), step):
    piece = np.abs(samples[start:start + step])
    whole = len(piece) // _TRUE_PEAK_BLOCK
    first = start // _TRUE_PEAK_BLOCK
    peaks[first:first + whole] = piece[:whole * _TRUE_PEAK_BLOCK].reshape(
        whole, _TRUE_PEAK_BLOCK).max(axis=1)
    if len(piece) > whole * _TRUE_PEAK_BLOCK:  # The last, shorter block.
      peaks[first + whole] = piece[whole * _TRUE_PEAK_BLOCK:].max()
  return peaks


def _pieces(starts, ends):
  """Runs of candidate blocks, long ones cut into pieces (bounds the 4x copy)."""
  for start, end in zip(starts, ends):
    for piece_start in range(start, end, _TRUE_PEAK_PIECE_BLOCKS):
      yield piece_start, min(end, piece_start + _TRUE_PEAK_PIECE_BLOCKS)


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
  # The true peak scales with the gain: measured once, on the samples as they are.
  peak = true_peak_dbtp(samples) + 20.0 * np.log10(gain)
  if peak > true_peak_ceiling_dbtp:
    gain *= 10.0 ** ((true_peak_ceiling_dbtp - peak) / 20.0)
  return float(gain)


def normalize_loudness(samples: np.ndarray, target_lufs: float,
                       true_peak_ceiling_dbtp: float) -> np.ndarray:
  """Scales to `target_lufs`, then down if needed to stay under the ceiling."""
  gain = loudness_gain(samples, target_lufs, true_peak_ceiling_dbtp)
  return (samples * np.float32(gain)).astype(np.float32)
