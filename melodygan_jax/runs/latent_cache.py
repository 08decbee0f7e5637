"""The GAN's data: the frozen VQ-VAE's codes of the data set, encoded once.

They live in GAN_WORKDIR/latents.npz with latents.json naming the VQ-VAE
(workdir and step) and data they came from: the VQ-VAE is fixed, so its codes
never change, and encoding on the fly would spend most of each GAN step in the
encoder. A cache made from another VQ-VAE is an error, never silently reused.

Segments are encoded one by one, then the codes of each run of adjacent
segments of one source and stem (each starting where the previous one ends)
are joined into one sequence, so a training crop may be longer than a stored
segment: it only has to fit inside one run.
"""
import dataclasses
from typing import Callable

from absl import logging
import jax
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.runs import workdir as workdir_lib


# 2: codes of runs of adjacent segments, flat with run offsets. A cache without
# the key (1) holds [segments, steps, levels] codes and is encoded again.
CACHE_VERSION = 2
_SPLITS = ('train', 'validation')


class LatentCacheError(workdir_lib.WorkdirError):
  """A cache that does not belong to this run; str() names both sources."""


@dataclasses.dataclass
class CodeRuns:
  """Code sequences of unequal length, stored end to end.

  Run r is codes[offsets[r]:offsets[r + 1]]: the codes of adjacent segments
  of one source and stem, in time order.
  """
  codes: np.ndarray  # [total_steps, levels] int32.
  offsets: np.ndarray  # [num_runs + 1] int64, from 0 to total_steps.

  @property
  def lengths(self) -> np.ndarray:
    return np.diff(self.offsets)


@dataclasses.dataclass
class LatentData:
  train: CodeRuns
  validation: CodeRuns
  codebooks: np.ndarray  # [levels, codebook_size, codebook_dim] float32.


def runs_of_sequences(codes: np.ndarray) -> CodeRuns:
  """[num, steps, levels] codes, each sequence a run of its own."""
  codes = np.asarray(codes)
  return CodeRuns(codes=codes.reshape((-1,) + codes.shape[2:]),
                  offsets=np.arange(len(codes) + 1, dtype=np.int64) * codes.shape[1])


def segment_runs(keys: np.ndarray, start_frames: np.ndarray,
                 segment_frames: int) -> tuple[np.ndarray, np.ndarray]:
  """Groups segments into runs: same key, each starting where the last one ends.

  Args:
    keys: [num_segments] int, one per source and stem.
    start_frames: [num_segments] int, where each segment starts in its source.
    segment_frames: frames per segment.

  Returns:
    (order, bounds): the segments sorted by key and start, and [num_runs + 1]
    positions in that order where runs begin (the last: num_segments).
  """
  order = np.lexsort((start_frames, keys))
  keys, starts = np.asarray(keys)[order], np.asarray(start_frames)[order]
  adjacent = (keys[1:] == keys[:-1]) & (starts[1:] - starts[:-1] == segment_frames)
  breaks = np.flatnonzero(~adjacent) + 1
  bounds = np.concatenate([[0], breaks, [len(order)]]) if len(order) else np.zeros(1)
  return order, bounds.astype(np.int64)


def runs_from_segments(codes: np.ndarray, keys: np.ndarray, start_frames: np.ndarray,
                       segment_frames: int) -> CodeRuns:
  """The codes [num_segments, segment_steps, levels] of segments, joined into runs."""
  order, bounds = segment_runs(keys, start_frames, segment_frames)
  codes = np.asarray(codes)
  return CodeRuns(codes=codes[order].reshape((-1,) + codes.shape[2:]),
                  offsets=bounds * codes.shape[1])


def longest_run(runs: CodeRuns) -> int:
  return int(runs.lengths.max()) if len(runs.lengths) else 0


CROP_BALANCES = ('time', 'song')


def sample_crops(runs: CodeRuns, steps: int, rng: np.random.Generator,
                 count: int, balance: str = 'time') -> np.ndarray:
  """`count` random crops [count, steps, levels], each inside one run.

  balance 'time': uniform over every start position that keeps the crop
  inside its run, so a song twice as long is drawn twice as often; 'song':
  each run alike (a run is a song's stretch of adjacent segments, most songs
  one run), then a start inside it. Runs shorter than `steps` are never
  drawn. The draws come from `rng` alone, so a generator seeded by (seed,
  step) makes the batch of that step.
  """
  starts = sample_crop_starts(runs, steps, rng, count, balance)
  return runs.codes[starts[:, None] + np.arange(steps)]


def sample_crop_starts(runs: CodeRuns, steps: int, rng: np.random.Generator,
                       count: int, balance: str = 'time') -> np.ndarray:
  """Where `sample_crops`' crops start in `runs.codes`, [count] (the same draw)."""
  if balance not in CROP_BALANCES:
    raise ValueError(f'crop balance {balance!r}: must be one of {CROP_BALANCES}')
  valid = np.maximum(runs.lengths - steps + 1, 0)
  ends = np.cumsum(valid)
  if not len(ends) or ends[-1] == 0:
    raise ValueError(f'no run holds {steps} steps (the longest: {longest_run(runs)})')
  if balance == 'song':
    drawable = np.flatnonzero(valid)
    run = drawable[rng.integers(0, len(drawable), size=count)]
    return runs.offsets[run] + rng.integers(0, valid[run])
  picks = rng.integers(0, ends[-1], size=count)
  run = np.searchsorted(ends, picks, side='right')
  return runs.offsets[run] + picks - (ends[run] - valid[run])


def real_crops(runs: CodeRuns, steps: int) -> np.ndarray:
  """Every non-overlapping crop of `steps` steps of every run, [n, steps, levels]."""
  per_run = runs.lengths // steps
  run = np.repeat(np.arange(len(per_run)), per_run)
  within = np.arange(per_run.sum()) - np.repeat(np.cumsum(per_run) - per_run, per_run)
  starts = runs.offsets[run] + within * steps
  return runs.codes[starts[:, None] + np.arange(steps)]


def _arrays(data: LatentData) -> dict:
  arrays = {'codebooks': data.codebooks}
  for split in _SPLITS:
    runs = getattr(data, split)
    arrays[f'{split}_codes'] = runs.codes
    arrays[f'{split}_run_offsets'] = runs.offsets
  return arrays


def _latent_data(arrays: dict) -> LatentData:
  return LatentData(*[CodeRuns(arrays[f'{split}_codes'], arrays[f'{split}_run_offsets'])
                      for split in _SPLITS], codebooks=arrays['codebooks'])


def _cached_source(source_path) -> tuple[dict, int]:
  """What a cache's codes were made from, and its layout version (1: written before
  versions were)."""
  source = atomic_files.read_json(source_path)
  return source, source.pop('cache_version', 1)


def load_latents(workdir: str) -> LatentData:
  """The codes a finished GAN run trained on (WORKDIR/latents.npz).

  Raises:
    LatentCacheError: the run has no cache, or one of an older layout (codes of whole
      segments, before version 2), which resuming the run's training encodes again.
  """
  path = workdir_lib.path(workdir, workdir_lib.LATENTS_FILENAME)
  source_path = path.with_suffix('.json')
  if not path.exists() or not source_path.exists():
    raise LatentCacheError(f'{workdir}: no {path.name} (a GAN run writes it before its first step)')
  _, version = _cached_source(source_path)
  if version != CACHE_VERSION:
    raise LatentCacheError(
        f'{path}: cache version {version}, not {CACHE_VERSION} (codes of whole segments); '
        'train the run again with the same --workdir to encode them anew')
  return _latent_data(atomic_files.read_npz(path))


def load_or_encode_latents(workdir: str, source: dict,
                           encode: Callable[[], LatentData]) -> LatentData:
  """The cached codes of WORKDIR/latents.npz, or `encode()` them now and cache them.

  Every process calls this (encoding is collective); process 0 writes.

  Args:
    workdir: the GAN run.
    source: what the codes are made from (VQ-VAE workdir and step, data set,
      stems, feature version); a cache of another source is refused.
    encode: computes the codes when there is no cache (or one of an older layout).

  Raises:
    LatentCacheError: the cache was made from another VQ-VAE or data set than
      the one configured (resuming would mix two codebooks).
  """
  path = workdir_lib.path(workdir, workdir_lib.LATENTS_FILENAME)
  source_path = path.with_suffix('.json')
  if path.exists() and source_path.exists():
    cached_source, version = _cached_source(source_path)
    if cached_source != source:
      raise LatentCacheError(
          f'{workdir} was trained on the codes of {cached_source["vqvae_workdir"]} (step '
          f'{cached_source["vqvae_step"]}), but config.vqvae_workdir is {source["vqvae_workdir"]} '
          f'(step {source["vqvae_step"]}): use a new --workdir')
    if version == CACHE_VERSION:
      return _latent_data(atomic_files.read_npz(path))
    # Same VQ-VAE and data, so encoding again gives the same codes, in runs.
    logging.warning('%s holds codes of whole segments (cache version %s, not %d): '
                    'encoding them again', path, version, CACHE_VERSION)
  data = encode()
  if jax.process_index() == 0:
    atomic_files.write_npz(path, **_arrays(data))
    # Written last: a cache cut short between the two files is encoded again.
    atomic_files.write_json(source_path, {**source, 'cache_version': CACHE_VERSION})
    logging.info('wrote the latent cache %s: %d train and %d validation runs (%d and %d steps)',
                 path, len(data.train.lengths), len(data.validation.lengths),
                 len(data.train.codes), len(data.validation.codes))
  return data
