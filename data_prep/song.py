"""One input file -> cleaned WAV(s) and feature segments: the worker's job.

Runs in a worker process. Its outputs are two files per input: the segments
(`<cache>.npz`) and the outcome (`<cache>.json`), the json written last, so it
marks a finished file; a re-run that finds a json with the same fingerprint
skips the file.
"""
import dataclasses
import hashlib
import json
import os
import pathlib
import time
import traceback
import zipfile

import numpy as np

from data_prep import cleaning as cleaning_lib
from data_prep import features
from data_prep import report as report_lib
from data_prep import separation as separation_lib
from melodygan_jax import atomic_files
from melodygan_jax.audio import contract
from melodygan_jax.audio import audio_io

MIN_SEGMENT_FRAMES = 16
# Bump when processing changes what a file's outputs are, so re-runs redo them.
# 3: loudness through float32 sosfilt, features through one batched float32 FFT;
#    stereo files reach the dsp separator.
# 4: the mel product over each band group's own bins (float32 rounding changes).
# 5: a 20 Hz high-pass first (--highpass_hz): DC offset and rumble removed.
PROCESSING_VERSION = 5


@dataclasses.dataclass(frozen=True)
class SongOptions:
  """Everything that changes what a song's outputs are."""
  cleaning: cleaning_lib.CleaningOptions = cleaning_lib.CleaningOptions()
  segment_frames: int = 256
  separation: separation_lib.SeparationOptions = separation_lib.SeparationOptions()

  def digest(self) -> str:
    # The feature version too: a contract change redoes the features, never reuses them.
    fields = {'version': PROCESSING_VERSION, 'feature_version': contract.FEATURE_VERSION,
              **dataclasses.asdict(self)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class SongTask:
  input_path: str
  source: str  # Path relative to the input folder: the song's identity.
  clean_path: str  # Where the cleaned mix goes; stems go beside it.
  cache_path: str  # Without suffix: `.npz` and `.json` are added.
  options: SongOptions
  # 'stems' backend: this song's pre-separated stem files, {stem: paths}.
  stem_files: dict = dataclasses.field(default_factory=dict, hash=False)

  def fingerprint(self) -> str:
    """Changes when the file, its stem files or the options change."""
    parts = []
    for path in [self.input_path, *sorted(p for ps in self.stem_files.values() for p in ps)]:
      try:
        stat = os.stat(path)
      except OSError:  # A broken link: processing reports it.
        parts.append('missing')
        continue
      parts.append(f'{stat.st_size}-{stat.st_mtime_ns}')
    digest = hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]
    return f'{digest}-{self.options.digest()}'


def cut_segments(features: np.ndarray, segment_frames: int) -> np.ndarray:
  """[frames, dims] -> [num_segments, segment_frames, dims]; drops the tail."""
  num_segments = len(features) // segment_frames
  return features[:num_segments * segment_frames].reshape(
      num_segments, segment_frames, features.shape[-1])


def stem_path(clean_path: str | os.PathLike, stem: str) -> pathlib.Path:
  """`song.wav` for the mix, `song.vocals.wav` for a stem."""
  clean_path = pathlib.Path(clean_path)
  if stem == 'mix':
    return clean_path
  return clean_path.with_name(f'{clean_path.stem}.{stem}.wav')


def stereo_for_separation(input_path: str, channels: int,
                          options: separation_lib.SeparationOptions) -> np.ndarray | None:
  """[2, samples] at the contract's rate when 'dsp' separation can use the two
  channels of a stereo file (the centre of a stereo mix is where its lead vocal
  is); None otherwise (mono and multichannel files are separated from the mono
  mix). Separation holds the whole song, so this reads the file whole."""
  if (options.backend != 'dsp' or not options.dsp.stereo or channels != 2
      or set(options.stems) == {'mix'}):
    return None
  samples, sample_rate = audio_io.read_audio(input_path)
  return np.stack([audio_io.resample(np.ascontiguousarray(channel), sample_rate)
                   for channel in samples.T])


def _process(task: SongTask, outcome: dict) -> None:
  if not os.path.exists(task.input_path):
    raise audio_io.AudioReadError('cannot be opened: a broken symbolic link, or deleted')
  # Decoded block by block: only the mono signal at the contract's rate is held whole.
  mono, sample_rate, channels, source_frames = audio_io.decode_mono(task.input_path)
  outcome.update(duration_s=round(source_frames / sample_rate, 3),
                 sample_rate_hz=sample_rate, channels=channels)
  options = task.options
  raw_length = len(mono)
  stereo = stereo_for_separation(task.input_path, channels, options.separation)
  # Cut and scaled where it lies: a long song is held once.
  clean, edits = cleaning_lib.clean(mono, options.cleaning, in_place=True)
  del mono
  clean_s = len(clean) / contract.SAMPLE_RATE_HZ
  outcome['clean_duration_s'] = round(clean_s, 3)
  needed_s = contract.frames_to_seconds(options.segment_frames)
  if clean_s < needed_s:
    raise cleaning_lib.UnusableAudio(
        f'too short: {clean_s:.2f} s after cleaning, one segment needs {needed_s:.2f} s')
  if stereo is not None:  # The channels get the mix's cuts and gain, so they stay aligned.
    stereo = np.stack([cleaning_lib.apply_edits(channel, edits, options.cleaning)[:len(clean)]
                       for channel in stereo])
  stem_samples = separation_lib.separate(
      clean, options.separation, stereo=stereo, stem_files=task.stem_files,
      raw_length=raw_length, edits=edits,
      cleaning_options=options.cleaning)
  for stem, stem_audio in stem_samples.items():
    audio_io.write_wav(stem_path(task.clean_path, stem), stem_audio)
  num_segments = {}
  with atomic_files.atomic_path(task.cache_path + '.npz') as tmp_path:
    with zipfile.ZipFile(tmp_path, 'w', allowZip64=True) as archive:
      for stem in sorted(stem_samples):
        num_segments[stem] = features.write_segments(
            archive, stem, stem_samples[stem], options.segment_frames)
  outcome.update(status='used', stems=sorted(stem_samples),
                 num_segments=int(num_segments[next(iter(stem_samples))]))


def process_song(task: SongTask) -> dict:
  """Prepares one file; never raises: failures become a skipped outcome.

  Returns:
    The outcome, also written to `<cache_path>.json`: source, status
    ('used' | 'skipped'), reason when skipped, durations, segment count.
  """
  outcome = {'source': task.source, 'fingerprint': task.fingerprint()}
  started = time.perf_counter()
  # A run killed while writing this file's outputs (they take a while for a long
  # song) left temporaries that no later write would replace.
  for output in (task.cache_path + '.npz', task.cache_path + '.json',
                 *(stem_path(task.clean_path, stem) for stem in contract.STEM_KINDS)):
    atomic_files.remove_stale_temporaries(output)
  try:
    _process(task, outcome)
  except (audio_io.AudioReadError, cleaning_lib.UnusableAudio,
          separation_lib.SeparationError) as e:
    outcome.update(status='skipped', reason=str(e))
  except Exception as e:  # pylint: disable=broad-except
    # An unexpected failure on one file must not stop the other files.
    last_frame = traceback.extract_tb(e.__traceback__)[-1]
    outcome.update(status='skipped', reason=(
        f'unexpected {type(e).__name__}: {" ".join(str(e).split())} '
        f'({pathlib.Path(last_frame.filename).name}:{last_frame.lineno})'))
  outcome['seconds'] = round(time.perf_counter() - started, 3)
  outcome['worker_peak_rss_mb'] = report_lib.peak_rss_mb()
  atomic_files.write_json(task.cache_path + '.json', outcome)
  return outcome


def load_finished(task: SongTask) -> dict | None:
  """The outcome of an earlier run on the same file and options, if any."""
  path = pathlib.Path(task.cache_path + '.json')
  if not path.exists():
    return None
  try:
    outcome = atomic_files.read_json(path)
  except (OSError, ValueError):
    return None
  if outcome.get('fingerprint') != task.fingerprint():
    return None
  if outcome.get('status') == 'used' and not pathlib.Path(task.cache_path + '.npz').exists():
    return None
  return outcome
