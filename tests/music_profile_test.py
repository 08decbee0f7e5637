"""music_structure and music_profile: each entry sees the property it is named after."""
import json

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.ndimage

from melodygan_jax.audio import contract
from melodygan_jax.audio import music_structure
from melodygan_jax.evaluation import corruptions
from melodygan_jax.evaluation import music_profile
from melodygan_jax.training import vqvae_trainer

RATE = contract.SAMPLE_RATE_HZ
ENTRY = {name: index for index, name in enumerate(music_structure.PROFILE_ENTRIES)}


def click_track(seconds: float, bpm: float = 120.0, seed: int = 0) -> np.ndarray:
  """Decaying noise bursts on every beat."""
  rng = np.random.default_rng(seed)
  samples = np.zeros(int(seconds * RATE), np.float32)
  burst = np.exp(-np.arange(2000) / 200.0) * rng.standard_normal(2000)
  for start in range(0, len(samples) - len(burst), int(RATE * 60.0 / bpm)):
    samples[start:start + len(burst)] += burst
  return 0.5 * samples


def chord(seconds: float, root_hz: float = 261.63) -> np.ndarray:
  """A sustained major triad with a few harmonics."""
  time = np.arange(int(seconds * RATE)) / RATE
  tones = [root_hz * ratio * harmonic for ratio in (1.0, 2 ** (4 / 12), 2 ** (7 / 12))
           for harmonic in (1, 2, 3)]
  return (sum(np.sin(2 * np.pi * hz * time) / hz for hz in tones) * 50.0).astype(np.float32)


@pytest.fixture(scope='module')
def clicks():
  return click_track(12.0)


def test_a_click_track_has_a_clear_steady_pulse_and_shuffling_removes_it(clicks):
  shuffled = corruptions.shuffled_blocks(clicks, np.random.default_rng(0))
  steady, broken = music_structure.clip_profile(clicks), music_structure.clip_profile(shuffled)
  assert steady[ENTRY['pulse_clarity']] > 0.8
  assert broken[ENTRY['pulse_clarity']] < 0.5
  assert steady[ENTRY['tempo_stability']] == 1.0
  assert broken[ENTRY['tempo_stability']] < 0.7
  assert 1.5 < steady[ENTRY['onset_density_per_s']] < 2.5  # Two beats a second.
  assert steady[ENTRY['bar_repetition']] > broken[ENTRY['bar_repetition']] + 0.1
  assert steady[ENTRY['harmonic_share']] < 0.2  # Clicks are percussive.


def test_a_log_mel_gives_the_pulse_of_the_audio_it_came_from(clicks):
  # A decoded log-mel has no audio: its squared mel magnitude in dB stands for mel power.
  log_mel = contract.log_mel(clicks)
  squared_mel = contract.mel_frames(contract.magnitude_frames(clicks)).astype(np.float64) ** 2
  np.testing.assert_allclose(music_structure.mel_power_db_of_log_mel(log_mel),
                             librosa.power_to_db(squared_mel), atol=1e-3)
  envelope = music_structure.onset_envelope_of_log_mel(log_mel)
  from_audio = music_structure.clip_profile(clicks)[ENTRY['pulse_clarity']]
  assert music_structure.pulse_clarity(envelope) == pytest.approx(from_audio, abs=0.05)


def test_the_codecs_onset_loss_sees_the_profiles_onset_envelope(clicks):
  """vqvae_trainer's loss computes, in JAX, the envelope whose periodicity the profile reads."""
  log_mel = contract.log_mel(clicks)
  envelope = music_structure.onset_envelope_of_log_mel(log_mel)
  mel_db = jnp.asarray(contract.DB_PER_LOG_MAGNITUDE * log_mel)[None]
  in_jax = np.asarray(vqvae_trainer.mel_onset_envelopes(
      mel_db, mel_db.max() - contract.TOP_DB))[0]
  # librosa pads the flux by its lag and half its default 2,048-sample frame, in hops,
  offset = 1 + 2048 // (2 * contract.HOP_LENGTH)
  # and keeps the input's length.
  np.testing.assert_allclose(in_jax[:len(envelope) - offset], envelope[offset:],
                             rtol=1e-4, atol=1e-4)
  # On normalized crops (unit statistics here): nothing for a copy, a lot for the
  # same spectrum with its clicks smeared over 16 frames, and a gradient that says where.
  stats = vqvae_trainer.unit_log_mel_stats()
  crops = jnp.asarray(log_mel[:256].reshape(2, 128, -1))
  smeared = jnp.asarray(scipy.ndimage.uniform_filter1d(np.asarray(crops), 16, axis=1))
  loss = lambda recon: vqvae_trainer.onset_envelope_loss(recon, crops, *stats)
  assert float(loss(crops)) == 0.0
  assert float(loss(smeared)) > 0.5
  assert np.isfinite(np.asarray(jax.grad(loss)(smeared))).all()


def test_a_sustained_chord_is_stable_harmonic_and_in_a_key():
  held = music_structure.clip_profile(chord(6.0))
  jittered = music_structure.clip_profile(
      corruptions.pitch_jitter(chord(6.0), np.random.default_rng(0)))
  assert held[ENTRY['chroma_stability']] > 0.95
  assert jittered[ENTRY['chroma_stability']] < held[ENTRY['chroma_stability']] - 0.1
  assert held[ENTRY['chroma_entropy_bits']] < jittered[ENTRY['chroma_entropy_bits']]
  assert held[ENTRY['key_clarity']] > 0.6
  assert held[ENTRY['harmonic_share']] > 0.9
  assert held[ENTRY['onset_density_per_s']] < 1.0  # One onset, at the start.


def test_noise_has_no_pulse_and_a_nearly_flat_chroma():
  noise = 0.1 * np.random.default_rng(1).standard_normal(10 * RATE).astype(np.float32)
  profile = music_structure.clip_profile(noise)
  assert profile[ENTRY['pulse_clarity']] < 0.3
  assert profile[ENTRY['chroma_entropy_bits']] > 3.5  # log2(12) = 3.58 is flat.


def test_short_clips_give_a_null_long_range_entry_with_a_note(clicks):
  short = np.stack([clicks[:5 * RATE], click_track(5.0, bpm=90.0)])
  profiles = music_structure.profiles(short)
  assert np.isnan(profiles[:, ENTRY['bar_repetition']]).all()
  assert np.isfinite(profiles[:, ENTRY['pulse_clarity']]).all()
  summary = music_profile.summarize(profiles, profiles, clip_seconds=5.0, num_resamples=20)
  assert summary['bar_repetition']['value'] is None
  assert summary['bar_repetition']['per_clip'] == [None, None]
  assert 'clip_seconds=5' in summary['bar_repetition']['note']
  assert summary['pulse_clarity']['z_vs_floor'] == pytest.approx(0.0)
  json.loads(json.dumps(summary, allow_nan=False))  # Nulls, not NaN, in the JSON.


def test_summary_measures_the_distance_from_the_floor_in_floor_stds():
  floor = np.zeros((4, len(music_structure.PROFILE_ENTRIES)))
  floor[:, 0] = [0.5, 0.6, 0.7, 0.6]
  compared = floor.copy()
  compared[:, 0] -= 0.3
  summary = music_profile.summarize(compared, floor, clip_seconds=10.0, num_resamples=50)
  pulse = summary['pulse_clarity']
  assert pulse['value'] == pytest.approx(0.3)
  assert pulse['z_vs_floor'] == pytest.approx(-0.3 / floor[:, 0].std())
  assert pulse['low'] <= pulse['value'] <= pulse['high']
  assert summary['tempo_stability']['z_vs_floor'] is None  # A constant floor has no std.
