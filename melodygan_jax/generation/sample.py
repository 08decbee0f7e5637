r"""Generate music with a trained latent GAN and write a listening page.

  python -m melodygan_jax.sample --workdir=runs/gan --output_dir=samples/ \
      [--num_samples=8] [--seconds=10] [--seed=0] [--interpolate=3,7]

Writes per sample a 22 050 Hz 16-bit mono WAV and a spectrogram PNG, plus
manifest.json (seed, checkpoint steps, every sample's codes and duration) and
index.html (players and spectrograms; open it from disk). The same --seed
writes the same files byte for byte; sample i's codes come from the key
fold_in(seed, i) alone, whatever the batch it is generated in. --seconds may exceed
the training crop: generator and decoder are convolutional in time and the
whole clip is inverted at once, so there are no seams.
"""
import functools
import html
import math
import os
import pathlib
import sys

from absl import app
from absl import flags
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.audio import contract
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import spectrogram_image
from melodygan_jax.generation import pretrained
from melodygan_jax.audio import synthesis


@functools.partial(jax.jit, static_argnames=('graphdef', 'steps', 'temperature'))
def generate_codes(graphdef, params, codebooks, keys, global_noise, steps: int,
                   temperature: float):
  """Codes [batch, steps, levels]: sample i from keys[i] (and its own global noise).

  `codebooks` [levels, codebook_size, dim] are the VQ-VAE's.
  """
  generator = nnx.merge(graphdef, params)

  def one(key, noise):
    step_key, gumbel_key = jax.random.split(jax.random.fold_in(key, 1))
    step_noise = jax.random.normal(step_key, (1, steps, generator.noise_channels))
    return generator(noise[None], step_noise, codebooks, gumbel_key, temperature)[1][0]
  return jax.vmap(one)(keys, global_noise)


def sample_keys_and_noise(generator: pretrained.LoadedGenerator, seed: int, indices,
                          interpolate=None):
  """Per-sample keys and global noise; interpolation slerps the global noise."""
  noise_dim = generator.config.model.noise_dim

  def noise_of(sample_seed, index):
    key = jax.random.fold_in(jax.random.key(sample_seed), index)
    return key, np.asarray(jax.random.normal(jax.random.fold_in(key, 0), (noise_dim,)))

  if interpolate is None:
    keys, noise = zip(*(noise_of(seed, i) for i in indices))
    return jnp.stack(keys), np.stack(noise)
  (key_a, noise_a), (_, noise_b) = noise_of(interpolate[0], 0), noise_of(interpolate[1], 0)
  omega = np.arccos(np.clip(np.dot(noise_a, noise_b) / (
      np.linalg.norm(noise_a) * np.linalg.norm(noise_b)), -1.0, 1.0))
  total = max(len(indices) - 1, 1)
  noise = []
  for i in indices:
    t = i / total
    if omega < 1e-6:
      noise.append((1 - t) * noise_a + t * noise_b)
    else:
      noise.append((np.sin((1 - t) * omega) * noise_a + np.sin(t * omega) * noise_b)
                   / np.sin(omega))
  # One key for all: the per-step noise stays fixed, only the character moves.
  return jnp.stack([key_a] * len(indices)), np.stack(noise).astype(np.float32)


def steps_for_seconds(seconds: float, time_stride: int) -> int:
  frames = math.ceil(seconds * contract.SAMPLE_RATE_HZ / contract.HOP_LENGTH) + 1
  return max(1, math.ceil(frames / time_stride))


def write_page(output_dir: pathlib.Path, manifest: dict) -> None:
  rows = []
  for sample in manifest['samples']:
    name = html.escape(sample['wav'])
    rows.append(
        f'<figure><figcaption>{name} &middot; {sample["seconds"]:.2f} s</figcaption>'
        f'<audio controls preload="metadata" src="{name}"></audio><br>'
        f'<img src="{html.escape(sample["png"])}" alt="spectrogram of {name}"></figure>')
  title = f'MelodyGAN-JAX samples (GAN step {manifest["gan_step"]}, seed {manifest["seed"]})'
  page = f'''<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} figure{{margin:0 0 2em 0}}
img{{max-width:100%;image-rendering:pixelated}} audio{{width:32em}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>GAN: {html.escape(manifest["gan_workdir"])}; VQ-VAE: {html.escape(manifest["vqvae_workdir"])}
(step {manifest["vqvae_step"]}).</p>
{"".join(rows)}
</body></html>
'''
  with atomic_files.atomic_path(output_dir / 'index.html') as tmp_path:
    tmp_path.write_text(page)


def sample(workdir: str, output_dir: str, num_samples: int = 8, seconds: float = 10.0,
           seed: int = 0, batch_size: int = 8, interpolate=None,
           show_progress: bool = True) -> dict:
  """Generates, decodes, inverts and writes; returns the manifest."""
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  generator = pretrained.load_generator(workdir)
  vqvae = generator.vqvae
  stem = generator.config.data.stems[0]
  steps = steps_for_seconds(seconds, vqvae.time_stride)
  num_samples_audio = int(round(seconds * contract.SAMPLE_RATE_HZ))
  output = pathlib.Path(output_dir)
  output.mkdir(parents=True, exist_ok=True)
  codebooks = jnp.asarray(vqvae.codebooks)
  samples = []
  progress = tqdm(total=num_samples, unit='sample', desc='sample', disable=not show_progress)
  for first in range(0, num_samples, batch_size):
    indices = list(range(first, min(first + batch_size, num_samples)))
    keys, noise = sample_keys_and_noise(generator, seed, indices, interpolate)
    codes = np.asarray(generate_codes(generator.graphdef, generator.params, codebooks, keys,
                                 jnp.asarray(noise), steps, generator.temperature))
    log_mel = vqvae.codes_to_log_mel(codes, stem)
    clips = synthesis.log_mel_to_audio(log_mel, seed=seed, indices=indices)
    for index, clip_codes, clip_mel, clip in zip(indices, codes, log_mel, clips):
      name = f'sample_{index:04d}'
      clip = synthesis.finish(clip[:num_samples_audio])
      audio_io.write_wav(output / f'{name}.wav', clip)
      image = np.repeat(spectrogram_image.spectrogram_image(  # 3 px per mel band.
          clip_mel, float(clip_mel.min()), float(clip_mel.max())), 3, axis=0)
      with atomic_files.atomic_path(output / f'{name}.png') as tmp_path:
        pyplot.imsave(tmp_path, image, format='png', metadata={'Software': None})
      samples.append({'index': index, 'wav': f'{name}.wav', 'png': f'{name}.png',
                      'seconds': len(clip) / contract.SAMPLE_RATE_HZ,
                      'codes': clip_codes.tolist()})
      progress.update()
  progress.close()
  manifest = {
      'seed': seed, 'interpolate': list(interpolate) if interpolate else None,
      'gan_workdir': os.path.abspath(workdir), 'gan_step': generator.step,
      'vqvae_workdir': os.path.abspath(vqvae.workdir), 'vqvae_step': vqvae.step,
      'stem': stem, 'sample_rate_hz': contract.SAMPLE_RATE_HZ, 'samples': samples,
  }
  atomic_files.write_json(output / 'manifest.json', manifest)
  write_page(output, manifest)
  return manifest


def main(argv):
  if len(argv) > 1:
    sys.exit(f'sample: unexpected arguments: {" ".join(argv[1:])}')
  config = flags.FLAGS
  if config.num_samples < 1 or config.seconds <= 0 or config.batch_size < 1:
    sys.exit('sample: --num_samples and --batch_size must be >= 1 and --seconds > 0')
  interpolate = None
  if config.interpolate:
    try:
      interpolate = tuple(int(s) for s in config.interpolate)
      assert len(interpolate) == 2
    except (ValueError, AssertionError):
      sys.exit(f'sample: --interpolate={",".join(config.interpolate)}: give two seeds, A,B')
  try:
    manifest = sample(config.workdir, config.output_dir, config.num_samples, config.seconds,
                      config.seed, config.batch_size, interpolate)
  except pretrained.WorkdirError as e:
    sys.exit(f'sample: {e}')
  print(f'{len(manifest["samples"])} samples in {config.output_dir}; listen: '
        f'{os.path.abspath(os.path.join(config.output_dir, "index.html"))}')


def run():
  flags.DEFINE_string('workdir', None, 'A finished configs/gan.py run.')
  flags.DEFINE_string('output_dir', None, 'Where the WAVs, PNGs, manifest and page go.')
  flags.DEFINE_integer('num_samples', 8, 'Number of clips.')
  flags.DEFINE_float('seconds', 10.0, 'Length of each clip.')
  flags.DEFINE_integer('seed', 0, 'The same seed writes the same files.')
  flags.DEFINE_integer('batch_size', 8, 'Clips generated at once.')
  flags.DEFINE_list('interpolate', None, 'Two seeds A,B: clips move from A to B.')
  flags.mark_flags_as_required(['workdir', 'output_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
