"""From latents to sound: inversion, the sampler and its page, reconstruction, evaluation."""
import json
import shutil
import subprocess

import jax
import jax.numpy as jnp
import librosa
from matplotlib import image as plt_image
import numpy as np
import pytest
import scipy.ndimage
import soundfile

from data_prep import demo_corpus
from melodygan_jax.audio import contract
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import inversion
from melodygan_jax.audio import spectral_metrics
from melodygan_jax.generation import reconstruct
from melodygan_jax.generation import listening_page
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


def test_circular_stft_is_the_stft_of_the_signal_repeated(known_song):
  period = jnp.asarray(known_song[:120 * contract.HOP_LENGTH])[None]
  spectrum = inversion.circular_stft(period)
  assert spectrum.shape == (1, 120, contract.N_FFT // 2 + 1)
  # Frames of the middle copy of three: they see the end before and the start after.
  tiled = inversion.stft(jnp.tile(period, (1, 3)), 3 * 120 + 1)[:, 120:240]
  np.testing.assert_allclose(np.abs(spectrum), np.abs(tiled), atol=1e-3)
  np.testing.assert_allclose(inversion.circular_istft(spectrum), period, atol=1e-5)
  loop = inversion.GriffinLimVocoder().loop(contract.log_mel(known_song)[None, :120],
                                            jax.random.key(0)[None])
  assert loop.shape == period.shape


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


def test_griffin_lim_from_a_given_phase_starts_there(known_song):
  frames = len(known_song) // contract.HOP_LENGTH  # Griffin-Lim's (frames - 1) hops of audio.
  song = known_song[:(frames - 1) * contract.HOP_LENGTH]
  spectrum = inversion.stft(jnp.asarray(song)[None], frames)
  magnitude, true_phase = jnp.abs(spectrum), spectrum / (jnp.abs(spectrum) + 1e-8)
  # The true phase of a consistent spectrum is a fixed point: the song comes back.
  kept = inversion.griffin_lim_phase(magnitude, None, 4, initial_phase=true_phase)
  back = inversion.istft(magnitude * kept, len(song))[0]
  assert float(jnp.abs(back - song).max()) < 1e-3
  # From random phases, the same iterations land elsewhere.
  found = inversion.griffin_lim_phase(magnitude, jax.random.key(0)[None], 4)
  assert float(jnp.abs(inversion.istft(magnitude * found, len(song))[0] - song).max()) > 0.05


def test_a_peak_locked_start_needs_fewer_griffin_lim_iterations(known_song):
  log_mel = contract.log_mel(known_song)
  magnitude = inversion.mel_to_magnitude(jnp.exp(jnp.asarray(log_mel))[None], 20)
  keys = jax.random.key(0)[None]

  def convergence(phase):
    audio = inversion.istft(magnitude * phase, (len(log_mel) - 1) * contract.HOP_LENGTH)
    return spectral_metrics.audio_spectral_convergence(np.asarray(audio[0]), log_mel)

  start = jax.jit(inversion.peak_locked_phase)(magnitude)
  np.testing.assert_allclose(np.abs(start), 1.0, atol=1e-5)
  locked = [convergence(inversion.griffin_lim_phase(magnitude, None, iterations,
                                                    initial_phase=start) if iterations
                        else start) for iterations in (0, 4)]
  random = [convergence(inversion.griffin_lim_phase(magnitude, keys, iterations))
            for iterations in (0, 4, 16)]
  assert locked[0] < 0.5 * random[0] and locked[1] < random[1], (locked, random)
  assert locked[1] < random[2], (locked, random)  # 4 from the peaks beat 16 from noise.
  # A clip's phase does not depend on the batch it is in.
  quiet = 0.01 * magnitude[:, ::-1]
  both = inversion.peak_locked_phase(jnp.concatenate([magnitude, quiet]))
  np.testing.assert_allclose(both[:1], inversion.peak_locked_phase(magnitude), atol=1e-4)


def test_mel_refinement_brings_the_mel_back_and_keeps_the_detail(known_song):
  """Griffin-Lim's projections onto the spectra with the given mel: its mel distance
  falls far below plain Griffin-Lim's, and the rest of the spectrum gets no worse."""
  from melodygan_jax.evaluation import reconstruction  # pylint: disable=g-import-not-at-top
  log_mel = jnp.asarray(contract.log_mel(known_song))[None]
  keys = jax.random.key(0)[None]
  plain = np.asarray(inversion.GriffinLimVocoder(iterations=32)(log_mel, keys)[0])
  refined = np.asarray(inversion.GriffinLimVocoder(
      iterations=32, mel_refinement_iterations=32)(log_mel, keys)[0])
  assert refined.shape == plain.shape
  distance = lambda audio: reconstruction.mel_distance(known_song, audio, contract.SAMPLE_RATE_HZ)
  assert distance(refined) < 0.7 * distance(plain), (distance(refined), distance(plain))
  mr_stft = lambda audio: reconstruction.multi_resolution_stft_distance(known_song, audio)['total']
  assert mr_stft(refined) < mr_stft(plain)
  # One projection moves every band toward its target; bins no band covers (DC) go to zero.
  spectrum = inversion.stft(jnp.asarray(plain)[None], log_mel.shape[1])
  basis = jnp.asarray(contract.mel_filterbank())
  before = jnp.abs(jnp.log(inversion.magnitude(spectrum) @ basis.T + 1e-5) - log_mel)
  matched = inversion.match_mel(spectrum, jnp.exp(log_mel))
  after = jnp.abs(jnp.log(inversion.magnitude(matched) @ basis.T + 1e-5) - log_mel)
  assert float(after.mean()) < 0.6 * float(before.mean())  # 0.50x here.
  assert float(jnp.abs(matched[..., 0]).max()) == 0.0
  # A loop stays a loop: the refinement wraps around as Griffin-Lim does.
  loop = inversion.GriffinLimVocoder(mel_refinement_iterations=4).loop(log_mel[:, :120], keys)
  assert loop.shape == (1, 120 * contract.HOP_LENGTH)


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
  assert not click_frames(clip)
  # The detector sees a click: one sample at 0.9 where the clip is quietest
  # (away from the ends), so its check does not hang on what the GAN put there.
  frame_rms = np.sqrt(np.mean(np.square(clip[:len(clip) // 1024 * 1024].reshape(-1, 1024)), 1))
  position = (int(np.argmin(frame_rms[2:-2])) + 2) * 1024 + 512
  clicked = clip.copy()
  clicked[position] = 0.9
  assert click_frames(clicked) and click_frames(clicked)[0] == pytest.approx(position / 128,
                                                                             abs=2)


def click_frames(clip: np.ndarray) -> list[int]:
  """Frames (hop 128) holding a click or a seam: a broadband flash shorter than a frame.

  In a frame with a click, most frequency bins stand far (12 dB) above the
  median of the same bin in the three frames on each side; a drum hit or a
  note onset lasts longer than that, so its neighbours are loud too. On the
  demo corpus, real music and Griffin-Lim output the largest share of such bins
  in any frame is below 0.45; a single full-scale sample gives over 0.7.
  """
  magnitude = np.abs(librosa.stft(clip, n_fft=256, hop_length=128)) + 1e-6
  neighbours = np.ones((1, 7), bool)
  neighbours[0, 3] = False
  around = scipy.ndimage.median_filter(magnitude, footprint=neighbours, mode='nearest')
  share = np.mean(magnitude > 4.0 * around, axis=0)
  return [int(frame) for frame in np.flatnonzero(share > 0.5)]


def chromium():
  for name in ('chromium', 'chromium-browser', 'google-chrome'):
    if shutil.which(name):
      return shutil.which(name)
  pytest.skip('headless Chromium is not installed (make test installs it with apt-get)')


HARNESS = '''<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="page" src="%s"></iframe><script>
const frame = document.getElementById('page');
frame.onload = async () => { try {
  const doc = frame.contentDocument;
  const durations = await Promise.all([...doc.querySelectorAll('audio')].map(a =>
    new Promise(done => { if (a.readyState >= 1) return done(a.duration);
      a.addEventListener('loadedmetadata', () => done(a.duration));
      a.addEventListener('error', () => done(-1)); a.load(); })));
  const images = await Promise.all([...doc.querySelectorAll('img')].map(img =>
    new Promise(done => { const size = () => done([img.naturalWidth, img.naturalHeight]);
      if (img.complete) return size();
      img.addEventListener('load', size); img.addEventListener('error', () => done([0, 0])); })));
  // Seek the first clip to 1 s: its cursor must stand at 1/10 of its first row.
  const audio = doc.querySelector('audio');
  audio.currentTime = 1.0;  // Reads back at once as the new position (the seek runs on).
  audio.dispatchEvent(new Event('timeupdate'));  // Headless media may not send one in time.
  const cursor = doc.querySelector('.cursor');
  const slice = cursor.parentElement.getBoundingClientRect();
  const position = (cursor.getBoundingClientRect().left - slice.left) / slice.width;
  const visible = getComputedStyle(cursor).display;
  document.getElementById('result').textContent =
      'RESULT' + JSON.stringify({durations, images, position, visible});
  } catch (error) {
    document.getElementById('result').textContent = 'RESULT' + JSON.stringify({error: String(error)});
  } };
</script></body></html>'''


@pytest.mark.browser
def test_listening_page_plays_in_headless_chromium(samples_dir, tmp_path):
  browser = chromium()
  page = (samples_dir / 'index.html').read_text()
  manifest = json.loads((samples_dir / 'manifest.json').read_text())
  for entry in manifest['samples']:
    assert f'src="{entry["wav"]}"' in page and f'src="{entry["png"]}"' in page
  assert manifest['references'], 'the held-out clips are missing from the page'
  for entry in manifest['references']:
    for kind in ('original', 'reconstruction'):
      assert f'src="{entry[kind]["wav"]}"' in page
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
  reference_s = [entry[kind]['seconds'] for entry in manifest['references']
                 for kind in ('original', 'reconstruction')]
  assert found['durations'] == pytest.approx([2.5] * 3 + reference_s, abs=0.01)
  assert len(found['images']) == 3 + len(reference_s)  # One row each: all clips < 10 s.
  # A clip shorter than a row is one row of its own length (64 frames for the references).
  row_height = contract.NUM_MELS * listening_page.PIXELS_PER_BAND
  assert all(width >= 60 and height == row_height for width, height in found['images'])
  # A 2.5 s clip is one row of 2.5 s: 1 s is 0.4 of the way across it.
  assert found['visible'] == 'block' and found['position'] == pytest.approx(0.4, abs=0.01)


def test_long_spectrograms_wrap_into_readable_rows(tmp_path):
  five_minutes = np.random.default_rng(0).standard_normal(
      (listening_page.frames_per_row() * 30 - 5, contract.NUM_MELS)).astype(np.float32)
  rows = listening_page.write_spectrogram(tmp_path / 'long.png', five_minutes)
  image = plt_image.imread(tmp_path / 'long.png')
  assert rows == 30
  assert image.shape[:2] == (30 * contract.NUM_MELS * listening_page.PIXELS_PER_BAND,
                             listening_page.frames_per_row())
  figure = listening_page.clip_figure('long', 'long.wav', 'long.png', 299.9, rows)
  assert figure.count('class="slice"') == 30 and '290 s' in figure and '8 kHz' in figure


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
  # Better than the mean spectrum of the training data in every frame.
  from melodygan_jax.runs import loading  # pylint: disable=g-import-not-at-top
  vqvae = loading.load_vqvae(str(trained_vqvae[0]))
  log_mel = contract.log_mel(reconstruct.prepare_input(str(path)))
  mean_spectrum = vqvae.denormalize(np.zeros_like(log_mel), 'mix')
  baseline = float(spectral_metrics.spectral_convergence(log_mel, mean_spectrum))
  assert metrics['mel_spectral_convergence'] < baseline


def test_chunked_reconstruction_equals_one_pass(trained_vqvae, corpus_dir):
  from melodygan_jax.runs import loading  # pylint: disable=g-import-not-at-top
  vqvae = loading.load_vqvae(str(trained_vqvae[0]))
  mix, _ = soundfile.read(corpus_dir / 'songs' / 'song_02.wav', dtype='float32')
  normalized = vqvae.normalize(contract.log_mel(mix[:4 * 22050]), 'mix')[:336]
  whole = np.asarray(vqvae.jit_reconstruct(vqvae.state, normalized[None]))[0]
  chunked = reconstruct.reconstruct_normalized(vqvae, normalized, chunk_frames=48,
                                               overlap_frames=32)
  # Away from the clip's own edges (where padding differs) chunks join seamlessly.
  np.testing.assert_allclose(chunked[40:-40], whole[40:-40], atol=1e-4)


def test_interpolation_starts_at_the_first_seed(trained_gan, tmp_path):
  plain = sample.sample(str(trained_gan[0]), str(tmp_path / 'plain'), num_samples=1, seconds=1.0,
                        seed=3, show_progress=False)
  moving = sample.sample(str(trained_gan[0]), str(tmp_path / 'moving'), num_samples=4,
                         seconds=1.0, seed=0, interpolate=(3, 4), show_progress=False)
  assert moving['interpolate'] == [3, 4] and len(moving['samples']) == 4
  assert moving['samples'][0]['codes'] == plain['samples'][0]['codes']
  assert len({str(s['codes']) for s in moving['samples']}) > 1  # It moves.
