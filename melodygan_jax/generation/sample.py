r"""Write generated music to a folder: WAVs, spectrograms, a manifest and a listening page.

`sample()` is what `python -m melodygan_jax.sample` runs (melodygan_jax/sample.py
holds its flags). Per piece (generation/sampling.py makes them) a 22 050 Hz
16-bit mono WAV and a spectrogram PNG (wrapped into 10 s rows), plus
manifest.json (seed, checkpoint steps, the vocoder, every piece's codes,
duration and `window_joins`) and index.html (open it from disk): players,
spectrograms with axes and a playback cursor, held-out real clips of the run's
data set beside their reconstructions, and an evaluate --metrics table if
given. The same arguments write the same files byte for byte.
"""
import os
import pathlib

import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import synthesis
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records
from melodygan_jax.data import reference_clips
from melodygan_jax.generation import listening_page
from melodygan_jax.generation import sampling
from melodygan_jax.runs import loading


def write_references(vqvae: loading.LoadedVQVAE, output: pathlib.Path, stem: str,
                     num_references: int, seed: int, vocoder=None,
                     seconds: float | None = None) -> list[dict]:
  """Held-out real clips of the run's data set and their codec reconstructions.

  With `seconds`, each clip is that long, from the middle of its song.
  Returns their manifest entries; none when the data set is not on this machine.
  """
  try:
    meta = input_pipeline.load_dataset_meta(vqvae.config.data.dataset_dir)
  except input_pipeline.DatasetError:
    return []
  clips = reference_clips.held_out_clips(
      vqvae.config.data.dataset_dir, meta.split_files.get(records.VALIDATION_SPLIT, []),
      meta.segment_frames, num_references, stem, seconds)
  if not clips:
    return []
  frames = min(len(clip.log_mel) for clip in clips) // vqvae.time_stride * vqvae.time_stride
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
                                          entry['seconds'], entry['rows'],
                                          listening_page.profile_note(output / entry['wav'],
                                                                      metrics))
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
           metrics: dict | None = None, loop: bool = False, prompt: str | None = None,
           prompt_seconds: float | None = None, style_from=(),
           vocoder_workdir: str | None = None, style_strength: float | None = None) -> dict:
  """Generates in the mode the arguments ask for and writes everything; returns the manifest.

  Args:
    workdir: a finished GAN run.
    output_dir: where WAVs, PNGs, manifest.json and index.html go.
    num_samples, seconds, seed, batch_size: what to generate (sampling.free).
    interpolate: two seeds; the pieces move from one to the other.
    show_progress: a progress bar on stderr.
    num_references: held-out real clips (and their reconstructions) on the page.
    metrics: an evaluate output, shown on the page.
    loop: each piece's end flows into its start (sampling.loop).
    prompt: audio to continue; each piece is the prompt, then `seconds` more
      (sampling.continuation).
    prompt_seconds: how much of `prompt` (default: the generator's context).
    style_from: one clip (its style for every piece) or two (a morph from
      the first style to the second along each piece) (sampling.styled).
    vocoder_workdir: a finished configs/vocoder.py run (default: Griffin-Lim).
    style_strength: the global noise's scale (default: the run's calibrated
      strength, runs/style_strength.py; 1 = as trained).

  Raises:
    user_audio.AudioInputError: an unusable --prompt or --style_from, one line.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  model = sampling.load(workdir, vocoder_workdir, style_strength)
  if prompt:
    loaded_prompt = sampling.load_prompt(model, prompt, prompt_seconds)
    make = lambda indices: sampling.continuation(model, loaded_prompt, seed, indices, seconds)
  elif style_from:
    styles = [sampling.find_style(model, path, seed) for path in style_from]
    make = lambda indices: sampling.styled(model, styles, seed, indices, seconds, loop)
  elif loop:
    make = lambda indices: sampling.loop(model, seed, indices, seconds, interpolate, num_samples)
  else:
    make = lambda indices: sampling.free(model, seed, indices, seconds, interpolate, num_samples)
  output = pathlib.Path(output_dir)
  output.mkdir(parents=True, exist_ok=True)
  samples = []
  progress = tqdm(total=num_samples, unit='sample', desc='sample', disable=not show_progress)
  for first in range(0, num_samples, batch_size):
    for piece in make(range(first, min(first + batch_size, num_samples))):
      name = f'sample_{piece.index:04d}'
      audio_io.write_wav(output / f'{name}.wav', piece.audio)
      rows = listening_page.write_spectrogram(output / f'{name}.png', piece.log_mel)
      samples.append({'index': piece.index, 'wav': f'{name}.wav', 'png': f'{name}.png',
                      'rows': rows, 'seconds': len(piece.audio) / contract.SAMPLE_RATE_HZ,
                      'codes': np.asarray(piece.codes).tolist(), **piece.extra})
      progress.update()
  progress.close()
  generator, vqvae = model.generator, model.vqvae
  manifest = {
      'seed': seed, 'interpolate': list(interpolate) if interpolate else None,
      'loop': loop, 'prompt': os.path.abspath(prompt) if prompt else None,
      'style_from': [os.path.abspath(path) for path in style_from],
      'window_steps': generator.window_steps,
      'gan_workdir': os.path.abspath(workdir), 'gan_step': generator.step,
      # A style fitted to a clip (--style_from, or a prompt's for an unconditional GAN) is
      # used as fitted.
      'style_strength': (None if style_from or (prompt and not model.is_context_conditioned)
                         else generator.style_strength),
      'vqvae_workdir': os.path.abspath(vqvae.workdir), 'vqvae_step': vqvae.step,
      'stem': model.stem, 'sample_rate_hz': contract.SAMPLE_RATE_HZ,
      'vocoder': loading.describe_vocoder(model.vocoder), 'samples': samples,
      'references': write_references(vqvae, output, model.stem, num_references, seed,
                                     model.vocoder, seconds=seconds),
  }
  atomic_files.write_json(output / 'manifest.json', manifest)
  write_page(output, manifest, metrics)
  return manifest
