"""Cleaning steps on signals whose right answer is known."""
import dataclasses

import librosa
import numpy as np
import pytest
import scipy.signal

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

def test_noise_reduction_takes_the_hiss_between_the_notes_and_keeps_the_notes():
  # A held 330 Hz note 0.6 s of every second, with hiss throughout.
  time_s = np.arange(4 * RATE) / RATE
  playing = (time_s % 1.0) < 0.6
  noisy = tone(4) * playing + np.float32(0.01) * np.random.default_rng(0).standard_normal(
      4 * RATE).astype(np.float32)
  options = cleaning.CleaningOptions(remove_silence=False, normalize_loudness=False)
  denoised, _ = cleaning.clean(noisy, dataclasses.replace(options, reduce_noise=True))
  kept, _ = cleaning.clean(noisy, options)
  assert np.isfinite(denoised).all() and len(denoised) == len(kept) == 4 * RATE
  gaps = ((time_s % 1.0) > 0.7) & ((time_s % 1.0) < 0.9)
  notes = ((time_s % 1.0) > 0.1) & ((time_s % 1.0) < 0.5) & (time_s > 0.5)
  assert np.std(denoised[gaps]) < 0.4 * np.std(kept[gaps])  # The hiss falls.
  # The note keeps its level and its shape: what is left beside the fitted tone is no
  # more than the hiss was.
  basis = np.stack([np.sin(2 * np.pi * 330 * time_s[notes]),
                    np.cos(2 * np.pi * 330 * time_s[notes])], axis=1)
  fits = {name: basis @ np.linalg.lstsq(basis, samples[notes], rcond=None)[0]
          for name, samples in (('denoised', denoised), ('kept', kept))}
  assert np.std(fits['denoised']) == pytest.approx(np.std(fits['kept']), rel=0.05)
  assert np.std(denoised[notes] - fits['denoised']) <= np.std(kept[notes] - fits['kept'])


def test_loudness_meter_matches_pyloudnorm_and_ignores_how_the_signal_is_cut():
  import pyloudnorm  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  samples = np.concatenate([tone(2.0, 0.3), np.zeros(RATE, np.float32), tone(1.7, 0.02, 97.0)])
  samples += np.float32(0.01) * rng.standard_normal(len(samples)).astype(np.float32)
  expected = pyloudnorm.Meter(RATE).integrated_loudness(samples.astype(np.float64))
  assert abs(loudness.integrated_loudness(samples) - expected) < 0.01
  meter = loudness.LoudnessMeter()
  for start in range(0, len(samples), 12_345):  # Pieces that fit no block boundary.
    meter.add(samples[start:start + 12_345])
  assert meter.integrated_loudness() == loudness.integrated_loudness(samples)
  assert loudness.integrated_loudness(np.zeros(RATE, np.float32)) == -np.inf


def test_silence_split_is_librosas_and_cutting_in_place_is_cutting():
  rng = np.random.default_rng(1)
  samples = np.concatenate([np.zeros(5000, np.float32), tone(3.0), np.zeros(2 * RATE, np.float32),
                            tone(2.0, 0.1)]) * np.float32(rng.uniform(0.5, 1.0))
  # Long enough for several of frame_rms's pieces.
  samples = np.tile(samples, 4)
  np.testing.assert_array_equal(
      cleaning.frame_rms(samples),
      librosa.feature.rms(y=samples, frame_length=2048, hop_length=2048)[0])
  intervals = cleaning.audible_intervals(samples, threshold_db=60, min_silence_s=0.0)
  expected = librosa.effects.split(samples, top_db=60, frame_length=2048, hop_length=2048)
  assert intervals == [tuple(map(int, pair)) for pair in expected]
  np.testing.assert_array_equal(cleaning.keep_intervals_in_place(samples.copy(), intervals),
                                cleaning.keep_intervals(samples, intervals))


def test_high_pass_removes_dc_and_rumble_and_keeps_the_music():
  # Real game soundtracks carry DC offsets of up to 0.3: no mel band holds it.
  length = 2**20 + 12_345  # Past one chunk of the in-place filter.
  t = np.arange(length) / RATE
  music = (0.2 * np.sin(2 * np.pi * 110.0 * t)).astype(np.float32)
  rumble = (0.3 + 0.1 * np.sin(2 * np.pi * 3.0 * t)).astype(np.float32)
  filtered = cleaning.remove_rumble(music + rumble, 20.0)
  tail = slice(RATE, None)  # After the filter has settled on the 3 Hz wobble.
  assert abs(filtered[tail].mean()) < 1e-3
  # 110 Hz passes at its level (its phase turns by ~15 degrees); what remains is not rumble.
  basis = np.stack([np.sin(2 * np.pi * 110.0 * t[tail]), np.cos(2 * np.pi * 110.0 * t[tail])], 1)
  fit, *_ = np.linalg.lstsq(basis, filtered[tail], rcond=None)
  assert abs(np.hypot(*fit) / 0.2 - 1) < 0.01
  assert np.sqrt(np.mean((filtered[tail] - basis @ fit)**2)) < 0.005
  assert np.abs(filtered[:RATE // 10]).max() < 0.25  # Settled at the offset: no thump at the start.
  # In place and chunked: the same samples as one scipy call from the same state.
  samples = music + rumble
  sos = scipy.signal.butter(2, 20.0, 'highpass', fs=RATE, output='sos').astype(np.float32)
  state = (scipy.signal.sosfilt_zi(sos) * samples[:1024].mean(dtype=np.float64)).astype(np.float32)
  expected, _ = scipy.signal.sosfilt(sos, samples, zi=state)
  in_place = cleaning.remove_rumble(samples, 20.0, in_place=True)
  assert in_place is samples
  np.testing.assert_array_equal(in_place, expected.astype(np.float32))
  # clean() runs it first, so an offset never reaches the silence split or the loudness gain.
  offset_tone = tone(3) + np.float32(0.3)
  cleaned, _ = cleaning.clean(offset_tone, cleaning.CleaningOptions(remove_silence=False))
  assert abs(cleaned[RATE:].mean()) < 1e-3
  kept, _ = cleaning.clean(offset_tone, cleaning.CleaningOptions(remove_silence=False,
                                                                 highpass_hz=0.0))
  assert kept.mean() > 0.05
