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


def test_segment_archive_holds_the_contract_features_and_reads_back_by_rows(tmp_path):
  """data_prep's chunked segments are `log_mel_and_mfcc` cut into segments (the MFCC's
  80 dB range is the whole song's); rows read in place equal np.load's."""
  import zipfile  # pylint: disable=g-import-not-at-top
  from data_prep import features  # pylint: disable=g-import-not-at-top
  samples = np.sum(demo_corpus.synthesize_song(3, 40.0), axis=0).astype(np.float32)  # The mix.
  archive_path = tmp_path / 'song.npz'
  with zipfile.ZipFile(archive_path, 'w', allowZip64=True) as archive:
    num_segments = features.write_segments(archive, 'mix', samples, 64)
  log_mel, mfcc = contract.log_mel_and_mfcc(samples)
  with np.load(archive_path) as arrays:
    np.testing.assert_allclose(arrays['mix/mel'].reshape(-1, contract.NUM_MELS),
                               log_mel[:num_segments * 64], atol=1e-5)
    np.testing.assert_allclose(arrays['mix/mfcc'].reshape(-1, contract.NUM_MFCC),
                               mfcc[:num_segments * 64], atol=1e-3)
    rows = [num_segments - 1, 0, 5]
    for name in ('mix/mel', 'mix/mfcc'):
      assert features.num_segments(str(archive_path), name) == num_segments
      np.testing.assert_array_equal(
          features.read_segment_rows(str(archive_path), name, np.array(rows)), arrays[name][rows])
