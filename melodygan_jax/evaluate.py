r"""Measure the codec and the generator on a data set's held-out music; write metrics.json.

  python -m melodygan_jax.evaluate --vqvae_workdir=runs/vqvae [--gan_workdir=runs/gan] \
      --data_dir=data/ --output=metrics.json [--num_samples=N] [--max_clips=N] \
      [--max_training_clips=N] [--seed=K] [--clip_seconds=6] [--num_visqol=8] \
      [--num_resamples=200] [--vocoder_workdir=runs/vocoder] [--c2st_steps=300] \
      [--style_strength=S]

Prints one line per figure and the JSON; evaluation/evaluate.py says what each
set and figure is.
"""
import json

from absl import app
from absl import flags

from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.evaluation import evaluate as evaluate_lib
from melodygan_jax.evaluation import two_sample
from melodygan_jax.runs import style_strength


def main(argv):
  config = flags.FLAGS
  with errors.exit_on_user_error('evaluate'):
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    style_strength.check(config.style_strength)  # Before anything loads.
    for name in ('num_samples', 'max_clips', 'max_training_clips'):
      if getattr(config, name) is not None and getattr(config, name) < 2:
        raise errors.UserError(f'--{name} must be at least 2, got {getattr(config, name)}')
    options = evaluate_lib.EvaluationOptions(
        num_samples=config.num_samples, max_clips=config.max_clips,
        max_training_clips=config.max_training_clips,
        seed=config.seed, clip_seconds=config.clip_seconds, num_visqol=config.num_visqol,
        num_resamples=config.num_resamples, vocoder_workdir=config.vocoder_workdir,
        c2st_steps=config.c2st_steps, style_strength=config.style_strength)
    metrics = evaluate_lib.evaluate(config.vqvae_workdir, config.data_dir, config.gan_workdir,
                                    options)
  atomic_files.write_json(config.output, metrics)
  print('\n'.join(evaluate_lib.summary_lines(metrics)))
  print(json.dumps(metrics))


def run():
  flags.DEFINE_string('vqvae_workdir', None, 'A finished configs/vqvae.py run.')
  flags.DEFINE_string('gan_workdir', None, 'A finished configs/gan.py run (optional).')
  flags.DEFINE_string('data_dir', None, 'A data_prep.prepare --output_dir.')
  flags.DEFINE_string('output', 'metrics.json', 'Where the metrics are written.')
  flags.DEFINE_integer('num_samples', None,
                       'Clips per compared set (default and most: half the held-out clips).')
  flags.DEFINE_integer('max_clips', None, 'Most real clips (and segments) read per split.')
  flags.DEFINE_integer('max_training_clips', None,
                       'Most training clips (and segments) read for the memorization check '
                       'and the code statistics, spread over every song (default: '
                       '--max_clips): where the time of a large collection goes.')
  flags.DEFINE_integer('seed', 0, 'Generation, inversion, halves and bootstrap seed.')
  flags.DEFINE_float('clip_seconds', 6.0, 'Length of every compared clip (>= 3 s).')
  flags.DEFINE_integer('num_visqol', 8, 'Held-out clips scored by ViSQOL (slow; 0 = none).')
  flags.DEFINE_integer('num_resamples', 200, 'Bootstrap draws per interval.')
  flags.DEFINE_string('vocoder_workdir', None, 'A finished configs/vocoder.py run that inverts '
                      'every set (default: Griffin-Lim).')
  flags.DEFINE_integer('c2st_steps', two_sample.TwoSampleOptions.num_steps,
                       'Training steps of the two-sample classifier, per set (fewer where '
                       '100 passes over a side\'s training patches come sooner).')
  flags.DEFINE_float('style_strength', None, 'Scale of the generated pieces\' global noise '
                     '(default: measured for the GAN run; 1 = as trained).')
  flags.mark_flags_as_required(['vqvae_workdir', 'data_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
