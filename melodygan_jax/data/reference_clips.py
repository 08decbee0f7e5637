"""Real held-out clips of a prepared data set, to listen to beside generated ones.

A record names its source file and start time; prepare's report.json says
where that file's cleaned audio is, so a clip is played from the real
recording, not re-synthesized from its spectrogram.
"""
import dataclasses
import pathlib

import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.data import records


@dataclasses.dataclass(frozen=True)
class ReferenceClip:
  source: str  # Input path relative to the input folder.
  start_s: float
  samples: np.ndarray  # [samples] float32 at SAMPLE_RATE_HZ.
  log_mel: np.ndarray  # [frames, NUM_MELS], as stored in the record.


def clean_wavs(dataset_dir: str) -> dict[str, pathlib.Path]:
  """Source -> its cleaned WAV, for the used files of a data set (empty if unknown)."""
  path = pathlib.Path(dataset_dir) / records.REPORT_FILENAME
  if not path.exists():
    return {}
  return {entry['source']: pathlib.Path(dataset_dir) / entry['clean_wav']
          for entry in atomic_files.read_json(path).get('files', [])
          if entry.get('status') == 'used' and entry.get('clean_wav')}


def middle_clip(source: str, samples: np.ndarray, seconds: float) -> ReferenceClip:
  """The `seconds` at the middle of a recording (all of it if shorter), with its log-mel."""
  length = min(len(samples), int(round(seconds * contract.SAMPLE_RATE_HZ)))
  first = (len(samples) - length) // 2
  clip = np.asarray(samples[first:first + length], np.float32)
  return ReferenceClip(source=source, start_s=first / contract.SAMPLE_RATE_HZ, samples=clip,
                       log_mel=contract.log_mel(clip))


def held_out_clips(dataset_dir: str, split_files: list[str], segment_frames: int,
                   num_clips: int, stem: str = 'mix',
                   seconds: float | None = None) -> list[ReferenceClip]:
  """Up to `num_clips` clips of `stem`, one per source file, in shard order.

  Args:
    dataset_dir: a data_prep.prepare --output_dir.
    split_files: the shard paths of the split to draw from (held-out data).
    segment_frames: frames per stored segment.
    num_clips: how many.
    stem: which stem kind.
    seconds: the clip length: a stretch this long from the middle of each
      file (a song's first seconds are often a quiet intro), its log-mel
      computed from the audio; None: the file's first stored segment.

  Returns:
    The clips whose cleaned audio exists (a data set without it gives none).
  """
  if num_clips <= 0:
    return []
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  wavs = clean_wavs(dataset_dir)
  clips, seen = [], set()
  num_samples = segment_frames * contract.HOP_LENGTH
  for shard in split_files:
    for serialized in tf.data.TFRecordDataset(shard):
      record = records.parse_segment(serialized, segment_frames)
      source = record['source'].numpy().decode()
      if (record['stem'].numpy().decode() != stem or source in seen
          or source not in wavs or not wavs[source].exists()):
        continue
      seen.add(source)
      samples = audio_io.read_mono(wavs[source])
      if seconds is None:
        start_s = float(record['start_s'].numpy())
        first = int(round(start_s * contract.SAMPLE_RATE_HZ))
        clips.append(ReferenceClip(source=source, start_s=start_s,
                                   samples=samples[first:first + num_samples],
                                   log_mel=record['mel'].numpy()))
      else:
        clips.append(middle_clip(source, samples, seconds))
      if len(clips) == num_clips:
        return clips
  return clips
