"""Decoding every format users bring, and a one-line reason for every bad file."""
import subprocess

import numpy as np
import pytest
import soundfile

from melodygan_jax.audio import audio_io

TONE_HZ = 440.0


def tone(sample_rate, seconds=1.0, channels=1):
  t = np.arange(int(sample_rate * seconds)) / sample_rate
  wave = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
  return np.stack([wave] * channels, axis=1).astype(np.float32)


def encode_with_ffmpeg(source, target, codec):
  subprocess.run([audio_io.ffmpeg_executable(), '-y', '-v', 'error', '-i', str(source),
                  '-c:a', codec, str(target)], check=True)


def dominant_frequency(samples, sample_rate):
  spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
  return np.argmax(spectrum) * sample_rate / len(samples)


@pytest.fixture(scope='module')
def stereo_48k_wav(tmp_path_factory):
  path = tmp_path_factory.mktemp('formats') / 'stereo_48k.wav'
  soundfile.write(path, tone(48000, channels=2), 48000, subtype='PCM_16')
  return path


@pytest.mark.parametrize('subtype', ['PCM_U8', 'PCM_16', 'PCM_24', 'FLOAT'])
def test_wav_bit_depths(tmp_path, subtype):
  path = tmp_path / f'{subtype}.wav'
  soundfile.write(path, tone(44100), 44100, subtype=subtype)
  samples = audio_io.read_mono(path)
  assert samples.dtype == np.float32
  assert abs(len(samples) - 22050) <= 1
  assert abs(dominant_frequency(samples, 22050) - TONE_HZ) < 2.0


@pytest.mark.parametrize('suffix,codec', [
    ('.flac', 'flac'), ('.ogg', 'libvorbis'), ('.opus', 'libopus'), ('.mp3', 'libmp3lame'),
    ('.m4a', 'aac'), ('.webm', 'libopus')])
def test_compressed_formats(tmp_path, stereo_48k_wav, suffix, codec):
  path = tmp_path / f'song{suffix}'
  encode_with_ffmpeg(stereo_48k_wav, path, codec)
  samples = audio_io.read_mono(path)
  # Codecs pad with encoder delay; the length stays within 60 ms.
  assert abs(len(samples) / 22050 - 1.0) < 0.06
  assert abs(dominant_frequency(samples, 22050) - TONE_HZ) < 2.0
  assert np.max(np.abs(samples)) > 0.3


def test_stereo_48k_is_mixed_to_mono_and_resampled(stereo_48k_wav):
  samples, sample_rate = audio_io.read_audio(stereo_48k_wav)
  assert (samples.shape, sample_rate) == ((48000, 2), 48000)
  mono = audio_io.read_mono(stereo_48k_wav)
  assert len(mono) == 22050
  np.testing.assert_allclose(mono[1000:2000], tone(22050)[1000:2000, 0], atol=2e-3)


def expect_error(path, fragment):
  with pytest.raises(audio_io.AudioReadError) as error:
    audio_io.read_audio(path)
  message = str(error.value)
  assert fragment in message and '\n' not in message
  return message


def test_truncated_wav_header_is_detected(tmp_path):
  path = tmp_path / 'cut.wav'
  soundfile.write(path, tone(22050, 2.0), 22050, subtype='PCM_16')
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  # libsndfile alone reads this silently at half the length.
  assert len(soundfile.read(path)[0]) < 44100
  expect_error(path, 'header promises 44100 frames')


def test_truncated_flac_and_mp3(tmp_path, stereo_48k_wav):
  for suffix, codec in (('.flac', 'flac'), ('.mp3', 'libmp3lame')):
    whole = tmp_path / f'whole{suffix}'
    encode_with_ffmpeg(stereo_48k_wav, whole, codec)
    cut = tmp_path / f'cut{suffix}'
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    expect_error(cut, 'truncated')


def test_truncated_ogg_page(tmp_path):
  # Long enough that half the file is past the Vorbis headers.
  source = tmp_path / 'long.wav'
  soundfile.write(source, tone(44100, seconds=6.0, channels=2), 44100)
  whole = tmp_path / 'whole.ogg'
  encode_with_ffmpeg(source, whole, 'libvorbis')
  cut = tmp_path / 'cut.ogg'
  cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2 + 7])
  expect_error(cut, 'last Ogg page is incomplete')


def test_truncated_m4a_fails_in_ffmpeg(tmp_path, stereo_48k_wav):
  whole = tmp_path / 'whole.m4a'
  encode_with_ffmpeg(stereo_48k_wav, whole, 'aac')
  cut = tmp_path / 'cut.m4a'
  cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
  expect_error(cut, 'not a readable audio file')


def test_bad_files(tmp_path):
  empty = tmp_path / 'empty.wav'
  empty.write_bytes(b'')
  expect_error(empty, 'empty file')
  noise = tmp_path / 'noise.wav'
  noise.write_bytes(np.random.default_rng(0).bytes(5000))
  expect_error(noise, 'not a readable audio file')
  text = tmp_path / 'notes.txt'
  text.write_text('lyrics, not audio\n' * 50)
  expect_error(text, 'not a readable audio file')
  nan = tmp_path / 'nan.wav'
  soundfile.write(nan, np.full(4000, np.nan, np.float32), 22050, subtype='FLOAT')
  expect_error(nan, 'NaN')


def test_write_wav_is_16_bit_and_clips(tmp_path):
  path = tmp_path / 'out.wav'
  audio_io.write_wav(path, np.array([0.0, 0.5, 2.0, -3.0], np.float32))
  info = soundfile.info(path)
  assert (info.subtype, info.samplerate, info.channels) == ('PCM_16', 22050, 1)
  samples, _ = soundfile.read(path, dtype='int16')
  assert samples.tolist() == [0, 16384, 32767, -32768]
  assert [p.name for p in tmp_path.iterdir()] == ['out.wav']


def test_write_wav_writes_the_values_libsndfile_would(tmp_path):
  """The 16-bit conversion done before libsndfile is libsndfile's own, value for value."""
  rng = np.random.default_rng(0)
  edges = np.array([1.0, -1.0, 32767 / 32768, -32767 / 32768, 0.5 / 32767, -0.5 / 32767,
                    1.5 / 32767, 2.5 / 32767, 1e-9, -1e-9, 1.7, -1.7], np.float32)
  samples = np.concatenate([rng.standard_normal(200_000).astype(np.float32) * 0.4, edges])
  audio_io.write_wav(tmp_path / 'ours.wav', samples)
  soundfile.write(tmp_path / 'libsndfile.wav', np.clip(samples, -1.0, 32767 / 32768), 22050,
                  subtype='PCM_16')
  ours, _ = soundfile.read(tmp_path / 'ours.wav', dtype='int16')
  theirs, _ = soundfile.read(tmp_path / 'libsndfile.wav', dtype='int16')
  assert len(ours) == len(samples)
  np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize('codec', [None, 'aac'])
def test_streamed_decoding_equals_decoding_whole(tmp_path, codec):
  """Block by block (libsndfile, or ffmpeg's stream for AAC) gives the whole-file result."""
  path = tmp_path / 'long.wav'
  rng = np.random.default_rng(0)
  samples = (0.3 * rng.standard_normal((2 * 2**20 + 12_345, 2))).astype(np.float32)
  soundfile.write(path, samples, 48000, subtype='FLOAT')  # More than two decode blocks.
  if codec:
    encode_with_ffmpeg(path, tmp_path / 'long.m4a', codec)
    path = tmp_path / 'long.m4a'
  whole, rate = audio_io.read_audio(path)
  mono, sample_rate, channels, frames = audio_io.decode_mono(path)
  assert (sample_rate, channels, frames) == (48000, 2, len(whole))
  np.testing.assert_array_equal(mono, audio_io.resample(audio_io.to_mono(whole), rate))


def test_opus_goes_through_the_faster_decoder_and_keeps_its_checks(tmp_path, stereo_48k_wav):
  path = tmp_path / 'tone.opus'
  encode_with_ffmpeg(stereo_48k_wav, path, 'libopus')
  assert soundfile.info(path).subtype in audio_io.FFMPEG_FASTER_SUBTYPES
  mono, sample_rate, channels, frames = audio_io.decode_mono(path)
  whole, _ = audio_io.read_audio(path)  # libsndfile's libopus: the same stream, decoded.
  assert (sample_rate, channels, frames) == (48000, 2, len(whole))
  reference = audio_io.resample(audio_io.to_mono(whole), 48000)
  assert len(mono) == len(reference)
  assert np.abs(mono - reference).max() < 0.01
  assert abs(dominant_frequency(mono, 22050) - TONE_HZ) < 5
  data = path.read_bytes()
  (tmp_path / 'cut.opus').write_bytes(data[:len(data) - 100])
  with pytest.raises(audio_io.AudioReadError, match='truncated'):
    audio_io.decode_mono(tmp_path / 'cut.opus')
