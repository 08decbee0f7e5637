r"""Check that this machine can run MelodyGAN-JAX; say what to do if not.

  python -m melodygan_jax.doctor [--output_dir=data/]

Prints versions (jax, jaxlib, flax and the accelerator plugin: jax-cuda12-plugin,
jax-cuda13-plugin or libtpu), the JAX backend and devices, what libsndfile
reads, whether the bundled ffmpeg is found and the free disk where outputs go.
Each problem is one line that says what to do (an installed JAX/flax/plugin
pair known not to work among them: see melodygan_jax/jax_versions.py); the
exit status is 1 if there is any.
"""
import os
import pathlib
import shutil
import sys

from absl import app
from absl import flags

from melodygan_jax import jax_versions


PACKAGES = jax_versions.PACKAGES + (
    'numpy', 'librosa', 'soxr', 'soundfile', 'pyloudnorm', 'noisereduce', 'imageio-ffmpeg',
    'tensorflow-cpu', 'tensorflow', 'tensorflow-datasets', 'ml_collections', 'absl-py',
    'optuna', 'tqdm')
MIN_FREE_DISK_GB = 5.0


def package_versions() -> dict[str, str | None]:
  return jax_versions.installed_versions(PACKAGES)


def find_problems(output_dir: str,
                  versions: dict[str, str | None] | None = None) -> tuple[list[str], list[str]]:
  """Returns (facts, problems): lines to print, problems each saying what to do.

  Args:
    output_dir: the folder whose free disk is checked.
    versions: package -> installed version (None: not installed); default: this
      environment's.
  """
  facts, problems = [], []
  versions = package_versions() if versions is None else versions
  for name, version in versions.items():
    if version:
      facts.append(f'{name:22s} {version}')
  for name in ('jax', 'flax', 'optax', 'orbax-checkpoint', 'librosa', 'soundfile',
               'tensorflow-datasets'):
    if versions[name] is None:
      problems.append(f'{name} is missing: pip install -e . in the project folder')
  if versions['tensorflow-cpu'] is None and versions['tensorflow'] is None:
    problems.append('TensorFlow is missing (tf.data reads the shards): pip install tensorflow-cpu')
  if not any(versions.get(name) for name in jax_versions.PLUGINS + ('libtpu',)):
    facts.append('accelerator plugin     none (CPU only; a GPU or TPU needs '
                 f"{jax_versions.INSTALL_FIX.split(' (')[0]} or [tpu])")
  bad_pairs = jax_versions.incompatibilities(versions)
  problems.extend(bad_pairs)
  if not bad_pairs and versions.get('jax') and versions.get('flax'):
    facts.append('jax/flax/plugin        no known-bad pair among those installed')

  try:
    import jax  # pylint: disable=g-import-not-at-top
    devices = jax.devices()
    facts.append(f'JAX backend            {jax.default_backend()}, {len(devices)} device(s): '
                 f'{", ".join(sorted({d.device_kind for d in devices}))}; '
                 f'{jax.process_count()} process(es)')
  except Exception as e:  # pylint: disable=broad-except
    problems.append(f'JAX cannot start ({" ".join(str(e).split())[:200]}): '
                    f'reinstall for your accelerator: {jax_versions.INSTALL_FIX}')

  try:
    import soundfile  # pylint: disable=g-import-not-at-top
    facts.append(f'libsndfile             {soundfile.__libsndfile_version__}')
    formats = soundfile.available_formats()
    reads_mp3 = 'MP3' in formats
    reads_opus = 'OPUS' in soundfile.available_subtypes('OGG')
    facts.append(f'libsndfile reads       MP3: {"yes" if reads_mp3 else "no"}, '
                 f'Opus: {"yes" if reads_opus else "no"}')
  except (ImportError, OSError) as e:
    reads_mp3 = reads_opus = False
    problems.append(f'soundfile/libsndfile cannot load ({e}): pip install -U soundfile')

  from melodygan_jax.audio import audio_io  # pylint: disable=g-import-not-at-top
  ffmpeg = audio_io.ffmpeg_executable()
  if ffmpeg and os.access(ffmpeg, os.X_OK):
    facts.append(f'ffmpeg                 {ffmpeg}')
  else:
    problems.append('no ffmpeg: M4A/AAC/WebM files will be skipped; pip install imageio-ffmpeg')
  if not ffmpeg and not (reads_mp3 and reads_opus):
    problems.append('neither libsndfile nor ffmpeg reads MP3/Opus: pip install -U soundfile '
                    'imageio-ffmpeg')

  folder = pathlib.Path(output_dir).resolve()
  while not folder.exists():
    folder = folder.parent
  free_gb = shutil.disk_usage(folder).free / 2**30
  facts.append(f'free disk in {folder}  {free_gb:.1f} GiB')
  if free_gb < MIN_FREE_DISK_GB:
    problems.append(f'only {free_gb:.1f} GiB free in {folder}: prepared data needs about '
                    '1.5x the size of the input audio as 16-bit WAV; free space or choose '
                    'another --output_dir')
  return facts, problems


def main(argv):
  del argv
  facts, problems = find_problems(flags.FLAGS.output_dir)
  print('\n'.join(facts))
  if problems:
    print(f'\n{len(problems)} problem(s):')
    print('\n'.join(f'- {problem}' for problem in problems))
    sys.exit(1)
  print('\nNo problems found.')


def run():
  flags.DEFINE_string('output_dir', '.', 'Folder whose free disk space is checked.')
  app.run(main)


if __name__ == '__main__':
  run()
