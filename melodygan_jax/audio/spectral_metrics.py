"""Distances between log-mel spectrograms, shared by training, reconstruction and evaluation."""
import jax.numpy as jnp
import numpy as np

from melodygan_jax.audio import contract

_EPSILON = 1e-8


def spectral_convergence(target_log_mel, estimate_log_mel):
  """||mel_estimate - mel_target||_F / ||mel_target||_F on mel magnitudes.

  Args:
    target_log_mel: [..., frames, mels] natural-log mel (NumPy or JAX).
    estimate_log_mel: the same shape; with a different frame count (2-D
      inputs only) the common leading frames are compared.

  Returns:
    [...] convergence per spectrogram (a JAX array; `float()` it for one).
  """
  if target_log_mel.ndim == 2 and len(target_log_mel) != len(estimate_log_mel):
    frames = min(len(target_log_mel), len(estimate_log_mel))
    target_log_mel, estimate_log_mel = target_log_mel[:frames], estimate_log_mel[:frames]
  target = jnp.exp(jnp.asarray(target_log_mel, jnp.float32))
  estimate = jnp.exp(jnp.asarray(estimate_log_mel, jnp.float32))
  difference = jnp.sqrt(jnp.sum(jnp.square(estimate - target), axis=(-2, -1)))
  return difference / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(target), axis=(-2, -1))),
                                   _EPSILON)


def log_mel_l1(target_log_mel, estimate_log_mel) -> float:
  """Mean absolute log-mel difference over the common frames of two [frames, mels]."""
  frames = min(len(target_log_mel), len(estimate_log_mel))
  return float(np.mean(np.abs(np.asarray(target_log_mel[:frames])
                              - np.asarray(estimate_log_mel[:frames]))))


def audio_spectral_convergence(samples: np.ndarray, target_log_mel: np.ndarray) -> float:
  """Spectral convergence of the re-analysed `samples` against a target log-mel."""
  return float(spectral_convergence(target_log_mel,
                                    contract.log_mel(np.asarray(samples, np.float32))))
