"""Finished songs -> sharded TFRecords, TFDS metadata and normalization stats.

The output is a pure function of the finished songs: songs are visited in
sorted order and each segment goes to a shard chosen by a hash of its identity,
so an interrupted and resumed run writes the same bytes as an uninterrupted one.
Hashing spreads each song over the shards, which the reader's shuffle needs.
"""
import hashlib
import itertools
import math
import os
import pathlib
import shutil
import zlib

import numpy as np

from data_prep import features
from melodygan_jax.audio import contract
from melodygan_jax.data import records

_RECORD_OVERHEAD_BYTES = 160  # Proto framing, source path and scalars.


def assign_split(source: str, validation_fraction: float) -> str:
  """Train or validation by a hash of the source path, stable across runs."""
  digest = hashlib.sha256(source.encode()).digest()
  position = int.from_bytes(digest[:8], 'big') / 2**64
  return records.VALIDATION_SPLIT if position < validation_fraction else records.TRAIN_SPLIT


def assign_splits(sources: list[str], validation_fraction: float) -> dict[str, str]:
  """Splits by hash; a corpus of 2+ songs always gets one validation song.

  Small corpora would otherwise often have no validation split at all. The
  fallback song (lowest hash) depends only on the set of sources.
  """
  splits = {source: assign_split(source, validation_fraction) for source in sources}
  if (validation_fraction > 0 and len(sources) >= 2
      and records.VALIDATION_SPLIT not in splits.values()):
    fallback = min(sources, key=lambda s: hashlib.sha256(s.encode()).digest())
    splits[fallback] = records.VALIDATION_SPLIT
  return splits


class StemStats:
  """Running per-band sums of log-mel and MFCC frames, in float64 (mergeable)."""

  def __init__(self):
    self.num_frames = 0
    self.mel_sum = np.zeros(contract.NUM_MELS)
    self.mel_sq_sum = np.zeros(contract.NUM_MELS)
    self.mfcc_sum = np.zeros(contract.NUM_MFCC)
    self.mfcc_sq_sum = np.zeros(contract.NUM_MFCC)

  def add(self, mel: np.ndarray, mfcc: np.ndarray) -> None:
    mel = mel.reshape(-1, contract.NUM_MELS).astype(np.float64)
    mfcc = mfcc.reshape(-1, contract.NUM_MFCC).astype(np.float64)
    self.num_frames += len(mel)
    self.mel_sum += mel.sum(0)
    self.mel_sq_sum += np.square(mel).sum(0)
    self.mfcc_sum += mfcc.sum(0)
    self.mfcc_sq_sum += np.square(mfcc).sum(0)

  def merge(self, other: 'StemStats') -> 'StemStats':
    """Adds another's sums into this one; returns self."""
    self.num_frames += other.num_frames
    self.mel_sum += other.mel_sum
    self.mel_sq_sum += other.mel_sq_sum
    self.mfcc_sum += other.mfcc_sum
    self.mfcc_sq_sum += other.mfcc_sq_sum
    return self

  def as_json(self) -> dict:
    def mean_std(total, sq_total):
      mean = total / self.num_frames
      std = np.sqrt(np.maximum(sq_total / self.num_frames - mean**2, 1e-8))
      return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]

    mel_mean, mel_std = mean_std(self.mel_sum, self.mel_sq_sum)
    mfcc_mean, mfcc_std = mean_std(self.mfcc_sum, self.mfcc_sq_sum)
    return {'num_frames': self.num_frames, 'log_mel_mean': mel_mean,
            'log_mel_std': mel_std, 'mfcc_mean': mfcc_mean, 'mfcc_std': mfcc_std}


def num_shards_for(num_segments: int, segment_frames: int, shard_size_mb: float) -> int:
  segment_bytes = segment_frames * (contract.NUM_MELS + contract.NUM_MFCC) * 4
  total_bytes = num_segments * (segment_bytes + _RECORD_OVERHEAD_BYTES)
  return max(1, math.ceil(total_bytes / (shard_size_mb * 2**20)))


def write_dataset(output_dir: str | os.PathLike, songs: list[dict],
                  cache_paths: dict[str, str], segment_frames: int,
                  validation_fraction: float, shard_size_mb: float) -> dict:
  """Writes OUT/tfds/... and returns the contents of stats.json.

  Args:
    output_dir: the data_prep output folder.
    songs: outcomes of the used songs ('source', 'stems', 'num_segments').
    cache_paths: source -> cache path (without suffix) of its segments.
    segment_frames: frames per record.
    validation_fraction: share of songs in the validation split.
    shard_size_mb: target size of one shard file.

  Returns:
    Normalization statistics of the train split per stem kind, the split of
    every song and the number of records per shard and stem kind.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  final_dir = pathlib.Path(records.dataset_path(output_dir))  # Written locally.
  work_dir = staging_dir(output_dir)
  shutil.rmtree(work_dir, ignore_errors=True)
  work_dir.mkdir(parents=True)

  songs = sorted(songs, key=lambda song: song['source'])
  split_of = assign_splits([song['source'] for song in songs], validation_fraction)
  stats = {}
  split_infos = []
  shard_stem_counts = {}
  for split in (records.TRAIN_SPLIT, records.VALIDATION_SPLIT):
    split_songs = [song for song in songs if split_of[song['source']] == split]
    num_segments = sum(song['num_segments'] * len(song['stems']) for song in split_songs)
    if num_segments == 0:
      continue
    num_shards = num_shards_for(num_segments, segment_frames, shard_size_mb)
    paths = [work_dir / records.shard_filename(split, i, num_shards) for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(str(path)) for path in paths]
    counts = [dict.fromkeys(contract.STEM_KINDS, 0) for _ in range(num_shards)]
    for song in split_songs:
      archive = cache_paths[song['source']] + '.npz'
      for stem in song['stems']:
        for first, mel, mfcc in features.segment_chunks(archive, stem):
          if split == records.TRAIN_SPLIT:
            stats.setdefault(stem, StemStats()).add(mel, mfcc)
          for index, segment_mel, segment_mfcc in zip(itertools.count(first), mel, mfcc):
            shard = shard_of(song['source'], stem, index, num_shards)
            writers[shard].write(records.serialize_segment(
                segment_mel, segment_mfcc, song['source'],
                segment_start_s(index, segment_frames), stem))
            counts[shard][stem] += 1
    for writer in writers:
      writer.close()
    split_infos.append(tfds.core.SplitInfo(
        name=split, shard_lengths=[sum(c.values()) for c in counts],
        num_bytes=sum(path.stat().st_size for path in paths)))
    shard_stem_counts[split] = counts

  finish_dataset(work_dir, final_dir, split_infos, segment_frames)
  return stats_json(stats, split_of, shard_stem_counts, segment_frames)


def shard_of(source: str, stem: str, index: int, num_shards: int) -> int:
  """The shard of one segment: a hash of its identity, the same on every runner.

  Args:
    source: the song's path relative to the input folder.
    stem: the stem kind.
    index: the segment's position in the song.
    num_shards: shards of the song's split.

  Returns:
    An index in [0, num_shards).
  """
  return zlib.crc32(f'{source}|{stem}|{index}'.encode()) % num_shards


def segment_start_s(index: int, segment_frames: int) -> float:
  """Where segment `index` starts in its (cleaned) song, in seconds, as records store it."""
  return round(contract.frames_to_seconds(index * segment_frames), 4)


def staging_dir(output_dir: str | os.PathLike) -> pathlib.Path:
  """Where shards are written before the finished folder is swapped in."""
  final_dir = pathlib.Path(records.dataset_path(output_dir))  # Written locally.
  return final_dir.with_name(final_dir.name + '.tmp')


def finish_dataset(work_dir: pathlib.Path, final_dir: pathlib.Path, split_infos: list,
                   segment_frames: int) -> None:
  """Writes the TFDS metadata beside the shards, then swaps the folder in.

  Args:
    work_dir: the staging folder holding every shard.
    final_dir: the data set's folder (records.dataset_path).
    split_infos: a `tfds.core.SplitInfo` per split written.
    segment_frames: frames per record.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.folder_dataset.write_metadata(
      data_dir=work_dir, features=records.features_dict(segment_frames),
      split_infos=split_infos, check_data=False,
      description='Log-mel and MFCC segments written by data_prep.prepare.')
  # Swap the finished folder in; a crash before this leaves only `.tmp`.
  old_dir = final_dir.with_name(final_dir.name + '.old')
  shutil.rmtree(old_dir, ignore_errors=True)
  if final_dir.exists():
    os.replace(final_dir, old_dir)
  os.replace(work_dir, final_dir)
  shutil.rmtree(old_dir, ignore_errors=True)


def stats_json(stats: dict, split_of: dict, shard_stem_counts: dict,
               segment_frames: int) -> dict:
  """The contents of stats.json.

  Args:
    stats: stem -> StemStats of the train split.
    split_of: source -> split of every used song.
    shard_stem_counts: split -> per shard, {stem: records}.
    segment_frames: frames per record.
  """
  return {
      'feature_version': contract.FEATURE_VERSION,
      'segment_frames': segment_frames,
      'num_mels': contract.NUM_MELS,
      'num_mfcc': contract.NUM_MFCC,
      'stems': {stem: stem_stats.as_json() for stem, stem_stats in sorted(stats.items())},
      'splits': dict(sorted(split_of.items())),
      'shard_stem_counts': shard_stem_counts,
  }
