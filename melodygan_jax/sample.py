r"""Generate music with a trained latent GAN and write a listening page.

  python -m melodygan_jax.sample --workdir=runs/gan --output_dir=samples/ \
      [--num_samples=8] [--seconds=10] [--seed=0] [--interpolate=3,7] [--loop] \
      [--prompt=song.mp3 [--prompt_seconds=P]] [--style_from=a.wav[,b.wav]] \
      [--vocoder_workdir=runs/vocoder] [--metrics=metrics.json]

Writes per sample a 22 050 Hz 16-bit mono WAV and a spectrogram PNG, plus
manifest.json and index.html (generation/sample.py). The same --seed and flags
write the same files byte for byte; sample i's codes come from the key
fold_in(seed, i) alone, whatever the batch it is generated in. The inversion
is the trained vocoder of --vocoder_workdir, else Griffin-Lim.

Modes (generation/sampling.py): free samples; --loop, whose end flows into
their start; --prompt, the prompt as decoded, then --seconds of continuation;
--style_from, the style (global noise) of a real clip, or a morph between two.
"""
import os

from absl import app
from absl import flags

from melodygan_jax import atomic_files
from melodygan_jax import compilation_cache
from melodygan_jax import errors
from melodygan_jax.generation import sample as sample_lib
from melodygan_jax.runs import style_strength

MAX_SECONDS = 600.0  # Ten minutes: the longest sample tested.


def parse_flags(config) -> dict:
  """The sample() arguments of the command line.

  Raises:
    errors.UserError: a bad flag, named in one line.
  """
  if config.num_samples < 1 or config.batch_size < 1:
    raise errors.UserError('--num_samples and --batch_size must be >= 1')
  if not 0 < config.seconds <= MAX_SECONDS:
    raise errors.UserError(f'--seconds={config.seconds:g}: must be in (0, {MAX_SECONDS}]')
  interpolate = None
  if config.interpolate:
    try:
      interpolate = tuple(int(s) for s in config.interpolate)
      assert len(interpolate) == 2
    except (ValueError, AssertionError) as e:
      raise errors.UserError(
          f'--interpolate={",".join(config.interpolate)}: give two seeds, A,B') from e
  style_from = tuple(config.style_from or ())
  if len(style_from) > 2:
    raise errors.UserError(f'--style_from={",".join(style_from)}: give one clip or two (a morph)')
  for path in style_from + ((config.prompt,) if config.prompt else ()):
    if not os.path.isfile(path):
      flag = '--prompt' if path == config.prompt else '--style_from'
      raise errors.UserError(f'{flag}={path}: no such file')
  if config.prompt_seconds is not None and not config.prompt:
    raise errors.UserError('--prompt_seconds needs --prompt')
  if config.prompt_seconds is not None and config.prompt_seconds <= 0:
    raise errors.UserError(f'--prompt_seconds={config.prompt_seconds:g}: must be > 0')
  exclusive = [name for name, given in (('--prompt', bool(config.prompt)), ('--loop', config.loop),
                                        ('--interpolate', bool(interpolate)),
                                        ('--style_from', bool(style_from))) if given]
  if config.prompt and len(exclusive) > 1 or interpolate and style_from:
    raise errors.UserError(f'{" and ".join(exclusive)}: choose one of them')
  style_strength.check(config.style_strength)  # Before anything loads.
  metrics = None
  if config.metrics:
    try:
      metrics = atomic_files.read_json(config.metrics)
    except (OSError, ValueError) as e:
      raise errors.UserError(f'--metrics={config.metrics}: cannot be read as JSON ({e})') from e
  return dict(num_samples=config.num_samples, seconds=config.seconds, seed=config.seed,
              batch_size=config.batch_size, interpolate=interpolate,
              num_references=config.num_references, metrics=metrics, loop=config.loop,
              prompt=config.prompt, prompt_seconds=config.prompt_seconds,
              style_from=style_from, vocoder_workdir=config.vocoder_workdir,
              style_strength=config.style_strength)


def main(argv):
  config = flags.FLAGS
  with errors.exit_on_user_error('sample'):
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    compilation_cache.enable()  # MELODYGAN_JAX_CACHE=off turns it off.
    manifest = sample_lib.sample(config.workdir, config.output_dir, **parse_flags(config))
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
  flags.DEFINE_float('style_strength', None, 'Scale of each piece\'s global noise: higher holds '
                     'its character (harmony) longer (default: measured for the run; 1 = as '
                     'trained).')
  flags.mark_flags_as_required(['workdir', 'output_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
