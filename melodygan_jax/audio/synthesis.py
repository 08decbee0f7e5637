"""Log-mel to finished sound: a vocoder, then clipping and edge fades.

Shared by the sampler, reconstruction, evaluation and TensorBoard audio.
"""
import jax
import numpy as np

from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion

FADE_S = 0.005  # Fades at the very start and end of a file, so players do not click.


def clip_keys(seed: int, indices) -> jax.Array:
  """One vocoder key per clip, from the seed and the clip's index."""
  return jax.numpy.stack([jax.random.fold_in(jax.random.key(seed), i) for i in indices])


def log_mel_to_audio(log_mel: np.ndarray, seed: int = 0, indices=None,
                     vocoder: inversion.Vocoder | None = None) -> np.ndarray:
  """[batch, frames, NUM_MELS] -> [batch, (frames - 1) * HOP_LENGTH] float32 in [-1, 1].

  Clip b's vocoder randomness comes from (seed, indices[b]) (default: b).
  """
  vocoder = vocoder or inversion.GriffinLimVocoder()
  indices = range(len(log_mel)) if indices is None else indices
  samples = np.asarray(vocoder(np.asarray(log_mel, np.float32), clip_keys(seed, indices)))
  return np.stack([finish(clip) for clip in samples])


def finish(samples: np.ndarray) -> np.ndarray:
  """Clips to [-1, 1] and fades the first and last few milliseconds."""
  samples = np.clip(np.nan_to_num(np.asarray(samples, np.float32)), -1.0, 1.0)
  fade = min(int(FADE_S * contract.SAMPLE_RATE_HZ), len(samples) // 2)
  if fade:
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    samples[:fade] *= ramp
    samples[len(samples) - fade:] *= ramp[::-1]
  return samples
