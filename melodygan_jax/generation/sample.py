r"""Generate music with a trained latent GAN and write a listening page.

  python -m melodygan_jax.sample --workdir=runs/gan --output_dir=samples/ \
      [--num_samples=8] [--seconds=10] [--seed=0] [--interpolate=3,7] [--loop] \
      [--prompt=song.mp3 [--prompt_seconds=P]] [--style_from=a.wav[,b.wav]] \
      [--vocoder_workdir=runs/vocoder]

Writes per sample a 22 050 Hz 16-bit mono WAV and a spectrogram PNG (wrapped
into 10 s rows), plus manifest.json (seed, checkpoint steps, the vocoder, every
sample's codes, duration and `window_joins`) and index.html (open it from disk):
players, spectrograms with axes and a playback cursor, held-out real clips of
the run's data set beside their reconstructions, and an evaluate --metrics
table if given. The same --seed and flags write the same files byte for byte;
sample i's codes come from the key fold_in(seed, i) alone, whatever the batch
it is generated in. The inversion is the trained vocoder of --vocoder_workdir,
else Griffin-Lim; the manifest says which.

Length: a sample longer than the training crop is generated in overlapping
windows over one continuous coordinate sequence, cross-faded in latent space
and decoded and inverted whole (generation/long_form.py), so there are no
seams; `window_joins` lists the audio sample positions where windows hand
over (empty for one pass). --loop makes the coordinates circular: the end
flows into the start (the length is rounded to whole codes). --prompt
continues a user's audio (generation/continuation.py): the output is the
prompt as decoded, then --seconds of continuation; `prompt_end_sample` marks
the join. --style_from takes the style (global noise) of a real clip
(generation/style.py); two clips morph from the first style to the
second along every sample.
"""
import math
import os
import pathlib
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion
from melodygan_jax.audio import synthesis
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records
from melodygan_jax.data import reference_clips
from melodygan_jax.generation import continuation
from melodygan_jax.generation import listening_page
from melodygan_jax.generation import long_form
from melodygan_jax.generation import neural_vocoder
from melodygan_jax.generation import pretrained
from melodygan_jax.generation import style as style_lib
from melodygan_jax.generation import user_audio
from melodygan_jax.models import gan as gan_models


def sample_keys_and_noise(generator: pretrained.LoadedGenerator, seed: int, indices,
                          interpolate=None, num_samples: int | None = None):
  """Per-sample keys and global noise; interpolation slerps the global noise.

  With `interpolate`, sample i of `num_samples` (default: of `indices`) sits at
  i / (num_samples - 1) of the way, whatever batch it is generated in.
  """
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
  total = max((num_samples or len(indices)) - 1, 1)
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



LOOP_MARGIN_STEPS = 32  # Codes of wrap-around decoded on each side of a loop...
LOOP_CROSSFADE_SAMPLES = 1024  # ...and the audio cross-fade at its wrap (46 ms).


def generate_codes(generator: pretrained.LoadedGenerator, codebooks, keys, global_noise,
                   steps: int, loop: bool = False) -> jax.Array:
  """Codes [batch, steps, levels] in the generator's windows (sample i from keys[i])."""
  plan = long_form.plan_for(generator, steps, loop)
  return long_form.generate_codes(generator.graphdef, generator.params, codebooks, keys,
                                  global_noise, plan, generator.temperature)


def render_loop(vqvae: pretrained.LoadedVQVAE, codes: np.ndarray, stem: str, seed: int,
                indices, vocoder=None) -> tuple[np.ndarray, list[np.ndarray]]:
  """Loops: codes [batch, steps, levels] -> (log-mel of one period, seamless clips).

  The codes are decoded with wrap-around on both sides, so the decoder sees
  the start after the end. Griffin-Lim then inverts the one period as a
  circular signal (its STFT wraps around): the audio is exactly periodic and
  the wrap is like any other frame. A vocoder without a circular mode
  renders the margins too and cross-fades its start from what followed its end.
  """
  steps = codes.shape[1]
  wrapped = codes[:, np.arange(-LOOP_MARGIN_STEPS, steps + LOOP_MARGIN_STEPS) % steps]
  log_mel = vqvae.codes_to_log_mel(wrapped, stem)
  margin_frames = LOOP_MARGIN_STEPS * vqvae.time_stride
  period_frames = steps * vqvae.time_stride
  period_log_mel = log_mel[:, margin_frames:margin_frames + period_frames]
  vocoder = vocoder or inversion.GriffinLimVocoder()
  if hasattr(vocoder, 'loop'):
    audio = np.asarray(vocoder.loop(np.asarray(period_log_mel, np.float32),
                                    synthesis.clip_keys(seed, indices)))
    return period_log_mel, [np.clip(np.nan_to_num(clip), -1.0, 1.0) for clip in audio]
  extended = synthesis.log_mel_to_audio(log_mel, seed=seed, indices=indices, vocoder=vocoder)
  clips = [np.clip(long_form.loop_audio(clip, margin_frames * contract.HOP_LENGTH,
                                        period_frames * contract.HOP_LENGTH,
                                        LOOP_CROSSFADE_SAMPLES), -1.0, 1.0)
           for clip in extended]
  return period_log_mel, clips


def sample(workdir: str, output_dir: str, num_samples: int = 8, seconds: float = 10.0,
           seed: int = 0, batch_size: int = 8, interpolate=None,
           show_progress: bool = True, num_references: int = 2,
           metrics: dict | None = None, loop: bool = False, prompt: str | None = None,
           prompt_seconds: float | None = None, style_from=(),
           vocoder_workdir: str | None = None) -> dict:
  """Generates, decodes, inverts and writes; returns the manifest.

  Args:
    workdir: a finished GAN run.
    output_dir: where WAVs, PNGs, manifest.json and index.html go.
    num_samples, seconds, seed, batch_size, interpolate: what to generate.
    show_progress: a progress bar on stderr.
    num_references: held-out real clips (and their reconstructions) on the page.
    metrics: an evaluate output, shown on the page.
    loop: each sample's end flows into its start.
    prompt: audio to continue; each sample is the prompt, then `seconds` more.
    prompt_seconds: how much of `prompt` (default: the generator's context).
    style_from: one clip (its style for every sample) or two (a morph from
      the first style to the second along each sample).
    vocoder_workdir: a finished configs/vocoder.py run (default: Griffin-Lim).

  Raises:
    user_audio.AudioInputError: an unusable --prompt or --style_from, one line.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  generator = pretrained.load_generator(workdir)
  vocoder = neural_vocoder.from_flag(vocoder_workdir)
  vqvae = generator.vqvae
  stem = generator.config.data.stems[0]
  code_samples = vqvae.time_stride * contract.HOP_LENGTH
  if loop:  # A whole number of codes, so the period is exact.
    steps = max(1, int(round(seconds * contract.SAMPLE_RATE_HZ / code_samples)))
    num_samples_audio = steps * code_samples
  else:
    steps = steps_for_seconds(seconds, vqvae.time_stride) + (2 if prompt else 0)
    num_samples_audio = int(round(seconds * contract.SAMPLE_RATE_HZ))
  loaded_prompt = None
  conditioned = gan_models.is_context_conditioned(generator.config.model)
  if prompt:  # By default, as much as one window's context holds.
    loaded_prompt = continuation.load_prompt(
        vqvae, prompt, prompt_seconds,
        continuation.context_limit(generator) * code_samples / contract.SAMPLE_RATE_HZ, stem)
  styles = [style_lib.find_style(generator, path, seed) for path in style_from]
  if loaded_prompt is not None and not conditioned:  # Every continuation keeps its style.
    styles = [style_lib.style_of_codes(generator, loaded_prompt.codes, seed)]
  plan = long_form.plan_for(generator, steps, loop)
  output = pathlib.Path(output_dir)
  output.mkdir(parents=True, exist_ok=True)
  codebooks = jnp.asarray(vqvae.codebooks)
  samples = []
  progress = tqdm(total=num_samples, unit='sample', desc='sample', disable=not show_progress)
  for first in range(0, num_samples, batch_size):
    indices = list(range(first, min(first + batch_size, num_samples)))
    keys, noise = sample_keys_and_noise(generator, seed, indices, interpolate, num_samples)
    if len(styles) == 1:
      noise = np.broadcast_to(styles[0], noise.shape)
    elif len(styles) == 2:
      morph = style_lib.morph_over_time(styles[0], styles[1], plan.coordinate_steps,
                                         there_and_back=loop)
      noise = np.broadcast_to(morph, (len(indices),) + morph.shape)
    if loaded_prompt is not None:
      # A context-conditioned generator keeps the prompt's style from its context; each
      # sample's own global noise varies the rest.
      entries = [continuation.continue_and_render(generator, loaded_prompt, key,
                                                  clip_noise if conditioned else styles[0],
                                                  steps, stem, seed, index, num_samples_audio,
                                                  vocoder)
                 for key, clip_noise, index in zip(keys, noise, indices)]
    else:
      codes = np.asarray(long_form.generate_codes(
          generator.graphdef, generator.params, codebooks, keys, jnp.asarray(noise), plan,
          generator.temperature))
      if loop:
        log_mel, clips = render_loop(vqvae, codes, stem, seed, indices, vocoder)
      else:
        log_mel = vqvae.codes_to_log_mel(codes, stem)
        clips = [synthesis.finish(clip[:num_samples_audio]) for clip in
                 synthesis.log_mel_to_audio(log_mel, seed=seed, indices=indices,
                                            vocoder=vocoder)]
      joins = [position for position in long_form.steps_to_samples(
          plan.join_steps, vqvae.time_stride, contract.HOP_LENGTH)
               if position < num_samples_audio]
      entries = [(clip_codes, clip_mel, clip, {'window_joins': joins})
                 for clip_codes, clip_mel, clip in zip(codes, log_mel, clips)]
    for index, (clip_codes, clip_mel, clip, extra) in zip(indices, entries):
      name = f'sample_{index:04d}'
      audio_io.write_wav(output / f'{name}.wav', clip)
      rows = listening_page.write_spectrogram(output / f'{name}.png', clip_mel)
      samples.append({'index': index, 'wav': f'{name}.wav', 'png': f'{name}.png', 'rows': rows,
                      'seconds': len(clip) / contract.SAMPLE_RATE_HZ,
                      'codes': np.asarray(clip_codes).tolist(), **extra})
      progress.update()
  progress.close()
  manifest = {
      'seed': seed, 'interpolate': list(interpolate) if interpolate else None,
      'loop': loop, 'prompt': os.path.abspath(prompt) if prompt else None,
      'style_from': [os.path.abspath(path) for path in style_from],
      'window_steps': generator.window_steps,
      'gan_workdir': os.path.abspath(workdir), 'gan_step': generator.step,
      'vqvae_workdir': os.path.abspath(vqvae.workdir), 'vqvae_step': vqvae.step,
      'stem': stem, 'sample_rate_hz': contract.SAMPLE_RATE_HZ,
      'vocoder': neural_vocoder.describe(vocoder), 'samples': samples,
      'references': write_references(vqvae, output, stem, num_references, seed, vocoder,
                                     seconds=num_samples_audio / contract.SAMPLE_RATE_HZ),
  }
  atomic_files.write_json(output / 'manifest.json', manifest)
  write_page(output, manifest, metrics)
  return manifest


def parse_flags(config) -> dict:
  """The sample() arguments of the command line; exits with one line naming a bad flag."""
  if config.num_samples < 1 or config.batch_size < 1:
    sys.exit('sample: --num_samples and --batch_size must be >= 1')
  if not 0 < config.seconds <= MAX_SECONDS:
    sys.exit(f'sample: --seconds={config.seconds:g}: must be in (0, {MAX_SECONDS}]')
  interpolate = None
  if config.interpolate:
    try:
      interpolate = tuple(int(s) for s in config.interpolate)
      assert len(interpolate) == 2
    except (ValueError, AssertionError):
      sys.exit(f'sample: --interpolate={",".join(config.interpolate)}: give two seeds, A,B')
  style_from = tuple(config.style_from or ())
  if len(style_from) > 2:
    sys.exit(f'sample: --style_from={",".join(style_from)}: give one clip or two (a morph)')
  for path in style_from + ((config.prompt,) if config.prompt else ()):
    if not os.path.isfile(path):
      flag = '--prompt' if path == config.prompt else '--style_from'
      sys.exit(f'sample: {flag}={path}: no such file')
  if config.prompt_seconds is not None and not config.prompt:
    sys.exit('sample: --prompt_seconds needs --prompt')
  if config.prompt_seconds is not None and config.prompt_seconds <= 0:
    sys.exit(f'sample: --prompt_seconds={config.prompt_seconds:g}: must be > 0')
  exclusive = [name for name, given in (('--prompt', bool(config.prompt)), ('--loop', config.loop),
                                        ('--interpolate', bool(interpolate)),
                                        ('--style_from', bool(style_from))) if given]
  if config.prompt and len(exclusive) > 1 or interpolate and style_from:
    sys.exit(f'sample: {" and ".join(exclusive)}: choose one of them')
  metrics = None
  if config.metrics:
    try:
      metrics = atomic_files.read_json(config.metrics)
    except (OSError, ValueError) as e:
      sys.exit(f'sample: --metrics={config.metrics}: cannot be read as JSON ({e})')
  return dict(num_samples=config.num_samples, seconds=config.seconds, seed=config.seed,
              batch_size=config.batch_size, interpolate=interpolate,
              num_references=config.num_references, metrics=metrics, loop=config.loop,
              prompt=config.prompt, prompt_seconds=config.prompt_seconds,
              style_from=style_from, vocoder_workdir=config.vocoder_workdir)


MAX_SECONDS = 600.0  # Ten minutes: the longest sample tested.


def main(argv):
  if len(argv) > 1:
    sys.exit(f'sample: unexpected arguments: {" ".join(argv[1:])}')
  config = flags.FLAGS
  arguments = parse_flags(config)
  try:
    manifest = sample(config.workdir, config.output_dir, **arguments)
  except (pretrained.WorkdirError, user_audio.AudioInputError) as e:
    sys.exit(f'sample: {e}')
  print(f'{len(manifest["samples"])} samples in {config.output_dir}; listen: '
        f'{os.path.abspath(os.path.join(config.output_dir, "index.html"))}')


def run():
  flags.DEFINE_string('workdir', None, 'A finished configs/gan.py run.')
  flags.DEFINE_string('output_dir', None, 'Where the WAVs, PNGs, manifest and page go.')
  flags.DEFINE_integer('num_samples', 8, 'Number of clips.')
  flags.DEFINE_float('seconds', 10.0, 'Length of each clip (of the continuation with --prompt), '
                     f'up to {MAX_SECONDS:g}.')
  flags.DEFINE_integer('seed', 0, 'The same seed writes the same files.')
  flags.DEFINE_integer('batch_size', 8, 'Clips generated at once.')
  flags.DEFINE_list('interpolate', None, 'Two seeds A,B: clips move from A to B.')
  flags.DEFINE_boolean('loop', False, 'Each clip ends where it starts, for seamless looping.')
  flags.DEFINE_string('prompt', None, 'Audio file to continue (any format prepare reads).')
  flags.DEFINE_float('prompt_seconds', None, 'Seconds of --prompt to keep and continue '
                     '(default: half a generation window, or the whole file when shorter).')
  flags.DEFINE_list('style_from', None, 'A clip whose style every sample takes, or two clips '
                    'A,B: each sample morphs from the style of A to that of B.')
  flags.DEFINE_integer('num_references', 2, 'Held-out real clips shown beside the samples '
                       '(with their reconstructions), when the data set is on this machine.')
  flags.DEFINE_string('metrics', None, 'An evaluate --output JSON to show on the page.')
  flags.DEFINE_string('vocoder_workdir', None, 'A finished configs/vocoder.py run that turns '
                      'log-mel into audio (default: Griffin-Lim).')
  flags.mark_flags_as_required(['workdir', 'output_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
