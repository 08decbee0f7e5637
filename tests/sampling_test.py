"""Sampling from a prompt (continuation) and from the style of given clips."""
import json

import numpy as np
import pytest
import soundfile

from melodygan_jax.audio import audio_io
from melodygan_jax.generation import sample


def read(path):
  return soundfile.read(path, dtype='float32')[0]


@pytest.mark.parametrize('gan_fixture', ['trained_gan', 'trained_context_gan'])
def test_continuation_keeps_the_prompt_and_continues_it(gan_fixture, request, corpus_dir,
                                                        tmp_path):
  # An unconditional GAN is projected onto the prompt; a context-conditioned one continues it.
  trained_gan = request.getfixturevalue(gan_fixture)
  song = corpus_dir / 'songs' / 'song_01.wav'
  manifest = sample.sample(str(trained_gan[0]), str(tmp_path), num_samples=1, seconds=2.0,
                           seed=3, prompt=str(song), prompt_seconds=1.5, show_progress=False,
                           num_references=0)
  entry = manifest['samples'][0]
  assert manifest['references'] == [] and not list(tmp_path.glob('reference_*'))  # None asked.
  clip = read(tmp_path / entry['wav'])
  prompt_samples = int(round(1.5 * 22050))
  assert len(clip) == prompt_samples + 2 * 22050
  assert entry['prompt_end_sample'] == prompt_samples and manifest['prompt'] == str(song)
  original = audio_io.read_mono(song)[:prompt_samples]  # The corpus is 22 050 Hz already...
  np.testing.assert_allclose(clip[:prompt_samples], original, atol=1.5 / 32768)
  assert np.abs(clip[prompt_samples:]).max() > 0.01  # ...and something follows,
  # without a jump at the join: no larger a step than the prompt's own largest.
  step_at_join = abs(float(clip[prompt_samples]) - float(clip[prompt_samples - 1]))
  assert step_at_join <= np.abs(np.diff(original)).max()
  assert all(join > prompt_samples for join in entry['window_joins'])
  if gan_fixture == 'trained_context_gan':
    # Windows of 8 codes, 6 of them context and the last at the edge made again by the
    # next: each adds one code (1,024 samples) after the last.
    joins = np.asarray(entry['window_joins'])
    assert len(joins) >= 20 and set(np.diff(joins)) == {4 * 256}, joins
  # A 44.1 kHz prompt: the output holds it resampled to 22 050 Hz, not re-synthesized.
  fast = tmp_path / 'fast.wav'
  soundfile.write(fast, audio_io.resample(audio_io.read_mono(song), 22050, 44100), 44100)
  again = sample.sample(str(trained_gan[0]), str(tmp_path / 'fast'), num_samples=1,
                        seconds=1.0, seed=3, prompt=str(fast), prompt_seconds=1.0,
                        show_progress=False, num_references=0)
  clip = read(tmp_path / 'fast' / again['samples'][0]['wav'])
  np.testing.assert_allclose(clip[:22050], audio_io.read_mono(fast)[:22050], atol=1.5 / 32768)
  assert len(clip) == 2 * 22050
  sample.sample(str(trained_gan[0]), str(tmp_path / 'fast_again'), num_samples=1, seconds=1.0,
                seed=3, prompt=str(fast), prompt_seconds=1.0, show_progress=False,
                num_references=0)
  for path in (tmp_path / 'fast').glob('sample_*'):
    assert path.read_bytes() == (tmp_path / 'fast_again' / path.name).read_bytes(), path.name


@pytest.mark.optimized  # Fits of 200 steps: running, not compiling.
def test_style_from_clips_and_morphs_are_reproducible(trained_gan, corpus_dir, tmp_path):
  clip_a = str(corpus_dir / 'songs' / 'song_00.wav')
  clip_b = str(corpus_dir / 'songs' / 'song_02.wav')
  runs = {}
  for name, clips in (('plain', ()), ('one', (clip_a,)), ('morph', (clip_a, clip_b)),
                      ('morph_again', (clip_a, clip_b))):
    runs[name] = sample.sample(str(trained_gan[0]), str(tmp_path / name), num_samples=1,
                               seconds=3.0, seed=4, style_from=clips, show_progress=False,
                               num_references=0)
  for path in (tmp_path / 'morph').iterdir():
    assert path.read_bytes() == (tmp_path / 'morph_again' / path.name).read_bytes(), path.name
  codes = {name: [entry['codes'] for entry in run['samples']] for name, run in runs.items()}
  assert codes['one'] != codes['plain'] and codes['morph'] != codes['one']
  assert json.loads((tmp_path / 'one' / 'manifest.json').read_text())['style_from'] == [clip_a]
  # A fitted style is used as fitted: no style strength scales it.
  assert runs['one']['style_strength'] is None and runs['morph']['style_strength'] is None
  assert runs['plain']['style_strength'] > 0
