"""The audio contract's features equal librosa's, computed directly: full band, 128 bands."""
import librosa
import numpy as np

from data_prep import demo_corpus
from melodygan_jax.audio import contract
def test_log_mel_and_mfcc_match_librosa():
  vocals, instrumental = demo_corpus.synthesize_song(seed=3, seconds=3.0)
  samples = vocals + instrumental
  log_mel, mfcc = contract.log_mel_and_mfcc(samples)

  mel_magnitude = librosa.feature.melspectrogram(
      y=samples, sr=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=128,
      fmin=0.0, fmax=11025.0, power=1.0)
  expected_log_mel = np.log(np.maximum(mel_magnitude, 1e-5)).T
  expected_mfcc = librosa.feature.mfcc(
      y=samples, sr=22050, n_mfcc=20, n_fft=1024, hop_length=256, win_length=1024,
      n_mels=128, fmin=0.0, fmax=11025.0).T

  assert log_mel.shape == (1 + len(samples) // 256, 128) == expected_log_mel.shape
  assert mfcc.shape == expected_mfcc.shape == (log_mel.shape[0], 20)
  assert log_mel.dtype == mfcc.dtype == np.float32
  # Float32 FFTs: tight where there is energy; near the floor the log magnifies rounding.
  audible = expected_log_mel > np.log(1e-4)
  np.testing.assert_allclose(log_mel[audible], expected_log_mel[audible], atol=1e-3)
  np.testing.assert_allclose(log_mel, expected_log_mel, atol=5e-3)
  np.testing.assert_allclose(mfcc, expected_mfcc, atol=1e-2, rtol=1e-4)
  assert log_mel.min() >= np.log(1e-5) - 1e-6


def test_silence_hits_the_log_floor_not_minus_infinity():
  log_mel, mfcc = contract.log_mel_and_mfcc(np.zeros(22050, np.float32))
  assert np.isfinite(log_mel).all() and np.isfinite(mfcc).all()
  np.testing.assert_allclose(log_mel, np.log(1e-5), rtol=1e-6)


def test_the_top_band_hears_what_lies_above_8_khz():
  time_s = np.arange(22050) / 22050
  high = contract.log_mel(0.5 * np.sin(2 * np.pi * 10_000 * time_s).astype(np.float32))
  assert np.argmax(high.mean(0)) > 120  # A 10 kHz tone lands in the top bands...
  assert high.mean(0).max() > np.log(1e-5) + 5  # ...well above the floor.
