"""tf.data readers of the data_prep shards, yielding NumPy batches.

Training batches are a pure function of (seed, step), whatever the number of
processes and devices: epoch e reads the training files in an order seeded by
(seed, e) through a seeded shuffle buffer, the stream's positions are cut into
global batches, and random crops are drawn from stateless seeds of the
record's position. Every host reads the whole stream (the data sets this
project trains on are small) and parses only its rows of each global batch, so
2 processes x 2 devices train on exactly what 1 process x 4 devices does.
Resuming at step s rebuilds the stream at epoch (s * batch) // records_per_epoch
and skips into it, so a resumed run sees exactly the batches an uninterrupted
run would have seen, with nothing to save but the step. (Saving tf.data's
iterator state instead would store the whole shuffle buffer in every checkpoint.)

With the train split in device memory (`load_train_table`), `train_positions`
runs the same stream over record numbers and yields where each crop starts
instead of the crop: the same records in the same order, the same offsets.

Evaluation passes (`sequential_batches`) split the work instead: each host
reads a disjoint share, whole shard files when there are at least as many
files as hosts, else every `process_count`-th record.
"""
import dataclasses
import math
import os
from typing import Iterator

from etils import epath
import ml_collections
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.data import normalization as normalization_lib
from melodygan_jax.data import records

_MAX_CYCLE_LENGTH = 16  # Shard files read at once by interleave.


class DatasetError(errors.UserError, ValueError):
  """A data set that cannot be used; str() names the path and the problem."""


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
  """What the readers need to know about one data_prep output folder."""
  path: epath.Path  # The TFDS folder (local or gs://...).
  segment_frames: int
  stats: dict  # stats.json.
  split_files: dict[str, list[str]]  # Split -> shard paths, in shard order.
  normalization: normalization_lib.Normalization  # Of the train split, per stem.

  def shard_counts(self, split: str, stems) -> list[int]:
    """Records of the given stem kinds in each shard of `split`."""
    per_shard = self.stats['shard_stem_counts'].get(split, [])
    return [sum(counts.get(stem, 0) for stem in stems) for counts in per_shard]

  def num_records(self, split: str, stems) -> int:
    return sum(self.shard_counts(split, stems))


def load_dataset_meta(dataset_dir: str | os.PathLike) -> DatasetMeta:
  """Reads a data_prep output folder's metadata, without TensorFlow.

  Raises:
    DatasetError: the folder, its data set or stats.json is missing.
  """
  if not os.fspath(dataset_dir) or not atomic_files.as_path(dataset_dir).is_dir():
    raise DatasetError(f'data set folder {os.fspath(dataset_dir)!r} does not exist '
                       '(run python -m data_prep.prepare first)')
  dataset_dir = atomic_files.as_path(dataset_dir)
  path = records.dataset_path(dataset_dir)
  stats_path = dataset_dir / records.STATS_FILENAME
  if not (path / 'dataset_info.json').exists() or not stats_path.exists():
    raise DatasetError(f'{dataset_dir} holds no prepared data set '
                       f'(expected {path} and {stats_path})')
  stats = atomic_files.read_json(stats_path)
  try:
    normalization = normalization_lib.Normalization.from_stats(stats, str(dataset_dir))
  except normalization_lib.NormalizationError as e:
    raise DatasetError(str(e)) from e
  split_files = {}
  for split, counts in stats['shard_stem_counts'].items():
    split_files[split] = [str(path / records.shard_filename(split, i, len(counts)))
                          for i in range(len(counts))]
  return DatasetMeta(path=path, segment_frames=int(stats['segment_frames']),
                     stats=stats, split_files=split_files, normalization=normalization)


def check_data_config(data: ml_collections.ConfigDict, meta: DatasetMeta) -> None:
  """Checks the `data` config section against a data set.

  Raises:
    DatasetError: one line naming the field and what is wrong.
  """
  if 'crop_frames' in data and data.crop_frames > meta.segment_frames:  # GAN: crop_steps.
    raise DatasetError(f'data.crop_frames={data.crop_frames} is longer than the stored '
                       f'segments ({meta.segment_frames} frames) in {meta.path}')
  missing = [stem for stem in data.stems if stem not in meta.stats['stems']]
  if missing:
    raise DatasetError(f'data.stems: {", ".join(missing)} not in {meta.path} '
                       f'(it has {", ".join(meta.stats["stems"])})')
  if meta.num_records(records.TRAIN_SPLIT, data.stems) == 0:
    raise DatasetError(f'{meta.path} has no train records of stems {", ".join(data.stems)}')


@dataclasses.dataclass(frozen=True)
class HostShare:
  """The files this host reads, and whether it must also take every n-th record."""
  files: list[str]
  num_records: int  # Records of the selected stems this host gets.
  record_stride: int  # 1, or process_count when hosts share files.
  record_offset: int


def host_share(meta: DatasetMeta, split: str, stems, process_index: int,
               process_count: int) -> HostShare:
  files = meta.split_files.get(split, [])
  counts = meta.shard_counts(split, stems)
  if len(files) >= process_count:
    return HostShare(files=files[process_index::process_count],
                     num_records=sum(counts[process_index::process_count]),
                     record_stride=1, record_offset=0)
  total = sum(counts)
  return HostShare(files=files, num_records=len(range(process_index, total, process_count)),
                   record_stride=process_count, record_offset=process_index)


def _stem_table(stems):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(tf.constant(list(stems)),
                                          tf.range(len(stems), dtype=tf.int32)), -1)


def _selected_records(files, share: HostShare, stems, all_stems: bool, shuffle_seed=None,
                      read_file=None, stem_of=None):
  """Records of `files` (in the given order) with one of `stems`, this host's share.

  `read_file` (file index -> its elements) and `stem_of` (element -> stem)
  default to the TFRecords themselves; `train_positions` passes record
  numbers instead, so both streams take the same order.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if read_file is None:
    files = tf.constant(list(files))
    read_file = lambda index: tf.data.TFRecordDataset(files[index])
    stem_of = records.parse_stem
  ds = tf.data.Dataset.range(len(files))
  if shuffle_seed is not None:
    ds = ds.shuffle(len(files), seed=shuffle_seed)
  ds = ds.interleave(read_file, cycle_length=min(len(files), _MAX_CYCLE_LENGTH),
                     block_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if not all_stems:
    wanted = tf.constant(list(stems))
    ds = ds.filter(lambda r: tf.reduce_any(tf.equal(stem_of(r), wanted)))
  if share.record_stride > 1:
    ds = ds.shard(share.record_stride, share.record_offset)
  return ds


def _normalizer(meta: DatasetMeta, stems):
  """parsed record -> (normalized mel, stem index); `.stem_id(stem)` alone (-1: not in stems)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mean, std = meta.normalization.stacked(stems)
  table = _stem_table(stems)
  mean, std = tf.constant(mean), tf.constant(std)

  def normalize(parsed):
    stem_id = table.lookup(parsed['stem'])
    mel = normalization_lib.normalize_with(parsed['mel'], tf.gather(mean, stem_id),
                                           tf.gather(std, stem_id))
    return mel, stem_id
  normalize.stem_id = table.lookup
  return normalize


def train_batches(data: ml_collections.ConfigDict, meta: DatasetMeta, local_batch_size: int,
                  seed: int, start_step: int = 0, process_index: int = 0,
                  process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled, randomly cropped, normalized train batches: this host's rows
  of the global batches, which depend on (seed, step) only.

  Args:
    data: the config's `data` section (crop_frames, shuffle_buffer, stems).
    meta: from `load_dataset_meta(data.dataset_dir)`.
    local_batch_size: this host's share of the global batch.
    seed: the run's seed.
    start_step: the first batch yielded is the one of this step.
    process_index: this host (jax.process_index()): it gets rows
      [process_index * local_batch_size, (process_index + 1) * local_batch_size).
    process_count: all hosts (jax.process_count()).

  Yields:
    {'mel': [local_batch, crop_frames, NUM_MELS] float32 normalized log-mel,
     'stem': [local_batch] int32 index into data.stems}
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  normalize = _normalizer(meta, tuple(data.stems))

  def crop_and_normalize(position, record):
    parsed = records.parse_segment(record, meta.segment_frames)
    offset = _crop_offset(seed, position, meta.segment_frames - data.crop_frames)
    parsed['mel'] = parsed['mel'][offset:offset + data.crop_frames]
    mel, stem_id = normalize(parsed)
    return {'mel': tf.ensure_shape(mel, [data.crop_frames, None]), 'stem': stem_id}

  ds = _train_stream(data, meta, local_batch_size, seed, start_step, process_index,
                     process_count)
  ds = ds.map(crop_and_normalize, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(local_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


@dataclasses.dataclass(frozen=True)
class TrainTable:
  """The whole train split in memory: the rows a device-placed run crops from."""
  mel: np.ndarray  # [rows, segment_frames, NUM_MELS] float32, normalized as train_batches does.
  stem: np.ndarray  # [rows] int32 index into data.stems.
  file_starts: np.ndarray  # [files + 1]: file f holds records file_starts[f]:file_starts[f + 1].
  record_row: np.ndarray  # [records] int64: each record's row, -1 for a stem not trained on.
  record_stem: np.ndarray  # [records] bytes: each record's stem.

  @property
  def nbytes(self) -> int:
    return self.mel.nbytes


def train_table_bytes(data: ml_collections.ConfigDict, meta: DatasetMeta) -> int:
  """What `load_train_table` will hold, known before reading it."""
  rows = meta.num_records(records.TRAIN_SPLIT, tuple(data.stems))
  return rows * meta.segment_frames * contract.NUM_MELS * 4


def load_train_table(data: ml_collections.ConfigDict, meta: DatasetMeta) -> TrainTable:
  """Reads and normalizes every train record of `data.stems`, in shard order."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  stems = tuple(data.stems)
  normalize = _normalizer(meta, stems)
  num_rows = meta.num_records(records.TRAIN_SPLIT, stems)
  mel = np.empty((num_rows, meta.segment_frames, contract.NUM_MELS), np.float32)
  stem_ids, record_row, record_stem, file_starts = [], [], [], [0]

  def parse(record):
    parsed = records.parse_segment(record, meta.segment_frames)
    stem_id = normalize.stem_id(parsed['stem'])
    return {'stem': parsed['stem'], 'stem_id': stem_id,
            'mel': tf.cond(stem_id >= 0, lambda: normalize(parsed)[0],
                           lambda: tf.zeros_like(parsed['mel']))}

  for path in meta.split_files.get(records.TRAIN_SPLIT, []):
    ds = tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    for item in ds.prefetch(4).as_numpy_iterator():
      record_stem.append(item['stem'])
      if item['stem_id'] < 0:
        record_row.append(-1)
        continue
      if len(stem_ids) == num_rows:
        raise DatasetError(f'{meta.path}: the train split holds more records than its '
                           f'stats.json counts ({num_rows})')
      record_row.append(len(stem_ids))
      mel[len(stem_ids)] = item['mel']
      stem_ids.append(item['stem_id'])
    file_starts.append(len(record_row))
  if len(stem_ids) != num_rows:
    raise DatasetError(f'{meta.path}: the train split holds {len(stem_ids)} records of '
                       f'stems {", ".join(stems)}, its stats.json counts {num_rows}')
  return TrainTable(mel=mel, stem=np.asarray(stem_ids, np.int32),
                    file_starts=np.asarray(file_starts, np.int64),
                    record_row=np.asarray(record_row, np.int64),
                    record_stem=np.asarray(record_stem, bytes))


def train_positions(data: ml_collections.ConfigDict, meta: DatasetMeta, table: TrainTable,
                    local_batch_size: int, seed: int, start_step: int = 0,
                    process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
  """Where `train_batches`' crops come from, for the same arguments: the same records
  in the same order, the same offsets.

  Yields:
    {'row': [local_batch] int32 row of `table`, 'start': [local_batch] int32
     first frame of the crop, 'stem': [local_batch] int32}; so
     table.mel[row, start:start + crop_frames] is train_batches' 'mel'.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  file_starts = tf.constant(table.file_starts)
  record_row = tf.constant(table.record_row)
  record_stem = tf.constant(table.record_stem)
  stem_ids = tf.constant(table.stem)

  def where(position, record):
    row = tf.gather(record_row, record)
    offset = _crop_offset(seed, position, meta.segment_frames - data.crop_frames)
    return {'row': tf.cast(row, tf.int32), 'start': tf.cast(offset, tf.int32),
            'stem': tf.gather(stem_ids, row)}

  ds = _train_stream(data, meta, local_batch_size, seed, start_step, process_index,
                     process_count,
                     read_file=lambda f: tf.data.Dataset.range(file_starts[f], file_starts[f + 1]),
                     stem_of=lambda record: tf.gather(record_stem, record))
  ds = ds.map(where).batch(local_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  return ds.as_numpy_iterator()


def _crop_offset(seed: int, position, max_offset: int):
  """The first frame of the crop of the record at stream `position`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), position]),
                                     maxval=max_offset + 1, dtype=tf.int64)


def _train_stream(data, meta: DatasetMeta, local_batch_size: int, seed: int, start_step: int,
                  process_index: int, process_count: int, read_file=None, stem_of=None):
  """(stream position, record) of this host's rows, from the first record of `start_step`.

  Epoch e reads the files in an order seeded by (seed, e) through a seeded
  shuffle buffer; the stream is cut into global batches.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  stems = tuple(data.stems)
  share = host_share(meta, records.TRAIN_SPLIT, stems, 0, 1)  # Every host reads it all.
  records_per_epoch = share.num_records
  if records_per_epoch == 0:
    raise DatasetError(f'{meta.path} has no train records of stems {", ".join(stems)}')
  all_stems = set(stems) >= set(meta.stats['stems'])
  global_batch_size = local_batch_size * process_count
  first_row = process_index * local_batch_size
  start_epoch, start_offset = divmod(start_step * global_batch_size, records_per_epoch)

  def epoch_records(epoch):
    epoch_seed = tf.cast(seed, tf.int64) * 1_000_003 + epoch
    ds = _selected_records(share.files, share, stems, all_stems, shuffle_seed=epoch_seed,
                           read_file=read_file, stem_of=stem_of)
    ds = ds.shuffle(data.shuffle_buffer, seed=epoch_seed + 1).take(records_per_epoch)
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(records_per_epoch), ds)
    ds = ds.skip(tf.where(epoch == start_epoch, tf.constant(start_offset, tf.int64), 0))
    return ds.map(lambda index, record: (epoch * records_per_epoch + index, record))

  def this_hosts_row(position, record):  # Decided before parsing: a host parses only its rows.
    del record
    row = position % global_batch_size
    return (row >= first_row) & (row < first_row + local_batch_size)

  ds = tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_records)
  if process_count > 1:
    ds = ds.filter(this_hosts_row)
  return ds


def num_sequential_batches(meta: DatasetMeta, split: str, stems, crop_frames: int,
                           local_batch_size: int, process_count: int) -> int:
  """Batches every host yields in `sequential_batches` (the same on all hosts)."""
  crops_per_segment = meta.segment_frames // crop_frames
  largest = max(host_share(meta, split, stems, i, process_count).num_records
                for i in range(process_count))
  return math.ceil(largest * crops_per_segment / local_batch_size)


def sequential_batches(data: ml_collections.ConfigDict, meta: DatasetMeta, split: str,
                       local_batch_size: int, crop_frames: int | None = None,
                       process_index: int = 0, process_count: int = 1,
                       with_positions: bool = False) -> Iterator[dict[str, np.ndarray]]:
  """One deterministic pass over a split, every segment cut into whole crops.

  Every host yields the same number of batches (a jitted step over global
  arrays needs all hosts); padding examples have weight 0.

  Yields:
    {'mel': [local_batch, crop, NUM_MELS] float32 normalized, 'stem': [local_batch]
     int32, 'weight': [local_batch] float32 (1 real, 0 padding)}; with
    `with_positions` also 'source_key': [local_batch, 2] int32 (a 62-bit hash
    of source and stem in two halves: int32 survives gathers across hosts
    without x64) and 'start_frame': [local_batch] int32, where the crop starts
    in its source.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  stems = tuple(data.stems)
  crop_frames = crop_frames or data.crop_frames
  num_batches = num_sequential_batches(meta, split, stems, crop_frames, local_batch_size,
                                       process_count)
  share = host_share(meta, split, stems, process_index, process_count)
  crops_per_segment = meta.segment_frames // crop_frames
  normalize = _normalizer(meta, stems)

  def to_crops(record):
    parsed = records.parse_segment(record, meta.segment_frames)
    mel, stem_id = normalize(parsed)
    crops = {'mel': tf.reshape(mel[:crops_per_segment * crop_frames],
                               [crops_per_segment, crop_frames, mel.shape[-1]]),
             'stem': tf.fill([crops_per_segment], stem_id)}
    if with_positions:
      crops.update(_crop_positions(parsed, crops_per_segment, crop_frames))
    return tf.data.Dataset.from_tensor_slices(crops)

  batches = iter([])
  if share.files and share.num_records:
    all_stems = set(stems) >= set(meta.stats['stems'])
    ds = _selected_records(share.files, share, stems, all_stems).flat_map(to_crops)
    batches = ds.batch(local_batch_size).prefetch(2).as_numpy_iterator()
  empty = {'mel': np.zeros((0, crop_frames, contract.NUM_MELS), np.float32),
           'stem': np.zeros((0,), np.int32)}
  if with_positions:
    empty.update(source_key=np.zeros((0, 2), np.int32), start_frame=np.zeros((0,), np.int32))
  for _ in range(num_batches):
    batch = next(batches, empty)
    size = len(batch['stem'])
    pad = local_batch_size - size
    padded = {name: np.pad(value, [(0, pad)] + [(0, 0)] * (value.ndim - 1))
              for name, value in batch.items()}
    yield {**padded, 'weight': np.pad(np.ones(size, np.float32), (0, pad))}


def _crop_positions(parsed, crops_per_segment: int, crop_frames: int) -> dict:
  """Which source and stem each crop of a segment comes from, and where it starts."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  key = tf.strings.to_hash_bucket_fast(parsed['source'] + '|' + parsed['stem'], 2**62)
  halves = tf.cast(tf.stack([key // 2**31, key % 2**31]), tf.int32)
  # start_s is rounded to 0.1 ms and float32: exact to the frame for a day of audio.
  first = tf.cast(tf.round(tf.cast(parsed['start_s'], tf.float64)
                           * (contract.SAMPLE_RATE_HZ / contract.HOP_LENGTH)), tf.int32)
  return {'source_key': tf.tile(halves[None], [crops_per_segment, 1]),
          'start_frame': first + tf.range(crops_per_segment, dtype=tf.int32) * crop_frames}
