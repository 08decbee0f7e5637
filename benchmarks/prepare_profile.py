"""Where prepare's time goes per file: each stage timed alone, before and after.

"Before" is the implementation prepare used until this profile was written
(the whole file decoded, then downmixed and resampled; librosa.effects.split
and a cut copy; pyloudnorm's meter over float64 with a Python loop over
blocks; the true peak of a scaled copy; librosa.stft, a [mels, frames]
product and a transpose, then np.savez); "after" is what prepare runs now
(streamed decoding into the 22 050 Hz mono signal; the same silence frames,
cut in place; the K-weighting through float32 sosfilt; features in chunks
of batched FFTs straight into the .npz). Both run here, in one process with single-threaded BLAS (as in a prepare
worker), on the same decoded music, so their ratio holds on a loaded machine.
"""
import io
import shutil
import subprocess
import tempfile
import time
import zipfile

import librosa
import numpy as np
import pyloudnorm
import soundfile

from data_prep import cleaning
from data_prep import features
from data_prep import separation
from data_prep import song
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import loudness
from melodygan_jax.data import records

_SEGMENT_FRAMES = 256


def loudness_before(samples: np.ndarray) -> float:
  return float(pyloudnorm.Meter(contract.SAMPLE_RATE_HZ).integrated_loudness(
      samples.astype(np.float64)))


def features_before(samples: np.ndarray):
  magnitude = np.abs(librosa.stft(samples, n_fft=contract.N_FFT, hop_length=contract.HOP_LENGTH,
                                  win_length=contract.WIN_LENGTH, window='hann', center=True))
  log_mel = np.log(np.maximum(contract.mel_filterbank() @ magnitude, contract.LOG_MEL_FLOOR)).T
  mel_power = contract.mel_filterbank() @ np.square(magnitude)
  mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel_power), n_mfcc=contract.NUM_MFCC)
  return log_mel.astype(np.float32), mfcc.T.astype(np.float32)


def decode_with_ffmpeg(path) -> np.ndarray:
  result = subprocess.run(
      [audio_io.ffmpeg_executable(), '-nostdin', '-v', 'error', '-i', str(path), '-map', '0:a:0',
       '-f', 'wav', '-c:a', 'pcm_f32le', 'pipe:1'], capture_output=True, check=True)
  return soundfile.read(io.BytesIO(result.stdout), dtype='float32', always_2d=True)[0]


def write_shard(arrays: dict, source: str, path: str) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.TFRecordWriter(path) as writer:
    for index, (mel, mfcc) in enumerate(zip(arrays['mix/mel'], arrays['mix/mfcc'])):
      writer.write(records.serialize_segment(mel, mfcc, source, float(index), 'mix'))


class _Clock:
  def __init__(self):
    self.seconds = {}

  def time(self, name, fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
    return result


def silence_split_before(samples: np.ndarray, options: cleaning.CleaningOptions) -> np.ndarray:
  intervals = librosa.effects.split(samples, top_db=options.silence_threshold_db,
                                    frame_length=2048, hop_length=2048)
  min_gap = int(options.min_silence_s * contract.SAMPLE_RATE_HZ)
  merged = []
  for start, end in intervals:
    if merged and start - merged[-1][1] < min_gap:
      merged[-1] = (merged[-1][0], int(end))
    else:
      merged.append((int(start), int(end)))
  return cleaning.keep_intervals(samples, merged)


def silence_split_after(samples: np.ndarray, options: cleaning.CleaningOptions) -> np.ndarray:
  intervals = cleaning.audible_intervals(samples, options.silence_threshold_db,
                                         options.min_silence_s)
  return cleaning.keep_intervals_in_place(samples, intervals)


def decode_before(path):
  samples, rate = audio_io.read_audio(path)
  return audio_io.resample(audio_io.to_mono(samples), rate)


def write_wav_before(path, samples) -> None:
  soundfile.write(str(path), np.clip(samples, -1.0, 32767 / 32768), contract.SAMPLE_RATE_HZ,
                  subtype='PCM_16', format='WAV')


def features_and_segments_before(samples, path) -> dict:
  log_mel, mfcc = features_before(samples)
  arrays = {'mix/mel': song.cut_segments(log_mel, _SEGMENT_FRAMES),
            'mix/mfcc': song.cut_segments(mfcc, _SEGMENT_FRAMES)}
  np.savez(path, **arrays)
  return arrays


def features_and_segments_after(samples, path) -> None:
  with zipfile.ZipFile(path, 'w', allowZip64=True) as archive:
    features.write_segments(archive, 'mix', samples, _SEGMENT_FRAMES)


def profile(paths, extras_s: float = 60.0) -> tuple[float, dict, dict]:
  """Times every stage of prepare's per-file work on `paths`.

  Args:
    paths: audio files (real compressed music).
    extras_s: noise reduction and dsp separation, far slower than the rest,
      run on this many seconds of the first file only; their times are
      scaled to the whole input.

  Returns:
    Seconds of audio, and {stage: seconds} before and after.
  """
  before, after = _Clock(), _Clock()
  audio_s = 0.0
  work = tempfile.mkdtemp(prefix='prepare_profile_')
  options = cleaning.CleaningOptions()
  for path in paths:
    audio_s += soundfile.info(str(path)).duration
    for clock in (before, after):
      clock.time('decode alone (libsndfile), comparison', audio_io.read_audio, path)
      clock.time('decode alone (ffmpeg), comparison', decode_with_ffmpeg, path)
    mono = before.time('decode + downmix + resample', decode_before, path)
    after.time('decode + downmix + resample', audio_io.decode_mono, path)
    before.seconds.setdefault('high-pass (DC, rumble)', 0.0)  # The first implementation had none.
    after.time('high-pass (DC, rumble)', cleaning.remove_rumble, mono.copy(), options.highpass_hz)
    clean = before.time('silence split', silence_split_before, mono, options)
    after.time('silence split', silence_split_after, mono.copy(), options)
    lufs = before.time('loudness (BS.1770)', loudness_before, clean)
    after.time('loudness (BS.1770)', loudness.integrated_loudness, clean)
    gain = np.float32(10 ** ((options.target_lufs - lufs) / 20))
    before.time('true peak', loudness.true_peak_dbtp, clean * gain)
    after.time('true peak', loudness.true_peak_dbtp, clean)
    clean = clean * gain
    arrays = before.time('features + segments (.npz)', features_and_segments_before, clean,
                         f'{work}/before.npz')
    after.time('features + segments (.npz)', features_and_segments_after, clean,
               f'{work}/after.npz')
    before.time('clean WAV', write_wav_before, f'{work}/before.wav', clean)
    after.time('clean WAV', audio_io.write_wav, f'{work}/after.wav', clean)
    for clock in (before, after):
      clock.time('TFRecord shard', write_shard, arrays, path.name, f'{work}/shard.tfrecord')
  excerpt = audio_io.read_mono(paths[0])[:int(extras_s * contract.SAMPLE_RATE_HZ)]
  scale = audio_s / (len(excerpt) / contract.SAMPLE_RATE_HZ)
  for name, fn in (('noise reduction (--reduce_noise)',
                    lambda: cleaning.reduce_noise(excerpt, options.noise_reduction)),
                   ('separation (--separation=dsp)',
                    lambda: separation.dsp_vocals(excerpt, separation.DspOptions()))):
    start = time.perf_counter()
    fn()
    seconds = (time.perf_counter() - start) * scale
    before.seconds[name] = after.seconds[name] = seconds
  shutil.rmtree(work, ignore_errors=True)
  return audio_s, before.seconds, after.seconds


def default_stages(seconds: dict) -> float:
  """Total of the stages a default prepare runs (no comparisons, no optional steps)."""
  return sum(v for k, v in seconds.items() if 'comparison' not in k and '--' not in k)


def table(audio_s: float, before: dict, after: dict) -> str:
  total_before, total_after = default_stages(before), default_stages(after)
  lines = [f'{"stage (1 process)":34s} {"before s":>9s} {"share":>6s} {"after s":>9s} '
           f'{"share":>6s} {"x real time":>12s}']
  for name in before:
    optional = 'comparison' in name or '--' in name
    share = lambda v, total: '' if optional else f'{100 * v / total:5.1f}%'  # pylint: disable=cell-var-from-loop
    lines.append(f'{name:34s} {before[name]:9.2f} {share(before[name], total_before):>6s} '
                 f'{after[name]:9.2f} {share(after[name], total_after):>6s} '
                 f'{audio_s / after[name]:12.0f}')
  lines.append(f'{"total (default options)":34s} {total_before:9.2f} {"":6s} {total_after:9.2f} '
               f'{"":6s} {audio_s / total_after:12.0f}')
  return '\n'.join(lines)


DECODER_FORMATS = {'ogg': 'libvorbis', 'mp3': 'libmp3lame', 'opus': 'libopus', 'flac': 'flac'}


def decoder_comparison(path, work: str, seconds: float = 180.0, repeats: int = 2) -> dict:
  """libsndfile vs the bundled ffmpeg decoding the same music in each format both read.

  Returns:
    {format: {'libsndfile': s, 'ffmpeg': s, 'audio_s': s}}, best of `repeats`.
  """
  results = {}
  for extension, codec in DECODER_FORMATS.items():
    encoded = f'{work}/excerpt.{extension}'
    subprocess.run([audio_io.ffmpeg_executable(), '-y', '-v', 'error', '-t', str(seconds), '-i',
                    str(path), '-c:a', codec, encoded], check=True)
    row = {'audio_s': soundfile.info(encoded).duration}
    for name, decode in (('libsndfile', lambda p: soundfile.read(p, dtype='float32')),
                         ('ffmpeg', decode_with_ffmpeg)):
      times = []
      for _ in range(repeats):
        start = time.perf_counter()
        decode(encoded)
        times.append(time.perf_counter() - start)
      row[name] = min(times)
    results[extension] = row
  return results
