"""How closely generated pieces play the rhythm they are given.

A generator with a rhythm bank (models/gan.py `RhythmBank`) is handed, for each
piece, the onset envelope of a stretch of the training songs, and learns to put
its onsets there. The pulse of its pieces is then the pulse of the envelopes it
is given times how faithfully it plays them: a generator that follows them has
the songs' spread of pulse, from drum-driven pieces to ambient ones; one that
plays each envelope halfway pulls every piece toward the middle. Across the
evaluated pieces this reads, clip by clip, the pulse clarity of the envelope
given against the pulse clarity heard in the piece: their correlation and the
least-squares slope (1: each envelope's pulse comes out as it went in; 0: the
pieces' pulse does not depend on it), with paired bootstrap intervals.
"""
import math

import jax
import numpy as np

from melodygan_jax.audio import music_structure
from melodygan_jax.evaluation import distances
from melodygan_jax.evaluation import intervals
from melodygan_jax.generation import long_form
from melodygan_jax.generation import sampling
from melodygan_jax.models import gan as gan_models
from melodygan_jax.runs import loading


def given_pulse(generator: loading.LoadedGenerator, seed: int, num_clips: int, steps: int,
                batch_size: int, time_stride: int) -> np.ndarray | None:
  """Pulse clarity [num_clips] of the envelope each piece of `sampling.keys_and_noise(
  generator, seed, range(num_clips))` is given over its `steps` codes (NaN where a piece is
  too short to have one); None for a generator without a rhythm bank."""
  if not gan_models.has_rhythm_bank(generator.config.model):
    return None
  plan = long_form.plan_for(generator, steps)
  noise_channels = int(generator.config.model.noise_channels)
  values = []
  for first in range(0, num_clips, batch_size):
    keys, _ = sampling.keys_and_noise(generator, seed, range(first, first + batch_size))
    envelopes = np.asarray(long_form.given_rhythm(generator.beat_clock, noise_channels,
                                                  jax.numpy.asarray(keys), plan))
    # [pieces, codes, frames a code] -> one value a spectrogram frame, as heard in audio.
    frames = np.repeat(envelopes, time_stride // envelopes.shape[-1], axis=-1)
    values.extend(music_structure.pulse_clarity(frame_envelope.reshape(-1).astype(np.float64))
                  for frame_envelope in frames)
  return np.asarray(values[:num_clips])


def following(given: np.ndarray, played: np.ndarray, num_resamples: int, seed: int = 0,
              confidence: float = 0.95) -> dict:
  """The figures of `given` [n] pulse clarity against `played` [n], clip by clip.

  Returns:
    {'rhythm_following_r', 'rhythm_following_slope'}: values with paired bootstrap
    intervals (pieces drawn with replacement, each with its envelope);
    'given_pulse_clarity', 'played_pulse_clarity': the means over the clips where
    both are defined.
  """
  given, played = np.asarray(given, np.float64), np.asarray(played, np.float64)
  both = np.isfinite(given) & np.isfinite(played)
  given, played = given[both], played[both]
  nan = {'value': math.nan, 'low': math.nan, 'high': math.nan}
  if len(given) < 3 or np.ptp(given) == 0.0:
    return {'rhythm_following_r': nan, 'rhythm_following_slope': nan,
            'given_pulse_clarity': float(np.mean(given)) if len(given) else math.nan,
            'played_pulse_clarity': float(np.mean(played)) if len(played) else math.nan}

  def r_and_slope(draw):
    x, y = given[draw], played[draw]
    x_centred, y_centred = x - x.mean(axis=-1, keepdims=True), y - y.mean(axis=-1, keepdims=True)
    covariance = np.sum(x_centred * y_centred, axis=-1)
    x_energy, y_energy = np.sum(x_centred**2, axis=-1), np.sum(y_centred**2, axis=-1)
    with np.errstate(divide='ignore', invalid='ignore'):
      return covariance / np.sqrt(x_energy * y_energy), covariance / x_energy

  r, slope = r_and_slope(np.arange(len(given)))
  draws = np.random.default_rng(seed).integers(0, len(given), (num_resamples, len(given)))
  r_draws, slope_draws = r_and_slope(draws)
  defined = np.isfinite(r_draws) & np.isfinite(slope_draws)  # A draw of one clip n times.
  return {'rhythm_following_r': intervals.interval_entry(distances.percentile_interval(
              r, r_draws[defined], confidence)),
          'rhythm_following_slope': intervals.interval_entry(distances.percentile_interval(
              slope, slope_draws[defined], confidence)),
          'given_pulse_clarity': float(given.mean()),
          'played_pulse_clarity': float(played.mean())}
