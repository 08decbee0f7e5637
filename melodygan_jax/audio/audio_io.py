"""Reading any audio file a user has, and writing the 16-bit WAVs we store.

libsndfile (through soundfile) reads WAV, FLAC, OGG/Vorbis, Opus and MP3; the
ffmpeg that imageio-ffmpeg ships reads the rest (M4A/AAC, WebM, ...), so no
system ffmpeg is needed. Every failure is an `AudioReadError` whose message is
one line saying what is wrong with the file.
"""
import functools
import io
import os
import pathlib
import struct
import subprocess

import librosa
import numpy as np
import soundfile

from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.audio import contract
# Extensions tried first when scanning a folder; other files are still tried.
AUDIO_EXTENSIONS = frozenset({
    '.wav', '.wave', '.flac', '.ogg', '.oga', '.opus', '.mp3', '.m4a', '.aac',
    '.mp4', '.webm', '.mka', '.aif', '.aiff', '.aifc', '.wma', '.caf', '.w64'})


class AudioReadError(errors.UserError):
  """A file that cannot be used as audio; str() is a one-line reason."""


@functools.cache
def ffmpeg_executable() -> str | None:
  """Path of the ffmpeg bundled by imageio-ffmpeg, or None when missing."""
  try:
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    return imageio_ffmpeg.get_ffmpeg_exe()
  except (ImportError, RuntimeError):
    return None


def _riff_truncation(path: pathlib.Path) -> str | None:
  """Checks a RIFF/WAVE header against the file size.

  libsndfile silently reads a truncated WAV at its shorter length, so a file
  cut off mid-download would pass as a shorter song.
  """
  file_size = path.stat().st_size
  with open(path, 'rb') as f:
    header = f.read(12)
    if len(header) < 12 or header[:4] != b'RIFF' or header[8:12] != b'WAVE':
      return None  # RF64, AIFF, ... have no 32-bit size field to check.
    block_align = None
    while True:
      chunk = f.read(8)
      if len(chunk) < 8:
        return None
      chunk_id, chunk_size = chunk[:4], struct.unpack('<I', chunk[4:])[0]
      if chunk_id == b'fmt ':
        fmt = f.read(chunk_size + (chunk_size & 1))
        block_align = struct.unpack('<H', fmt[12:14])[0] if len(fmt) >= 14 else None
        continue
      if chunk_id == b'data':
        if chunk_size in (0, 0xFFFFFFFF):  # Streaming writers leave it unset.
          return None
        available = file_size - f.tell()
        if chunk_size <= available:
          return None
        if block_align:
          return (f'truncated: header promises {chunk_size // block_align} frames, '
                  f'file holds {available // block_align}')
        return f'truncated: header promises {chunk_size} data bytes, file holds {available}'
      f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)


def _ogg_truncation(path: pathlib.Path) -> str | None:
  """Checks that the last Ogg page is whole; a cut file ends mid-page."""
  file_size = path.stat().st_size
  with open(path, 'rb') as f:
    tail_start = max(0, file_size - 128 * 1024)
    f.seek(tail_start)
    tail = f.read()
  last_page = tail.rfind(b'OggS')
  if last_page < 0 or len(tail) - last_page < 27:
    return 'truncated: the last Ogg page is incomplete' if last_page >= 0 else None
  num_segments = tail[last_page + 26]
  segment_table = tail[last_page + 27:last_page + 27 + num_segments]
  page_size = 27 + num_segments + sum(segment_table)
  if len(segment_table) < num_segments or last_page + page_size > len(tail):
    return 'truncated: the last Ogg page is incomplete'
  return None


def _checked_info(path: pathlib.Path):
  """libsndfile's info on `path`, after the truncation checks libsndfile lacks.

  Raises:
    AudioReadError: a WAV whose header promises more than the file holds, or
      an Ogg file cut mid-page.
  """
  info = soundfile.info(str(path))
  reason = None
  if info.format == 'WAV':
    reason = _riff_truncation(path)
  elif info.format == 'OGG':
    reason = _ogg_truncation(path)
  if reason:
    raise AudioReadError(reason)
  return info


def _read_with_soundfile(path: pathlib.Path) -> tuple[np.ndarray, int]:
  info = _checked_info(path)
  try:
    samples, sample_rate = soundfile.read(str(path), dtype='float32', always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError) as e:
    raise AudioReadError(f'corrupt or truncated {info.format} data: {_one_line(e)}') from e
  # MP3 lengths are estimates, so allow a small shortfall before calling a
  # file truncated.
  shortfall = info.frames - len(samples)
  if info.frames > 0 and shortfall > max(0.01 * info.frames, 0.05 * sample_rate):
    raise AudioReadError(
        f'truncated: header promises {info.frames} frames, decoded {len(samples)}')
  return samples, sample_rate


def _read_with_ffmpeg(path: pathlib.Path, soundfile_error: str) -> tuple[np.ndarray, int]:
  executable = ffmpeg_executable()
  if executable is None:
    raise AudioReadError(
        f'libsndfile cannot read it ({soundfile_error}) and no ffmpeg is installed '
        '(pip install imageio-ffmpeg)')
  result = subprocess.run(
      [executable, '-nostdin', '-v', 'error', '-i', str(path), '-map', '0:a:0',
       '-vn', '-f', 'wav', '-c:a', 'pcm_f32le', 'pipe:1'],
      capture_output=True, check=False)
  errors = result.stderr.decode(errors='replace').strip()
  if result.returncode != 0 or not result.stdout:
    reason = errors.splitlines()[-1] if errors else f'ffmpeg exit status {result.returncode}'
    if 'matches no streams' in errors:
      reason = 'no audio stream'
    raise AudioReadError(f'not a readable audio file: {reason}')
  if errors:  # At -v error, anything printed is a decoding error.
    raise AudioReadError(f'corrupt or truncated stream: {errors.splitlines()[0]}')
  samples, sample_rate = soundfile.read(io.BytesIO(result.stdout), dtype='float32',
                                        always_2d=True)
  return samples, sample_rate


def _one_line(error: Exception) -> str:
  return ' '.join(str(error).split())


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """Decodes a whole file at its own rate.

  Args:
    path: any audio file libsndfile or the bundled ffmpeg reads.

  Returns:
    samples: [frames, channels] float32 in [-1, 1].
    sample_rate: in Hz.

  Raises:
    AudioReadError: empty, corrupt, truncated, non-audio or non-finite data.
  """
  path = pathlib.Path(path)
  if path.stat().st_size == 0:
    raise AudioReadError('empty file (0 bytes)')
  try:
    samples, sample_rate = _read_with_soundfile(path)
  except soundfile.LibsndfileError as e:
    samples, sample_rate = _read_with_ffmpeg(path, _one_line(e))
  if samples.size == 0:
    raise AudioReadError('no audio frames')
  if not np.isfinite(samples).all():
    raise AudioReadError('contains NaN or infinite samples')
  return samples, sample_rate


# Streams libsndfile reads but the bundled ffmpeg decodes faster (measured by
# benchmarks/data_prep_bench.py: Opus 2x; Vorbis, MP3 and FLAC are faster in libsndfile).
FFMPEG_FASTER_SUBTYPES = frozenset({'OPUS'})
_BLOCK_FRAMES = 2**20  # Decoded per step when streaming: ~24 s of 44.1 kHz audio.
_WAV_BLOCK_FRAMES = 2**16  # Written per step: its temporaries stay in cache.


class _GrowingBuffer:
  """A float32 array appended to in place, grown by doubling when a guess was short."""

  def __init__(self, capacity: int):
    self._data = np.empty(max(capacity, 1), np.float32)
    self.size = 0

  def append(self, samples: np.ndarray) -> None:
    if self.size + len(samples) > len(self._data):
      grown = np.empty(max(2 * len(self._data), self.size + len(samples)), np.float32)
      grown[:self.size] = self._data[:self.size]
      self._data = grown
    self._data[self.size:self.size + len(samples)] = samples
    self.size += len(samples)

  def view(self) -> np.ndarray:
    return self._data[:self.size]


def _soundfile_blocks(path: pathlib.Path):
  """(sample_rate, channels, expected frames, blocks) through libsndfile.

  Raises:
    soundfile.LibsndfileError: libsndfile cannot open the file (try ffmpeg).
    AudioReadError: a truncated WAV or Ogg file.
  """
  info = _checked_info(path)
  if info.subtype in FFMPEG_FASTER_SUBTYPES and ffmpeg_executable():
    sample_rate, channels, _, blocks = _ffmpeg_blocks(path, '')
    return sample_rate, channels, info.frames, blocks

  def blocks():
    try:
      with soundfile.SoundFile(str(path)) as f:
        yield from f.blocks(_BLOCK_FRAMES, dtype='float32', always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as e:
      raise AudioReadError(f'corrupt or truncated {info.format} data: {_one_line(e)}') from e

  return info.samplerate, info.channels, info.frames, blocks()


def _wav_stream_header(stream) -> tuple[int, int]:
  """Reads a float32 WAV header from a pipe: (sample_rate, channels)."""
  if stream.read(12)[8:12] != b'WAVE':
    raise AudioReadError('not a readable audio file: ffmpeg wrote no WAV stream')
  sample_rate = channels = None
  while True:
    chunk = stream.read(8)
    if len(chunk) < 8:
      raise AudioReadError('not a readable audio file: no audio data')
    chunk_id, chunk_size = chunk[:4], struct.unpack('<I', chunk[4:])[0]
    if chunk_id == b'data':
      if sample_rate is None:
        raise AudioReadError('not a readable audio file: no format in the WAV stream')
      return sample_rate, channels
    body = stream.read(chunk_size + (chunk_size & 1))
    if chunk_id == b'fmt ':
      channels, sample_rate = struct.unpack('<HI', body[2:8])


def _ffmpeg_blocks(path: pathlib.Path, soundfile_error: str):
  """(sample_rate, channels, 0, blocks) decoded by the bundled ffmpeg, streamed."""
  import tempfile  # pylint: disable=g-import-not-at-top
  executable = ffmpeg_executable()
  if executable is None:
    raise AudioReadError(
        f'libsndfile cannot read it ({soundfile_error}) and no ffmpeg is installed '
        '(pip install imageio-ffmpeg)')
  errors_file = tempfile.TemporaryFile()  # A pipe could fill and stall ffmpeg.
  process = subprocess.Popen(
      [executable, '-nostdin', '-v', 'error', '-i', str(path), '-map', '0:a:0',
       '-vn', '-f', 'wav', '-c:a', 'pcm_f32le', 'pipe:1'],
      stdout=subprocess.PIPE, stderr=errors_file)

  def finish():
    process.stdout.close()
    returncode = process.wait()
    errors_file.seek(0)
    errors = errors_file.read().decode(errors='replace').strip()
    errors_file.close()
    return returncode, errors

  try:
    sample_rate, channels = _wav_stream_header(process.stdout)
  except AudioReadError:
    returncode, errors = finish()
    reason = errors.splitlines()[-1] if errors else f'ffmpeg exit status {returncode}'
    if 'matches no streams' in errors:
      reason = 'no audio stream'
    raise AudioReadError(f'not a readable audio file: {reason}') from None

  def blocks():
    frame_bytes = 4 * channels
    while True:
      data = process.stdout.read(_BLOCK_FRAMES * frame_bytes)
      if not data:
        break
      usable = len(data) // frame_bytes * frame_bytes
      yield np.frombuffer(data[:usable], np.float32).reshape(-1, channels)
    returncode, errors = finish()
    if errors:  # At -v error, anything printed is a decoding error.
      raise AudioReadError(f'corrupt or truncated stream: {errors.splitlines()[0]}')
    if returncode != 0:
      raise AudioReadError(f'not a readable audio file: ffmpeg exit status {returncode}')

  return sample_rate, channels, 0, blocks()


def decode_mono(path: str | os.PathLike,
                target_rate: int = contract.SAMPLE_RATE_HZ) -> tuple[np.ndarray, int, int, int]:
  """Decodes, downmixes and resamples a file block by block.

  Only the mono signal at `target_rate` is ever held whole (a 3-hour file:
  0.95 GB at 22 050 Hz, where the decoded 48 kHz stereo would take 4.1 GB).
  soxr's streaming resampler gives exactly the one-shot `resample` result.

  Args:
    path: any audio file libsndfile or the bundled ffmpeg reads.
    target_rate: the rate of the returned samples.

  Returns:
    samples: [frames] float32 at `target_rate`.
    sample_rate: the file's own rate, in Hz.
    channels: the file's channel count.
    source_frames: frames decoded at the file's own rate.

  Raises:
    AudioReadError: empty, corrupt, truncated, non-audio or non-finite data.
  """
  import soxr  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if path.stat().st_size == 0:
    raise AudioReadError('empty file (0 bytes)')
  try:
    sample_rate, channels, expected_frames, blocks = _soundfile_blocks(path)
  except soundfile.LibsndfileError as e:
    sample_rate, channels, expected_frames, blocks = _ffmpeg_blocks(path, _one_line(e))
  resampler = None
  if sample_rate != target_rate:
    resampler = soxr.ResampleStream(sample_rate, target_rate, 1, dtype='float32',
                                    quality='soxr_hq')
  mono = _GrowingBuffer(int(expected_frames * target_rate / sample_rate) + 64)
  source_frames = 0
  for block in blocks:
    source_frames += len(block)
    block = to_mono(block)
    if not np.isfinite(block).all():  # NaN or inf in any channel survive the mean.
      raise AudioReadError('contains NaN or infinite samples')
    block = np.ascontiguousarray(block)
    mono.append(resampler.resample_chunk(block) if resampler else block)
  if resampler:
    mono.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    # librosa.resample's length (`resample`, the whole-signal path): zeros to fill it.
    wanted = int(np.ceil(source_frames * target_rate / sample_rate))
    mono.append(np.zeros(max(0, wanted - mono.size), np.float32))
    mono.size = min(mono.size, wanted)
  # MP3 lengths are estimates, so allow a small shortfall before calling a
  # file truncated.
  shortfall = expected_frames - source_frames
  if expected_frames > 0 and shortfall > max(0.01 * expected_frames, 0.05 * sample_rate):
    raise AudioReadError(
        f'truncated: header promises {expected_frames} frames, decoded {source_frames}')
  if source_frames == 0:
    raise AudioReadError('no audio frames')
  return mono.view(), sample_rate, channels, source_frames


def to_mono(samples: np.ndarray) -> np.ndarray:
  """[frames, channels] -> [frames], the average of the channels."""
  channels = samples.shape[1]
  if channels == 1:
    return samples[:, 0]
  # A matrix-vector product: ~15x faster than mean(axis=1) over 2 columns.
  return samples @ np.full(channels, 1.0 / channels, np.float32)


def resample(samples: np.ndarray, sample_rate: int,
             target_rate: int = contract.SAMPLE_RATE_HZ) -> np.ndarray:
  """High-quality (soxr) resampling of mono float samples."""
  if sample_rate == target_rate:
    return samples
  return librosa.resample(samples, orig_sr=sample_rate, target_sr=target_rate,
                          res_type='soxr_hq').astype(np.float32)


def read_mono(path: str | os.PathLike) -> np.ndarray:
  """Any audio file -> mono float32 samples at the contract's rate."""
  samples, sample_rate = read_audio(path)
  return resample(to_mono(samples), sample_rate)


def write_wav(path: str | os.PathLike, samples: np.ndarray,
              sample_rate: int = contract.SAMPLE_RATE_HZ) -> None:
  """Writes mono 16-bit PCM WAV atomically; samples are clipped to [-1, 1).

  Written block by block, so a long song is not copied whole to be clipped.
  The 16-bit values are libsndfile's own float conversion, floor(x * 32768),
  computed here: 4x faster than handing libsndfile float blocks.
  """
  with atomic_files.atomic_path(path) as tmp_path:
    with soundfile.SoundFile(str(tmp_path), 'w', sample_rate, 1, subtype='PCM_16',
                             format='WAV') as f:
      for start in range(0, len(samples), _WAV_BLOCK_FRAMES):
        block = np.asarray(samples[start:start + _WAV_BLOCK_FRAMES], np.float32) * 32768.0
        f.write(np.floor(np.clip(block, -32768.0, 32767.0, out=block), out=block)
                .astype(np.int16))
