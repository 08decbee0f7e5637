"""A song's log-mel and MFCC segments, computed piece by piece into its .npz.

The result is `contract.log_mel_and_mfcc` of the whole signal cut into
segments, but no whole-song feature array is ever held: log-mel goes to the
archive as it is computed, and the MFCC's input (mel power in dB, which is
clipped 80 dB below the song's loudest frame, known only at the end) waits
in a temporary file until the second pass.
"""
import contextlib
import struct
import tempfile
import zipfile

import librosa
import numpy as np
import scipy.fft

from melodygan_jax.audio import contract

_CHUNK_FRAMES = 4096  # ~48 s of audio per step: 1.3 MB of features, 8 MB of spectrum.


@contextlib.contextmanager
def _npy_entry(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...]):
  """A file-like `name.npy` entry of an open .npz, for float32 data written in order."""
  with archive.open(f'{name}.npy', 'w', force_zip64=True) as entry:
    np.lib.format.write_array_header_1_0(
        entry, {'descr': np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                'fortran_order': False, 'shape': shape})
    yield entry


def write_segments(archive: zipfile.ZipFile, stem: str, samples: np.ndarray,
                   segment_frames: int) -> int:
  """Adds one stem's `{stem}/mel` and `{stem}/mfcc` segment arrays to `archive`.

  Args:
    archive: a .npz being written (`np.load` reads it back).
    stem: the stem kind, the entries' prefix.
    samples: mono float32 samples at the contract's rate.
    segment_frames: frames per segment; the tail that fills no segment is dropped.

  Returns:
    The number of segments: entries hold [segments, segment_frames, NUM_MELS]
    and [segments, segment_frames, NUM_MFCC] float32.
  """
  total_frames = contract.num_frames(len(samples))
  num_segments = total_frames // segment_frames
  kept_frames = num_segments * segment_frames
  loudest_db = -np.inf
  with tempfile.TemporaryFile() as power_db_file:
    with _npy_entry(archive, f'{stem}/mel',
                    (num_segments, segment_frames, contract.NUM_MELS)) as mel_entry:
      # Every frame counts for the loudest one, also the tail that is dropped.
      for first in range(0, total_frames, _CHUNK_FRAMES):
        count = min(_CHUNK_FRAMES, total_frames - first)
        magnitude = contract.magnitude_frames(samples, first, count)
        kept = max(0, min(count, kept_frames - first))
        log_mel = np.log(np.maximum(contract.mel_frames(magnitude[:kept]),
                                    contract.LOG_MEL_FLOOR))
        mel_entry.write(log_mel.astype(np.float32).tobytes())
        np.square(magnitude, out=magnitude)
        power_db = librosa.power_to_db(contract.mel_frames(magnitude), top_db=None)
        loudest_db = max(loudest_db, float(power_db.max()))
        power_db_file.write(power_db[:kept].astype(np.float32).tobytes())
    power_db_file.seek(0)
    with _npy_entry(archive, f'{stem}/mfcc',
                    (num_segments, segment_frames, contract.NUM_MFCC)) as mfcc_entry:
      row_bytes = 4 * contract.NUM_MELS
      for first in range(0, kept_frames, _CHUNK_FRAMES):
        count = min(_CHUNK_FRAMES, kept_frames - first)
        power_db = np.frombuffer(power_db_file.read(count * row_bytes), np.float32).reshape(
            count, contract.NUM_MELS)
        power_db = np.maximum(power_db, np.float32(loudest_db - contract.TOP_DB))
        mfcc = scipy.fft.dct(power_db, axis=-1, type=2, norm='ortho')[:, :contract.NUM_MFCC]
        mfcc_entry.write(mfcc.astype(np.float32).tobytes())
  return num_segments


def _entry_layout(archive_file, name: str) -> tuple[int, tuple[int, ...]]:
  """(byte offset of the data, shape) of float32 entry `name` of an open segment archive.

  The archive's entries are stored uncompressed (`write_segments`), so an
  entry is a plain .npy at a fixed place inside the zip.
  """
  path = getattr(archive_file, 'name', 'segment archive')
  with zipfile.ZipFile(archive_file) as archive:
    info = archive.getinfo(f'{name}.npy')
  if info.compress_type != zipfile.ZIP_STORED:
    raise ValueError(f'{path}: entry {name} is compressed; it cannot be read by rows')
  archive_file.seek(info.header_offset)
  local_header = archive_file.read(30)  # Its name and extra field lengths may differ
  name_length, extra_length = struct.unpack('<HH', local_header[26:30])  # from the index's.
  archive_file.seek(info.header_offset + 30 + name_length + extra_length)
  version = np.lib.format.read_magic(archive_file)
  read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                 else np.lib.format.read_array_header_2_0)
  shape, fortran_order, dtype = read_header(archive_file)
  if fortran_order or dtype != np.float32:
    raise ValueError(f'{path}: entry {name} is not C-ordered float32')
  return archive_file.tell(), tuple(shape)


def num_segments(npz_path: str, name: str) -> int:
  """Segments in entry `name` (e.g. 'mix/mel') of a segment archive, from its header."""
  with open(npz_path, 'rb') as archive_file:
    return _entry_layout(archive_file, name)[1][0]


def segment_chunks(npz_path: str, stem: str, segments_per_chunk: int = 16):
  """Yields (first index, mel, mfcc) of the segments of `stem`, a few at a time.

  What reads a song's archive back (the shard writers, the statistics) holds
  one chunk (16 segments: 2.4 MB), not the song: a 3-hour song's features
  are 0.5 GB, and its statistics' float64 sums would need twice that again.
  """
  count = num_segments(npz_path, f'{stem}/mel')
  for first in range(0, count, segments_per_chunk):
    indices = np.arange(first, min(count, first + segments_per_chunk))
    yield (first, read_segment_rows(npz_path, f'{stem}/mel', indices),
           read_segment_rows(npz_path, f'{stem}/mfcc', indices))


def read_segment_rows(npz_path: str, name: str, indices: np.ndarray) -> np.ndarray:
  """Rows `indices` of entry `name` of a segment archive, reading only those rows.

  The entry's rows lie at a fixed place in the archive (`_entry_layout`), so
  each row asked for is one seek and one read.

  Args:
    npz_path: a `.npz` written by `write_segments`.
    name: an entry without `.npy`, e.g. 'mix/mel'.
    indices: segment numbers, [n] ints.

  Returns:
    [n, segment_frames, dims] float32, a copy.
  """
  indices = np.asarray(indices, np.int64)
  # Plain seeks and reads: any file system the workers share (no mmap needed).
  with open(npz_path, 'rb') as archive_file:
    offset, shape = _entry_layout(archive_file, name)
    if len(indices) and (indices.min() < 0 or indices.max() >= shape[0]):
      raise IndexError(f'{npz_path}: entry {name} has {shape[0]} segments, asked for '
                       f'{indices.min()}..{indices.max()}')
    row_shape = shape[1:]
    row_bytes = 4 * int(np.prod(row_shape))
    rows = np.empty((len(indices), *row_shape), np.float32)
    for position, index in enumerate(indices):
      archive_file.seek(offset + int(index) * row_bytes)
      archive_file.readinto(memoryview(rows[position]).cast('B'))
  return rows
