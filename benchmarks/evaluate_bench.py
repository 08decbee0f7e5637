r"""`python -m melodygan_jax.evaluate` on real music: every figure, time and memory.

  python benchmarks/evaluate_bench.py [--music_dir=DIR ...] [--max_clips=200]
      [--small_max_clips=60] [--clip_seconds=6] [--num_visqol=8] [--num_resamples=200]
      [--vqvae_workdir=DIR --gan_workdir=DIR]

1. Prepares the music folders (by default the two Debian soundtracks) into
   benchmarks/.cache/evaluate/data with 30% of the files held out (prepare's
   --validation_fraction=0.3), once.
2. Without --vqvae_workdir/--gan_workdir: trains the demo's recipe on it once,
   configs/vqvae_tiny.py for 3,000 steps and configs/gan_tiny.py for 2,000.
3. Runs evaluate with --max_clips and with --small_max_clips (a child process
   each; peak resident memory from the kernel): figures from the larger run,
   and whether memory grows with the number of clips.
4. Prints every figure with its interval; says whether the real-vs-real floor
   and the i.i.d.-codes baseline intervals are disjoint for FAD∞ and KAD and
   where the GAN sits between them; time and memory per hour of audio.
Ends with one JSON line of the figures.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = ROOT / 'benchmarks' / '.cache' / 'evaluate'
DEFAULT_MUSIC_DIRS = ('/work/music/x/usr/share/games/singularity/music',
                      '/work/music/x/usr/share/scummvm/drascula/audio')
SETS = ('floor', 'vqvae_reconstruction', 'griffin_lim', 'gan', 'baseline_iid',
        'baseline_uniform')
GENERATION_FIGURES = ('fad', 'fad_infinity', 'fad_infinity_r2', 'kad', 'frechet_mfcc',
                      'frechet_encoder', 'too_close_to_training_share')
RECONSTRUCTION_FIGURES = ('visqol', 'mr_stft_distance', 'mel_distance')


def environment() -> dict:
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL='2')
  # Many small BLAS calls: two OpenBLAS threads on a shared 2-core CPU spin against each other.
  env.setdefault('OPENBLAS_NUM_THREADS', '1')
  return env


def run_module(*args: str) -> None:
  subprocess.run([sys.executable, '-m', *args], cwd=ROOT, env=environment(), check=True)


def prepared(music_dirs) -> pathlib.Path:
  data = CACHE / 'data'
  if not (data / 'stats.json').exists():
    music = CACHE / 'music'
    music.mkdir(parents=True, exist_ok=True)
    for folder in music_dirs:  # prepare follows links to folders.
      link = music / pathlib.Path(folder).parent.name
      if not link.exists():
        link.symlink_to(folder)
    run_module('data_prep.prepare', f'--input_dir={music}', f'--output_dir={data}',
               '--validation_fraction=0.3')
  return data


def trained(data: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  vqvae, gan = CACHE / 'vqvae_3000', CACHE / 'gan_2000'
  if not (vqvae / 'checkpoints' / '3000').exists():
    run_module('melodygan_jax.train', '--config=configs/vqvae_tiny.py', f'--workdir={vqvae}',
               f'--config.data.dataset_dir={data}')
  if not (gan / 'checkpoints' / '2000').exists():
    run_module('melodygan_jax.train', '--config=configs/gan_tiny.py', f'--workdir={gan}',
               f'--config.vqvae_workdir={vqvae}')
  return vqvae, gan


def evaluate(vqvae, gan, data, output: pathlib.Path, args, max_clips: int) -> dict:
  """One evaluate run in a child process: its metrics, wall seconds and peak RSS."""
  command = [sys.executable, '-m', 'melodygan_jax.evaluate', f'--vqvae_workdir={vqvae}',
             f'--gan_workdir={gan}', f'--data_dir={data}', f'--output={output}',
             f'--max_clips={max_clips}', f'--clip_seconds={args.clip_seconds}',
             f'--num_visqol={args.num_visqol}', f'--num_resamples={args.num_resamples}']
  started = time.perf_counter()
  child = subprocess.Popen(command, cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL)
  _, status, usage = os.wait4(child.pid, 0)
  if status:
    raise SystemExit(f'evaluate failed ({status}): {" ".join(command)}')
  metrics = json.loads(output.read_text())
  # CPU seconds beside wall time: on a shared machine the wall clock measures the neighbours.
  return {'metrics': metrics, 'wall_s': time.perf_counter() - started,
          'cpu_s': usage.ru_utime + usage.ru_stime,
          'peak_rss_mb': usage.ru_maxrss / 1024.0, 'command': ' '.join(command)}


def audio_hours(metrics: dict, clip_seconds: float) -> float:
  """Hours of audio analysed: reference half, the six compared sets, training clips."""
  clips = metrics['audio/num_clips'] * (1 + len([s for s in SETS if f'{s}/num_clips' in metrics]))
  return (clips + metrics['audio/num_training_clips']) * clip_seconds / 3600.0


def show(value) -> str:
  if isinstance(value, dict):
    return f'{value["value"]:.4g} [{value["low"]:.4g}, {value["high"]:.4g}]'
  return f'{value:.4g}' if isinstance(value, float) else str(value)


def disjoint(a: dict, b: dict) -> bool:
  return a['high'] < b['low'] or b['high'] < a['low']


def report(run: dict, small: dict | None, args) -> dict:
  metrics = run['metrics']
  print(f'\n{run["command"]}\n')
  print('| set | ' + ' | '.join(GENERATION_FIGURES) + ' |')
  print('| --- |' + ' ---: |' * len(GENERATION_FIGURES))
  for name in SETS:
    print(f'| {name} | ' + ' | '.join(show(metrics.get(f'{name}/{figure}', '')) for figure
                                      in GENERATION_FIGURES) + ' |')
  print('\n| reconstruction | ' + ' | '.join(RECONSTRUCTION_FIGURES) + ' |')
  print('| --- |' + ' ---: |' * len(RECONSTRUCTION_FIGURES))
  for name in ('vqvae_reconstruction', 'griffin_lim'):
    print(f'| {name} | ' + ' | '.join(show(metrics[f'{name}/{figure}'])
                                      for figure in RECONSTRUCTION_FIGURES) + ' |')
  print('\nall figures:')
  width = max(len(name) for name in metrics)
  for name, value in metrics.items():
    print(f'  {name:{width}s} {show(value)}')
  summary = {'num_clips_per_set': metrics['audio/num_clips'],
             'clip_seconds': metrics['audio/clip_seconds']}
  print()
  for figure in ('fad_infinity', 'kad'):
    floor, iid, gan = (metrics[f'{name}/{figure}'] for name in ('floor', 'baseline_iid', 'gan'))
    separated = disjoint(floor, iid)
    place = ('overlaps the floor' if not disjoint(gan, floor) else
             'overlaps the i.i.d. baseline' if not disjoint(gan, iid) else
             'between floor and i.i.d.' if floor['value'] < gan['value'] < iid['value'] else
             'beyond the i.i.d. baseline' if gan['value'] > iid['value'] else 'below the floor')
    print(f'{figure}: floor and i.i.d. intervals {"disjoint" if separated else "OVERLAP"}; '
          f'GAN {place}')
    summary[f'{figure}_floor_iid_disjoint'] = separated
    summary[f'{figure}_gan_place'] = place
  hours = audio_hours(metrics, args.clip_seconds)
  summary.update({'wall_s': run['wall_s'], 'cpu_s': run['cpu_s'],
                  'peak_rss_mb': run['peak_rss_mb'], 'audio_hours_analysed': hours,
                  'wall_s_per_audio_hour': run['wall_s'] / hours,
                  'cpu_s_per_audio_hour': run['cpu_s'] / hours})
  print(f'time: {run["wall_s"]:.0f} s wall, {run["cpu_s"]:.0f} s CPU for {hours * 60:.1f} min '
        f'of audio analysed ({run["wall_s"] / hours:.0f} s wall, {run["cpu_s"] / hours:.0f} s '
        f'CPU per hour); peak RSS {run["peak_rss_mb"]:.0f} MB')
  if small is not None:
    small_hours = audio_hours(small['metrics'], args.clip_seconds)
    print(f'--max_clips={args.small_max_clips}: {small["wall_s"]:.0f} s wall, '
          f'{small["cpu_s"]:.0f} s CPU for {small_hours * 60:.1f} min, peak RSS '
          f'{small["peak_rss_mb"]:.0f} MB')
    summary.update({'small_wall_s': small['wall_s'], 'small_cpu_s': small['cpu_s'],
                    'small_peak_rss_mb': small['peak_rss_mb'],
                    'small_audio_hours_analysed': small_hours})
  for name in SETS:
    for figure in ('fad', 'fad_infinity', 'kad'):
      if f'{name}/{figure}' in metrics:
        summary[f'{name}/{figure}'] = metrics[f'{name}/{figure}']
  for name in ('vqvae_reconstruction', 'griffin_lim'):
    for figure in RECONSTRUCTION_FIGURES:
      summary[f'{name}/{figure}'] = metrics[f'{name}/{figure}']
  return summary


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--music_dir', action='append', help='default: the Debian soundtracks')
  parser.add_argument('--vqvae_workdir')
  parser.add_argument('--gan_workdir')
  parser.add_argument('--max_clips', type=int, default=200)
  parser.add_argument('--small_max_clips', type=int, default=60, help='0: skip that run')
  parser.add_argument('--clip_seconds', type=float, default=6.0)
  parser.add_argument('--num_visqol', type=int, default=8)
  parser.add_argument('--num_resamples', type=int, default=200)
  args = parser.parse_args()
  data = prepared(args.music_dir or DEFAULT_MUSIC_DIRS)
  if args.vqvae_workdir and args.gan_workdir:
    vqvae, gan = args.vqvae_workdir, args.gan_workdir
  else:
    vqvae, gan = trained(data)
  small = (evaluate(vqvae, gan, data, CACHE / 'metrics_small.json', args, args.small_max_clips)
           if args.small_max_clips else None)
  run = evaluate(vqvae, gan, data, CACHE / 'metrics.json', args, args.max_clips)
  print(json.dumps(report(run, small, args)))


if __name__ == '__main__':
  main()
