"""Cleaning steps on signals whose right answer is known."""
import librosa
import numpy as np
import pytest

from data_prep import cleaning
from melodygan_jax.audio import loudness

RATE = 22050


def tone(seconds, amplitude=0.3, freq=330.0):
  t = np.arange(int(seconds * RATE)) / RATE
  return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_remove_silence_drops_long_gaps_only():
  silence = np.zeros(int(2.0 * RATE), np.float32)
  short_pause = np.zeros(int(0.3 * RATE), np.float32)
  samples = np.concatenate([silence, tone(2), short_pause, tone(2), silence, tone(1), silence])
  kept = cleaning.remove_silence(samples, threshold_db=60, min_silence_s=1.0)
  # 5 s of tone and the 0.3 s pause stay, within one 93 ms analysis frame per edge.
  assert abs(len(kept) / RATE - 5.3) < 0.5
  assert len(kept) < len(samples) - 5 * RATE
  assert np.max(np.abs(np.diff(kept))) < 0.1  # Faded joins: no jump, no click.


def test_loudness_normalization_hits_the_target():
  for amplitude in (0.01, 0.3, 0.9):
    normalized = loudness.normalize_loudness(tone(3, amplitude), target_lufs=-20.0,
                                             true_peak_ceiling_dbtp=0.0)
    assert abs(loudness.integrated_loudness(normalized) + 20.0) < 0.1


def test_true_peak_ceiling_limits_peaky_audio():
  clicks = np.zeros(3 * RATE, np.float32)
  clicks[::RATE // 4] = 1.0  # Loud peaks, little loudness: the gain would clip them.
  samples = clicks + tone(3, 0.01)
  normalized = loudness.normalize_loudness(samples, target_lufs=-14.0,
                                           true_peak_ceiling_dbtp=-1.0)
  assert loudness.true_peak_dbtp(normalized) <= -1.0 + 1e-3
  assert loudness.integrated_loudness(normalized) < -14.0


def test_true_peak_sees_inter_sample_peaks():
  # A quarter-rate sine sampled 45 degrees off its crests: samples at 0.707 of the peak.
  n = np.arange(RATE)
  samples = (0.5 * np.sin(2 * np.pi * n / 4 + np.pi / 4)).astype(np.float32)
  sample_peak_db = 20 * np.log10(np.abs(samples).max())
  assert abs(sample_peak_db - (-9.03)) < 0.01
  assert abs(loudness.true_peak_dbtp(samples) - (-6.02)) < 0.2
  full = librosa.resample(samples, orig_sr=RATE, target_sr=4 * RATE, res_type='soxr_hq')
  assert abs(loudness.true_peak_dbtp(samples) - 20 * np.log10(np.abs(full).max())) < 0.05


def test_silence_and_too_short_are_unusable():
  with pytest.raises(cleaning.UnusableAudio, match='silent'):
    cleaning.clean(np.zeros(3 * RATE, np.float32), cleaning.CleaningOptions())
  with pytest.raises(loudness.UnmeasurableLoudness, match='too short'):
    loudness.normalize_loudness(tone(0.2), -18.0, -1.0)
  with pytest.raises(cleaning.UnusableAudio, match='too short'):
    cleaning.clean(tone(0.2), cleaning.CleaningOptions(remove_silence=False))
  denoised, _ = cleaning.clean(tone(3) + np.float32(0.01) * np.random.default_rng(0)
                            .standard_normal(3 * RATE).astype(np.float32),
                            cleaning.CleaningOptions(reduce_noise=True))
  assert np.isfinite(denoised).all() and len(denoised) == 3 * RATE
