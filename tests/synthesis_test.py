"""From latents to sound: inversion, the sampler and its page, reconstruction, evaluation."""
import json
import shutil
import subprocess

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.ndimage
import soundfile

from data_prep import demo_corpus
from melodygan_jax.audio import contract
from melodygan_jax.audio import audio_io
from melodygan_jax.evaluation import evaluate
from melodygan_jax.audio import inversion
from melodygan_jax.audio import spectral_metrics
from melodygan_jax.evaluation import latent_metrics
from melodygan_jax.generation import reconstruct
from melodygan_jax.generation import sample


@pytest.fixture(scope='module')
def known_song():
  vocals, instrumental = demo_corpus.synthesize_song(seed=5, seconds=3.0)
  return vocals + instrumental


def test_jax_stft_matches_librosa_and_inverts(known_song):
  frames = 1 + len(known_song) // contract.HOP_LENGTH
  spectrum = inversion.stft(jnp.asarray(known_song)[None], frames)[0]
  expected = librosa.stft(known_song, n_fft=1024, hop_length=256, center=True).T
  np.testing.assert_allclose(np.abs(spectrum), np.abs(expected), atol=1e-3)
  back = inversion.istft(spectrum[None], len(known_song))[0]
  np.testing.assert_allclose(back, known_song, atol=1e-5)


def test_inversion_of_a_known_mel_converges(known_song):
  log_mel = contract.log_mel(known_song)
  keys = jax.random.key(0)[None]
  clips = inversion.GriffinLimVocoder(iterations=32)(jnp.asarray(log_mel)[None], keys)
  assert clips.shape == (1, (len(log_mel) - 1) * contract.HOP_LENGTH)
  convergence = spectral_metrics.audio_spectral_convergence(np.asarray(clips[0]), log_mel)
  assert convergence < 0.12, convergence  # librosa.feature.inverse.mel_to_audio: ~0.1.
  fewer = spectral_metrics.audio_spectral_convergence(np.asarray(inversion.GriffinLimVocoder(
      iterations=2)(jnp.asarray(log_mel)[None], keys)[0]), log_mel)
  assert convergence < fewer  # More iterations, closer.
  magnitude = inversion.mel_to_magnitude(jnp.exp(jnp.asarray(log_mel))[None], 20)[0]
  assert float(magnitude.min()) >= 0.0


@pytest.fixture(scope='module')
def samples_dir(trained_gan, tmp_path_factory):
  output = tmp_path_factory.mktemp('samples')
  sample.sample(str(trained_gan[0]), str(output), num_samples=3, seconds=2.5, seed=7,
                batch_size=2, show_progress=False)
  return output


def test_sampler_writes_valid_reproducible_files(trained_gan, samples_dir, tmp_path):
  manifest = json.loads((samples_dir / 'manifest.json').read_text())
  assert manifest['seed'] == 7 and manifest['gan_step'] == 300 and manifest['vqvae_step'] == 240
  assert len(manifest['samples']) == 3
  for entry in manifest['samples']:
    info = soundfile.info(samples_dir / entry['wav'])
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, 'PCM_16')
    assert info.frames == round(2.5 * 22050) and entry['seconds'] == pytest.approx(2.5)
    assert (samples_dir / entry['png']).exists() and len(entry['codes']) >= 2.5 * 86 / 4
  # Same seed: the same bytes. Another batch size: the same music (codes).
  again = tmp_path / 'again'
  sample.sample(str(trained_gan[0]), str(again), num_samples=3, seconds=2.5, seed=7,
                batch_size=2, show_progress=False)
  for path in samples_dir.iterdir():
    assert path.read_bytes() == (again / path.name).read_bytes(), path.name
  regrouped = sample.sample(str(trained_gan[0]), str(tmp_path / 'regrouped'), num_samples=3,
                            seconds=2.5, seed=7, batch_size=3, show_progress=False)
  assert [s['codes'] for s in regrouped['samples']] == [s['codes'] for s in manifest['samples']]
  other = tmp_path / 'other'
  sample.sample(str(trained_gan[0]), str(other), num_samples=1, seconds=2.5, seed=8,
                show_progress=False)
  assert (other / 'sample_0000.wav').read_bytes() != (samples_dir / 'sample_0000.wav').read_bytes()


def test_long_samples_have_no_clicks(trained_gan, tmp_path):
  # 12 s: many times the 32-frame training crop, several decoder receptive fields.
  manifest = sample.sample(str(trained_gan[0]), str(tmp_path), num_samples=1, seconds=12.0,
                           show_progress=False)
  clip, _ = soundfile.read(tmp_path / manifest['samples'][0]['wav'], dtype='float32')
  assert len(clip) == 12 * 22050 and np.abs(clip).max() > 0.01
  spectrum = np.abs(librosa.stft(clip, n_fft=1024, hop_length=256)) ** 2
  # A click or seam is broadband and sudden: in its frame the share of energy
  # above 10 kHz jumps far above that of the frames around it.
  high_share = spectrum[465:].sum(0) / (spectrum.sum(0) + 1e-12)
  local = scipy.ndimage.median_filter(high_share, size=17, mode='nearest')
  assert np.max(high_share / (local + 1e-4)) < 20


def chromium():
  for name in ('chromium', 'chromium-browser', 'google-chrome'):
    if shutil.which(name):
      return shutil.which(name)
  pytest.skip('headless Chromium is not installed (make test installs it with apt-get)')


HARNESS = '''<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="page" src="%s"></iframe><script>
const frame = document.getElementById('page');
frame.onload = async () => {
  const doc = frame.contentDocument;
  const durations = await Promise.all([...doc.querySelectorAll('audio')].map(a =>
    new Promise(done => { if (a.readyState >= 1) return done(a.duration);
      a.addEventListener('loadedmetadata', () => done(a.duration));
      a.addEventListener('error', () => done(-1)); a.load(); })));
  const images = await Promise.all([...doc.querySelectorAll('img')].map(img =>
    img.decode().then(() => [img.naturalWidth, img.naturalHeight]).catch(() => [0, 0])));
  document.getElementById('result').textContent =
      'RESULT' + JSON.stringify({durations, images});
};
</script></body></html>'''


def test_listening_page_plays_in_headless_chromium(samples_dir, tmp_path):
  browser = chromium()
  page = (samples_dir / 'index.html').read_text()
  manifest = json.loads((samples_dir / 'manifest.json').read_text())
  for entry in manifest['samples']:
    assert f'src="{entry["wav"]}"' in page and f'src="{entry["png"]}"' in page
  harness = tmp_path / 'harness.html'
  harness.write_text(HARNESS % (samples_dir / 'index.html').as_uri())
  result = subprocess.run(
      [browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
       '--no-first-run', '--disable-background-networking', '--disable-component-update',
       '--disable-sync', f'--user-data-dir={tmp_path / "profile"}',
       '--allow-file-access-from-files', '--virtual-time-budget=15000', '--dump-dom',
       harness.as_uri()], capture_output=True, text=True, timeout=120, check=False)
  marker = result.stdout.rfind('RESULT{')
  assert marker >= 0, result.stderr[-2000:]
  found = json.loads(result.stdout[marker + len('RESULT'):].split('</pre>')[0])
  assert found['durations'] == pytest.approx([2.5] * 3, abs=0.01)
  assert len(found['images']) == 3
  assert all(width > 100 and height > 100 for width, height in found['images'])


@pytest.mark.parametrize('kind', ['stereo_48k.wav', 'song.mp3', 'short.wav'])
def test_reconstruct_any_input_keeps_its_duration(trained_vqvae, corpus_dir, tmp_path, kind):
  mix, rate = soundfile.read(corpus_dir / 'songs' / 'song_01.wav', dtype='float32')
  path = tmp_path / kind
  if kind == 'stereo_48k.wav':
    resampled = audio_io.resample(mix[:5 * rate], rate, 48000)
    soundfile.write(path, np.stack([resampled, 0.5 * resampled], 1), 48000, subtype='PCM_24')
  elif kind == 'song.mp3':
    soundfile.write(tmp_path / 'tmp.wav', mix[:4 * rate], rate)
    subprocess.run([audio_io.ffmpeg_executable(), '-v', 'error', '-i', str(tmp_path / 'tmp.wav'),
                    str(path)], check=True)
  else:  # 0.3 s: shorter than one training crop and than a loudness block.
    soundfile.write(path, mix[rate:rate + int(0.3 * rate)], rate)
  metrics = reconstruct.reconstruct_file(str(trained_vqvae[0]), str(path), str(tmp_path / 'out.wav'),
                                         chunk_frames=64, overlap_frames=16)
  expected = len(audio_io.read_mono(path))
  info = soundfile.info(tmp_path / 'out.wav')
  assert info.frames == expected and info.samplerate == 22050
  assert all(np.isfinite(v) for k, v in metrics.items() if isinstance(v, float))
  assert metrics['mel_spectral_convergence'] < 1.5


def test_chunked_reconstruction_equals_one_pass(trained_vqvae, corpus_dir):
  from melodygan_jax.generation import pretrained  # pylint: disable=g-import-not-at-top
  vqvae = pretrained.load_vqvae(str(trained_vqvae[0]))
  mix, _ = soundfile.read(corpus_dir / 'songs' / 'song_02.wav', dtype='float32')
  normalized = vqvae.normalize(contract.log_mel(mix[:4 * 22050]), 'mix')[:336]
  whole = np.asarray(vqvae.jit_reconstruct(vqvae.state, normalized[None]))[0]
  chunked = reconstruct.reconstruct_normalized(vqvae, normalized, chunk_frames=48,
                                               overlap_frames=32)
  # Away from the clip's own edges (where padding differs) chunks join seamlessly.
  np.testing.assert_allclose(chunked[40:-40], whole[40:-40], atol=1e-4)


def test_evaluate_metrics(trained_vqvae, trained_gan, prepared_dir):
  frames = np.random.default_rng(0).standard_normal((30, 20))
  assert evaluate.mel_cepstral_distortion(frames, frames) == 0.0
  features = np.random.default_rng(1).standard_normal((50, 6))
  assert latent_metrics.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
  metrics = evaluate.evaluate(str(trained_vqvae[0]), str(prepared_dir), str(trained_gan[0]),
                              num_samples=24)
  assert metrics['vqvae/num_segments'] > 0
  assert 0 < metrics['vqvae/mel_spectral_convergence'] < 1.5
  assert metrics['vqvae/mel_cepstral_distortion_db'] > 0
  assert 0 < metrics['vqvae/codebook_usage'] <= 1
  for kind in ('mfcc', 'encoder'):
    # Real against real is closest; uniform codes are the farthest from real music.
    assert metrics[f'floor/frechet_{kind}'] < metrics[f'baseline_uniform/frechet_{kind}']
    assert metrics[f'baseline_iid/frechet_{kind}'] < metrics[f'baseline_uniform/frechet_{kind}']
    assert np.isfinite(metrics[f'gan/frechet_{kind}'])


def test_interpolation_starts_at_the_first_seed(trained_gan, tmp_path):
  plain = sample.sample(str(trained_gan[0]), str(tmp_path / 'plain'), num_samples=1, seconds=1.0,
                        seed=3, show_progress=False)
  moving = sample.sample(str(trained_gan[0]), str(tmp_path / 'moving'), num_samples=4,
                         seconds=1.0, seed=0, interpolate=(3, 4), show_progress=False)
  assert moving['interpolate'] == [3, 4] and len(moving['samples']) == 4
  assert moving['samples'][0]['codes'] == plain['samples'][0]['codes']
  assert len({str(s['codes']) for s in moving['samples']}) > 1  # It moves.
