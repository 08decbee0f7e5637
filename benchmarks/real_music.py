"""Real music for benchmarks: the OGG/Opus soundtracks Debian ships.

`apt-get download` fetches the package (no root needed), `dpkg -x` unpacks it
into benchmarks/.cache/. Set MELODYGAN_MUSIC_ROOT to a folder where the
packages were already unpacked (`dpkg -x PACKAGE.deb ROOT`), or
MELODYGAN_MUSIC_DIR to use a folder of your own.

The songs of create's measured runs (docs/create.md), a folder of links:

  python benchmarks/real_music.py --songs_dir=DIR

92 songs, 7.2 h: from each of seven game soundtracks, the first 15 files of at
least 60 s in path order (all of them where fewer).
"""
import argparse
import os
import pathlib
import subprocess
import zipfile

import soundfile

CACHE_DIR = pathlib.Path(__file__).resolve().parent / '.cache'
PACKAGES = {'drascula-music': 'usr/share/scummvm/drascula/audio',  # 44.1 kHz stereo.
            'singularity-music': 'usr/share/games/singularity/music',  # 48 kHz stereo.
            'asc-music': 'usr/share/games/asc/music',
            'warzone2100-music': 'usr/share/games/warzone2100/music',  # Opus.
            'wesnoth-1.16-music': 'usr/share/games/wesnoth/1.16/data/core/music',
            'nexuiz-music': 'usr/share/games/nexuiz/data/music.pk3',  # Zip archives.
            'ufoai-music': 'usr/share/games/ufoai/base/0music.pk3'}
SONG_PACKAGES = ('asc-music', 'drascula-music', 'singularity-music', 'warzone2100-music',
                 'wesnoth-1.16-music', 'nexuiz-music', 'ufoai-music')
_AUDIO_SUFFIXES = ('.ogg', '.wav', '.flac', '.mp3', '.opus')


def package_dir(package: str) -> pathlib.Path:
  """The package's music folder: under $MELODYGAN_MUSIC_ROOT if unpacked there, else
  downloaded and unpacked on first use."""
  root = os.environ.get('MELODYGAN_MUSIC_ROOT')
  if root and (pathlib.Path(root) / PACKAGES[package]).exists():
    return pathlib.Path(root) / PACKAGES[package]
  target = CACHE_DIR / package
  if not (target / PACKAGES[package]).exists():
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
  lists = [audio_files(folder) for folder in folders]
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


def audio_files(folder: pathlib.Path) -> list[pathlib.Path]:
  """The audio files under `folder` (a zip archive is unpacked into the cache first), each
  once, in path order."""
  if folder.suffix == '.pk3':
    unpacked = CACHE_DIR / f'{folder.name}.unpacked'
    if not unpacked.is_dir():
      with zipfile.ZipFile(folder) as archive:
        archive.extractall(unpacked)
    folder = unpacked
  return sorted({p.resolve() for p in folder.rglob('*')
                 if p.suffix.lower() in _AUDIO_SUFFIXES and p.is_file()})


def make_songs_dir(songs_dir: pathlib.Path, per_package: int = 15,
                   min_seconds: float = 60.0) -> list[pathlib.Path]:
  """Links in `songs_dir` to the first `per_package` songs of at least `min_seconds` of
  each of SONG_PACKAGES, named PACKAGE__FILE."""
  songs_dir.mkdir(parents=True, exist_ok=True)
  links = []
  for package in SONG_PACKAGES:
    songs = [p for p in audio_files(package_dir(package))
             if soundfile.info(str(p)).duration >= min_seconds][:per_package]
    prefix = package.removesuffix('-music').removesuffix('-1.16')
    for song in songs:
      link = songs_dir / f'{prefix}__{song.name}'
      if not link.exists():
        link.symlink_to(song)
      links.append(link)
  return links


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--songs_dir', required=True, help='Folder to fill with links.')
  parser.add_argument('--per_package', type=int, default=15)
  args = parser.parse_args()
  songs = make_songs_dir(pathlib.Path(args.songs_dir), args.per_package)
  print(f'{len(songs)} songs, {total_seconds(songs) / 3600:.2f} h in {args.songs_dir}')
