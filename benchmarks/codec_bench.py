"""The codec on held-out real music: rate-distortion, codebook use, ViSQOL.

  python benchmarks/codec_bench.py [--steps=2000] [--num_excerpts=3] [--excerpt_seconds=30]
      [--lr_warmup_steps=N] [--adversarial_start_step=N]   # shorter budgets
      [--override=loss.spectral_convergence_weight=2 ...]  # any config field, repeatable
      [--vocoder_workdir=DIR]  # also reconstruct through a trained vocoder

Prepares the Debian game soundtracks (benchmarks/real_music.py; singularity-music
and drascula-music, ~108 min of 44.1/48 kHz OGG, none of it the demo corpus)
with data_prep.prepare into benchmarks/.cache/codec_data (held-out split by
file: 15% of the files), trains configs/vqvae.py for --steps steps in
benchmarks/.cache/codec_run (a re-run resumes or reuses it), then reports on
the held-out split:
  - mel spectral convergence and log-mel L1 of the VQ-VAE's reconstruction,
    decoding the first 1, 2, 4, ... levels (the rate-distortion table; one
    model, trained with quantizer dropout), with the bit rate of each;
  - codebook usage of every level;
  - on --num_excerpts held-out excerpts of --excerpt_seconds: `reconstruct`
    (codec + 32-iteration fast Griffin-Lim) and Griffin-Lim from the true mel
    (the floor the codec cannot beat with this inversion), against the
    loudness-normalized original: ViSQOL v3 (audio mode, 48 kHz, MOS-LQO 1-5,
    visqol-python), mel spectral convergence of the re-analysed audio and the
    multi-resolution STFT distance (spectral convergence + log-magnitude L1,
    evaluation/reconstruction.py: FFT 512/1024/2048).
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

import numpy as np  # pylint: disable=wrong-import-position

import real_music  # pylint: disable=wrong-import-position
from data_prep import prepare  # pylint: disable=wrong-import-position
from melodygan_jax.audio import audio_io  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.audio import inversion  # pylint: disable=wrong-import-position
from melodygan_jax.audio import spectral_metrics  # pylint: disable=wrong-import-position
from melodygan_jax.audio import synthesis  # pylint: disable=wrong-import-position
from melodygan_jax.data import input_pipeline  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import reconstruction  # pylint: disable=wrong-import-position
from melodygan_jax.data import records  # pylint: disable=wrong-import-position
from melodygan_jax.generation import reconstruct  # pylint: disable=wrong-import-position
from melodygan_jax.runs import loading  # pylint: disable=wrong-import-position
from melodygan_jax.runs import workdir as workdir_lib  # pylint: disable=wrong-import-position


CACHE = ROOT / 'benchmarks' / '.cache'


def music_folder() -> pathlib.Path:
  """Both soundtracks as one input folder of links (prepare reads files, not linked folders)."""
  folder = CACHE / 'codec_music'
  for package in ('singularity-music', 'drascula-music'):
    source = (pathlib.Path(os.environ['MELODYGAN_MUSIC_DIR']) / package
              if os.environ.get('MELODYGAN_MUSIC_DIR') else None)
    source = source if source and source.is_dir() else real_music.package_dir(package)
    target = folder / package.split('-')[0]
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob('*.ogg')):
      link = target / path.name
      if not link.exists():
        link.symlink_to(path)
  return folder


def prepare_data(folder: pathlib.Path) -> pathlib.Path:
  output = CACHE / 'codec_data'
  prepare.prepare(prepare.PrepareOptions(
      input_dir=str(folder), output_dir=str(output), validation_fraction=0.15,
      num_workers=2, show_progress=False))  # Cached: a re-run redoes nothing.
  return output


def train(data_dir: pathlib.Path, steps: int, overrides: list[str],
          train_further: bool = True) -> pathlib.Path:
  """Trains configs/vqvae.py (resuming); one workdir per step budget and overrides."""
  fields = [override.split('=', 1) for override in overrides]  # --config.a.b=v -> b, v
  name = '_'.join([f'codec_run_{steps}'] + [key.split('.')[-1] + value for key, value in fields])
  workdir = CACHE / name
  if train_further and workdir_lib.latest_step(str(workdir)) != steps:
    subprocess.run([sys.executable, '-m', 'melodygan_jax.train', '--config=configs/vqvae.py',
                    f'--workdir={workdir}', f'--config.data.dataset_dir={data_dir}',
                    f'--config.train.num_steps={steps}', f'--config.train.eval_every_steps={steps}',
                    f'--config.train.checkpoint_every_steps={max(steps // 8, 1)}',
                    '--config.train.log_every_steps=25', *overrides], cwd=ROOT, check=True)
  return workdir


def level_counts(num_levels: int) -> list[int]:
  """1, 2, 4, ... and all."""
  counts = [1]
  while counts[-1] * 2 < num_levels:
    counts.append(counts[-1] * 2)
  return counts + [num_levels] if counts[-1] != num_levels else counts


def held_out_rate_distortion(vqvae: loading.LoadedVQVAE, data_dir: pathlib.Path) -> dict:
  """Per level count: mean mel SC and log-mel L1 over held-out segments; usage per level."""
  meta = input_pipeline.load_dataset_meta(str(data_dir))
  data = vqvae.config.data
  data.dataset_dir = str(data_dir)
  counts = level_counts(vqvae.num_levels)
  sums = {n: [0.0, 0.0] for n in counts}
  code_counts = np.zeros((vqvae.num_levels, vqvae.codebook_size))
  segment_codes = []
  num_segments = 0
  for batch in input_pipeline.sequential_batches(data, meta, records.VALIDATION_SPLIT, 32,
                                                 crop_frames=meta.segment_frames):
    mel = batch['mel'][batch['weight'] > 0]
    codes = np.asarray(vqvae.jit_encode_to_codes(vqvae.state, mel))
    segment_codes.extend(codes)
    for level in range(vqvae.num_levels):
      code_counts[level] += np.bincount(codes[..., level].reshape(-1),
                                        minlength=vqvae.codebook_size)
    target = vqvae.denormalize(mel, 'mix')
    for n in counts:
      estimate = vqvae.codes_to_log_mel(codes[..., :n], 'mix')
      sums[n][0] += float(np.sum(spectral_metrics.spectral_convergence(target, estimate)))
      sums[n][1] += float(np.sum(np.mean(np.abs(target - estimate), axis=(1, 2))))
    num_segments += len(mel)
  return {'num_segments': num_segments,
          'levels': {n: {'bits_per_second': vqvae.bits_per_second(n),
                         'mel_spectral_convergence': sc / num_segments,
                         'log_mel_l1': l1 / num_segments} for n, (sc, l1) in sums.items()},
          'codebook_usage_per_level': (code_counts > 0).mean(axis=1).tolist(),
          'segment_codes': segment_codes}


def codebook_usage(segments: list, num_segments: int, codebook_size: int) -> np.ndarray:
  """Share of each level's codes used by `num_segments` evenly spaced segments' codes."""
  chosen = np.stack([segments[i] for i in
                     np.linspace(0, len(segments) - 1, num_segments).round().astype(int)])
  return np.asarray([len(np.unique(chosen[..., level])) / codebook_size
                     for level in range(chosen.shape[-1])])


def training_sample_usage(vqvae: loading.LoadedVQVAE, data_dir: pathlib.Path,
                          held_out_codes: list, num_files: int) -> tuple[np.ndarray, np.ndarray]:
  """Codebook usage per level on samples of training files, beside held-out samples as large.

  The training files, sorted by source, are cut into groups of `num_files`
  (the held-out split's file count); of each group, as many segments as the
  held-out split has (all, if it has fewer), evenly spaced, are counted, and
  the same number of held-out segments beside them. Equal usage
  says a code the held-out files leave unused is one that any few songs leave
  unused, not one the model overfitted to its training songs.

  Returns:
    ([groups, levels] training usage, [groups, levels] held-out usage at the same sizes).
  """
  meta = input_pipeline.load_dataset_meta(str(data_dir))
  data = vqvae.config.data
  data.dataset_dir = str(data_dir)
  codes_by_file = {}
  for batch in input_pipeline.sequential_batches(data, meta, records.TRAIN_SPLIT, 32,
                                                 crop_frames=meta.segment_frames,
                                                 with_positions=True):
    real = batch['weight'] > 0
    codes = np.asarray(vqvae.jit_encode_to_codes(vqvae.state, batch['mel'][real]))
    for key, segment_codes in zip(map(tuple, batch['source_key'][real]), codes):
      codes_by_file.setdefault(key, []).append(segment_codes)
  files = sorted(codes_by_file)
  training, held_out = [], []
  for first in range(0, len(files) - num_files + 1, num_files):
    segments = [c for key in files[first:first + num_files] for c in codes_by_file[key]]
    size = min(len(segments), len(held_out_codes))
    training.append(codebook_usage(segments, size, vqvae.codebook_size))
    held_out.append(codebook_usage(held_out_codes, size, vqvae.codebook_size))
  return np.asarray(training), np.asarray(held_out)


def held_out_excerpts(data_dir: pathlib.Path, folder: pathlib.Path, count: int,
                      seconds: float) -> list[pathlib.Path]:
  """The first `count` held-out files long enough, sorted by name."""
  stats = json.loads((data_dir / records.STATS_FILENAME).read_text())
  held_out = sorted(source for source, split in stats['splits'].items()
                    if split == records.VALIDATION_SPLIT)
  return [folder / source for source in held_out
          if audio_io.soundfile.info(str(folder / source)).duration >= seconds + 10][:count]


def listening_scores(workdir: pathlib.Path, files, seconds: float,
                     vocoder_workdir: str | None = None) -> list[dict]:
  """ViSQOL, re-analysed mel SC and MR-STFT of reconstruct (and of reconstruct through the
  vocoder of `vocoder_workdir`) and of Griffin-Lim from the true mel."""
  visqol = reconstruction.Visqol()

  def score(reference, estimate):
    reference, estimate = reconstruction.trim_to_common_length(reference, estimate)
    return {'visqol': visqol.score(reference, estimate, contract.SAMPLE_RATE_HZ),
            'mel_spectral_convergence': spectral_metrics.audio_spectral_convergence(
                estimate, contract.log_mel(reference)),
            'mr_stft': reconstruction.multi_resolution_stft_distance(
                reference, estimate)['total']}

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for path in files:
      samples = audio_io.read_mono(path)
      start = (len(samples) - int(seconds * contract.SAMPLE_RATE_HZ)) // 2  # The middle.
      excerpt_path = pathlib.Path(tmp) / 'excerpt.wav'
      audio_io.write_wav(excerpt_path, samples[start:start + int(seconds * contract.SAMPLE_RATE_HZ)])
      reference = reconstruct.prepare_input(str(excerpt_path))  # What reconstruct starts from.
      output_path = pathlib.Path(tmp) / 'codec.wav'
      reconstruct.reconstruct_file(str(workdir), str(excerpt_path), str(output_path))
      codec = audio_io.read_mono(output_path)
      floor = synthesis.log_mel_to_audio(contract.log_mel(reference)[None],
                                         vocoder=inversion.GriffinLimVocoder(iterations=32))[0]
      rows.append({'file': str(path.relative_to(path.parents[1])),
                   'codec': score(reference, codec), 'griffin_lim_true_mel': score(reference, floor)})
      if vocoder_workdir:
        reconstruct.reconstruct_file(str(workdir), str(excerpt_path), str(output_path),
                                     vocoder_workdir=vocoder_workdir)
        rows[-1]['codec_vocoder'] = score(reference, audio_io.read_mono(output_path))
  return rows


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--num_excerpts', type=int, default=3)
  parser.add_argument('--excerpt_seconds', type=float, default=30.0)
  parser.add_argument('--lr_warmup_steps', type=int, default=None,
                      help='config.train.warmup_steps (default: the config\'s)')
  parser.add_argument('--adversarial_start_step', type=int, default=None,
                      help='config.loss.adversarial_start_step (default: the config\'s)')
  parser.add_argument('--override', action='append', default=[],
                      help='A config field=value for the run, e.g. loss.spectral_convergence_weight=2 '
                           '(repeatable; the run gets its own workdir)')
  parser.add_argument('--vocoder_workdir', default=None,
                      help='A finished configs/vocoder.py run: also reconstruct through it.')
  parser.add_argument('--no_train', action='store_true',
                      help='Evaluate the latest checkpoint of the run as it is.')
  args = parser.parse_args()
  overrides = []
  if args.lr_warmup_steps is not None:
    overrides.append(f'--config.train.warmup_steps={args.lr_warmup_steps}')
  if args.adversarial_start_step is not None:
    overrides.append(f'--config.loss.adversarial_start_step={args.adversarial_start_step}')
  overrides += [f'--config.{override}' for override in args.override]
  start = time.perf_counter()
  folder = music_folder()
  data_dir = prepare_data(folder)
  workdir = train(data_dir, args.steps, overrides, train_further=not args.no_train)
  vqvae = loading.load_vqvae(str(workdir))
  distortion = held_out_rate_distortion(vqvae, data_dir)
  files = held_out_excerpts(data_dir, folder, args.num_excerpts, args.excerpt_seconds)
  excerpts = listening_scores(workdir, files, args.excerpt_seconds, args.vocoder_workdir)
  kinds = tuple(kind for kind in ('codec', 'codec_vocoder', 'griffin_lim_true_mel')
                if kind in excerpts[0])

  print(f'configs/vqvae.py after {vqvae.step} steps, {distortion["num_segments"]} held-out '
        f'segments of {len(json.loads((data_dir / "stats.json").read_text())["splits"])} files')
  print(f'{"levels":>6s} {"bit/s":>8s} {"mel SC":>8s} {"log-mel L1":>11s}')
  for n, row in distortion['levels'].items():
    print(f'{n:6d} {row["bits_per_second"]:8.0f} {row["mel_spectral_convergence"]:8.3f} '
          f'{row["log_mel_l1"]:11.3f}')
  usage = distortion['codebook_usage_per_level']
  print('codebook usage per level: ' + ' '.join(f'{u:.0%}' for u in usage))
  num_held_out_files = sum(split == records.VALIDATION_SPLIT for split in
                           json.loads((data_dir / 'stats.json').read_text())['splits'].values())
  sample_usage, held_out_usage = training_sample_usage(
      vqvae, data_dir, distortion['segment_codes'], num_held_out_files)
  print(f'on {len(sample_usage)} groups of {num_held_out_files} training files (up to '
        f'{distortion["num_segments"]} segments each), mean: ' +
        ' '.join(f'{u:.0%}' for u in sample_usage.mean(0)) +
        '\n  held-out segments, as many as each group (mean): ' +
        ' '.join(f'{u:.0%}' for u in held_out_usage.mean(0)))
  print(f'\n{"held-out excerpt":34s} {"":22s} {"ViSQOL":>7s} {"mel SC":>7s} {"MR-STFT":>8s}')
  for row in excerpts:
    for kind in kinds:
      scores = row[kind]
      print(f'{row["file"]:34s} {kind:22s} {scores["visqol"]:7.2f} '
            f'{scores["mel_spectral_convergence"]:7.3f} {scores["mr_stft"]:8.3f}')
  mean = lambda kind, name: float(np.mean([row[kind][name] for row in excerpts]))
  full = distortion['levels'][vqvae.num_levels]
  figures = {
      'steps': vqvae.step, 'overrides': overrides, 'bits_per_second': round(full['bits_per_second'], 1),
      'mel_spectral_convergence': round(full['mel_spectral_convergence'], 4),
      'log_mel_l1': round(full['log_mel_l1'], 4),
      'codebook_usage_min': round(min(usage), 4),
      'codebook_usage_per_level': [round(u, 4) for u in usage],
      'training_groups_codebook_usage_per_level': [round(float(u), 4)
                                                   for u in sample_usage.mean(0)],
      'held_out_same_size_codebook_usage_per_level': [round(float(u), 4)
                                                      for u in held_out_usage.mean(0)],
      'rate_distortion': {str(n): {k: round(v, 4) for k, v in row.items()}
                          for n, row in distortion['levels'].items()},
      'visqol_codec': round(mean('codec', 'visqol'), 3),
      'visqol_griffin_lim_true_mel': round(mean('griffin_lim_true_mel', 'visqol'), 3),
      'audio_mel_sc_codec': round(mean('codec', 'mel_spectral_convergence'), 4),
      'audio_mel_sc_griffin_lim_true_mel': round(
          mean('griffin_lim_true_mel', 'mel_spectral_convergence'), 4),
      'mr_stft_codec': round(mean('codec', 'mr_stft'), 4),
      'mr_stft_griffin_lim_true_mel': round(mean('griffin_lim_true_mel', 'mr_stft'), 4),
      **({'visqol_codec_vocoder': round(mean('codec_vocoder', 'visqol'), 3),
          'audio_mel_sc_codec_vocoder': round(mean('codec_vocoder', 'mel_spectral_convergence'), 4),
          'mr_stft_codec_vocoder': round(mean('codec_vocoder', 'mr_stft'), 4)}
         if 'codec_vocoder' in kinds else {}),
      'excerpts': [row['file'] for row in excerpts],
      'wall_s': round(time.perf_counter() - start, 1),
  }
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
