"""Which real clips an evaluation reads, and reading them in fixed-shape batches.

Clips are whole, non-overlapping pieces of each source's cleaned WAV, spread
evenly over every file under a cap, so a capped evaluation still hears every
song; batches are padded to one shape, so each compiled function compiles once.
"""
import dataclasses

import numpy as np
import soundfile

from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records

# The distances' kernel bandwidth and intervals compare clips within a set: two at least.
MIN_CLIPS_A_HALF = 2

EVALUATED_STEM = 'mix'  # Cleaned WAVs are mixes; stems would need their own reference.


@dataclasses.dataclass(frozen=True)
class PlannedClip:
  source: str
  path: str
  start_sample: int


def split_sources(meta: input_pipeline.DatasetMeta, split: str) -> list[str]:
  """Sorted source files with `EVALUATED_STEM` segments in `split`."""
  if not meta.num_records(split, (EVALUATED_STEM,)):
    return []
  if 'splits' in meta.stats:
    # Every used song has segments of every stem of the data set: stats.json's split of
    # each song says it without reading the shards (half a minute for a few hours of songs).
    return sorted(source for source, kind in meta.stats['splits'].items() if kind == split)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  sources = set()
  for path in meta.split_files.get(split, []):
    for serialized in tf.data.TFRecordDataset(path):
      record = records.parse_segment(serialized, meta.segment_frames)
      if record['stem'].numpy().decode() == EVALUATED_STEM:
        sources.add(record['source'].numpy().decode())
  return sorted(sources)


def plan_clips(wavs: dict, sources: list[str], clip_samples: int,
               max_clips: int | None) -> list[PlannedClip]:
  """Non-overlapping clips of every source's cleaned WAV, evenly spread under a cap.

  Args:
    wavs: source -> cleaned WAV path (`reference_clips.clean_wavs`).
    sources: the split's sources; those without a WAV are skipped.
    clip_samples: clip length.
    max_clips: most clips in all; taken round-robin over sources (the first
      clip of every source, then the second, ...), so a cap keeps every file.

  Returns:
    The clips, in source order.
  """
  per_source = []
  for source in sources:
    if source not in wavs or not wavs[source].exists():
      continue
    num_whole = soundfile.info(str(wavs[source])).frames // clip_samples
    per_source.append([PlannedClip(source, str(wavs[source]), i * clip_samples)
                       for i in spread_indices(num_whole, max_clips, len(sources))])
  rounds = sorted(((rank, index) for index, clips in enumerate(per_source)
                   for rank in range(len(clips))))
  if max_clips is not None:
    rounds = rounds[:max_clips]
  return [per_source[index][rank] for rank, index in sorted(rounds, key=lambda r: (r[1], r[0]))]


def spread_indices(num_whole: int, max_clips: int | None, num_sources: int) -> list[int]:
  """Which of a file's `num_whole` clips to use: all, or an even spread of its share."""
  if max_clips is None or num_whole <= max_clips // max(num_sources, 1) + 1:
    return list(range(num_whole))
  share = max_clips // max(num_sources, 1) + 1
  return sorted(set(np.linspace(0, num_whole - 1, share).round().astype(int).tolist()))


def read_clip_batches(plan: list[PlannedClip], clip_samples: int, batch_size: int):
  """Yields [batch, clip_samples] float32 audio of the planned clips, in order."""
  for first in range(0, len(plan), batch_size):
    yield np.stack([soundfile.read(clip.path, start=clip.start_sample,
                                   stop=clip.start_sample + clip_samples, dtype='float32')[0]
                    for clip in plan[first:first + batch_size]])


def fixed_batch(array: np.ndarray, batch_size: int) -> np.ndarray:
  """`array` [n <= batch_size, ...] zero-padded to batch_size rows: one compiled shape."""
  padded = np.zeros((batch_size,) + array.shape[1:], array.dtype)
  padded[:len(array)] = array
  return padded


def fit_length(clips: np.ndarray, clip_samples: int) -> np.ndarray:
  """[batch, samples] cut or zero-padded at the end to [batch, clip_samples]."""
  clips = clips[:, :clip_samples]
  return np.pad(clips, ((0, 0), (0, clip_samples - clips.shape[1])))


def split_halves(num_clips: int, groups: np.ndarray | None = None,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Indices of two disjoint, equal-size halves of a set of real clips.

  With `groups` (e.g. a track id per clip), whole groups go to one half, so
  the floor compares different tracks, not neighbouring cuts of one song;
  the larger half is then trimmed (seeded) to the smaller's size.

  Args:
    num_clips: size of the set.
    groups: optional [num_clips] group label per clip.
    seed: shuffling seed.

  Returns:
    (indices_a, indices_b), sorted, disjoint, of equal length.

  Raises:
    ValueError: fewer than 2 groups (or clips).
  """
  rng = np.random.default_rng(seed)
  if groups is None:
    groups = np.arange(num_clips)
  groups = np.asarray(groups)
  labels, clip_group = np.unique(groups, return_inverse=True)
  if len(labels) < 2:
    raise ValueError(f'cannot split {len(labels)} group(s) into two disjoint halves')
  sizes = np.bincount(clip_group)
  in_a = np.zeros(len(labels), bool)
  total_a = total_b = 0
  # Largest groups first, each to the emptier half: balanced halves.
  for group in sorted(rng.permutation(len(labels)), key=lambda g: -sizes[g]):
    if total_a <= total_b:
      in_a[group], total_a = True, total_a + sizes[group]
    else:
      total_b += sizes[group]
  half_a = np.flatnonzero(in_a[clip_group])
  half_b = np.flatnonzero(~in_a[clip_group])
  size = min(len(half_a), len(half_b))
  return (np.sort(rng.choice(half_a, size, replace=False)),
          np.sort(rng.choice(half_b, size, replace=False)))
