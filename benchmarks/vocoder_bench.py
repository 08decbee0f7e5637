"""The neural vocoder against fast Griffin-Lim on held-out real music, same clips, same run.

  python benchmarks/vocoder_bench.py --vocoder_workdir=runs/vocoder [--num_clips=6]
      [--clip_seconds=8] [--dataset_dir=benchmarks/.cache/codec_data]
      [--phase_prior_start=random|peak_locked] [--phase_prior_iterations=N]
      [--mel_refinement_iterations=N]
  python benchmarks/vocoder_bench.py --prepare_only     # just prepare the real-music data set

Real music: the Debian game soundtracks (benchmarks/real_music.py; singularity-music and
drascula-music, ~108 min of 44.1/48 kHz OGG, none of it the demo corpus),
prepared as benchmarks/codec_bench.py prepares them (data_prep.prepare, 15% of
the files held out by a hash of the path) unless --dataset_dir names a
prepared folder. Clips: the middle --clip_seconds of each held-out song, as
data_prep cleaned it; every vocoder gets the clip's true log-mel
(contract.log_mel). Figures per clip against the clip itself:
  - multi-resolution STFT distance (spectral convergence + log-magnitude L1,
    FFT 512/1024/2048; evaluation/reconstruction.py),
  - full-band mel distance (mean |log-mel difference|, 128 bands),
  - ViSQOL v3 audio mode (visqol-python, 48 kHz, MOS-LQO),
and speed as real-time factor on this machine (seconds of audio per second of
compute, after a warm-up, one clip at a time), with the vocoder's time split into its
parts (the NNLS magnitude, Griffin-Lim's phase prior, the network and its refiner, the
mel refinement) on the first clip. Ends with one JSON line;
`speedup_vs_griffin_lim_<n>` is the vocoder's speed over Griffin-Lim's, and
`<metric>_ratio_vs_griffin_lim_<n>` is Griffin-Lim's distance over the
vocoder's (greater is better, > 1.18 is 15% lower). Where the run refines its
output towards the mel (`model.mel_refinement_iterations`), two more rows say
what each part gives: the network's output unrefined, and 32-iteration
Griffin-Lim refined the same way. With the run's
metrics.jsonl, the training curve (eval rows) is printed too. The two
--phase_prior flags run a vocoder trained with a phase prior with another one at
inference (inversion.peak_locked_phase, fewer iterations), and
--mel_refinement_iterations with another number of refinement steps.
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
sys.path.insert(0, str(ROOT / 'benchmarks'))

import numpy as np  # pylint: disable=wrong-import-position

import real_music  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.audio import inversion  # pylint: disable=wrong-import-position
from melodygan_jax.audio import neural_vocoder  # pylint: disable=wrong-import-position
from melodygan_jax.audio import synthesis  # pylint: disable=wrong-import-position
from melodygan_jax.data import audio_crops  # pylint: disable=wrong-import-position
from melodygan_jax.data import records  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import reconstruction  # pylint: disable=wrong-import-position
from melodygan_jax.runs import loading  # pylint: disable=wrong-import-position
from melodygan_jax.runs import workdir as workdir_lib  # pylint: disable=wrong-import-position


CACHE = ROOT / 'benchmarks' / '.cache'
GRIFFIN_LIM_ITERATIONS = (32, 100)


def music_folder() -> pathlib.Path:
  """Both soundtracks as one input folder of links to their OGG files."""
  folder = CACHE / 'codec_music'
  for package in ('singularity-music', 'drascula-music'):
    target = folder / package.split('-')[0]
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(real_music.package_dir(package).glob('*.ogg')):
      link = target / path.name
      if not link.exists():
        link.symlink_to(path)
  return folder


def prepare_data() -> pathlib.Path:
  """codec_bench.py's data set: prepare's defaults, 15% of the files held out."""
  from data_prep import prepare  # pylint: disable=g-import-not-at-top
  output = CACHE / 'codec_data'
  prepare.prepare(prepare.PrepareOptions(
      input_dir=str(music_folder()), output_dir=str(output), validation_fraction=0.15,
      num_workers=2, show_progress=False))  # Cached: a re-run redoes nothing.
  return output


def real_time_factor(vocoder, log_mel: np.ndarray, repeats: int = 2) -> float:
  """Seconds of audio per second of compute for one clip, after a warm-up call."""
  keys = synthesis.clip_keys(0, [0])
  np.asarray(vocoder(log_mel[None], keys))  # Compiles.
  start = time.perf_counter()
  for _ in range(repeats):
    np.asarray(vocoder(log_mel[None], keys))
  seconds = (time.perf_counter() - start) / repeats
  return contract.frames_to_seconds(len(log_mel) - 1) / seconds


def compiled_median_ms(function, *args, repeats: int = 5) -> float:
  """Milliseconds of `function(*args)` compiled, the median of `repeats` after a warm-up."""
  import jax  # pylint: disable=g-import-not-at-top
  function = jax.jit(function)
  jax.block_until_ready(function(*args))
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    jax.block_until_ready(function(*args))
    times.append(time.perf_counter() - started)
  return 1000 * float(np.median(times))


def time_parts(vocoder, log_mel: np.ndarray, repeats: int = 5) -> dict:
  """Milliseconds of each part of a neural vocoder's synthesis for one clip, each compiled
  on its own and timed after a warm-up (median of `repeats`): where its time goes."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top

  generator = nnx.merge(vocoder.graphdef, vocoder.params)
  log_mel = jnp.asarray(log_mel[None], jnp.float32)
  keys = synthesis.clip_keys(0, [0])
  prior_iterations, prior_start = neural_vocoder.phase_prior_of(vocoder.config.model)
  refinement = vocoder.mel_refinement_iterations

  def median_ms(function, *args) -> float:
    return compiled_median_ms(function, *args, repeats=repeats)

  magnitude = inversion.mel_to_magnitude(jnp.exp(log_mel), neural_vocoder.PRIOR_NNLS_ITERATIONS)
  priors = neural_vocoder.priors(generator, log_mel, keys, prior_iterations, prior_start)
  spectrum = generator(log_mel, *priors).astype(jnp.complex64)
  parts = {'nnls_magnitude': median_ms(lambda mel: inversion.mel_to_magnitude(
      jnp.exp(mel), neural_vocoder.PRIOR_NNLS_ITERATIONS), log_mel)}
  if generator.phase_prior:
    if prior_start == 'peak_locked':
      parts['peak_locked_phase'] = median_ms(inversion.peak_locked_phase, magnitude)
    parts[f'griffin_lim_phase_{prior_iterations}'] = median_ms(
        lambda m: inversion.griffin_lim_phase(m, keys, prior_iterations), magnitude)
  parts['network'] = median_ms(lambda mel, *p: generator(mel, *p), log_mel, *priors)
  if generator.refiner is not None:
    parts['of_which_refiner'] = median_ms(
        lambda s: generator.refiner(jnp.log(jnp.abs(s) + 1e-5), jnp.angle(s)), spectrum)
  parts[f'mel_refinement_{refinement}'] = median_ms(
      lambda s, mel: neural_vocoder.refine_to_mel(s, mel, refinement), spectrum, log_mel)
  parts['whole'] = median_ms(lambda mel: vocoder(mel, keys), log_mel)
  parts['griffin_lim_32'] = median_ms(
      lambda mel: inversion.GriffinLimVocoder(iterations=32)(mel, keys), log_mel)
  return parts


def score_clip(visqol, reference: np.ndarray, estimate: np.ndarray) -> dict:
  return {'mr_stft': reconstruction.multi_resolution_stft_distance(reference, estimate)['total'],
          'mel_distance': reconstruction.mel_distance(
              reference, estimate, contract.SAMPLE_RATE_HZ, num_mels=contract.NUM_MELS,
              fmax_hz=None),
          'visqol': visqol.score(reference, estimate, contract.SAMPLE_RATE_HZ) if visqol else None}


def training_curve(workdir: str) -> list[dict]:
  path = pathlib.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  return [row for row in rows if 'eval/mr_stft' in row]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--vocoder_workdir', default=None)
  parser.add_argument('--dataset_dir', default=None,
                      help='A prepared data set (default: prepare the real music into '
                      'benchmarks/.cache/codec_data)')
  parser.add_argument('--num_clips', type=int, default=6)
  parser.add_argument('--clip_seconds', type=float, default=8.0)
  parser.add_argument('--no_visqol', action='store_true')
  parser.add_argument('--phase_prior_start', choices=neural_vocoder.PHASE_PRIOR_STARTS,
                      default=None,
                      help='At inference, the phase prior from this start (default: the run\'s)')
  parser.add_argument('--phase_prior_iterations', type=int, default=None,
                      help='At inference, this many Griffin-Lim iterations in the phase prior')
  parser.add_argument('--mel_refinement_iterations', type=int, default=None,
                      help='At inference, this many mel refinement steps (default: the run\'s)')
  parser.add_argument('--prepare_only', action='store_true')
  args = parser.parse_args()
  start = time.perf_counter()
  dataset_dir = pathlib.Path(args.dataset_dir) if args.dataset_dir else prepare_data()
  if args.prepare_only:
    print(f'prepared {dataset_dir}')
    return
  if not args.vocoder_workdir:
    sys.exit('vocoder_bench: --vocoder_workdir is required (a configs/vocoder.py run)')
  clip_samples = int(args.clip_seconds * contract.SAMPLE_RATE_HZ) // contract.HOP_LENGTH * (
      contract.HOP_LENGTH)
  held_out = audio_crops.split_audio(str(dataset_dir), records.VALIDATION_SPLIT, clip_samples)
  clips = audio_crops.validation_clips(held_out, clip_samples, args.num_clips)
  names = [path.name for path in held_out.paths[:args.num_clips]]
  phase_prior = None
  if args.phase_prior_start or args.phase_prior_iterations:
    trained = neural_vocoder.phase_prior_of(
        workdir_lib.read_config(args.vocoder_workdir, 'vocoder').model)
    phase_prior = (args.phase_prior_iterations or trained[0],
                   args.phase_prior_start or trained[1])
  vocoder = loading.load_vocoder(args.vocoder_workdir, phase_prior=phase_prior,
                                 mel_refinement_iterations=args.mel_refinement_iterations)
  vocoders = {'vocoder': vocoder, **{f'griffin_lim_{n}': inversion.GriffinLimVocoder(iterations=n)
                                     for n in GRIFFIN_LIM_ITERATIONS}}
  refinement = vocoder.mel_refinement_iterations
  if refinement:  # What the network adds, and what the refinement adds.
    vocoders['vocoder_unrefined'] = loading.load_vocoder(
        args.vocoder_workdir, mel_refinement_iterations=0, phase_prior=phase_prior)
    vocoders[f'griffin_lim_32_refined_{refinement}'] = inversion.GriffinLimVocoder(
        iterations=32, mel_refinement_iterations=refinement)
  visqol = None if args.no_visqol else reconstruction.Visqol()
  rows = {name: [] for name in vocoders}
  speed = {}
  for index, clip in enumerate(clips):
    log_mel = contract.log_mel(clip)
    for name, candidate in vocoders.items():
      if index == 0:
        speed[name] = real_time_factor(candidate, log_mel)
      audio = synthesis.log_mel_to_audio(log_mel[None], seed=index, vocoder=candidate)[0]
      rows[name].append(score_clip(visqol, clip, audio))

  metrics = ('mr_stft', 'mel_distance') + (() if visqol is None else ('visqol',))
  print(f'configs/vocoder.py run {args.vocoder_workdir} at step {vocoder.step} '
        f'({vocoder.config.model.variant}, {refinement} mel refinement steps); '
        f'{len(clips)} held-out clips of '
        f'{args.clip_seconds:.0f} s from {dataset_dir}')
  print(f'{"clip":32s} {"vocoder":16s} ' + ' '.join(f'{m:>12s}' for m in metrics))
  for index, clip_name in enumerate(names):
    for name in vocoders:
      print(f'{clip_name[:32]:32s} {name:16s} ' + ' '.join(
          f'{rows[name][index][m]:12.3f}' for m in metrics))
  mean = {name: {m: float(np.mean([r[m] for r in rows[name]])) for m in metrics}
          for name in vocoders}
  print(f'\n{"mean":32s} {"vocoder":16s} ' + ' '.join(f'{m:>12s}' for m in metrics)
        + f' {"x real time":>12s}')
  for name in vocoders:
    print(f'{"":32s} {name:16s} ' + ' '.join(f'{mean[name][m]:12.3f}' for m in metrics)
          + f' {speed[name]:12.1f}')
  figures = {'vocoder_workdir': os.path.abspath(args.vocoder_workdir), 'step': vocoder.step,
             'variant': vocoder.config.model.variant, 'mel_refinement_iterations': refinement,
             'clips': names,
             'clip_seconds': args.clip_seconds,
             **{f'{m}_{name}': round(mean[name][m], 4) for name in vocoders for m in metrics},
             **{f'x_real_time_{name}': round(speed[name], 1) for name in vocoders}}
  for n in GRIFFIN_LIM_ITERATIONS:
    baseline = f'griffin_lim_{n}'
    figures[f'speedup_vs_{baseline}'] = round(speed['vocoder'] / speed[baseline], 2)
    for m in ('mr_stft', 'mel_distance'):
      figures[f'{m}_ratio_vs_{baseline}'] = round(mean[baseline][m] / mean['vocoder'][m], 3)
      figures[f'{m}_clips_worse_than_{baseline}'] = sum(
          v[m] > g[m] for v, g in zip(rows['vocoder'], rows[baseline]))
    if visqol is not None:
      figures[f'visqol_minus_{baseline}'] = round(mean['vocoder']['visqol']
                                                  - mean[baseline]['visqol'], 3)
  first_log_mel = contract.log_mel(clips[0])
  parts = time_parts(vocoder, first_log_mel)
  audio_s = contract.frames_to_seconds(len(first_log_mel) - 1)
  print(f'\nwhere the vocoder\'s time goes ({audio_s:.1f} s clip, each part compiled alone):')
  for part, ms in parts.items():
    print(f'  {part:28s} {ms:8.1f} ms  {1000 * audio_s / ms:6.1f}x real time')
  figures['time_ms'] = {part: round(ms, 1) for part, ms in parts.items()}
  curve = training_curve(args.vocoder_workdir)
  if curve:
    # Runs that refine at inference also score the network's own output.
    unrefined = all('eval/unrefined_mr_stft' in row for row in curve)
    print(f'\ntraining curve (validation clips of the run\'s own data set):\n'
          f'{"step":>7s} {"MR-STFT":>8s} {"GL-32":>8s} {"vs GL":>6s} {"mel dist":>9s} {"GL-32":>8s}'
          + (f' {"unrefined":>9s} {"vs GL":>6s}' if unrefined else ''))
    for row in curve:
      print(f'{row["step"]:7d} {row["eval/mr_stft"]:8.3f} {row["eval/griffin_lim_mr_stft"]:8.3f} '
            f'{row["eval/mr_stft_vs_griffin_lim"]:6.3f} '
            f'{row["eval/mel_distance"]:9.3f} {row["eval/griffin_lim_mel_distance"]:8.3f}'
            + (f' {row["eval/unrefined_mr_stft"]:9.3f} '
               f'{row["eval/unrefined_mr_stft_vs_griffin_lim"]:6.3f}' if unrefined else ''))
    figures['training_curve'] = [
        {'step': row['step'], 'mr_stft': round(row['eval/mr_stft'], 4),
         'mel_distance': round(row['eval/mel_distance'], 4),
         **({'unrefined_mr_stft': round(row['eval/unrefined_mr_stft'], 4)} if unrefined else {})}
        for row in curve]
  figures['wall_s'] = round(time.perf_counter() - start, 1)
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
