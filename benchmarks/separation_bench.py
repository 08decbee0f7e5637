r"""Vocal separation on real music with a real-recorded singing voice.

  python benchmarks/separation_bench.py [--music_root=DIR] [--seconds=25] [--keep_dir=DIR]

Mixtures whose true stems are known by construction: excerpts of the real
instrumental soundtracks Debian ships (`singularity-music`, `drascula-music`,
44.1/48 kHz stereo), each with a sung melody added in the stereo centre (where
mixes put the lead vocal) with a little stereo room reverb, at -3 to 0 dB RMS
relative to the music. The voice is Festival's singing mode with the
`kal_diphone` voice: diphones cut from recordings of a real (male, US English)
speaker, pitch-shifted to the notes of a seeded pentatonic melody, with vibrato
added: a real voice's spectrum singing sustained pitched notes, and no part of
this project's own synthesis. It is recorded at 16 kHz, so it has nothing above
8 kHz, where real voices have their sibilance.

The songs go through `prepare` end to end (stereo files as a user's are, and
their mono downmix), with silence removal off so the stems stay aligned, and
are scored against the true stems with data_prep.score_separation, beside the
mixture itself and a plain HPSS split.

Needs: `apt-get install festival festvox-kallpc16k` (the voice) and the two
music packages (fetched with `apt-get download` unless --music_root holds them
unpacked, e.g. a folder where `dpkg -x` put both).
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.signal
import soundfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# pylint: disable=g-import-not-at-top,wrong-import-position
from data_prep import cleaning
from data_prep import prepare
from data_prep import score_separation
from data_prep import separation
from data_prep import song
from melodygan_jax.audio import contract
from melodygan_jax.audio import audio_io
import real_music

# (package, file, start s): several tracks of both soundtracks, each a passage
# with the full arrangement playing.
CLIPS = (
    ('singularity-music', 'A New Journey.ogg', 60.0),
    ('singularity-music', 'Coherence.ogg', 40.0),
    ('singularity-music', 'Nebula.ogg', 90.0),
    ('singularity-music', 'Media Threat.ogg', 120.0),
    ('drascula-music', 'track1.ogg', 30.0),
    ('drascula-music', 'track2.ogg', 60.0),
    ('drascula-music', 'track23.ogg', 30.0),
    ('drascula-music', 'track9.ogg', 20.0),
)
VOCAL_LEVELS_DB = (-3.0, -1.5, 0.0)  # Voice RMS relative to the music's, cycled over clips.
# Pentatonic. Festival's kal voice sings an octave below the written note:
# 110-220 Hz, a baritone's range.
_SCALE = ('A3', 'C4', 'D4', 'E4', 'G4', 'A4')
_WORDS = ('love', 'night', 'fire', 'day', 'away', 'home', 'rain', 'light', 'go', 'know',
          'heart', 'sky', 'moon', 'dream', 'stay', 'road', 'hold', 'on', 'my', 'you')
VOICE_PACKAGES = 'festival festvox-kallpc16k'


def check_voice() -> None:
  """Exits with one line naming the packages when the voice is missing."""
  voices = pathlib.Path('/usr/share/festival/voices/english/kal_diphone')
  if not shutil.which('text2wave') or not voices.is_dir():
    sys.exit(f'separation_bench: needs the Festival kal_diphone voice: '
             f'apt-get install {VOICE_PACKAGES}')


def melody_xml(seconds: float, seed: int) -> str:
  """Festival singing markup: seeded phrases of 3-7 notes with rests between."""
  rng = np.random.default_rng(seed)
  parts, total = [], 0.5
  parts.append('<REST SECONDS="0.5"></REST>')
  while total < seconds:
    for _ in range(rng.integers(3, 8)):
      note = _SCALE[rng.integers(len(_SCALE))]
      duration = float(rng.choice([0.4, 0.6, 0.8, 1.2]))
      parts.append(f'<PITCH NOTE="{note}"><DURATION SECONDS="{duration}">'
                   f'{_WORDS[rng.integers(len(_WORDS))]}</DURATION></PITCH>')
      total += duration
    rest = float(rng.choice([0.5, 1.0, 1.5]))
    parts.append(f'<REST SECONDS="{rest}"></REST>')
    total += rest
  return ('<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
          '"Singing.v0_1.dtd" []>\n<SINGING BPM="60">\n' + '\n'.join(parts) + '\n</SINGING>\n')


def sung_voice(seconds: float, seed: int, folder: pathlib.Path) -> np.ndarray:
  """A seeded sung melody, mono at the contract's rate, exactly `seconds` long."""
  xml, wav = folder / f'melody_{seed}.xml', folder / f'melody_{seed}.wav'
  xml.write_text(melody_xml(seconds, seed))
  subprocess.run(['text2wave', '-mode', 'singing', str(xml), '-o', str(wav),
                  '-eval', '(voice_kal_diphone)'], check=True, capture_output=True)
  samples, rate = soundfile.read(wav, dtype='float32')
  voice = audio_io.resample(samples, rate)
  length = int(seconds * contract.SAMPLE_RATE_HZ)
  return np.pad(voice, (0, max(0, length - len(voice))))[:length]


def with_vibrato(voice: np.ndarray, rate_hz: float = 5.5, depth: float = 0.03) -> np.ndarray:
  """The voice with a singer's vibrato (+-50 cents at 5.5 Hz): Festival holds each
  note's pitch flat, which would flatter a harmonic (HPSS) mask. Reading the
  samples at a speed that swings by +-depth swings the pitch by as much."""
  t = np.arange(len(voice)) / contract.SAMPLE_RATE_HZ
  warped = t + depth / (2 * np.pi * rate_hz) * np.sin(2 * np.pi * rate_hz * t)
  return np.interp(warped * contract.SAMPLE_RATE_HZ, np.arange(len(voice)), voice).astype(np.float32)


def music_excerpt(path: pathlib.Path, start_s: float, seconds: float) -> np.ndarray:
  """[2, samples] stereo at the contract's rate."""
  samples, rate = audio_io.read_audio(path)
  excerpt = samples[int(start_s * rate):int((start_s + seconds) * rate)]
  return np.stack([audio_io.resample(np.ascontiguousarray(channel), rate)
                   for channel in excerpt.T])


def stereo_reverb(voice: np.ndarray, seed: int, rt60_s: float = 1.2,
                  wet_db: float = -10.0) -> np.ndarray:
  """[2, samples]: the dry voice in both channels plus a decorrelated room tail
  in each, as a produced vocal has; without it every vocal bin would be
  exactly centred, which flatters any centre-channel method."""
  rng = np.random.default_rng(1000 + seed)
  taps = np.arange(int(rt60_s * contract.SAMPLE_RATE_HZ))
  decay = 10 ** (-3 * taps / len(taps))  # -60 dB at rt60_s.
  channels = []
  for _ in range(2):
    tail = rng.standard_normal(len(taps)) * decay
    tail *= 10 ** (wet_db / 20) / np.sqrt(np.sum(tail ** 2))
    wet = scipy.signal.fftconvolve(voice, tail)[:len(voice)]
    channels.append(voice + wet)
  return np.stack(channels).astype(np.float32)


def rms(x: np.ndarray) -> float:
  return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def build_corpus(folder: pathlib.Path, music_root: str, seconds: float) -> list[str]:
  """songs/<clip>.wav (stereo mixture), stems/<clip>/{vocals,instrumental}.wav (mono truth)."""
  names = []
  for index, (package, name, start_s) in enumerate(CLIPS):
    music_dir = (pathlib.Path(music_root) / real_music.PACKAGES[package] if music_root
                 else real_music.package_dir(package))
    music = music_excerpt(music_dir / name, start_s, seconds)
    voice = stereo_reverb(with_vibrato(sung_voice(seconds, seed=index, folder=folder)), seed=index)
    level_db = VOCAL_LEVELS_DB[index % len(VOCAL_LEVELS_DB)]
    voice *= rms(audio_io.to_mono(music.T)) / rms(audio_io.to_mono(voice.T)) * 10 ** (level_db / 20)
    mixture = music + voice  # Dry part panned centre, the room on both sides.
    headroom = 0.9 / max(np.abs(mixture).max(), 1e-9)
    clip = f'{pathlib.Path(name).stem.replace(" ", "_")}_{int(start_s)}s'
    names.append(clip)
    (folder / 'songs').mkdir(parents=True, exist_ok=True)
    (folder / 'stems' / clip).mkdir(parents=True, exist_ok=True)
    soundfile.write(folder / 'songs' / f'{clip}.wav', (mixture * headroom).T,
                    contract.SAMPLE_RATE_HZ, subtype='FLOAT')
    stems = {'vocals': audio_io.to_mono(voice.T), 'instrumental': audio_io.to_mono(music.T)}
    for stem, samples in stems.items():
      soundfile.write(folder / 'stems' / clip / f'{stem}.wav', samples * headroom,
                      contract.SAMPLE_RATE_HZ, subtype='FLOAT')
  return names


def separate_and_score(folder: pathlib.Path, songs: str) -> tuple[dict, float]:
  """prepare --separation=dsp on folder/songs, then the scores; (report, wall s)."""
  output = folder / f'out_{songs}'
  shutil.rmtree(output, ignore_errors=True)
  start = time.perf_counter()
  prepare.prepare(prepare.PrepareOptions(
      input_dir=str(folder / songs), output_dir=str(output), show_progress=False, num_workers=1,
      song=song.SongOptions(
          # Stems stay aligned; the true stems keep their DC offsets, so the mixes do too.
          cleaning=cleaning.CleaningOptions(remove_silence=False, highpass_hz=0.0),
          separation=separation.SeparationOptions(
              backend='dsp', stems=('mix', 'vocals', 'instrumental')))))
  wall_s = time.perf_counter() - start
  return score_separation.score_folders(str(folder / 'stems'), str(output / 'clean')), wall_s


def hpss_scores(folder: pathlib.Path, clips: list[str]) -> dict:
  """The naive split as a second baseline: harmonic = vocals, percussive = instrumental."""
  rows = {}
  for clip in clips:
    mix = audio_io.read_mono(folder / 'songs' / f'{clip}.wav')
    harmonic, percussive = separation.hpss_split(mix)
    references = {stem: audio_io.read_mono(folder / 'stems' / clip / f'{stem}.wav')
                  for stem in score_separation.STEMS}
    rows[clip] = score_separation.score(references, {'vocals': harmonic,
                                                     'instrumental': percussive})
  return {stem: {key: float(np.mean([row[stem][key] for row in rows.values()]))
                 for key in ('sdr', 'si_sdr')} for stem in score_separation.STEMS}


def write_mono_copies(folder: pathlib.Path, clips: list[str]) -> None:
  """songs_mono/: the same mixtures downmixed, for the separator's mono path."""
  (folder / 'songs_mono').mkdir(exist_ok=True)
  for clip in clips:
    soundfile.write(folder / 'songs_mono' / f'{clip}.wav',
                    audio_io.read_mono(folder / 'songs' / f'{clip}.wav'),
                    contract.SAMPLE_RATE_HZ, subtype='FLOAT')


def print_clips(stereo: dict, mono: dict) -> None:
  print('\nSI-SDR dB per clip: mixture / dsp mono / dsp stereo')
  print(f'{"clip":22s} {"vocals":>22s}   {"instrumental":>22s}')
  for clip, row in stereo['songs'].items():
    cells = []
    for stem in score_separation.STEMS:
      cells.append(f'{row[stem]["mixture_si_sdr"]:6.2f} {mono["songs"][clip][stem]["si_sdr"]:7.2f} '
                   f'{row[stem]["si_sdr"]:7.2f}')
    print(f'{clip:22s} {cells[0]:>22s}   {cells[1]:>22s}')


def print_means(stereo: dict, mono: dict, hpss: dict) -> dict:
  """The mean table; returns the figures for the JSON line."""
  print('\nmean dB               mixture   HPSS  dsp mono  dsp stereo   improvement mono / stereo')
  figures = {}
  for stem in score_separation.STEMS:
    for metric in ('si_sdr', 'sdr'):
      label = f'{stem} {metric.upper().replace("_", "-")}'
      row, mono_row = stereo['mean'][stem], mono['mean'][stem]
      print(f'{label:20s} {row[f"mixture_{metric}"]:8.2f} {hpss[stem][metric]:6.2f} '
            f'{mono_row[metric]:9.2f} {row[metric]:11.2f}   '
            f'{mono_row[f"{metric}_improvement"]:+11.2f} / {row[f"{metric}_improvement"]:+6.2f}')
      figures[f'{stem}_{metric}_improvement_db'] = round(row[f'{metric}_improvement'], 2)
      figures[f'{stem}_{metric}_improvement_mono_db'] = round(mono_row[f'{metric}_improvement'], 2)
      figures[f'{stem}_{metric}_db'] = round(row[metric], 2)
      figures[f'{stem}_{metric}_mixture_db'] = round(row[f'mixture_{metric}'], 2)
      figures[f'{stem}_{metric}_hpss_db'] = round(hpss[stem][metric], 2)
  return figures


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--music_root', default='', help='Folder holding both packages unpacked '
                      '(usr/share/...); default: apt-get download into benchmarks/.cache.')
  parser.add_argument('--seconds', type=float, default=25.0, help='Length of each excerpt.')
  parser.add_argument('--keep_dir', default='', help='Build the mixtures here and keep them.')
  args = parser.parse_args()
  check_voice()
  folder = pathlib.Path(args.keep_dir or tempfile.mkdtemp(prefix='separation_bench_'))
  folder.mkdir(parents=True, exist_ok=True)
  try:
    clips = build_corpus(folder, args.music_root, args.seconds)
    write_mono_copies(folder, clips)
    stereo, stereo_s = separate_and_score(folder, 'songs')
    mono, mono_s = separate_and_score(folder, 'songs_mono')
    hpss = hpss_scores(folder, clips)
  finally:
    if not args.keep_dir:
      shutil.rmtree(folder, ignore_errors=True)
  audio_s = len(clips) * args.seconds

  print(f'{len(clips)} clips x {args.seconds:.0f} s of real music (stereo) + Festival '
        f'kal_diphone singing (vibrato, centre + room, {VOCAL_LEVELS_DB[0]:+.1f}..'
        f'{VOCAL_LEVELS_DB[-1]:+.1f} dB); prepare --separation=dsp on the stereo files '
        '(dsp stereo) and on their mono downmix (dsp mono)')
  print_clips(stereo, mono)
  figures = print_means(stereo, mono, hpss)
  print(f'\nprepare with dsp, 1 worker: stereo {audio_s / stereo_s:.1f}x real time, '
        f'mono {audio_s / mono_s:.1f}x')
  figures.update(x_real_time_stereo=round(audio_s / stereo_s, 1),
                 x_real_time_mono=round(audio_s / mono_s, 1), num_clips=len(clips))
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
