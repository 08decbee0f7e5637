"""How close a reconstructed waveform is to its original: ViSQOL, MR-STFT, mel L1.

Every function takes two mono float waveforms at one sample rate (the audio
contract's is 22 050 Hz) and compares them over their common length: the
longer one is trimmed at the end, since a codec or vocoder may pad a few
samples but does not shift the signal.
"""
import librosa
import numpy as np

from melodygan_jax.audio import contract

VISQOL_AUDIO_SAMPLE_RATE_HZ = 48_000  # ViSQOL's audio mode is defined at 48 kHz.
# (n_fft, hop_length, win_length) of Parallel WaveGAN's multi-resolution STFT loss.
STFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))
_MAGNITUDE_FLOOR = 1e-7  # Parallel WaveGAN's clamp before the log.


def trim_to_common_length(reference: np.ndarray,
                          estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Both [samples] waveforms cut to the shorter one's length, as float32.

  Raises:
    ValueError: not mono 1-D, or one of them is empty.
  """
  reference = np.asarray(reference, np.float32)
  estimate = np.asarray(estimate, np.float32)
  if reference.ndim != 1 or estimate.ndim != 1:
    raise ValueError(f'expected mono [samples] waveforms, got {reference.shape} and '
                     f'{estimate.shape}')
  length = min(len(reference), len(estimate))
  if length == 0:
    raise ValueError('cannot compare an empty waveform')
  return reference[:length], estimate[:length]


def multi_resolution_stft_distance(reference: np.ndarray, estimate: np.ndarray,
                                   resolutions=STFT_RESOLUTIONS) -> dict:
  """Spectral convergence and log-magnitude L1, averaged over STFT resolutions.

  As Parallel WaveGAN's loss: per resolution, SC = ||S - S'||_F / ||S||_F and
  mag = mean |log S - log S'| on Hann-window magnitudes; each averaged over
  the resolutions, and 'total' = SC + mag. 0 for identical waveforms.

  Args:
    reference, estimate: [samples] mono float.
    resolutions: (n_fft, hop_length, win_length) triples.

  Returns:
    {'spectral_convergence', 'log_magnitude_l1', 'total'} floats.
  """
  reference, estimate = trim_to_common_length(reference, estimate)
  convergence, log_l1 = [], []
  for n_fft, hop_length, win_length in resolutions:
    magnitudes = [np.abs(librosa.stft(signal, n_fft=n_fft, hop_length=hop_length,
                                      win_length=win_length, window='hann', center=True))
                  for signal in (reference, estimate)]
    target, estimated = magnitudes
    convergence.append(np.linalg.norm(target - estimated) /
                       max(np.linalg.norm(target), _MAGNITUDE_FLOOR))
    log_l1.append(np.mean(np.abs(np.log(np.maximum(target, _MAGNITUDE_FLOOR)) -
                                 np.log(np.maximum(estimated, _MAGNITUDE_FLOOR)))))
  spectral_convergence = float(np.mean(convergence))
  log_magnitude_l1 = float(np.mean(log_l1))
  return {'spectral_convergence': spectral_convergence, 'log_magnitude_l1': log_magnitude_l1,
          'total': spectral_convergence + log_magnitude_l1}


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate_hz: int,
                 n_fft: int = contract.N_FFT, hop_length: int = contract.HOP_LENGTH,
                 num_mels: int = contract.NUM_MELS, fmin_hz: float = contract.MEL_FMIN_HZ,
                 fmax_hz: float | None = contract.MEL_FMAX_HZ,
                 log_floor: float = contract.LOG_MEL_FLOOR) -> float:
  """Mean |log mel - log mel'| over frames and bands.

  The defaults are the audio contract's log-mel (natural log of the mel
  magnitude, 128 bands to 11,025 Hz, floor 1e-5), so the value is comparable
  with the pipeline's log-mel L1.

  Args:
    reference, estimate: [samples] mono float at `sample_rate_hz`.
    sample_rate_hz: their rate.
    n_fft, hop_length, num_mels, fmin_hz, fmax_hz, log_floor: the log-mel.

  Returns:
    The L1 distance in natural-log units (0 for identical waveforms).
  """
  reference, estimate = trim_to_common_length(reference, estimate)
  filterbank = librosa.filters.mel(sr=sample_rate_hz, n_fft=n_fft, n_mels=num_mels,
                                   fmin=fmin_hz, fmax=fmax_hz)

  def log_mel(signal):
    magnitude = np.abs(librosa.stft(signal, n_fft=n_fft, hop_length=hop_length,
                                    window='hann', center=True))
    return np.log(np.maximum(filterbank @ magnitude, log_floor))
  return float(np.mean(np.abs(log_mel(reference) - log_mel(estimate))))


class Visqol:
  """ViSQOL v3 audio mode (visqol-python, its bundled SVR model), built once.

    visqol = Visqol()
    moslqo = visqol.score(original, reconstruction, sample_rate_hz=22_050)
  """

  def __init__(self):
    from visqol import VisqolApi  # pylint: disable=g-import-not-at-top
    self._api = VisqolApi()
    self._api.create(mode='audio')

  def score(self, reference: np.ndarray, estimate: np.ndarray, sample_rate_hz: int) -> float:
    """MOS-LQO of `estimate` against `reference`.

    Args:
      reference, estimate: [samples] mono float at `sample_rate_hz` (trimmed to
        a common length, resampled to 48 kHz with soxr for audio mode).
      sample_rate_hz: their rate.

    Returns:
      MOS-LQO, 1 (bad) to about 4.7 (identical, the SVR model's ceiling).
    """
    reference, estimate = trim_to_common_length(reference, estimate)
    if sample_rate_hz != VISQOL_AUDIO_SAMPLE_RATE_HZ:
      reference, estimate = (librosa.resample(
          signal, orig_sr=sample_rate_hz, target_sr=VISQOL_AUDIO_SAMPLE_RATE_HZ,
          res_type='soxr_hq') for signal in (reference, estimate))
    result = self._api.measure_from_arrays(reference.astype(np.float64),
                                           estimate.astype(np.float64),
                                           sample_rate=VISQOL_AUDIO_SAMPLE_RATE_HZ)
    return float(result.moslqo)
