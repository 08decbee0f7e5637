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
from melodygan_jax.audio import contract
# Extensions tried first when scanning a folder; other files are still tried.
AUDIO_EXTENSIONS = frozenset({
    '.wav', '.wave', '.flac', '.ogg', '.oga', '.opus', '.mp3', '.m4a', '.aac',
    '.mp4', '.webm', '.mka', '.aif', '.aiff', '.aifc', '.wma', '.caf', '.w64'})


class AudioReadError(Exception):
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


def _read_with_soundfile(path: pathlib.Path) -> tuple[np.ndarray, int]:
  info = soundfile.info(str(path))
  reason = None
  if info.format == 'WAV':
    reason = _riff_truncation(path)
  elif info.format == 'OGG':
    reason = _ogg_truncation(path)
  if reason:
    raise AudioReadError(reason)
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
  """Writes mono 16-bit PCM WAV atomically; samples are clipped to [-1, 1)."""
  samples = np.clip(np.asarray(samples, np.float32), -1.0, 32767 / 32768)
  with atomic_files.atomic_path(path) as tmp_path:
    soundfile.write(str(tmp_path), samples, sample_rate, subtype='PCM_16', format='WAV')
