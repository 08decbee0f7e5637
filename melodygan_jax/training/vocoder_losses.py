"""The vocoder's reconstruction losses, beside its adversarial ones.

All on audio [batch, samples] (or the head's complex spectrum) at the audio
contract's rate: mel L1 in the contract's features (HiFi-GAN, Vocos), the
multi-resolution STFT loss (Parallel WaveGAN) and the log-magnitude L1 of the
STFT head (APNet).
"""
import jax
import jax.numpy as jnp

from melodygan_jax.audio import inversion
from melodygan_jax.evaluation import reconstruction
from melodygan_jax.models import waveform_discriminators


def mel_l1(log_mel: jax.Array, audio: jax.Array) -> jax.Array:
  """Mean |log-mel(audio) - log_mel|: the reconstruction loss, in the contract's features."""
  return jnp.mean(jnp.abs(inversion.log_mel(audio) - log_mel))


MAGNITUDE_FLOOR = 1e-5  # Below it, log-magnitude differences are inaudible noise floor.


def log_magnitude_l1(true_magnitude: jax.Array, spectrum: jax.Array) -> jax.Array:
  """Mean |log |predicted STFT| - log |true STFT|| at the contract's STFT: the head's
  magnitude trained directly, as APNet trains its amplitude spectrum (the mel's
  128 bands cannot tell the 513 bins apart; this loss can)."""
  predicted = inversion.magnitude(spectrum)
  return jnp.mean(jnp.abs(jnp.log(jnp.maximum(predicted, MAGNITUDE_FLOOR))
                          - jnp.log(jnp.maximum(true_magnitude, MAGNITUDE_FLOOR))))


def multi_resolution_stft_loss(reference: jax.Array, estimate: jax.Array) -> jax.Array:
  """Parallel WaveGAN's auxiliary loss at its resolutions (those of the MR-STFT distance
  in evaluation/reconstruction.py): per resolution, spectral convergence plus mean
  |log-magnitude difference|, averaged over the resolutions."""
  total = 0.0
  for n_fft, hop, window in reconstruction.STFT_RESOLUTIONS:
    target = waveform_discriminators.magnitude_spectrogram(reference, n_fft, hop, window)
    estimated = waveform_discriminators.magnitude_spectrogram(estimate, n_fft, hop, window)
    convergence = (jnp.linalg.norm(target - estimated, axis=(1, 2))
                   / jnp.maximum(jnp.linalg.norm(target, axis=(1, 2)), 1e-7))
    log_l1 = jnp.mean(jnp.abs(jnp.log(jnp.maximum(target, 1e-7))
                              - jnp.log(jnp.maximum(estimated, 1e-7))), axis=(1, 2))
    total += jnp.mean(convergence + log_l1)
  return total / len(reconstruction.STFT_RESOLUTIONS)
