"""A set's music profile: clip values of audio/music_structure.py beside the real floor's.

Per entry: the set's mean with a bootstrap interval (songs drawn whole where the
clips have songs), the per-clip values, and the distance from the floor in
floor standard deviations; an entry no clip
defines (bar_repetition on clips under 10 s) is null with a one-line note.
"""
import math

import numpy as np

from melodygan_jax.audio import music_structure
from melodygan_jax.evaluation import intervals

PROFILE_ENTRIES = music_structure.PROFILE_ENTRIES
LONG_RANGE_MIN_SECONDS = music_structure.LONG_RANGE_MIN_SECONDS


def null_note(entry: str, clip_seconds: float) -> str:
  """Why an entry has no value: one line."""
  if entry == 'bar_repetition' and clip_seconds < LONG_RANGE_MIN_SECONDS:
    return (f'needs clips of >= {LONG_RANGE_MIN_SECONDS:g} s (--clip_seconds='
            f'{clip_seconds:g}): too short to see bars come back')
  return 'undefined on every clip (silent or too short)'


def summarize(set_profiles: np.ndarray, floor_profiles: np.ndarray, clip_seconds: float,
              num_resamples: int, seed: int = 0, songs=None) -> dict:
  """The JSON profile of one set: per entry its mean, interval, clips and distance from the floor.

  Args:
    set_profiles: [n, len(PROFILE_ENTRIES)] the set's clip profiles (NaN = undefined).
    floor_profiles: [m, len(PROFILE_ENTRIES)] the held-out songs' clip profiles.
    clip_seconds: the clips' length (for the note on an undefined entry).
    num_resamples: bootstrap draws per interval.
    seed: bootstrap seed.
    songs: optional [n] song of each clip: the interval draws whole songs. None: each
      clip is its own (generated clips).

  Returns:
    {entry: {'value', 'low', 'high', 'per_clip': [float | None], 'z_vs_floor'}}, where
    z_vs_floor = (set mean - floor mean) / floor's per-clip std; an entry undefined
    on every clip is {'value': None, ..., 'note': why}.
  """
  summary = {}
  for column, entry in enumerate(PROFILE_ENTRIES):
    values = set_profiles[:, column]
    defined = values[np.isfinite(values)]
    per_clip = [None if not np.isfinite(value) else float(value) for value in values]
    if len(defined) == 0:
      summary[entry] = {'value': None, 'low': None, 'high': None, 'per_clip': per_clip,
                        'z_vs_floor': None, 'note': null_note(entry, clip_seconds)}
      continue
    groups = None if songs is None else np.asarray(songs)[np.isfinite(values)]
    interval = intervals.mean_interval(defined, num_resamples, seed, groups=groups)
    floor = floor_profiles[:, column]
    floor = floor[np.isfinite(floor)]
    floor_std = float(floor.std()) if len(floor) > 1 else 0.0
    z_score = ((interval.value - float(floor.mean())) / floor_std if floor_std > 0.0
               else None)
    summary[entry] = dict(intervals.interval_entry(interval), per_clip=per_clip,
                          z_vs_floor=z_score)
  return summary


def permutation_p_value(values_a: np.ndarray, values_b: np.ndarray, num_permutations: int,
                        seed: int = 0) -> float:
  """Two-sided permutation p-value of the difference of means (NaNs dropped)."""
  values_a = values_a[np.isfinite(values_a)]
  values_b = values_b[np.isfinite(values_b)]
  if len(values_a) == 0 or len(values_b) == 0:
    return math.nan
  pooled = np.concatenate([values_a, values_b])
  observed = abs(values_a.mean() - values_b.mean())
  rng = np.random.default_rng(seed)
  count = 0
  for _ in range(num_permutations):
    shuffled = rng.permutation(pooled)
    count += abs(shuffled[:len(values_a)].mean() - shuffled[len(values_a):].mean()) >= observed
  return (count + 1) / (num_permutations + 1)


def format_profile_row(entry: str, summary: dict) -> str:
  """'0.58 [0.52, 0.63] z -1.2' for one entry of `summarize`, or the note."""
  if summary['value'] is None:
    return f'null ({summary["note"]})'
  z_score = summary['z_vs_floor']
  z_text = '' if z_score is None else f' z {z_score:+.2f}'
  return f'{summary["value"]:.3g} [{summary["low"]:.3g}, {summary["high"]:.3g}]{z_text}'

