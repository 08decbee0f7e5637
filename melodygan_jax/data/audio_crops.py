"""Waveform crops of a prepared data set's cleaned WAVs, for training a vocoder.

A vocoder learns from audio, not from the stored mel segments: its inputs are
the log-mel of each crop, computed in the train step with the audio contract's
own functions (so the settings cannot differ). Songs keep the data set's
train/validation split (stats.json `splits`, by a hash of the source path),
so no validation song is ever trained on.

Train batches are a pure function of (seed, step, process): crop b of step s
comes from a generator seeded with (seed, s, process), so a resumed run reads
exactly the crops an uninterrupted run would, with nothing saved but the step.
Crops are read from disk by offset, or, with the songs in device memory
(`load_split_samples`, config.data.placement), cut there from where
`train_crop_starts` says they begin: the same crops.
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
  pcm16: bool = True  # Every WAV is 16-bit PCM (as prepare writes them).

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
  paths, lengths, pcm16 = [], [], True
  for source in sorted(source for source, kind in splits.items() if kind == split):
    path = wavs.get(source)
    if path is None or not path.exists():
      continue
    info = soundfile.info(str(path))
    if info.frames >= min_samples:
      paths.append(path)
      lengths.append(info.frames)
      pcm16 = pcm16 and info.subtype == 'PCM_16'
  return SplitAudio(paths=tuple(paths), num_samples=tuple(lengths), pcm16=pcm16)


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
  for songs, starts in _crop_draws(audio, crop_samples, local_batch_size, seed, start_step,
                                   process_index, process_count):
    yield {'audio': np.stack([read_crop(audio.paths[song], int(start), crop_samples)
                              for song, start in zip(songs, starts)])}


def _crop_draws(audio: SplitAudio, crop_samples: int, local_batch_size: int, seed: int,
                start_step: int, process_index: int, process_count: int):
  """(songs, starts) of this host's crops of each step, from `start_step` on."""
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
    yield songs[rows], starts[rows]
    step += 1


@dataclasses.dataclass(frozen=True)
class SplitSamples:
  """A split's songs end to end in memory, for crops cut on the devices."""
  samples: np.ndarray  # [total] int16 (the cleaned WAVs' own PCM), or float32 for other WAVs.
  song_starts: np.ndarray  # [songs] int64: where each song begins in `samples`.
  scale: float  # samples * scale is what read_crop returns.


def split_samples_bytes(audio: SplitAudio) -> int:
  return sum(audio.num_samples) * (2 if audio.pcm16 else 4)


def load_split_samples(audio: SplitAudio) -> SplitSamples:
  """Every song of `audio`, end to end, as its WAV stores it (16-bit PCM: 2 bytes a sample)."""
  pcm16 = audio.pcm16
  dtype = np.int16 if pcm16 else np.float32
  samples = np.empty(sum(audio.num_samples), dtype)
  song_starts = np.concatenate([[0], np.cumsum(audio.num_samples)[:-1]]).astype(np.int64)
  for path, start, length in zip(audio.paths, song_starts, audio.num_samples):
    song, _ = soundfile.read(str(path), frames=length, dtype=np.dtype(dtype).name,
                             always_2d=True)
    # A mono mean, as read_crop takes it (the cleaned WAVs are mono: the same samples).
    samples[start:start + length] = song[:, 0] if song.shape[1] == 1 else song.mean(axis=1)
  return SplitSamples(samples=samples, song_starts=song_starts,
                      scale=1 / 32768 if pcm16 else 1.0)


def train_crop_starts(audio: SplitAudio, samples: SplitSamples, crop_samples: int,
                      local_batch_size: int, seed: int, start_step: int = 0,
                      process_index: int = 0, process_count: int = 1) -> Iterator[np.ndarray]:
  """Where `train_batches`' crops (same arguments) begin in `samples.samples`: [local_batch]."""
  for songs, starts in _crop_draws(audio, crop_samples, local_batch_size, seed, start_step,
                                   process_index, process_count):
    yield (samples.song_starts[songs] + starts).astype(np.int32)


def validation_clips(audio: SplitAudio, clip_samples: int, max_clips: int) -> np.ndarray:
  """[clips, clip_samples]: the middle of each of the first `max_clips` songs of a split."""
  clips = []
  for path, length in zip(audio.paths[:max_clips], audio.num_samples):
    clips.append(read_crop(path, (length - clip_samples) // 2, clip_samples))
  return np.stack(clips) if clips else np.zeros((0, clip_samples), np.float32)
