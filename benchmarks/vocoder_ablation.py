"""What stops the vocoder learning: its priors, refinement and losses switched one at a time.

  python benchmarks/vocoder_ablation.py --dataset_dir=DIR --out=runs/ablation [--steps=1500]
      [--variants=default,no_phase_prior,...] [--overfit]

Every variant is configs/vocoder.py with a few overrides, trained for the same
number of steps (reconstruction losses only unless the variant says otherwise)
on the same data set, then scored on the same held-out clips (the middle
--clip_seconds of the first --num_clips validation songs) against fast
Griffin-Lim: multi-resolution STFT distance and mel distance, each with and
without the inference mel refinement (32 steps), beside 32-iteration
Griffin-Lim with and without the same refinement. The column `vs GL` is the
vocoder's MR-STFT over Griffin-Lim's (below 1 is better; 0.85 is 15% lower).

--overfit: the memorisation test. A data set of one song's middle 30 s is built
in --out (its training split that excerpt, its validation split the same
excerpt cut into clips), so a variant is scored on the music it was trained on:
a design that cannot get well below Griffin-Lim there will not on new music.

Runs resume: a variant whose workdir holds its last checkpoint is only scored.
Ends with one JSON line.
"""
import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # pylint: disable=wrong-import-position
import soundfile  # pylint: disable=wrong-import-position

from configs import vocoder as vocoder_config  # pylint: disable=wrong-import-position
from melodygan_jax import atomic_files  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.audio import inversion  # pylint: disable=wrong-import-position
from melodygan_jax.audio import synthesis  # pylint: disable=wrong-import-position
from melodygan_jax.data import audio_crops  # pylint: disable=wrong-import-position
from melodygan_jax.data import records  # pylint: disable=wrong-import-position
from melodygan_jax.runs import loading  # pylint: disable=wrong-import-position
from melodygan_jax.runs import workdir as workdir_lib  # pylint: disable=wrong-import-position
from melodygan_jax.training import vocoder_trainer  # pylint: disable=wrong-import-position

REFINEMENT = 32
# Overrides of configs/vocoder.py, one idea each.
VARIANTS = {
    'default': {},
    'no_phase_prior': {'model.phase_prior_iterations': 0},
    'no_magnitude_prior': {'model.magnitude_prior': False},
    'no_priors': {'model.phase_prior_iterations': 0, 'model.magnitude_prior': False},
    'light_mel_loss': {'loss.mel_weight': 1.0},
    'heavy_stft_loss': {'loss.stft_weight': 45.0},
    'phase_loss': {'loss.phase_weight': 1.0},
    'phase_loss_no_phase_prior': {'loss.phase_weight': 1.0, 'model.phase_prior_iterations': 0},
    'adversarial_from_0': {'loss.adversarial_start_step': 0},
    'spectral_refiner': {'model.refiner_channels': 16},
    'spectral_refiner_light_mel_loss': {'model.refiner_channels': 16, 'loss.mel_weight': 1.0},
    'spectral_refiner_wide': {'model.refiner_channels': 32, 'loss.mel_weight': 1.0},
    'spectral_refiner_adversarial': {'model.refiner_channels': 16, 'loss.mel_weight': 1.0,
                                     'loss.adversarial_start_step': 500},
}


def overfit_dataset(dataset_dir: pathlib.Path, out: pathlib.Path, seconds: float,
                    clip_seconds: float) -> pathlib.Path:
  """A data set of one training song's middle `seconds`: trained on and scored on."""
  target = out / 'overfit_data'
  if (target / records.STATS_FILENAME).exists():
    return target
  song = audio_crops.split_audio(str(dataset_dir), records.TRAIN_SPLIT,
                                 int(seconds * contract.SAMPLE_RATE_HZ))
  length = int(seconds * contract.SAMPLE_RATE_HZ)
  excerpt = audio_crops.read_crop(song.paths[0], (song.num_samples[0] - length) // 2, length)
  (target / 'clean').mkdir(parents=True, exist_ok=True)
  files, splits = [], {}

  def add(name, samples, split):
    soundfile.write(str(target / 'clean' / f'{name}.wav'), samples, contract.SAMPLE_RATE_HZ)
    files.append({'source': name, 'clean_wav': f'clean/{name}.wav', 'status': 'used',
                  'split': split})
    splits[name] = split

  add('excerpt', excerpt, records.TRAIN_SPLIT)
  clip = int(clip_seconds * contract.SAMPLE_RATE_HZ)
  for index in range(length // clip):
    add(f'excerpt_clip{index}', excerpt[index * clip:(index + 1) * clip],
        records.VALIDATION_SPLIT)
  stats = atomic_files.read_json(dataset_dir / records.STATS_FILENAME)
  stats['splits'] = splits
  atomic_files.write_json(target / records.STATS_FILENAME, stats)
  atomic_files.write_json(target / records.REPORT_FILENAME, {'files': files})
  (target / 'tfds').symlink_to((dataset_dir / 'tfds').resolve())  # Only its metadata is read.
  print(f'overfit data set: {seconds:.0f} s of {song.paths[0].name}, '
        f'{length // clip} clips of {clip_seconds:.0f} s', flush=True)
  return target


def config_for(overrides: dict, dataset_dir: pathlib.Path, args):
  """configs/vocoder.py for the ablation's budget, with one variant's overrides."""
  config = vocoder_config.get_config()
  config.data.dataset_dir = str(dataset_dir)
  config.data.num_validation_clips = args.num_clips
  config.data.validation_clip_seconds = args.clip_seconds
  config.model.mel_refinement_iterations = 0  # The training curve: the network's own output.
  config.train.num_steps = args.steps
  config.train.warmup_steps = min(config.train.warmup_steps, args.steps // 4)
  config.train.eval_every_steps = max(args.steps // 4, 1)
  config.train.checkpoint_every_steps = max(args.steps // 4, 1)
  config.train.log_every_steps = 100
  for field, value in overrides.items():
    section, name = field.split('.')
    config[section][name] = value
  return config


def scores(clips: np.ndarray, vocoder) -> list[dict]:
  """Per clip: MR-STFT distance and mel distance of the vocoder's audio to the clip."""
  log_mel = np.stack([contract.log_mel(clip) for clip in clips])
  audio = synthesis.log_mel_to_audio(log_mel, seed=0, vocoder=vocoder)
  return [vocoder_trainer.waveform_scores(clip[None], estimate[None])
          for clip, estimate in zip(clips, audio)]


def mean(rows: list[dict], metric: str) -> float:
  return float(np.mean([row[metric] for row in rows]))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--dataset_dir', required=True, help='A data_prep.prepare --output_dir')
  parser.add_argument('--out', required=True, help='One workdir per variant goes here')
  parser.add_argument('--steps', type=int, default=1_500)
  parser.add_argument('--variants', default=','.join(VARIANTS))
  parser.add_argument('--num_clips', type=int, default=8)
  parser.add_argument('--clip_seconds', type=float, default=4.0)
  parser.add_argument('--overfit', action='store_true')
  parser.add_argument('--overfit_seconds', type=float, default=30.0)
  args = parser.parse_args()
  unknown = sorted(set(args.variants.split(',')) - set(VARIANTS))
  if unknown:
    sys.exit(f'vocoder_ablation: --variants names unknown {unknown}; choose from '
             f'{", ".join(VARIANTS)}')
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  dataset_dir = pathlib.Path(args.dataset_dir)
  if args.overfit:
    dataset_dir = overfit_dataset(dataset_dir, out, args.overfit_seconds, args.clip_seconds)
  clip_samples = (int(args.clip_seconds * contract.SAMPLE_RATE_HZ) // contract.HOP_LENGTH
                  * contract.HOP_LENGTH)
  clips = audio_crops.validation_clips(
      audio_crops.split_audio(str(dataset_dir), records.VALIDATION_SPLIT, clip_samples),
      clip_samples, args.num_clips)
  baselines = {'griffin_lim_32': scores(clips, inversion.GriffinLimVocoder(iterations=32)),
               'griffin_lim_32_refined': scores(clips, inversion.GriffinLimVocoder(
                   iterations=32, mel_refinement_iterations=REFINEMENT))}
  griffin_lim = mean(baselines['griffin_lim_32'], 'mr_stft')
  results = {}
  for name in args.variants.split(','):
    config = config_for(VARIANTS[name], dataset_dir, args)
    workdir = out / (f'overfit_{name}' if args.overfit else name)
    start = time.perf_counter()
    if workdir_lib.latest_step(str(workdir)) != args.steps:
      checked = vocoder_trainer.check_config(config)
      workdir_lib.absolute_paths(config)
      workdir_lib.write_or_check_config(config, str(workdir))
      vocoder_trainer.train_and_evaluate(config, str(workdir), checked)
    train_minutes = (time.perf_counter() - start) / 60
    rows = {'unrefined': scores(clips, loading.load_vocoder(str(workdir),
                                                           mel_refinement_iterations=0)),
            'refined': scores(clips, loading.load_vocoder(str(workdir),
                                                         mel_refinement_iterations=REFINEMENT))}
    curve = [(row['step'], row['eval/mr_stft_vs_griffin_lim'])
             for row in workdir_lib.read_metrics(str(workdir)) if 'eval/mr_stft' in row]
    results[name] = {
        **{f'{m}_{kind}': round(mean(rows[kind], m), 4) for kind in rows
           for m in ('mr_stft', 'mel_distance')},
        'vs_griffin_lim_unrefined': round(mean(rows['unrefined'], 'mr_stft') / griffin_lim, 4),
        'vs_griffin_lim_refined': round(mean(rows['refined'], 'mr_stft') / griffin_lim, 4),
        'clips_worse_than_griffin_lim': sum(
            v['mr_stft'] > g['mr_stft'] for v, g in zip(rows['refined'],
                                                         baselines['griffin_lim_32'])),
        'curve_vs_griffin_lim': [(step, round(ratio, 4)) for step, ratio in curve],
        'train_minutes': round(train_minutes, 1)}
    print(f'{name}: {json.dumps(results[name])}', flush=True)

  print(f'\n{len(clips)} {"training" if args.overfit else "held-out"} clips of '
        f'{args.clip_seconds:.0f} s, {args.steps} steps per variant; '
        f'Griffin-Lim 32: MR-STFT {griffin_lim:.3f}, mel distance '
        f'{mean(baselines["griffin_lim_32"], "mel_distance"):.3f}; refined: MR-STFT '
        f'{mean(baselines["griffin_lim_32_refined"], "mr_stft"):.3f}, mel distance '
        f'{mean(baselines["griffin_lim_32_refined"], "mel_distance"):.3f}')
  print(f'{"variant":28s} {"MR-STFT":>8s} {"vs GL":>6s} {"mel":>6s} {"refined":>8s} '
        f'{"vs GL":>6s} {"mel":>6s}  curve (vs GL, unrefined)')
  for name, row in results.items():
    print(f'{name:28s} {row["mr_stft_unrefined"]:8.3f} {row["vs_griffin_lim_unrefined"]:6.3f} '
          f'{row["mel_distance_unrefined"]:6.3f} {row["mr_stft_refined"]:8.3f} '
          f'{row["vs_griffin_lim_refined"]:6.3f} {row["mel_distance_refined"]:6.3f}  '
          + ' '.join(f'{ratio:.3f}' for _, ratio in row['curve_vs_griffin_lim']))
  print(json.dumps({'dataset_dir': str(dataset_dir), 'overfit': args.overfit,
                    'steps': args.steps, 'num_clips': len(clips),
                    'griffin_lim_32_mr_stft': round(griffin_lim, 4), 'variants': results}))


if __name__ == '__main__':
  main()
