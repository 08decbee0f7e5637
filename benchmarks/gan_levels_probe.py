"""Does a GAN that generates only the codec's first levels make a beat?

  python benchmarks/gan_levels_probe.py --gan_workdir=runs/gan --levels=2 [--steps=1000]
      [--config=configs/gan_cpu.py] [--num_clips=48] [--seconds=10]

beat_probe.py finds the beat in the order of the first level's codes, and the
codec (trained with quantizer dropout) decodes its first levels alone with most
of the pulse. This trains --config's GAN from scratch, for --steps, on the codes
of --gan_workdir's cache (latents.npz) cut to their first --levels levels, then
generates --num_clips pieces of --seconds (one pass of the generator), decodes
them with that run's VQ-VAE from those levels and prints their pulse clarity
(beat_probe.py's measure) beside the held-out real codes cut the same way, and
the training speed. Ends with one JSON line.
"""
import argparse
import importlib.util
import json
import os
import pathlib
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

import beat_probe  # pylint: disable=wrong-import-position
from melodygan_jax.generation import sampling  # pylint: disable=wrong-import-position
from melodygan_jax.models import gan as gan_models  # pylint: disable=wrong-import-position
from melodygan_jax.runs import latent_cache  # pylint: disable=wrong-import-position
from melodygan_jax.runs import loading  # pylint: disable=wrong-import-position
from melodygan_jax.training import gan_trainer  # pylint: disable=wrong-import-position


def load_config(path: str):
  spec = importlib.util.spec_from_file_location('experiment_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def first_levels(runs: latent_cache.CodeRuns, levels: int) -> latent_cache.CodeRuns:
  return latent_cache.CodeRuns(np.ascontiguousarray(runs.codes[:, :levels]), runs.offsets)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--gan_workdir', required=True)
  parser.add_argument('--levels', type=int, required=True)
  parser.add_argument('--steps', type=int, default=1000)
  parser.add_argument('--config', default=str(ROOT / 'configs' / 'gan_cpu.py'))
  parser.add_argument('--num_clips', type=int, default=48)
  parser.add_argument('--seconds', type=float, default=10.0)
  args = parser.parse_args()

  run = loading.load_generator(args.gan_workdir)
  vqvae, stem = run.vqvae, run.config.data.stems[0]
  cached = latent_cache.load_latents(args.gan_workdir)
  if not 1 <= args.levels <= cached.codebooks.shape[0]:
    sys.exit(f'--levels={args.levels}: the codec has {cached.codebooks.shape[0]} levels')
  data = latent_cache.LatentData(
      train=first_levels(cached.train, args.levels),
      validation=first_levels(cached.validation, args.levels),
      codebooks=cached.codebooks[:args.levels])
  config = load_config(args.config)
  # A generator with a rhythm bank follows the songs' onsets, heard through every level.
  rhythm = (gan_trainer.onset_envelopes(vqvae, cached.train.codes, stem,
                                       gan_models.rhythm_frames(config.model))
            if gan_models.has_rhythm_bank(config.model) else None)
  trainer = gan_trainer.GANTrainer(config, data, rhythm=rhythm)
  state = trainer.create_state()
  batches = trainer.train_batches(0)
  metrics = None
  started = time.time()
  for step in range(1, args.steps + 1):
    previous = metrics
    state, metrics = trainer.jit_train_step(state, next(batches))
    jax.block_until_ready(previous)  # One step in flight, as the training loop keeps it.
    if step % 250 == 0 or step == args.steps:
      host = {name: round(float(value), 4) for name, value in jax.device_get(metrics).items()}
      print(f'step {step}: {host} | {step / (time.time() - started):.2f} steps/s', flush=True)
  train_s = time.time() - started

  steps = sampling.steps_for_seconds(args.seconds, vqvae.time_stride)
  rng = np.random.default_rng(0)
  real = latent_cache.real_crops(data.validation, steps)
  real = real[rng.permutation(len(real))[:args.num_clips]]
  generated = np.asarray(trainer.jit_sample(state.generator_ema, jax.random.key(0),
                                            args.num_clips, steps)[1])
  results = {'levels': args.levels, 'steps': args.steps, 'train_s': round(train_s, 1),
             'real': beat_probe.summary(beat_probe.clip_figures(vqvae, real, stem)[:, 0]),
             'generated': beat_probe.summary(beat_probe.clip_figures(vqvae, generated, stem)[:, 0])}
  for name in ('real', 'generated'):
    row = results[name]
    print(f'{name} codes, first {args.levels} level(s): pulse clarity {row["mean"]:.3f} '
          f'[{row["p10"]:.2f}, {row["p90"]:.2f}]')
  print(json.dumps(results))


if __name__ == '__main__':
  main()
