"""Per-clip figures as a mean with a percentile bootstrap interval, and their JSON form."""
import math

import numpy as np

from melodygan_jax.evaluation import distances


def interval_entry(interval: distances.Interval) -> dict:
  """The JSON form of a figure with an interval, as `sample --metrics` reads it."""
  return {'value': interval.value, 'low': interval.low, 'high': interval.high}


def mean_interval(values, num_resamples: int, seed: int = 0,
                  confidence: float = 0.95) -> distances.Interval:
  """Mean of per-clip values [n] and its percentile bootstrap interval."""
  values = np.asarray(values, np.float64)
  if len(values) == 0:
    return distances.Interval(math.nan, math.nan, math.nan, confidence, 0)
  draws = np.random.default_rng(seed).integers(0, len(values), (num_resamples, len(values)))
  tail = 50.0 * (1.0 - confidence)
  low, high = np.percentile(values[draws].mean(axis=1), [tail, 100.0 - tail])
  return distances.Interval(float(values.mean()), float(low), float(high), confidence,
                            num_resamples)
