"""Per-clip figures as a mean with a percentile bootstrap interval, and their JSON form."""
import math

import numpy as np

from melodygan_jax.evaluation import distances


def interval_entry(interval: distances.Interval) -> dict:
  """The JSON form of a figure with an interval, as `sample --metrics` reads it."""
  return {'value': interval.value, 'low': interval.low, 'high': interval.high}


def mean_interval(values, num_resamples: int, seed: int = 0, confidence: float = 0.95,
                  groups=None) -> distances.Interval:
  """Mean of per-clip values [n] and its percentile bootstrap interval.

  With `groups` (a song per clip), whole songs are drawn with replacement (a
  cluster bootstrap): clips of one song are alike, and drawing them one by one
  gives an interval as if each were a song of its own, far too narrow when a
  few songs give many clips.
  """
  values = np.asarray(values, np.float64)
  if len(values) == 0:
    return distances.Interval(math.nan, math.nan, math.nan, confidence, 0)
  rng = np.random.default_rng(seed)
  if groups is None:
    draws = rng.integers(0, len(values), (num_resamples, len(values)))
    means = values[draws].mean(axis=1)
  else:
    _, group_of_clip = np.unique(np.asarray(groups), return_inverse=True)
    sums = np.bincount(group_of_clip, weights=values)
    counts = np.bincount(group_of_clip).astype(np.float64)
    draws = rng.integers(0, len(sums), (num_resamples, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
  tail = 50.0 * (1.0 - confidence)
  low, high = np.percentile(means, [tail, 100.0 - tail])
  return distances.Interval(float(values.mean()), float(low), float(high), confidence,
                            num_resamples)
