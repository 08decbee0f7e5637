r"""Generate music with a trained latent GAN and write a listening page.

  python -m melodygan_jax.sample --workdir=runs/gan --output_dir=samples/ \
      [--num_samples=8] [--seconds=10] [--seed=0] [--interpolate=3,7] \
      [--vocoder_workdir=runs/vocoder]

Writes per sample a 22 050 Hz 16-bit mono WAV and a spectrogram PNG (wrapped
into 10 s rows), plus manifest.json (seed, checkpoint steps, every sample's
codes and duration) and index.html (open it from disk): players, spectrograms
with axes and a playback cursor, held-out real clips of the run's data set
beside their reconstructions, and an evaluate --metrics table if given. The same --seed
writes the same files byte for byte; sample i's codes come from the key
fold_in(seed, i) alone, whatever the batch it is generated in. --seconds may exceed
the training crop: generator and decoder are convolutional in time and the
whole clip is inverted at once, so there are no seams. The inversion is the
trained vocoder of --vocoder_workdir, else Griffin-Lim; the manifest says which.
"""
import functools
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
from melodygan_jax.audio import synthesis
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records
from melodygan_jax.data import reference_clips
from melodygan_jax.generation import listening_page
from melodygan_jax.generation import neural_vocoder
from melodygan_jax.generation import pretrained


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


def write_references(vqvae: pretrained.LoadedVQVAE, output: pathlib.Path, stem: str,
                     num_references: int, seed: int, vocoder=None) -> list[dict]:
  """Held-out real clips of the run's data set and their codec reconstructions.

  Returns their manifest entries; none when the data set is not on this machine.
  """
  try:
    meta = input_pipeline.load_dataset_meta(vqvae.config.data.dataset_dir)
  except input_pipeline.DatasetError:
    return []
  clips = reference_clips.held_out_clips(
      vqvae.config.data.dataset_dir, meta.split_files.get(records.VALIDATION_SPLIT, []),
      meta.segment_frames, num_references, stem)
  if not clips:
    return []
  frames = (meta.segment_frames // vqvae.time_stride) * vqvae.time_stride
  normalized = np.stack([vqvae.normalize(clip.log_mel[:frames], stem) for clip in clips])
  recon_log_mel = vqvae.denormalize(np.asarray(vqvae.jit_reconstruct(vqvae.state, normalized)),
                                    stem)
  recon_audio = synthesis.log_mel_to_audio(recon_log_mel, seed=seed, vocoder=vocoder)
  entries = []
  for index, (clip, log_mel, audio) in enumerate(zip(clips, recon_log_mel, recon_audio)):
    name = f'reference_{index:02d}'
    entry = {'source': clip.source, 'start_s': clip.start_s}
    for kind, samples, mel in (('original', clip.samples, clip.log_mel),
                               ('reconstruction', audio[:len(clip.samples)], log_mel)):
      audio_io.write_wav(output / f'{name}_{kind}.wav', synthesis.finish(samples))
      rows = listening_page.write_spectrogram(output / f'{name}_{kind}.png', mel)
      entry[kind] = {'wav': f'{name}_{kind}.wav', 'png': f'{name}_{kind}.png', 'rows': rows,
                     'seconds': len(samples) / contract.SAMPLE_RATE_HZ}
    entries.append(entry)
  return entries


def write_page(output: pathlib.Path, manifest: dict, metrics: dict | None) -> None:
  """index.html: the samples, then the held-out references beside their reconstructions."""
  generated = [listening_page.clip_figure(entry['wav'], entry['wav'], entry['png'],
                                          entry['seconds'], entry['rows'])
               for entry in manifest['samples']]
  references = []
  for entry in manifest['references']:
    for kind in ('original', 'reconstruction'):
      clip = entry[kind]
      label = f'{entry["source"]} at {entry["start_s"]:.1f} s, {kind}'
      references.append(listening_page.clip_figure(label, clip['wav'], clip['png'],
                                                   clip['seconds'], clip['rows']))
  sections = [('Generated', '', generated)]
  if references:
    sections.append(('Held-out real music', 'Clips the models never trained on, as recorded '
                     'and through the VQ-VAE and the same inversion as the samples.',
                     references))
  else:
    sections.append(('Held-out real music', 'The data set of this run is not on this '
                     'machine, so there are no reference clips.', []))
  listening_page.write_page(
      output / 'index.html',
      f'MelodyGAN-JAX samples (GAN step {manifest["gan_step"]}, seed {manifest["seed"]})',
      f'GAN: {manifest["gan_workdir"]}; VQ-VAE: {manifest["vqvae_workdir"]} '
      f'(step {manifest["vqvae_step"]}); {vocoder_line(manifest.get("vocoder", {}))}.',
      sections, metrics)


def vocoder_line(entry: dict) -> str:
  """How the page names the vocoder of a manifest entry."""
  if entry.get('kind') == 'neural':
    return f'vocoder: {entry["workdir"]} (step {entry["step"]})'
  return f'vocoder: Griffin-Lim ({entry.get("iterations", 32)} iterations)'



def sample(workdir: str, output_dir: str, num_samples: int = 8, seconds: float = 10.0,
           seed: int = 0, batch_size: int = 8, interpolate=None,
           show_progress: bool = True, num_references: int = 2,
           metrics: dict | None = None, vocoder_workdir: str | None = None) -> dict:
  """Generates, decodes, inverts and writes; returns the manifest.

  Args:
    workdir: a finished GAN run.
    output_dir: where WAVs, PNGs, manifest.json and index.html go.
    num_samples, seconds, seed, batch_size, interpolate: what to generate.
    show_progress: a progress bar on stderr.
    num_references: held-out real clips (and their reconstructions) on the page.
    metrics: an evaluate output, shown on the page.
    vocoder_workdir: a finished configs/vocoder.py run (default: Griffin-Lim).
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  generator = pretrained.load_generator(workdir)
  vocoder = neural_vocoder.from_flag(vocoder_workdir)
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
    clips = synthesis.log_mel_to_audio(log_mel, seed=seed, indices=indices, vocoder=vocoder)
    for index, clip_codes, clip_mel, clip in zip(indices, codes, log_mel, clips):
      name = f'sample_{index:04d}'
      clip = synthesis.finish(clip[:num_samples_audio])
      audio_io.write_wav(output / f'{name}.wav', clip)
      rows = listening_page.write_spectrogram(output / f'{name}.png', clip_mel)
      samples.append({'index': index, 'wav': f'{name}.wav', 'png': f'{name}.png', 'rows': rows,
                      'seconds': len(clip) / contract.SAMPLE_RATE_HZ,
                      'codes': clip_codes.tolist()})
      progress.update()
  progress.close()
  manifest = {
      'seed': seed, 'interpolate': list(interpolate) if interpolate else None,
      'gan_workdir': os.path.abspath(workdir), 'gan_step': generator.step,
      'vqvae_workdir': os.path.abspath(vqvae.workdir), 'vqvae_step': vqvae.step,
      'stem': stem, 'sample_rate_hz': contract.SAMPLE_RATE_HZ,
      'vocoder': neural_vocoder.describe(vocoder), 'samples': samples,
      'references': write_references(vqvae, output, stem, num_references, seed, vocoder),
  }
  atomic_files.write_json(output / 'manifest.json', manifest)
  write_page(output, manifest, metrics)
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
  metrics = None
  if config.metrics:
    try:
      metrics = atomic_files.read_json(config.metrics)
    except (OSError, ValueError) as e:
      sys.exit(f'sample: --metrics={config.metrics}: cannot be read as JSON ({e})')
  try:
    manifest = sample(config.workdir, config.output_dir, config.num_samples, config.seconds,
                      config.seed, config.batch_size, interpolate,
                      num_references=config.num_references, metrics=metrics,
                      vocoder_workdir=config.vocoder_workdir)
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
  flags.DEFINE_integer('num_references', 2, 'Held-out real clips shown beside the samples '
                       '(with their reconstructions), when the data set is on this machine.')
  flags.DEFINE_string('metrics', None, 'An evaluate --output JSON to show on the page.')
  flags.DEFINE_string('vocoder_workdir', None, 'A finished configs/vocoder.py run that turns '
                      'log-mel into audio (default: Griffin-Lim).')
  flags.mark_flags_as_required(['workdir', 'output_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
