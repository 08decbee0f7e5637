"""How closely a GAN run's pieces play the rhythm their rhythm bank gives them, in minutes.

  python benchmarks/rhythm_following_probe.py --gan_workdir=runs/gan [--num_pieces=128]
      [--seconds=10] [--seed=0] [--style_strength=S]

Generates pieces as `sample` does (the run's style strength, Griffin-Lim) and
prints, clip by clip, the pulse clarity of the songs' envelope each piece was
given against the pulse clarity heard in it: their means and spreads, the
correlation and the slope with paired bootstrap intervals (evaluate's
`gan/rhythm_following_*`, evaluation/rhythm_following.py, without the rest of
evaluate's hour). A slope near 1 keeps the songs' spread of pulse; a lower one
pulls every piece toward the middle. Beside them, what the style strength trades
the rhythm for: the pieces' chroma stability and how often their first-level
code changes (the training codes' rate is what the calibrated strength aims at).
Ends with one JSON line.
"""
import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # pylint: disable=wrong-import-position

from melodygan_jax.audio import music_structure  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import rhythm_following  # pylint: disable=wrong-import-position
from melodygan_jax.generation import sampling  # pylint: disable=wrong-import-position
from melodygan_jax.runs import latent_cache  # pylint: disable=wrong-import-position
from melodygan_jax.runs import style_strength  # pylint: disable=wrong-import-position

BATCH = 16


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--gan_workdir', required=True)
  parser.add_argument('--num_pieces', type=int, default=128)
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--style_strength', type=float, default=None)
  args = parser.parse_args()
  model = sampling.load(args.gan_workdir, style_strength=args.style_strength)
  data = latent_cache.load_latents(args.gan_workdir)
  steps = sampling.steps_for_seconds(args.seconds, model.vqvae.time_stride)
  given = rhythm_following.given_pulse(model.generator, args.seed, args.num_pieces, steps,
                                       BATCH, model.vqvae.time_stride)
  if given is None:
    sys.exit(f'{args.gan_workdir}: its generator has no rhythm bank (model.rhythm_bank_steps)')
  pulse, chroma = (music_structure.PROFILE_ENTRIES.index(entry)
                   for entry in ('pulse_clarity', 'chroma_stability'))
  profiles, codes = [], []
  for first in range(0, args.num_pieces, BATCH):
    indices = range(first, min(first + BATCH, args.num_pieces))
    for piece in sampling.free(model, args.seed, indices, args.seconds):
      profiles.append(music_structure.clip_profile(piece.audio))
      codes.append(piece.codes)
  profiles = np.asarray(profiles)
  played = profiles[:, pulse]
  figures = rhythm_following.following(given, played, num_resamples=200, seed=args.seed)
  both = np.isfinite(given) & np.isfinite(played)
  figures.update({'gan_workdir': args.gan_workdir, 'step': model.generator.step,
                  'style_strength': model.generator.style_strength,
                  'num_pieces': int(both.sum()), 'given_pulse_sd': float(given[both].std()),
                  'played_pulse_sd': float(played[both].std()),
                  'chroma_stability': float(np.nanmean(profiles[:, chroma])),
                  'code_change_rate': style_strength.change_rate(np.stack(codes)),
                  'training_code_change_rate': style_strength.change_rate(
                      data.train.codes, data.train.lengths)})
  for name in ('given_pulse_clarity', 'played_pulse_clarity'):
    print(f'{name:24s} {figures[name]:.3f} (sd {figures[name.replace("clarity", "sd")]:.3f})')
  for name in ('rhythm_following_r', 'rhythm_following_slope'):
    entry = figures[name]
    print(f'{name:24s} {entry["value"]:.3f} [{entry["low"]:.3f}, {entry["high"]:.3f}]')
  print(f'{"chroma_stability":24s} {figures["chroma_stability"]:.3f}')
  print(f'{"code_change_rate":24s} {figures["code_change_rate"]:.3f} (training codes '
        f'{figures["training_code_change_rate"]:.3f})')
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
