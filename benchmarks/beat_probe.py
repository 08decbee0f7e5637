"""Where a GAN run's beat and harmony go: which codes carry them, whether the discriminator
hears the beat, and whether more steps bring it.

  python benchmarks/beat_probe.py --gan_workdir=runs/gan [--num_clips=48] [--seconds=10]
      [--codes_only] [--style_strength=S]

On 10 s crops of the run's held-out code sequences (latents.npz) and as many
generated pieces, decodes codes to log-mel with the run's VQ-VAE and prints the
pulse clarity and the chroma stability of each set (evaluation's definitions:
the peak of the onset envelope's normalized autocorrelation at 0.25-2 s lags;
the mean correlation of chroma vectors 0.1 s apart; here from the decoded mel,
the chroma through the mel filterbank's non-negative least-squares inverse, no
phase) with their 10th and 90th percentiles:

  - what the codes carry: the real codes; the same with the onset envelope
    averaged over each code's frames (what is left when where in its code an
    onset falls is lost); only their first 1, 2 or 4 levels;
    real level 0 with i.i.d. draws (the training frequencies) at the other
    levels, and the reverse; the real steps in random order; i.i.d. codes;
    the run's generated pieces (its last checkpoint), whole and from their first
    level (--codes_only stops here). Random crops, not evaluate's clips: on the
    92-song run the pieces score as the songs' crops here and far below
    evaluate's held-out clips there (docs/create.md, "The preset as it is
    now");
  - what the discriminator hears: its mean logit (each scale, then the rhythm
    discriminator's if the run has one) on real crops of its training length,
    on the same crops with their 0.25 s or 1 s blocks
    shuffled (texture kept, beat broken; the shuffle also adds seams) and on
    generated crops, and the share of pairs in which it scores the real crop
    higher (0.5: it cannot tell them apart); for a run with a rhythm bank,
    beside each crop's onset envelope, the generated crops following the real
    crops' envelopes, as in training;
  - the budget: the generated pieces' pulse clarity at every earlier saved step,
    and the last one's at code resolution.

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

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.audio import inversion  # pylint: disable=wrong-import-position
from melodygan_jax.audio import music_structure  # pylint: disable=wrong-import-position
from melodygan_jax.generation import sampling  # pylint: disable=wrong-import-position
from melodygan_jax.models import gan as gan_models  # pylint: disable=wrong-import-position
from melodygan_jax.models import residual_quantizer  # pylint: disable=wrong-import-position
from melodygan_jax.runs import checkpoints  # pylint: disable=wrong-import-position
from melodygan_jax.runs import latent_cache  # pylint: disable=wrong-import-position
from melodygan_jax.runs import loading  # pylint: disable=wrong-import-position
from melodygan_jax.runs import style_strength  # pylint: disable=wrong-import-position
from melodygan_jax.runs import workdir as workdir_lib  # pylint: disable=wrong-import-position
from melodygan_jax.training import gan_trainer  # pylint: disable=wrong-import-position

BLOCK_SECONDS = 0.25
DECODE_BATCH = 16
NNLS_ITERATIONS = 32  # The mel's inverse the chroma is read from, as sample's prior uses.


def clip_figures(vqvae: loading.LoadedVQVAE, codes: np.ndarray, stem: str,
                 levels: int | None = None, code_resolution: bool = False) -> np.ndarray:
  """[n, 2]: pulse clarity and chroma stability of each code sequence's decoded log-mel
  (its first `levels` levels).

  `code_resolution`: the pulse of the onset envelope's means over each code's frames
  (where in its code an onset falls, lost).
  """
  values = []
  for start in range(0, len(codes), DECODE_BATCH):
    batch = codes[start:start + DECODE_BATCH, :, :levels]
    log_mels = vqvae.codes_to_log_mel(batch, stem)
    magnitudes = np.asarray(inversion.mel_to_magnitude(jnp.exp(jnp.asarray(log_mels)),
                                                       NNLS_ITERATIONS))
    for log_mel, magnitude in zip(log_mels, magnitudes):
      envelope = music_structure.onset_envelope_of_log_mel(log_mel)
      if code_resolution:
        stride = vqvae.time_stride
        whole = len(envelope) // stride * stride
        envelope = np.repeat(envelope[:whole].reshape(-1, stride).mean(axis=1), stride)
      chroma = music_structure.chroma_frames(magnitude)
      energy = np.exp(2.0 * np.asarray(log_mel, np.float64)).sum(axis=1)
      values.append((music_structure.pulse_clarity(envelope),
                     music_structure.chroma_stability(chroma, energy)))
  return np.asarray(values)


def summary(values: np.ndarray) -> dict:
  return {'mean': round(float(np.nanmean(values)), 3),
          'p10': round(float(np.nanpercentile(values, 10)), 3),
          'p90': round(float(np.nanpercentile(values, 90)), 3)}


def block_shuffled(codes: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
  """Each sequence's blocks of `block` steps in random order (a last partial block stays)."""
  out = codes.copy()
  whole = codes.shape[1] // block * block
  for row in out:
    blocks = row[:whole].reshape(-1, block, row.shape[-1])
    row[:whole] = blocks[rng.permutation(len(blocks))].reshape(whole, -1)
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--gan_workdir', required=True)
  parser.add_argument('--num_clips', type=int, default=48)
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--style_strength', type=float, default=None,
                      help='Scale of the pieces\' global noise (default: the run\'s measured one).')
  parser.add_argument('--codes_only', action='store_true',
                      help='Only what the codes carry (minutes): no discriminator, no budget.')
  args = parser.parse_args()

  # Pieces as sample and evaluate make them: at the run's style strength unless given.
  generator = style_strength.with_strength(loading.load_generator(args.gan_workdir),
                                           args.style_strength)
  print(f'style strength {generator.style_strength:.2f}')
  vqvae, config = generator.vqvae, generator.config
  stem = config.data.stems[0]
  data = latent_cache.load_latents(args.gan_workdir)
  rng = np.random.default_rng(0)
  steps = sampling.steps_for_seconds(args.seconds, vqvae.time_stride)
  real = latent_cache.real_crops(data.validation, steps)
  real = real[rng.permutation(len(real))[:args.num_clips]]
  levels, codebook_size = vqvae.num_levels, vqvae.codebook_size
  frequencies = np.stack([np.bincount(data.train.codes[:, level], minlength=codebook_size)
                          for level in range(levels)]).astype(np.float64)
  frequencies /= frequencies.sum(axis=1, keepdims=True)

  def iid(shape):
    return np.stack([rng.choice(codebook_size, size=shape, p=frequencies[level])
                     for level in range(levels)], axis=-1)

  results = {}

  def report(name, values):
    results[name] = {'pulse_clarity': summary(values[:, 0]),
                     'chroma_stability': summary(values[:, 1])}
    shown = '  '.join(f'{row["mean"]:.3f} [{row["p10"]:.2f}, {row["p90"]:.2f}]'
                      for row in results[name].values())
    print(f'{name:50s} {shown}', flush=True)

  print(f'pulse clarity, then chroma stability, of {len(real)} decoded {args.seconds:g} s '
        f'crops ({steps} codes, {levels} levels of {codebook_size}), mean [p10, p90]:')
  report('real codes', clip_figures(vqvae, real, stem))
  # What the frame an onset falls on inside its code adds to the pulse.
  report('real codes, onsets at code resolution', clip_figures(vqvae, real, stem,
                                                                  code_resolution=True))
  for kept in (1, 2, 4):
    if kept < levels:
      report(f'real codes, first {kept} level(s) decoded', clip_figures(vqvae, real, stem,
                                                                          kept))
  level0_real = real.copy()
  level0_real[..., 1:] = iid(real.shape[:2])[..., 1:]
  report('real level 0, i.i.d. other levels', clip_figures(vqvae, level0_real, stem))
  level0_iid = real.copy()
  level0_iid[..., 0] = iid(real.shape[:2])[..., 0]
  report('i.i.d. level 0, real other levels', clip_figures(vqvae, level0_iid, stem))
  shuffled = np.stack([row[rng.permutation(steps)] for row in real])
  report('real codes, steps in random order', clip_figures(vqvae, shuffled, stem))
  report('i.i.d. codes', clip_figures(vqvae, iid(real.shape[:2]), stem))
  keys, noise = sampling.keys_and_noise(generator, 0, range(args.num_clips))
  generated = sampling.generate_codes(generator, keys, noise, steps)
  report(f'generated, step {generator.step}', clip_figures(vqvae, generated, stem))
  report(f'generated, step {generator.step}, first level decoded',
         clip_figures(vqvae, generated, stem, 1))
  if args.codes_only:
    print(json.dumps(results))
    return

  # The discriminator, on crops of its training length.
  num_levels, _, codebook_dim = np.asarray(vqvae.codebooks).shape
  gen_graphdef, disc_graphdef, abstract, _ = gan_trainer.init_state(
      config, num_levels, codebook_size, codebook_dim)
  saved = sorted(int(path.name) for path in pathlib.Path(
      workdir_lib.path(args.gan_workdir, workdir_lib.CHECKPOINTS_DIRNAME)).iterdir()
                 if path.name.isdigit())
  state, _ = checkpoints.restore(args.gan_workdir, abstract, saved[-1])
  crop = int(config.data.crop_steps)
  crops = latent_cache.real_crops(data.validation, crop)
  crops = crops[rng.permutation(len(crops))[:256]]
  block = max(1, int(round(BLOCK_SECONDS * contract.SAMPLE_RATE_HZ / contract.HOP_LENGTH
                           / vqvae.time_stride)))
  codebooks = jnp.asarray(vqvae.codebooks)
  judge_latents = jax.jit(lambda params, latents: nnx.merge(disc_graphdef, params)(latents))
  # A run with a rhythm bank judges codes beside the onset envelope they follow: each
  # crop's own, standardized by the real crops' statistics (the run keeps no others), and
  # the generator is handed the real crops' envelopes, as in training.
  frames = gan_models.rhythm_frames(config.model)
  with_bank = gan_models.has_rhythm_bank(config.model)
  envelopes = lambda codes: np.stack([gan_trainer.onset_envelopes(vqvae, row, stem, frames)
                                      for row in codes])
  real_rhythm = envelopes(crops) if with_bank else None
  standardized = ((lambda rhythm: (rhythm - real_rhythm.mean()) / (real_rhythm.std() + 1e-6))
                  if with_bank else None)

  def judge(codes, rhythm=None):
    latents = residual_quantizer.codes_to_latents(jnp.asarray(codes), codebooks)
    if with_bank:
      rhythm = standardized(envelopes(codes) if rhythm is None else rhythm)
      latents = jnp.concatenate([latents, jnp.asarray(rhythm, latents.dtype)], axis=-1)
    return np.asarray(judge_latents(state.discriminator, latents))

  real_logits = judge(crops, real_rhythm)
  shuffled_logits = judge(block_shuffled(crops, block, rng))
  long_block = 4 * block  # 1 s: few seams, the beat kept only inside each block.
  long_shuffled_logits = judge(block_shuffled(crops, long_block, rng))
  generator.params = jax.device_get(state.generator_ema)
  if with_bank:
    generated_crops = np.asarray(gan_models.sample_codes(
        nnx.merge(generator.graphdef, generator.params), codebooks, generator.temperature,
        jax.random.key(1), len(crops), crop,
        rhythm=jnp.asarray(standardized(real_rhythm), jnp.float32))[1])
  else:
    generated_crops = sampling.generate_codes(generator, *sampling.keys_and_noise(
        generator, 1, range(len(crops))), crop)
  generated_logits = judge(generated_crops, real_rhythm)
  real_mean = real_logits.mean(-1)
  results['discriminator'] = {'step': saved[-1], 'crop_steps': crop}
  print(f'discriminator at step {saved[-1]}, {len(crops)} crops of {crop} codes: mean logit '
        f'per scale; share of pairs in which the real crop scores higher')
  for name, logits in (('real', real_logits),
                       (f'real, {block}-code blocks shuffled', shuffled_logits),
                       (f'real, {long_block}-code blocks shuffled', long_shuffled_logits),
                       ('generated (EMA)', generated_logits)):
    higher = float(np.mean(real_mean > logits.mean(-1)))
    results['discriminator'][name] = {'logit': [round(float(v), 3) for v in logits.mean(0)],
                                      'real_scores_higher': round(higher, 3)}
    shown = ', '.join(f'{float(v):.2f}' for v in logits.mean(0))
    print(f'  {name:38s} [{shown}]  ' + ('' if name == 'real' else f'{higher:.0%}'))

  # The generator at every earlier saved step (the last one's pieces are `generated`).
  for step in saved[:-1]:
    restored, _ = checkpoints.restore(args.gan_workdir, {'generator_ema': abstract.generator},
                                      step)
    generator.params = jax.device_get(restored['generator_ema'])
    codes = sampling.generate_codes(generator, keys, noise, steps)
    report(f'generated, step {step}', clip_figures(vqvae, codes, stem))
  report(f'generated, step {generator.step}, onsets at code resolution',
         clip_figures(vqvae, generated, stem, code_resolution=True))
  print(json.dumps(results))


if __name__ == '__main__':
  main()
