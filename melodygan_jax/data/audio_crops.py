"""Waveform crops of a prepared data set's cleaned WAVs, for training a vocoder.

A vocoder learns from audio, not from the stored mel segments: its inputs are
the log-mel of each crop, computed in the train step with the audio contract's
own functions (so the settings cannot differ). Songs keep the data set's
train/validation split (stats.json `splits`, by a hash of the source path),
so no validation song is ever trained on.

Train batches are a pure function of (seed, step, process): crop b of step s
comes from a generator seeded with (seed, s, process), so a resumed run reads
exactly the crops an uninterrupted run would, with nothing saved but the step.
Crops are read from disk by offset: nothing is held in memory.
"""
import dataclasses
import pathlib
from typing import Iterator

import numpy as np
import soundfile

from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.data import records
from melodygan_jax.data import reference_clips


class AudioCropsError(errors.UserError, ValueError):
  """A data set whose audio cannot be cropped; str() names the path and the problem."""


@dataclasses.dataclass(frozen=True)
class SplitAudio:
  """The cleaned mix WAVs of one split and their lengths in samples."""
  paths: tuple[pathlib.Path, ...]
  num_samples: tuple[int, ...]

  @property
  def total_seconds(self) -> float:
    return sum(self.num_samples) / contract.SAMPLE_RATE_HZ


def split_audio(dataset_dir: str, split: str, min_samples: int) -> SplitAudio:
  """The cleaned WAVs of `split` that hold at least `min_samples`, sorted by source.

  Raises:
    AudioCropsError: the data set lists no split or no cleaned audio.
  """
  stats_path = pathlib.Path(dataset_dir) / records.STATS_FILENAME
  if not stats_path.exists():
    raise AudioCropsError(f'{dataset_dir}: no {records.STATS_FILENAME} (run '
                          'python -m data_prep.prepare first)')
  splits = atomic_files.read_json(stats_path).get('splits', {})
  wavs = reference_clips.clean_wavs(dataset_dir)
  if not splits or not wavs:
    raise AudioCropsError(f'{dataset_dir}: its report.json and stats.json list no cleaned '
                          'audio with a split (re-run python -m data_prep.prepare)')
  paths, lengths = [], []
  for source in sorted(source for source, kind in splits.items() if kind == split):
    path = wavs.get(source)
    if path is None or not path.exists():
      continue
    frames = soundfile.info(str(path)).frames
    if frames >= min_samples:
      paths.append(path)
      lengths.append(frames)
  return SplitAudio(paths=tuple(paths), num_samples=tuple(lengths))


def read_crop(path: pathlib.Path, start: int, num_samples: int) -> np.ndarray:
  """`num_samples` float32 samples of a mono WAV from `start`."""
  samples, _ = soundfile.read(str(path), start=start, frames=num_samples, dtype='float32',
                              always_2d=True)
  return samples.mean(axis=1)


def train_batches(audio: SplitAudio, crop_samples: int, local_batch_size: int, seed: int,
                  start_step: int = 0, process_index: int = 0,
                  process_count: int = 1) -> Iterator[dict]:
  """Endless batches {'audio': [local_batch, crop_samples] float32}, from `start_step` on.

  A song is drawn with probability proportional to its number of crop
  positions, so every second of the corpus is equally likely. The global batch
  of a step is drawn from (seed, step) alone; this host reads its rows of it
  (rows [process_index * local_batch_size, ...)), so the batches do not depend
  on how many processes share them.
  """
  if not audio.paths:
    raise AudioCropsError(f'no training song holds a crop of {crop_samples} samples')
  positions = np.asarray(audio.num_samples) - crop_samples + 1
  weights = positions / positions.sum()
  rows = slice(process_index * local_batch_size, (process_index + 1) * local_batch_size)
  step = start_step
  while True:
    rng = np.random.default_rng([seed, step])
    songs = rng.choice(len(audio.paths), size=local_batch_size * process_count, p=weights)
    starts = rng.integers(0, positions[songs])
    yield {'audio': np.stack([read_crop(audio.paths[song], int(start), crop_samples)
                              for song, start in zip(songs[rows], starts[rows])])}
    step += 1


def validation_clips(audio: SplitAudio, clip_samples: int, max_clips: int) -> np.ndarray:
  """[clips, clip_samples]: the middle of each of the first `max_clips` songs of a split."""
  clips = []
  for path, length in zip(audio.paths[:max_clips], audio.num_samples):
    clips.append(read_crop(path, (length - clip_samples) // 2, clip_samples))
  return np.stack(clips) if clips else np.zeros((0, clip_samples), np.float32)
