"""Real music for benchmarks: the OGG soundtracks Debian ships.

`apt-get download` fetches the package (no root needed), `dpkg -x` unpacks it
into benchmarks/.cache/. Set MELODYGAN_MUSIC_ROOT to a folder where the
packages were already unpacked (`dpkg -x PACKAGE.deb ROOT`), or
MELODYGAN_MUSIC_DIR to use a folder of your own.
"""
import os
import pathlib
import subprocess

import soundfile

CACHE_DIR = pathlib.Path(__file__).resolve().parent / '.cache'
PACKAGES = {'drascula-music': 'usr/share/scummvm/drascula/audio',  # 44.1 kHz stereo.
            'singularity-music': 'usr/share/games/singularity/music'}  # 48 kHz stereo.
_AUDIO_SUFFIXES = ('.ogg', '.wav', '.flac', '.mp3', '.opus')


def package_dir(package: str) -> pathlib.Path:
  """The package's music folder: under $MELODYGAN_MUSIC_ROOT if unpacked there, else
  downloaded and unpacked on first use."""
  root = os.environ.get('MELODYGAN_MUSIC_ROOT')
  if root and (pathlib.Path(root) / PACKAGES[package]).is_dir():
    return pathlib.Path(root) / PACKAGES[package]
  target = CACHE_DIR / package
  if not (target / PACKAGES[package]).is_dir():
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(['apt-get', 'download', package], cwd=CACHE_DIR, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deb = sorted(CACHE_DIR.glob(f'{package}_*.deb'))[-1]
    subprocess.run(['dpkg', '-x', str(deb), str(target)], check=True)
  return target / PACKAGES[package]


def music_files(min_seconds: float,
                packages: tuple[str, ...] = ('drascula-music',)) -> list[pathlib.Path]:
  """Sorted audio files adding up to at least `min_seconds` of music.

  With several packages, files are taken from each in turn, so a short
  selection already mixes their rates.
  """
  if os.environ.get('MELODYGAN_MUSIC_DIR'):
    folders = [pathlib.Path(os.environ['MELODYGAN_MUSIC_DIR'])]
  else:
    folders = [package_dir(package) for package in packages]
  lists = [sorted(p for p in folder.rglob('*') if p.suffix.lower() in _AUDIO_SUFFIXES)
           for folder in folders]
  chosen, total = [], 0.0
  for index in range(max(len(paths) for paths in lists)):
    for paths in lists:
      if index < len(paths):
        chosen.append(paths[index])
        total += soundfile.info(str(paths[index])).duration
        if total >= min_seconds:
          return chosen
  raise RuntimeError(f'{", ".join(map(str, folders))} hold only {total:.0f} s of music, '
                     f'{min_seconds:.0f} s needed')


def total_seconds(paths) -> float:
  return sum(soundfile.info(str(p)).duration for p in paths)
