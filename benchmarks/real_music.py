"""Real music for benchmarks: the OGG soundtracks Debian ships.

`apt-get download` fetches the package (no root needed), `dpkg -x` unpacks it
into benchmarks/.cache/. Set MELODYGAN_MUSIC_DIR to use a folder of your own.
"""
import os
import pathlib
import subprocess

import soundfile

CACHE_DIR = pathlib.Path(__file__).resolve().parent / '.cache'
PACKAGES = {'drascula-music': 'usr/share/scummvm/drascula/audio',  # 44.1 kHz stereo.
            'singularity-music': 'usr/share/games/singularity/music'}  # 48 kHz stereo.


def package_dir(package: str) -> pathlib.Path:
  """The package's music folder, downloaded and unpacked on first use."""
  target = CACHE_DIR / package
  if not (target / PACKAGES[package]).is_dir():
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(['apt-get', 'download', package], cwd=CACHE_DIR, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deb = sorted(CACHE_DIR.glob(f'{package}_*.deb'))[-1]
    subprocess.run(['dpkg', '-x', str(deb), str(target)], check=True)
  return target / PACKAGES[package]


def music_files(min_seconds: float, package: str = 'drascula-music') -> list[pathlib.Path]:
  """Sorted audio files adding up to at least `min_seconds` of music."""
  folder = pathlib.Path(os.environ.get('MELODYGAN_MUSIC_DIR') or package_dir(package))
  chosen, total = [], 0.0
  for path in sorted(p for p in folder.rglob('*') if p.suffix.lower() in ('.ogg', '.wav', '.flac', '.mp3')):
    chosen.append(path)
    total += soundfile.info(str(path)).duration
    if total >= min_seconds:
      return chosen
  raise RuntimeError(f'{folder} holds only {total:.0f} s of music, {min_seconds:.0f} s needed')


def total_seconds(paths) -> float:
  return sum(soundfile.info(str(p)).duration for p in paths)
