r"""A small, seeded corpus of music-like songs, for the demo and the tests.

  python -m data_prep.demo_corpus --output_dir=demo/corpus [--num_songs=8 --seconds=30]

Each song has a chord progression on a decaying keyboard, a bass line, drums,
a lead melody whose motif repeats with variation, and a sung-like vocal line
(a glottal source shaped by vowel formants, with vibrato). Written:
  songs/song_NN.wav                   the mixes (what prepare reads)
  stems/song_NN/{vocals,instrumental}.wav   the true stems (mix = their sum)
The stems live outside songs/ so prepare does not take them for more songs.
"""
import pathlib

from absl import app
from absl import flags
import numpy as np

from melodygan_jax.audio import contract
from melodygan_jax.audio import audio_io

SAMPLE_RATE_HZ = contract.SAMPLE_RATE_HZ
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# Progressions as scale degrees (0 = I), one chord a bar.
_PROGRESSIONS = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (1, 4, 0, 5))
# (F1, F2, F3) in Hz of the vowels a, e, i, o, u.
_VOWEL_FORMANTS_HZ = np.array([(800, 1150, 2900), (400, 1600, 2700), (300, 2300, 3000),
                               (450, 800, 2830), (325, 700, 2530)], np.float32)
_FORMANT_BANDWIDTHS_HZ = np.array([80, 100, 120], np.float32)


def midi_to_hz(note) -> np.ndarray:
  return 440.0 * 2.0 ** ((np.asarray(note, np.float32) - 69.0) / 12.0)


def _scale_note(key: int, degree: int, octave: int) -> int:
  return 12 * (octave + 1) + key + _MAJOR_SCALE[degree % 7] + 12 * (degree // 7)


def _envelope(num_samples: int, attack_s: float, decay_s: float) -> np.ndarray:
  """Linear attack, then exponential decay with time constant `decay_s`."""
  t = np.arange(num_samples, dtype=np.float32) / SAMPLE_RATE_HZ
  env = np.minimum(t / attack_s, 1.0) * np.exp(-np.maximum(t - attack_s, 0.0) / decay_s)
  release = min(num_samples, int(0.01 * SAMPLE_RATE_HZ))
  env[num_samples - release:] *= np.linspace(1.0, 0.0, release, dtype=np.float32)
  return env


def _harmonic_note(freq_hz: float, duration_s: float, harmonic_gains,
                   attack_s: float, decay_s: float) -> np.ndarray:
  n = int(duration_s * SAMPLE_RATE_HZ)
  t = np.arange(n, dtype=np.float32) / SAMPLE_RATE_HZ
  wave = np.zeros(n, np.float32)
  for k, gain in enumerate(harmonic_gains, start=1):
    if k * freq_hz < SAMPLE_RATE_HZ / 2:
      wave += gain * np.sin(2 * np.pi * k * freq_hz * t)
  return wave * _envelope(n, attack_s, decay_s)


def _add(track: np.ndarray, sound: np.ndarray, start_s: float, gain: float = 1.0) -> None:
  start = int(start_s * SAMPLE_RATE_HZ)
  end = min(len(track), start + len(sound))
  if end > start:
    track[start:end] += gain * sound[:end - start]


def _drums(num_samples, beat_s, rng) -> np.ndarray:
  track = np.zeros(num_samples, np.float32)
  num_beats = int(num_samples / SAMPLE_RATE_HZ / beat_s)
  t = np.arange(int(0.3 * SAMPLE_RATE_HZ), dtype=np.float32) / SAMPLE_RATE_HZ
  kick = np.sin(2 * np.pi * np.cumsum(50 + 90 * np.exp(-t / 0.03)) / SAMPLE_RATE_HZ)
  kick *= np.exp(-t / 0.12)
  snare_noise = rng.standard_normal(len(t)).astype(np.float32)
  snare = (0.6 * snare_noise + np.sin(2 * np.pi * 185 * t)) * np.exp(-t / 0.07)
  hat_len = int(0.05 * SAMPLE_RATE_HZ)
  hat = np.diff(rng.standard_normal(hat_len + 1)).astype(np.float32)
  hat *= np.exp(-np.arange(hat_len) / (0.012 * SAMPLE_RATE_HZ))
  for beat in range(num_beats):
    start_s = beat * beat_s
    _add(track, kick if beat % 2 == 0 else snare, start_s, 0.8 if beat % 2 == 0 else 0.45)
    for half in range(2):
      _add(track, hat, start_s + half * beat_s / 2, 0.12 + 0.05 * rng.random())
  return track


def _vocal(num_samples, key, bar_s, beat_s, rng) -> np.ndarray:
  """Phrases of sung notes: glottal harmonics through vowel formants."""
  f0 = np.zeros(num_samples, np.float32)
  loudness = np.zeros(num_samples, np.float32)
  vowel = np.zeros(num_samples, np.int64)
  num_bars = int(num_samples / SAMPLE_RATE_HZ / bar_s)
  phrase = [int(d) for d in rng.integers(0, 7, size=6)]
  for bar in range(0, num_bars, 2):  # A phrase over two bars, then a rest.
    start_s = bar * bar_s + beat_s
    degrees = phrase if bar % 4 == 0 else [d + int(rng.integers(-1, 2)) for d in phrase]
    note_s = (2 * bar_s - 2 * beat_s) / len(degrees)
    for i, degree in enumerate(degrees):
      lo = int((start_s + i * note_s) * SAMPLE_RATE_HZ)
      hi = min(num_samples, int((start_s + (i + 1) * note_s) * SAMPLE_RATE_HZ))
      f0[lo:hi] = midi_to_hz(_scale_note(key, degree, 4))
      loudness[lo:hi] = 1.0
      vowel[lo:hi] = rng.integers(0, len(_VOWEL_FORMANTS_HZ))
  # Glide between notes and soft phrase edges: smooth with a 40 ms window.
  smooth = np.hanning(int(0.04 * SAMPLE_RATE_HZ)).astype(np.float32)
  smooth /= smooth.sum()
  voiced = loudness > 0
  f0 = np.where(voiced, f0, np.interp(np.arange(num_samples), np.flatnonzero(voiced),
                                      f0[voiced]) if voiced.any() else 220.0)
  f0 = np.convolve(f0, smooth, mode='same')
  loudness = np.convolve(loudness, smooth, mode='same')
  t = np.arange(num_samples, dtype=np.float32) / SAMPLE_RATE_HZ
  vibrato_depth = 0.012 * np.minimum(1.0, t % (2 * bar_s) / 0.5)  # Vibrato grows in.
  f0 = f0 * (1.0 + vibrato_depth * np.sin(2 * np.pi * 5.5 * t))
  formants = np.stack([np.convolve(_VOWEL_FORMANTS_HZ[vowel, j], smooth, mode='same')
                       for j in range(3)], axis=1)
  phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE_HZ
  wave = np.zeros(num_samples, np.float32)
  for k in range(1, 40):
    freq = k * f0
    gain = np.zeros(num_samples, np.float32)
    for j in range(3):
      gain += 1.0 / (1.0 + ((freq - formants[:, j]) / (_FORMANT_BANDWIDTHS_HZ[j] / 2)) ** 2)
    gain *= (freq < SAMPLE_RATE_HZ / 2) / k  # Glottal source falls as 1/k.
    wave += gain * np.sin(k * phase)
  breath = rng.standard_normal(num_samples).astype(np.float32) * 0.01
  return (wave + breath) * loudness


def synthesize_song(seed: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
  """One song's true stems.

  Args:
    seed: picks key, tempo, progression, motif and timbres.
    seconds: length.

  Returns:
    (vocals, instrumental), float32 mono at SAMPLE_RATE_HZ; the mix is their sum.
  """
  rng = np.random.default_rng(seed)
  num_samples = int(seconds * SAMPLE_RATE_HZ)
  key = int(rng.integers(0, 12))
  beat_s = 60.0 / float(rng.uniform(88, 128))
  bar_s = 4 * beat_s
  progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
  keys_gains = rng.uniform(0.2, 1.0, size=6) / np.arange(1, 7)
  lead_gains = rng.uniform(0.1, 1.0, size=8) / np.arange(1, 9) ** 0.7
  motif = rng.integers(0, 7, size=8)
  keys = np.zeros(num_samples, np.float32)
  bass = np.zeros(num_samples, np.float32)
  lead = np.zeros(num_samples, np.float32)
  num_bars = int(seconds / bar_s) + 1
  for bar in range(num_bars):
    root = progression[bar % len(progression)]
    bar_start = bar * bar_s
    for beat in range(4):  # Chords on every beat, accent on the first.
      for degree in (root, root + 2, root + 4):
        note = _harmonic_note(midi_to_hz(_scale_note(key, degree, 4)), beat_s,
                              keys_gains, 0.005, 0.35)
        _add(keys, note, bar_start + beat * beat_s, 0.16 if beat == 0 else 0.1)
    for eighth in range(8):
      degree = root if eighth % 4 != 3 else root + 4
      note = _harmonic_note(midi_to_hz(_scale_note(key, degree, 2)), beat_s / 2,
                            (1.0, 0.5, 0.33, 0.25), 0.005, 0.25)
      _add(bass, note, bar_start + eighth * beat_s / 2, 0.35)
    # The motif, moved to this bar's chord and varied every other time round.
    variation = rng.integers(-1, 2, size=8) if bar % 2 else np.zeros(8, np.int64)
    for i, degree in enumerate(motif + variation + root):
      if bar % 4 == 3 and i >= 6:
        break  # A breath at the end of each four-bar phrase.
      note = _harmonic_note(midi_to_hz(_scale_note(key, int(degree), 5)), beat_s / 2,
                            lead_gains, 0.02, 0.4)
      _add(lead, note, bar_start + i * beat_s / 2, 0.12)
  instrumental = keys + bass + lead + _drums(num_samples, beat_s, rng)
  vocals = 0.3 * _vocal(num_samples, key, bar_s, beat_s, rng)
  peak = max(np.abs(instrumental + vocals).max(), 1e-6)
  scale = 0.9 / peak
  return (vocals * scale).astype(np.float32), (instrumental * scale).astype(np.float32)


def build_corpus(output_dir, num_songs: int = 8, seconds: float = 30.0,
                 seed: int = 0) -> list[pathlib.Path]:
  """Writes the corpus (see the module docstring); returns the mix paths."""
  output_dir = pathlib.Path(output_dir)
  mixes = []
  for index in range(num_songs):
    name = f'song_{index:02d}'
    vocals, instrumental = synthesize_song(seed * 1000 + index, seconds)
    mix_path = output_dir / 'songs' / f'{name}.wav'
    audio_io.write_wav(output_dir / 'stems' / name / 'vocals.wav', vocals)
    audio_io.write_wav(output_dir / 'stems' / name / 'instrumental.wav', instrumental)
    audio_io.write_wav(mix_path, vocals + instrumental)
    mixes.append(mix_path)
  return mixes


def main(argv):
  del argv
  if not flags.FLAGS.output_dir:
    raise app.UsageError('--output_dir is required')
  if flags.FLAGS.num_songs < 1 or flags.FLAGS.seconds < 1:
    raise app.UsageError('--num_songs and --seconds must be at least 1')
  config = flags.FLAGS
  mixes = build_corpus(config.output_dir, config.num_songs, config.seconds, config.seed)
  print(f'{len(mixes)} songs in {pathlib.Path(config.output_dir) / "songs"}')


def run():
  flags.DEFINE_string('output_dir', None, 'Where the corpus is written.')
  flags.DEFINE_integer('num_songs', 8, 'Number of songs.')
  flags.DEFINE_float('seconds', 30.0, 'Length of each song.')
  flags.DEFINE_integer('seed', 0, 'Corpus seed: the same seed writes the same files.')
  app.run(main)


if __name__ == '__main__':
  run()
