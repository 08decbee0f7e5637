"""What an embedding distance does not hear: pulse, harmony and structure of a clip.

The per-clip analysis; evaluation/music_profile.py summarizes sets of clips.

A clip's profile is a few numbers, each a property of music that a wash of
the right timbre lacks:

  pulse_clarity        peak of the normalized onset-strength autocorrelation at
                       lags 0.25-2 s (30-240 bpm): 1 = a metronome, ~0 = no beat
  tempo_stability      share of 4 s windows (1 s apart) whose tempo is the clip's
                       median tempo, its double or its half (within 8%)
  chroma_stability     mean correlation of chroma vectors 0.1 s apart: notes
                       that are held, not pitch that wanders
  chroma_entropy_bits  entropy of the clip's mean chroma (3.58 bits = all 12
                       pitch classes alike)
  key_clarity          best correlation of the mean chroma with the 24
                       Krumhansl-Kessler key profiles
  harmonic_share       harmonic share of the energy after HPSS (median filters
                       on the mel power spectrogram)
  onset_density_per_s  detected onsets per second
  bar_repetition       how much more alike 0.25 s blocks (chroma + MFCC) are
                       at bar lags (1.5-4 s) than at other lags (>= 0.5 s), from
                       the self-similarity matrix; clips shorter than 10 s: null

Everything comes from the contract's STFT (n_fft 1024, hop 256), which the
mel and the chroma share, with librosa's onset, chroma and HPSS functions.
"""
import math

import librosa
import numpy as np
import scipy.fft
import scipy.ndimage

from melodygan_jax.audio import contract

PROFILE_ENTRIES = ('pulse_clarity', 'tempo_stability', 'chroma_stability',
                   'chroma_entropy_bits', 'key_clarity', 'harmonic_share',
                   'onset_density_per_s', 'bar_repetition')
LONG_RANGE_MIN_SECONDS = 10.0  # bar_repetition needs a few bars at each lag.
FRAMES_PER_SECOND = contract.SAMPLE_RATE_HZ / contract.HOP_LENGTH
PULSE_LAGS_S = (0.25, 2.0)
TEMPO_WINDOW_S = 4.0  # Two periods of the slowest pulse.
TEMPO_WINDOW_HOP_S = 1.0
TEMPO_TOLERANCE = 0.08
CHROMA_LAG_S = 0.1
BLOCK_S = 0.25
BAR_LAGS_S = (1.5, 4.0)  # One 4/4 bar from 160 down to 60 bpm.
OTHER_LAGS_MIN_S = 0.5
HPSS_KERNEL = (17, 17)  # (mel bands, frames of 2 hops): ~0.4 s in time.
ONSET_FLOOR_DB = 5.0  # Envelope scale floor: a steady tone's flux noise is no onset.
_CHROMA_FILTERS = librosa.filters.chroma(sr=contract.SAMPLE_RATE_HZ, n_fft=contract.N_FFT)
# Krumhansl & Kessler (1982) probe-tone ratings, C major and C minor.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29,
                           2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34,
                           3.17])
_KEY_PROFILES = np.stack([np.roll(profile, shift) for profile in (_MAJOR_PROFILE,
                                                                  _MINOR_PROFILE)
                          for shift in range(12)])  # [24, 12]


def mel_power_db_of_log_mel(log_mel: np.ndarray) -> np.ndarray:
  """[frames, mels] the contract's log-mel (natural log of the mel magnitude) -> its square in
  dB, contract.TOP_DB below the loudest as librosa.power_to_db: a decoded log-mel's stand-in for the
  mel power in dB that `onset_envelope` takes."""
  mel_power_db = contract.DB_PER_LOG_MAGNITUDE * np.asarray(log_mel, np.float64)
  return np.maximum(mel_power_db, mel_power_db.max() - contract.TOP_DB)


def onset_envelope(mel_power_db: np.ndarray) -> np.ndarray:
  """[frames, mels] mel power in dB -> [frames] onset strength (librosa's spectral flux)."""
  return librosa.onset.onset_strength(S=mel_power_db.T, sr=contract.SAMPLE_RATE_HZ,
                                      hop_length=contract.HOP_LENGTH)


def onset_envelope_of_log_mel(log_mel: np.ndarray) -> np.ndarray:
  """[frames, mels] the contract's log-mel (a decoded one, say) -> `onset_envelope`."""
  return onset_envelope(mel_power_db_of_log_mel(log_mel))


def normalized_autocorrelation(signals: np.ndarray) -> np.ndarray:
  """[..., n] -> [..., n] autocorrelation of the mean-removed signals, 1 at lag 0.

  The biased estimate (divided by n at every lag), so longer lags, with fewer
  pairs, weigh a little less: a steady pulse peaks at its own period rather
  than at a multiple of it.
  """
  centred = signals - signals.mean(axis=-1, keepdims=True)
  length = centred.shape[-1]
  spectrum = scipy.fft.rfft(centred, n=2 * length, axis=-1)
  correlation = scipy.fft.irfft(np.abs(spectrum) ** 2, axis=-1)[..., :length]
  energy = correlation[..., :1]
  return np.where(energy > 1e-12, correlation / np.maximum(energy, 1e-12), 0.0)


def _pulse_lag_range() -> tuple[int, int]:
  return (int(round(PULSE_LAGS_S[0] * FRAMES_PER_SECOND)),
          int(round(PULSE_LAGS_S[1] * FRAMES_PER_SECOND)) + 1)


def pulse_clarity(envelope: np.ndarray) -> float:
  """Peak of the onset envelope's normalized autocorrelation at lags 0.25-2 s."""
  low, high = _pulse_lag_range()
  if len(envelope) <= high:
    return math.nan
  return float(normalized_autocorrelation(envelope)[low:high].max())


def tempo_stability(envelope: np.ndarray) -> float:
  """Share of 4 s windows whose tempo (autocorrelation peak) agrees with the clip's median.

  Agreement allows the double and the half of the median: the same beat
  counted in eighths or in halves. NaN for a clip with fewer than two windows.
  """
  window = int(round(TEMPO_WINDOW_S * FRAMES_PER_SECOND))
  hop = int(round(TEMPO_WINDOW_HOP_S * FRAMES_PER_SECOND))
  if len(envelope) < window + hop:
    return math.nan
  windows = np.lib.stride_tricks.sliding_window_view(envelope, window)[::hop]
  low, high = _pulse_lag_range()
  correlation = normalized_autocorrelation(windows)[:, low:min(high, window)]
  lags = low + correlation.argmax(axis=1)
  median = np.median(lags)
  octave_offsets = np.log2(lags / median)
  near = np.min(np.abs(octave_offsets[:, None] - np.array([-1.0, 0.0, 1.0])), axis=1)
  return float(np.mean(near < np.log2(1.0 + TEMPO_TOLERANCE)))


def chroma_frames(magnitude: np.ndarray) -> np.ndarray:
  """[frames, N_FFT // 2 + 1] |STFT| -> [frames, 12] chroma, each frame max-normalized."""
  chroma = (magnitude ** 2) @ _CHROMA_FILTERS.T
  return chroma / np.maximum(chroma.max(axis=1, keepdims=True), 1e-10)


def chroma_stability(chroma: np.ndarray, energy: np.ndarray) -> float:
  """Mean correlation of chroma vectors CHROMA_LAG_S apart, over frames that carry sound."""
  lag = max(1, int(round(CHROMA_LAG_S * FRAMES_PER_SECOND)))
  if len(chroma) <= lag:
    return math.nan
  centred = chroma - chroma.mean(axis=1, keepdims=True)
  norms = np.linalg.norm(centred, axis=1)
  products = np.sum(centred[lag:] * centred[:-lag], axis=1)
  pair_norms = norms[lag:] * norms[:-lag]
  # Near-silent frames have a chroma of rounding noise: left out.
  loud = np.minimum(energy[lag:], energy[:-lag]) > 1e-3 * energy.max()
  valid = loud & (pair_norms > 1e-8)
  if not valid.any():
    return math.nan
  return float(np.mean(products[valid] / pair_norms[valid]))


def chroma_entropy_and_key_clarity(chroma: np.ndarray, energy: np.ndarray) -> tuple[float, float]:
  """Entropy (bits) of the energy-weighted mean chroma and its best key-profile correlation."""
  mean_chroma = (chroma * energy[:, None]).sum(axis=0)
  if mean_chroma.sum() <= 0.0:
    return math.nan, math.nan
  share = mean_chroma / mean_chroma.sum()
  entropy = float(-np.sum(share * np.log2(np.maximum(share, 1e-12))))
  centred = share - share.mean()
  profiles = _KEY_PROFILES - _KEY_PROFILES.mean(axis=1, keepdims=True)
  denominator = np.linalg.norm(centred) * np.linalg.norm(profiles, axis=1)
  if np.linalg.norm(centred) < 1e-12:
    return entropy, 0.0  # A perfectly flat chroma matches no key.
  return entropy, float(np.max(profiles @ centred / denominator))


def harmonic_share(mel_power: np.ndarray) -> float:
  """Harmonic share of the energy after librosa's HPSS of the [frames, mels] mel power.

  On the 128 mel bands, frames summed in pairs, rather than the 513 STFT
  bins: the median filters, the costliest step of the profile, touch 8x
  fewer values.
  """
  pairs = len(mel_power) // 2
  pooled = mel_power[:2 * pairs].reshape(pairs, 2, -1).sum(axis=1).T  # [mels, frames]
  total = pooled.sum()
  if total <= 0.0:
    return math.nan
  harmonic, _ = librosa.decompose.hpss(pooled, kernel_size=HPSS_KERNEL[::-1], mask=True)
  return float((harmonic * pooled).sum() / total)


def onset_frames(envelope: np.ndarray) -> np.ndarray:
  """Frames of onsets: librosa.onset.onset_detect's peak picking, with its default windows.

  A peak is the maximum of the 30 ms before it, above the mean of the 100 ms
  around it by 0.07 (on the envelope scaled to [0, 1], or by ONSET_FLOOR_DB
  when its peak is below that), at least 30 ms after the last. Written with scipy
  filters because librosa's numba peak picker crashes in some numba builds.
  """
  scaled = envelope - envelope.min()
  scaled = scaled / max(scaled.max(), ONSET_FLOOR_DB)
  pre_max = int(round(0.03 * FRAMES_PER_SECOND))
  average = int(round(0.1 * FRAMES_PER_SECOND))
  wait = int(round(0.03 * FRAMES_PER_SECOND))
  # Window [n - pre_max, n] for the maximum, [n - average, n + average] for the mean.
  local_max = scipy.ndimage.maximum_filter1d(scaled, pre_max + 1, origin=pre_max // 2,
                                             mode='constant', cval=0.0)
  local_mean = scipy.ndimage.uniform_filter1d(scaled, 2 * average + 1, mode='nearest')
  candidates = np.flatnonzero((scaled >= local_max) & (scaled >= local_mean + 0.07))
  onsets, last = [], -wait - 1
  for frame in candidates:
    if frame > last + wait:
      onsets.append(frame)
      last = frame
  return np.asarray(onsets, np.int64)


def onset_density(envelope: np.ndarray) -> float:
  """Onsets per second."""
  return len(onset_frames(envelope)) / (len(envelope) / FRAMES_PER_SECOND)


def bar_repetition(chroma: np.ndarray, mel_power_db: np.ndarray) -> float:
  """Self-similarity of 0.25 s blocks at bar lags (1.5-4 s) minus that at all lags >= 0.5 s.

  Blocks are the mean chroma and MFCC (from the mel power in dB) over 0.25 s,
  each dimension standardized over the clip, so the similarity is a
  correlation: ~0 for a stationary texture or shuffled blocks, positive when
  bars come back. NaN for clips shorter than LONG_RANGE_MIN_SECONDS.
  """
  seconds = len(chroma) / FRAMES_PER_SECOND
  if seconds < LONG_RANGE_MIN_SECONDS - 1e-6:
    return math.nan
  block = int(round(BLOCK_S * FRAMES_PER_SECOND))
  num_blocks = len(chroma) // block
  mfcc = scipy.fft.dct(mel_power_db, axis=-1, type=2, norm='ortho')[:, 1:13]
  frames = np.concatenate([chroma, mfcc / 10.0], axis=1)[:num_blocks * block]
  blocks = frames.reshape(num_blocks, block, -1).mean(axis=1)
  blocks = (blocks - blocks.mean(axis=0)) / (blocks.std(axis=0) + 1e-8)
  blocks /= np.linalg.norm(blocks, axis=1, keepdims=True) + 1e-8
  similarity = blocks @ blocks.T
  lag_means = np.array([np.diagonal(similarity, lag).mean() for lag in range(num_blocks // 2)])
  lags_s = np.arange(len(lag_means)) * BLOCK_S
  bar = (lags_s >= BAR_LAGS_S[0]) & (lags_s <= BAR_LAGS_S[1])
  other = lags_s >= OTHER_LAGS_MIN_S
  return float(lag_means[bar].max() - lag_means[other].mean())


def clip_profile(samples: np.ndarray) -> np.ndarray:
  """Mono samples at the contract's rate -> [len(PROFILE_ENTRIES)] float64, NaN = undefined."""
  magnitude = contract.magnitude_frames(np.asarray(samples, np.float32))
  mel_power = contract.mel_frames(magnitude ** 2).astype(np.float64)
  mel_power_db = librosa.power_to_db(mel_power)
  envelope = onset_envelope(mel_power_db)
  chroma = chroma_frames(magnitude)
  energy = mel_power.sum(axis=1)
  entropy, key = chroma_entropy_and_key_clarity(chroma, energy)
  values = {'pulse_clarity': pulse_clarity(envelope),
            'tempo_stability': tempo_stability(envelope),
            'chroma_stability': chroma_stability(chroma, energy),
            'chroma_entropy_bits': entropy,
            'key_clarity': key,
            'harmonic_share': harmonic_share(mel_power),
            'onset_density_per_s': onset_density(envelope),
            'bar_repetition': bar_repetition(chroma, mel_power_db)}
  return np.array([values[name] for name in PROFILE_ENTRIES], np.float64)


def profiles(clips: np.ndarray) -> np.ndarray:
  """[batch, samples] -> [batch, len(PROFILE_ENTRIES)] profiles."""
  return np.stack([clip_profile(clip) for clip in clips])
