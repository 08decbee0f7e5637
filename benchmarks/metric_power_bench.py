r"""What each evaluation metric can and cannot see, on real music damaged in known ways.

  python benchmarks/metric_power_bench.py [--num_clips=120] [--clip_seconds=10] \
      [--num_resamples=200] [--c2st_steps=300] [--seed=0]

Real clips of the two Debian soundtracks (benchmarks/real_music.py) are cut
from every file in turn and split by file into half A (the reference) and
half B (the floor). Half B is then damaged three ways
(melodygan_jax/evaluation/corruptions.py): 0.2 s blocks shuffled (timbre kept,
beat and phrases gone), each 0.5 s pitch-shifted by +-1..3 semitones (beat
kept, harmony gone), and a stationary texture with the clip's mean spectrum
(only the long-term spectrum kept). For each metric and each damaged set the
table says whether the set is significantly apart from the undamaged floor:
  fad, kad, c2st_auc   the set's 95% bootstrap interval against half A does not
                       overlap the floor's
  profile entries      a two-sided permutation test of the set's clip values
                       against the floor's, p < 0.05
Prints the table and ends with one JSON line of the figures (the time is
each step's CPU seconds).
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

from melodygan_jax.audio import audio_io  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.audio import music_structure  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import corruptions  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import distances  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import embeddings  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import music_profile  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import two_sample  # pylint: disable=wrong-import-position
import real_music  # pylint: disable=wrong-import-position

SETS = ('floor',) + corruptions.CORRUPTIONS
PACKAGES = ('drascula-music', 'singularity-music')


def real_clips(num_clips: int, clip_seconds: float):
  """[num_clips, samples] clips taken round-robin over the files, and each clip's file index.

  From each file, clips start at its middle and go outwards, so a long file
  does not give only its intro.
  """
  clip_samples = int(round(clip_seconds * contract.SAMPLE_RATE_HZ))
  # Four times the audio needed: more files, so each half holds several songs.
  paths = real_music.music_files(num_clips * clip_seconds * 4, PACKAGES)
  per_file = []
  for path in paths:
    samples = audio_io.read_mono(path)
    count = len(samples) // clip_samples
    if count == 0:
      continue
    offset = (len(samples) - count * clip_samples) // 2
    order = np.argsort(np.abs(np.arange(count) - (count - 1) / 2), kind='stable')
    per_file.append([samples[offset + i * clip_samples:offset + (i + 1) * clip_samples]
                     for i in order])
  clips, groups = [], []
  for turn in range(max(len(file_clips) for file_clips in per_file)):
    for index, file_clips in enumerate(per_file):
      if turn < len(file_clips) and len(clips) < num_clips:
        clips.append(file_clips[turn])
        groups.append(index)
  return np.stack(clips).astype(np.float32), np.array(groups)


def halves_by_file(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Clip indices of half A and half B: whole files to each, equal sizes."""
  order = np.random.default_rng(seed).permutation(np.unique(groups))
  half_a, half_b = [], []
  for label in order:
    members = list(np.flatnonzero(groups == label))
    (half_a if len(half_a) <= len(half_b) else half_b).extend(members)
  size = min(len(half_a), len(half_b))
  return np.sort(half_a)[:size], np.sort(half_b)[:size]


def log_mel_patches(clips: np.ndarray, patches_per_clip: int) -> np.ndarray:
  return np.stack([two_sample.log_mel_patches(contract.log_mel(clip), patches_per_clip)
                   for clip in clips])


def disjoint(a: distances.Interval, b: distances.Interval) -> bool:
  return a.high < b.low or b.high < a.low


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--num_clips', type=int, default=120, help='Real clips, both halves.')
  parser.add_argument('--clip_seconds', type=float, default=10.0)
  parser.add_argument('--num_resamples', type=int, default=200)
  parser.add_argument('--num_permutations', type=int, default=2000)
  parser.add_argument('--c2st_steps', type=int, default=two_sample.TwoSampleOptions.num_steps)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--keep_patch_mean', action='store_true',
                      help='C2ST on patches with their mean spectrum (sees timbre too)')
  args = parser.parse_args()
  seconds = {}

  started = time.process_time()
  clips, groups = real_clips(args.num_clips, args.clip_seconds)
  half_a, half_b = halves_by_file(groups, args.seed)
  seconds['read'] = time.process_time() - started
  rng = np.random.default_rng(args.seed)
  audio = {'reference': clips[half_a], 'floor': clips[half_b]}
  for name in corruptions.CORRUPTIONS:
    started = time.process_time()
    audio[name] = np.stack([corruptions.corrupt(name, clip, rng) for clip in audio['floor']])
    seconds[f'corrupt_{name}'] = time.process_time() - started

  embedder = embeddings.Embedder(batch_size=16)
  started = time.process_time()
  embedded = {name: embedder.embed(clips_, contract.SAMPLE_RATE_HZ)
              for name, clips_ in audio.items()}
  seconds['musicnn'] = time.process_time() - started
  started = time.process_time()
  profiles = {name: music_structure.profiles(clips_) for name, clips_ in audio.items()}
  seconds['profile'] = time.process_time() - started
  options = two_sample.TwoSampleOptions(num_steps=args.c2st_steps,
                                        num_resamples=args.num_resamples, seed=args.seed,
                                        remove_patch_mean=not args.keep_patch_mean)
  started = time.process_time()
  patches = {name: log_mel_patches(clips_, options.patches_per_clip)
             for name, clips_ in audio.items()}
  tester = two_sample.TwoSampleTester(patches['reference'], groups[half_a], options)
  c2st = {name: tester.test(patches[name], groups[half_b], seed_offset=offset).auc
          for offset, name in enumerate(SETS)}
  seconds['c2st'] = time.process_time() - started

  bandwidth = distances.median_pairwise_distance(embedded['reference'])
  figures = {}
  for name in SETS:
    figures[name] = {
        'fad': distances.fad_interval(embedded['reference'], embedded[name],
                                      num_resamples=args.num_resamples, seed=args.seed),
        'kad': distances.kad_interval(embedded['reference'], embedded[name],
                                      bandwidth=bandwidth, num_resamples=args.num_resamples,
                                      seed=args.seed),
        'c2st_auc': c2st[name]}
  audio_hours = sum(len(clips_) for clips_ in audio.values()) * args.clip_seconds / 3600.0

  print(f'{len(half_a)} reference clips (half A) and {len(half_b)} floor clips (half B) of '
        f'{args.clip_seconds:g} s, from {len(np.unique(groups))} files; every damaged set is '
        'half B damaged.\n')
  print('| metric | floor | ' + ' | '.join(corruptions.CORRUPTIONS) + ' |')
  print('| --- | ---: |' + ' ---: |' * len(corruptions.CORRUPTIONS))
  summary = {'num_clips_per_set': int(len(half_b)), 'clip_seconds': args.clip_seconds}
  for metric in ('fad', 'kad', 'c2st_auc'):
    floor = figures['floor'][metric]
    cells = []
    for name in corruptions.CORRUPTIONS:
      interval = figures[name][metric]
      apart = disjoint(interval, floor)
      cells.append(f'{interval.value:.3g} [{interval.low:.3g}, {interval.high:.3g}] '
                   f'{"**apart**" if apart else "same"}')
      summary[f'{name}/{metric}'] = {'value': interval.value, 'low': interval.low,
                                     'high': interval.high, 'apart_from_floor': apart}
    summary[f'floor/{metric}'] = {'value': floor.value, 'low': floor.low, 'high': floor.high}
    print(f'| {metric} | {floor.value:.3g} [{floor.low:.3g}, {floor.high:.3g}] | '
          + ' | '.join(cells) + ' |')
  for column, entry in enumerate(music_structure.PROFILE_ENTRIES):
    floor_values = profiles['floor'][:, column]
    if not np.isfinite(floor_values).any():
      print(f'| {entry} | null | ' + ' | '.join(['null'] * len(corruptions.CORRUPTIONS)) + ' |')
      continue
    cells = []
    for name in corruptions.CORRUPTIONS:
      values = profiles[name][:, column]
      p_value = music_profile.permutation_p_value(values, floor_values, args.num_permutations,
                                                  args.seed)
      apart = bool(p_value < 0.05)
      cells.append(f'{np.nanmean(values):.3g} (p {p_value:.3g}) '
                   f'{"**apart**" if apart else "same"}')
      summary[f'{name}/{entry}'] = {'value': float(np.nanmean(values)),
                                    'p_value': float(p_value), 'apart_from_floor': apart}
    summary[f'floor/{entry}'] = float(np.nanmean(floor_values))
    print(f'| {entry} | {np.nanmean(floor_values):.3g} | ' + ' | '.join(cells) + ' |')
  summary['cpu_s'] = seconds
  summary['profile_cpu_s_per_audio_hour'] = seconds['profile'] / audio_hours
  summary['c2st_cpu_s'] = seconds['c2st']
  print(f'\nCPU seconds: {json.dumps({k: round(v, 1) for k, v in seconds.items()})}; the '
        f'profile costs {summary["profile_cpu_s_per_audio_hour"]:.0f} CPU s per hour of audio, '
        f'C2ST {seconds["c2st"]:.0f} CPU s for {len(SETS)} sets')
  print(json.dumps(summary))


if __name__ == '__main__':
  main()
