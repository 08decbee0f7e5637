"""prepare's --reduce_noise on real music, clean and with hiss, against noisereduce's defaults.

  python benchmarks/noise_reduction_bench.py --songs_dir=DIR [--num_songs=12] [--seconds=30]
      [--strength=0.8]

Takes `--seconds` from 50 s into every k-th song of `--songs_dir` (any format
librosa reads; 12 songs spread over the folder), at the contract's rate,
high-passed as prepare does first, and adds white hiss at -20 and -12 dB below
the music's RMS (and none). Each is cleaned by prepare's noise reduction
(data_prep.cleaning.reduce_noise: noisereduce against the recording's
estimated noise floor, the gate unsmoothed across frequency) and by
noisereduce's stationary mode with its defaults (the noise estimated from the
whole signal, 500 Hz mask smoothing), both at `--strength`. For each: the
scale-invariant SDR against the music without hiss (higher is better; the
input's own is the hiss alone) and the share of the music's amplitude kept.
Prints a table and one JSON line.
"""
import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import librosa  # pylint: disable=wrong-import-position
import noisereduce  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from data_prep import cleaning  # pylint: disable=wrong-import-position
from melodygan_jax import input_files  # pylint: disable=wrong-import-position
from melodygan_jax.audio import audio_io  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position

HISS_DB = (None, -20.0, -12.0)


def scale_invariant_sdr(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
  """(SI-SDR in dB, the reference's scale in the estimate)."""
  scale = float(np.dot(estimate, reference) / np.dot(reference, reference))
  error = np.sum((estimate - scale * reference) ** 2)
  sdr = 10 * np.log10(np.sum((scale * reference) ** 2) / error) if error > 0 else np.inf
  return float(sdr), scale


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--songs_dir', required=True, help='A folder of real songs')
  parser.add_argument('--num_songs', type=int, default=12)
  parser.add_argument('--seconds', type=float, default=30.0)
  parser.add_argument('--strength', type=float, default=0.8, help="prepare's --noise_reduction")
  args = parser.parse_args()
  paths = [path for path in input_files.list_files(args.songs_dir)
           if path.is_file() and path.suffix.lower() in audio_io.AUDIO_EXTENSIONS]
  if not paths:
    sys.exit(f'noise_reduction_bench: --songs_dir={args.songs_dir}: no audio files')
  paths = paths[::max(len(paths) // args.num_songs, 1)][:args.num_songs]
  rate = contract.SAMPLE_RATE_HZ
  methods = {
      'prepare': lambda noisy: cleaning.reduce_noise(noisy, args.strength),
      'noisereduce_defaults': lambda noisy: noisereduce.reduce_noise(
          y=noisy, sr=rate, stationary=True, prop_decrease=args.strength)}
  rows = {(method, hiss): [] for method in ('input',) + tuple(methods) for hiss in HISS_DB}
  for index, path in enumerate(paths):
    music, _ = librosa.load(path, sr=rate, mono=True, offset=50.0, duration=args.seconds)
    music = cleaning.remove_rumble((0.1 * music / (np.std(music) + 1e-9)).astype(np.float32),
                                   20.0)
    for hiss in HISS_DB:
      noisy = music.copy()
      if hiss is not None:
        noisy += (0.1 * 10 ** (hiss / 20) * np.random.default_rng(index).standard_normal(
            len(music))).astype(np.float32)
      rows['input', hiss].append(scale_invariant_sdr(noisy, music))
      for method, reduce in methods.items():
        rows[method, hiss].append(scale_invariant_sdr(reduce(noisy), music))
    print(f'{path.name}: done', file=sys.stderr, flush=True)
  print(f'{len(paths)} songs, {args.seconds:g} s each, strength {args.strength:g}; SI-SDR '
        'against the music without hiss, mean (lowest), and the share of the music kept')
  print(f'{"hiss":>8s} {"input":>14s} {"prepare":>22s} {"noisereduce defaults":>26s}')
  figures = {'num_songs': len(paths), 'seconds': args.seconds, 'strength': args.strength}
  for hiss in HISS_DB:
    name = 'none' if hiss is None else f'{hiss:g}dB'
    cells = []
    for method in ('input',) + tuple(methods):
      sdr, kept = np.array(rows[method, hiss]).T
      mean_sdr = float(np.mean(sdr))  # inf for the clean input.
      figures[f'{method}_{name}_si_sdr_db'] = mean_sdr
      figures[f'{method}_{name}_min_si_sdr_db'] = float(np.min(sdr))
      figures[f'{method}_{name}_kept'] = float(np.mean(kept))
      cells.append(f'{mean_sdr:6.1f} ({np.min(sdr):5.1f}) {np.mean(kept):4.2f}'
                   if method != 'input' else f'{mean_sdr:6.1f} dB')
    print(f'{name:>8s} {cells[0]:>14s} {cells[1]:>22s} {cells[2]:>26s}')
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
