"""Vocal/instrumental separation: the step between cleaning and features.

Backends (`--separation`):
  none   the mix only.
  dsp    built in, no model files: soft spectral masks of what a lead voice
         is: centred in a stereo mix (centre-channel extraction), harmonic
         (HPSS), in the vocal band, and for mono input not repeating
         (REPET-SIM); the instrumental is the rest of the mix (so the stems
         add up to the mix).
  stems  stems another separator already wrote (UVR5, Demucs, or
         `Song.vocals.wav`), found by the song's relative path; a missing
         stem is reported.
  uvr    UVR5 models through the `audio-separator` package, with the model
         file from --uvr_model_dir; a model not there yet is downloaded into
         it by audio-separator on first use (when offline: one line, no work).
"""
import collections
import dataclasses
import functools
import os
import pathlib
import posixpath
import re
import tempfile
import urllib.error
import urllib.request
from typing import Mapping

import librosa
import numpy as np
import scipy.ndimage

from melodygan_jax import errors
from melodygan_jax import input_files
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract

BACKENDS = ('none', 'dsp', 'stems', 'uvr')
SEPARATED_STEMS = ('vocals', 'instrumental')
DEMUCS_PARTS = ('drums', 'bass', 'other')  # Summed, they are the instrumental.
_DSP_N_FFT = 2048
_DSP_HOP = 512
# With stereo input the centre mask does most of the work, so the harmonic and
# repetition masks are softened (raised to this power): a sung voice with
# vibrato is only partly "harmonic" to HPSS (+0.6 dB vocal SI-SDR over full
# strength in benchmarks/separation_bench.py). Mono input needs them at full strength, or
# accompaniment leaks into the vocals (the demo corpus' instrumental lost 2 dB).
_STEREO_CUE_POWER = 0.5
# Where --uvr_model_dir points by default: a cache that audio-separator fills.
DEFAULT_UVR_MODEL_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'melodygan_jax',
                                     'uvr_models')
UVR_MODEL_HOST = 'https://github.com'  # audio-separator downloads UVR5 models from here.


class SeparationError(errors.UserError):
  """A song whose stems cannot be produced; str() is the reason."""


@dataclasses.dataclass(frozen=True)
class DspOptions:
  """The built-in separator's parameters (config.separation.dsp.FIELD, flags --dsp_*)."""
  similarity_width_s: float = 2.0  # Neighbours are at least this far apart in time.
  vocal_margin: float = 1.0  # Soft-mask margin: higher, fewer accompaniment leaks.
  hpss: bool = True  # Percussion goes straight to the instrumental.
  hpss_kernel: int = 17  # Median filter length (frames and bins).
  window_s: float = 30.0  # Repetition is searched within windows this long.
  stereo: bool = True  # Separate a stereo file from its two channels (centre = voice).
  # Stereo input: how sharply the centre-channel mask favours centred bins.
  centre_power: float = 2.0
  # Bins outside this band go to the instrumental. Below 80 Hz is bass and kick;
  # the top stays open, as a voice's sibilance and air reach past 10 kHz.
  vocal_low_hz: float = 80.0
  vocal_high_hz: float = 11025.0
  repet: bool = True  # What repeats (REPET-SIM) is accompaniment.


@dataclasses.dataclass(frozen=True)
class SeparationOptions:
  backend: str = 'none'
  stems: tuple[str, ...] = ('mix',)
  dsp: DspOptions = DspOptions()
  stems_dir: str = ''  # 'stems': where they are ('' = the input folder).
  uvr_model_dir: str = ''
  uvr_model: str = 'UVR-MDX-NET-Inst_HQ_3.onnx'


def check_options(options: SeparationOptions,
                  flag_names: Mapping[str, str] | None = None) -> None:
  """Fails before any work on an unusable backend, stem list, model or dsp setting.

  Args:
    options: what to check.
    flag_names: how the messages name each prepare flag (`--separation`, or the
      `--config.separation.backend` it was set through); by default the flag.

  Raises:
    ValueError: one line naming the flag, what is wrong and how to fix it.
  """
  name = lambda flag: (flag_names or {}).get(flag, f'--{flag}')
  if options.backend not in BACKENDS:
    raise errors.ConfigError(f'{name("separation")}={options.backend}: choose one of '
                     f'{", ".join(BACKENDS)}')
  if options.backend == 'none' and set(options.stems) != {'mix'}:
    raise errors.ConfigError(f'{name("stems")}={",".join(options.stems)}: without separation only '
                     f'"mix" exists; pass {name("separation")}=dsp, stems or uvr')
  if options.backend == 'stems' and options.stems_dir and not os.path.isdir(options.stems_dir):
    raise errors.ConfigError(f'{name("stems_dir")}={options.stems_dir}: no such folder')
  if options.backend == 'dsp':
    check_dsp_options(options.dsp, name)
  if options.backend == 'uvr':
    model_dir = uvr_model_dir(options)
    if not (pathlib.Path(model_dir) / options.uvr_model).is_file() and not model_host_reachable():
      raise errors.ConfigError(f'{name("uvr_model")}={options.uvr_model} not found in '
                       f'{name("uvr_model_dir")}={model_dir} and cannot be downloaded '
                       f'({UVR_MODEL_HOST} unreachable): put the model file there (UVR5 model '
                       'list, or audio-separator --list_models) or run once with network')
    try:
      import audio_separator  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise errors.ConfigError(f'{name("separation")}=uvr needs the audio-separator package: '
                       'pip install -e ".[uvr]"') from None


def check_dsp_options(options: DspOptions, name) -> None:
  """The built-in separator's ranges; `name(flag)` is how a message names a flag."""
  for flag, value in (('dsp_similarity_width_s', options.similarity_width_s),
                      ('dsp_window_s', options.window_s),
                      ('dsp_centre_power', options.centre_power)):
    if value <= 0:
      raise errors.ConfigError(f'{name(flag)}={value}: must be positive')
  if options.vocal_margin < 0:
    raise errors.ConfigError(f'{name("dsp_vocal_margin")}={options.vocal_margin}: must be at least 0')
  if options.hpss_kernel < 1:
    raise errors.ConfigError(f'{name("dsp_hpss_kernel")}={options.hpss_kernel}: must be at least 1')
  nyquist_hz = contract.SAMPLE_RATE_HZ / 2
  if not 0 <= options.vocal_low_hz < options.vocal_high_hz <= nyquist_hz:
    raise errors.ConfigError(f'{name("dsp_vocal_low_hz")}={options.vocal_low_hz}, '
                     f'{name("dsp_vocal_high_hz")}={options.vocal_high_hz}: need '
                     f'0 <= low < high <= {nyquist_hz:g}')


def uvr_model_dir(options: SeparationOptions) -> str:
  return os.path.abspath(options.uvr_model_dir or DEFAULT_UVR_MODEL_DIR)


def model_host_reachable(url: str = UVR_MODEL_HOST, timeout_s: float = 5.0) -> bool:
  """Whether audio-separator could download a model now (any HTTP answer counts)."""
  try:
    urllib.request.urlopen(urllib.request.Request(url, method='HEAD'), timeout=timeout_s).close()
  except urllib.error.HTTPError:
    return True
  except (OSError, ValueError):
    return False
  return True


# ---------------------------------------------------------------- dsp

def centre_mask(left: np.ndarray, right: np.ndarray, power: float) -> np.ndarray:
  """Share of each bin's mid-channel power that is centred (in both channels alike).

  Mid = (L+R)/2 holds the centre plus half of everything else; side = (L-R)/2
  holds no centred sound, so |side|^2 estimates the off-centre part of |mid|^2
  (Avendano & Jot's centre extraction). Averaging over 3x3 bins first keeps
  the mask from flickering bin to bin (musical noise).
  """
  ratio = 1 - np.abs(left - right) ** 2 / np.maximum(np.abs(left + right) ** 2, 1e-20)
  return scipy.ndimage.uniform_filter(np.maximum(ratio, 0), 3) ** power


def repeating_mask(magnitude: np.ndarray, options: DspOptions) -> np.ndarray:
  """REPET-SIM: a Wiener-like mask of what does not repeat, found within windows."""
  num_frames = magnitude.shape[1]
  width = max(1, int(librosa.time_to_frames(options.similarity_width_s,
                                            sr=contract.SAMPLE_RATE_HZ, hop_length=_DSP_HOP)))
  window = int(librosa.time_to_frames(options.window_s, sr=contract.SAMPLE_RATE_HZ,
                                      hop_length=_DSP_HOP))
  num_windows = max(1, round(num_frames / max(window, 1)))
  mask = np.zeros_like(magnitude)
  for frames in np.array_split(np.arange(num_frames), num_windows):
    if len(frames) < 8:
      continue  # Too short to find repetition: leave it to the instrumental.
    chunk = magnitude[:, frames]
    chunk_width = min(width, max(1, len(frames) // 4))  # Short songs: nearer neighbours.
    repeating = np.minimum(chunk, librosa.decompose.nn_filter(
        chunk, aggregate=np.average, metric='cosine', width=chunk_width))
    mask[:, frames] = librosa.util.softmask(chunk - repeating, options.vocal_margin * repeating,
                                            power=2)
  return mask


def vocal_band_mask(low_hz: float, high_hz: float) -> np.ndarray:
  """[bins, 1]: 1 where a voice has its energy, 0 elsewhere."""
  frequencies = librosa.fft_frequencies(sr=contract.SAMPLE_RATE_HZ, n_fft=_DSP_N_FFT)
  return ((frequencies >= low_hz) & (frequencies <= high_hz)).astype(np.float32)[:, None]


def dsp_vocals(mix: np.ndarray, options: DspOptions) -> np.ndarray:
  """Vocals of a mix at the contract's rate, mono.

  Args:
    mix: [samples] mono, or [2, samples] stereo (left, right); the vocals are
      taken from the mid channel (L+R)/2, which is what the mono mix is.
    options: the separator's parameters.

  The vocal mask multiplies soft masks that each keep what a lead voice is:
  centred (stereo only), harmonic (HPSS), not repeating (REPET-SIM), and in
  the vocal band.
  """
  stereo = mix.ndim == 2
  channels = [librosa.stft(channel, n_fft=_DSP_N_FFT, hop_length=_DSP_HOP)
              for channel in (mix if stereo else mix[None])]
  mid = (channels[0] + channels[1]) / 2 if stereo else channels[0]
  magnitude = np.abs(mid)
  mask = vocal_band_mask(options.vocal_low_hz, options.vocal_high_hz) * np.ones_like(magnitude)
  if stereo:
    mask *= centre_mask(*channels, options.centre_power)
  cue_power = _STEREO_CUE_POWER if stereo else 1.0
  if options.hpss:
    harmonic_mask, _ = librosa.decompose.hpss(magnitude, kernel_size=options.hpss_kernel,
                                              mask=True)
    mask *= harmonic_mask ** cue_power
  if options.repet:
    mask *= repeating_mask(magnitude, options) ** cue_power
  return librosa.istft(mask * mid, hop_length=_DSP_HOP,
                       length=mix.shape[-1]).astype(np.float32)


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
  os.makedirs(model_dir, exist_ok=True)
  # load_model downloads the named model into model_dir when it is not there.
  separator = Separator(model_file_dir=model_dir, output_dir=output_dir, output_format='WAV')
  separator.load_model(model_filename=model)
  return separator


def uvr_stems(mix: np.ndarray, options: SeparationOptions) -> dict[str, np.ndarray]:
  """Runs the UVR5 model on the cleaned mix; returns vocals and instrumental."""
  with tempfile.TemporaryDirectory(prefix='melodygan_uvr_') as folder:
    separator = _uvr_separator(uvr_model_dir(options), options.uvr_model, folder)
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

def separate(mix: np.ndarray, options: SeparationOptions, *, stereo=None, stem_files=None,
             raw_length: int = 0, edits=None, cleaning_options=None) -> dict[str, np.ndarray]:
  """The cleaned mix -> {stem: samples} for every stem in `options.stems`.

  Args:
    mix: the cleaned mix.
    options: the backend and its settings.
    stereo: 'dsp' backend: the cleaned [2, samples] left and right channels
      when the song is stereo (their average is `mix`), or None.
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
    vocals = dsp_vocals(mix if stereo is None else stereo, options.dsp)
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
