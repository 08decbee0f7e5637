"""Vocal/instrumental separation: the step between cleaning and features.

Backends (`--separation`):
  none   the mix only.
  dsp    built in, no model files: REPET-SIM (librosa's nearest-neighbour
         filtering of the magnitude spectrogram, soft masks) on the harmonic
         part of an HPSS split; vocals are what does not repeat, the
         instrumental is the rest of the mix (so the stems add up to the mix).
  stems  stems another separator already wrote (UVR5, Demucs, or
         `Song.vocals.wav`), found by the song's relative path; a missing
         stem is reported.
  uvr    UVR5 models through the `audio-separator` package, with the model
         file from --uvr_model_dir (nothing is downloaded).
"""
import collections
import dataclasses
import functools
import os
import pathlib
import posixpath
import re
import tempfile

import librosa
import numpy as np

from data_prep import input_files
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract

BACKENDS = ('none', 'dsp', 'stems', 'uvr')
SEPARATED_STEMS = ('vocals', 'instrumental')
DEMUCS_PARTS = ('drums', 'bass', 'other')  # Summed, they are the instrumental.
_DSP_N_FFT = 2048
_DSP_HOP = 512


class SeparationError(Exception):
  """A song whose stems cannot be produced; str() is the reason."""


@dataclasses.dataclass(frozen=True)
class DspOptions:
  """The built-in separator's parameters (each a prepare flag, --dsp_*)."""
  similarity_width_s: float = 2.0  # Neighbours are at least this far apart in time.
  vocal_margin: float = 10.0  # Soft-mask margin: higher, fewer accompaniment leaks.
  hpss: bool = True  # Percussion goes straight to the instrumental.
  hpss_kernel: int = 17  # Median filter length (frames and bins).
  window_s: float = 30.0  # Repetition is searched within windows this long.


@dataclasses.dataclass(frozen=True)
class SeparationOptions:
  backend: str = 'none'
  stems: tuple[str, ...] = ('mix',)
  dsp: DspOptions = DspOptions()
  stems_dir: str = ''  # 'stems': where they are ('' = the input folder).
  uvr_model_dir: str = ''
  uvr_model: str = 'UVR-MDX-NET-Inst_HQ_3.onnx'


def check_options(options: SeparationOptions) -> None:
  """Fails before any work on an unusable backend, stem list or model.

  Raises:
    ValueError: one line naming the flag, what is wrong and how to fix it.
  """
  if options.backend not in BACKENDS:
    raise ValueError(f'--separation={options.backend}: choose one of {", ".join(BACKENDS)}')
  if options.backend == 'none' and set(options.stems) != {'mix'}:
    raise ValueError(f'--stems={",".join(options.stems)}: without separation only '
                     '"mix" exists; pass --separation=dsp, stems or uvr')
  if options.backend == 'stems' and options.stems_dir and not os.path.isdir(options.stems_dir):
    raise ValueError(f'--stems_dir={options.stems_dir}: no such folder')
  if options.backend == 'uvr':
    model = pathlib.Path(options.uvr_model_dir or '.') / options.uvr_model
    if not options.uvr_model_dir or not model.is_file():
      raise ValueError(f'--uvr_model={options.uvr_model} not found in --uvr_model_dir='
                       f'{options.uvr_model_dir or "(unset)"}: download the model file '
                       '(UVR5 model list, or audio-separator --list_models) into that folder')
    try:
      import audio_separator  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise ValueError('--separation=uvr needs the audio-separator package: '
                       'pip install -e ".[uvr]"') from None


# ---------------------------------------------------------------- dsp

def dsp_vocals(mix: np.ndarray, options: DspOptions) -> np.ndarray:
  """REPET-SIM vocals of a mono mix at the contract's rate."""
  stft = librosa.stft(mix, n_fft=_DSP_N_FFT, hop_length=_DSP_HOP)
  magnitude = np.abs(stft)
  if options.hpss:
    harmonic_mask, _ = librosa.decompose.hpss(magnitude, kernel_size=options.hpss_kernel,
                                              mask=True)
    magnitude = magnitude * harmonic_mask
  num_frames = magnitude.shape[1]
  width = max(1, int(librosa.time_to_frames(options.similarity_width_s,
                                            sr=contract.SAMPLE_RATE_HZ, hop_length=_DSP_HOP)))
  window = int(librosa.time_to_frames(options.window_s, sr=contract.SAMPLE_RATE_HZ,
                                      hop_length=_DSP_HOP))
  num_windows = max(1, round(num_frames / max(window, 1)))
  vocals = np.zeros_like(magnitude)
  for frames in np.array_split(np.arange(num_frames), num_windows):
    chunk = magnitude[:, frames]
    chunk_width = min(width, max(1, len(frames) // 4))  # Short songs: nearer neighbours.
    if len(frames) < 8:
      continue  # Too short to find repetition: leave it to the instrumental.
    repeating = np.minimum(chunk, librosa.decompose.nn_filter(
        chunk, aggregate=np.average, metric='cosine', width=chunk_width))
    mask = librosa.util.softmask(chunk - repeating, options.vocal_margin * repeating, power=2)
    vocals[:, frames] = mask * chunk
  phase = np.exp(1j * np.angle(stft))
  return librosa.istft(vocals * phase, hop_length=_DSP_HOP, length=len(mix)).astype(np.float32)


def hpss_split(mix: np.ndarray, kernel: int = 17) -> tuple[np.ndarray, np.ndarray]:
  """(harmonic, percussive) by librosa's HPSS: the naive split, as a baseline."""
  harmonic, percussive = librosa.effects.hpss(mix, kernel_size=kernel)
  return harmonic.astype(np.float32), percussive.astype(np.float32)


# ---------------------------------------------------------------- stems

_UVR_NAME = re.compile(r'^(?:\d+_)?(?P<song>.+?)_\((?P<stem>vocals|instrumental)\)(?:_.*)?$',
                       re.IGNORECASE)
_SIMPLE_NAME = re.compile(r'^(?P<song>.+)\.(?P<stem>vocals|instrumental)$', re.IGNORECASE)
_DEMUCS_STEMS = {'vocals': 'vocals', 'no_vocals': 'instrumental', 'instrumental': 'instrumental',
                 **{part: part for part in DEMUCS_PARTS}}


def find_stem_files(stems_dir: str) -> tuple[dict[str, dict[str, tuple[str, ...]]], set[str]]:
  """Indexes pre-separated stems under `stems_dir` by their song's relative path.

  Understood layouts, each in the folder that mirrors the song's own:
    UVR5: `1_Song_(Vocals).wav`, `1_Song_(Instrumental).wav` (also without the
      number, and with a model-name suffix as audio-separator writes them);
    Demucs: `<model>/Song/vocals.wav` with `no_vocals.wav`, or drums, bass and
      other, which are summed into the instrumental;
    simple: `Song.vocals.wav`, `Song.instrumental.wav`.
  So `album/Song.wav` has the key `album/Song`, from `album/Song.vocals.wav`,
  `album/1_Song_(Vocals).wav` or `album/htdemucs/Song/vocals.wav`.

  Returns:
    song key (posix path relative to `stems_dir`, without extension) ->
    {'vocals' | 'instrumental': paths to sum}, and the set of every stem file
    found (real paths, so they are not taken for songs).
  """
  stems_dir = pathlib.Path(stems_dir)
  index = collections.defaultdict(dict)
  demucs_parts = collections.defaultdict(dict)
  stem_files = set()
  for path in input_files.list_files(stems_dir):
    base, extension = os.path.splitext(path.name)
    if extension.lower() not in audio_io.AUDIO_EXTENSIONS:
      continue
    folder = path.parent.relative_to(stems_dir)
    match = _UVR_NAME.match(base) or _SIMPLE_NAME.match(base)
    if match:
      index[_song_key(folder, match['song'])][match['stem'].lower()] = (str(path),)
      stem_files.add(os.path.realpath(path))
    elif base.lower() in _DEMUCS_STEMS and folder != pathlib.Path('.'):
      # <song's folder>/<model>/<song>/vocals.wav; the model folder may be stems_dir.
      song_folder = folder.parent.parent if folder.parent != pathlib.Path('.') else folder.parent
      demucs_parts[_song_key(song_folder, folder.name)][_DEMUCS_STEMS[base.lower()]] = str(path)
  for key, parts in demucs_parts.items():
    if 'vocals' not in parts:
      continue  # Demucs always writes vocals: this is a folder of songs (`bass.wav`...).
    stem_files.update(os.path.realpath(path) for path in parts.values())
    index[key].setdefault('vocals', (parts['vocals'],))
    if 'instrumental' in parts:
      index[key].setdefault('instrumental', (parts['instrumental'],))
    elif all(part in parts for part in DEMUCS_PARTS):
      index[key].setdefault('instrumental', tuple(parts[p] for p in DEMUCS_PARTS))
  return dict(index), stem_files


def _song_key(folder: pathlib.PurePath, song: str) -> str:
  return (pathlib.PurePosixPath(*folder.parts) / song).as_posix()


def match_stem_files(song_keys: list[str], index: dict) -> dict[str, dict]:
  """Each song's stems: those at its relative path (`album/Song`).

  A song with none there takes the stems of its bare name (a flat output
  folder, as UVR5 writes) only when that is unambiguous: one such song, one
  such set of stems, claimed by no song at its own path. Songs of the same
  name in different folders never take each other's stems.

  Args:
    song_keys: each song's path relative to the input folder, without extension.
    index: `find_stem_files`'s index.

  Returns:
    song key -> {stem: paths}, for the songs that have stems.
  """
  matched = {key: index[key] for key in song_keys if key in index}
  unclaimed = collections.defaultdict(list)
  for key in index:
    if key not in matched:
      unclaimed[posixpath.basename(key)].append(key)
  unmatched_names = collections.Counter(
      posixpath.basename(key) for key in song_keys if key not in matched)
  for key in song_keys:
    name = posixpath.basename(key)
    if key not in matched and unmatched_names[name] == 1 and len(unclaimed[name]) == 1:
      matched[key] = index[unclaimed[name][0]]
  return matched


def _read_stem(paths, length: int) -> np.ndarray:
  stem = sum(audio_io.read_mono(path) for path in paths)
  if abs(len(stem) - length) > 0.5 * contract.SAMPLE_RATE_HZ:
    raise SeparationError(f'stem {os.path.basename(paths[0])} is {len(stem) / 22050:.1f} s, '
                          f'its mix {length / 22050:.1f} s: not the same recording')
  return np.pad(stem, (0, max(0, length - len(stem))))[:length]


# ---------------------------------------------------------------- uvr

@functools.cache
def _uvr_separator(model_dir: str, model: str, output_dir: str):
  from audio_separator.separator import Separator  # pylint: disable=g-import-not-at-top
  separator = Separator(model_file_dir=model_dir, output_dir=output_dir, output_format='WAV')
  separator.load_model(model_filename=model)
  return separator


def uvr_stems(mix: np.ndarray, options: SeparationOptions) -> dict[str, np.ndarray]:
  """Runs the UVR5 model on the cleaned mix; returns vocals and instrumental."""
  with tempfile.TemporaryDirectory(prefix='melodygan_uvr_') as folder:
    separator = _uvr_separator(os.path.abspath(options.uvr_model_dir), options.uvr_model, folder)
    separator.output_dir = folder
    mix_path = os.path.join(folder, 'mix.wav')
    audio_io.write_wav(mix_path, mix)
    found = {}
    for output in separator.separate(mix_path):
      output = output if os.path.isabs(output) else os.path.join(folder, output)
      for stem in SEPARATED_STEMS:
        if f'({stem})' in os.path.basename(output).lower():
          found[stem] = _read_stem((output,), len(mix))
  missing = [stem for stem in SEPARATED_STEMS if stem not in found]
  if missing:
    raise SeparationError(f'UVR model {options.uvr_model} wrote no {" or ".join(missing)} stem')
  return found


# ---------------------------------------------------------------- all backends

def separate(mix: np.ndarray, options: SeparationOptions, *, stem_files=None,
             raw_length: int = 0, edits=None, cleaning_options=None) -> dict[str, np.ndarray]:
  """The cleaned mix -> {stem: samples} for every stem in `options.stems`.

  Args:
    mix: the cleaned mix.
    options: the backend and its settings.
    stem_files: 'stems' backend: {stem: paths} of this song's stems.
    raw_length: 'stems' backend: the mix's length before cleaning.
    edits: 'stems' backend: the cuts and gain cleaning gave the mix, which the
      stems get too.
    cleaning_options: 'stems' backend: the cleaning options in force.

  Raises:
    SeparationError: a stem that cannot be had (reported, not guessed).
  """
  stems = {'mix': mix}
  wanted = [stem for stem in options.stems if stem != 'mix']
  if wanted and options.backend == 'dsp':
    vocals = dsp_vocals(mix, options.dsp)
    stems.update(vocals=vocals, instrumental=(mix - vocals).astype(np.float32))
  elif wanted and options.backend == 'stems':
    from data_prep import cleaning  # pylint: disable=g-import-not-at-top
    for stem in wanted:
      if stem not in (stem_files or {}):
        raise SeparationError(f'no {stem} stem found (looked for Song.{stem}.wav, '
                              f'1_Song_({stem.capitalize()}).wav and <model>/Song/ in the '
                              "stems folder's mirror of the song's folder)")
      raw = _read_stem(stem_files[stem], raw_length)
      stems[stem] = cleaning.apply_edits(raw, edits, cleaning_options)[:len(mix)]
  elif wanted and options.backend == 'uvr':
    stems.update(uvr_stems(mix, options))
  return {stem: stems[stem] for stem in options.stems}
