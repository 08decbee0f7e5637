"""Reconstruction losses of the VQ-VAE on normalized log-mel crops."""
import jax
import jax.numpy as jnp

from melodygan_jax.audio import spectral_metrics
from melodygan_jax.data import normalization


def reconstruction_losses(recon, mel, weight=None) -> tuple[jax.Array, jax.Array]:
  """Mean L1 and MSE over frames and mels; `weight` [batch] masks padding."""
  l1 = jnp.mean(jnp.abs(recon - mel), axis=(1, 2))
  mse = jnp.mean(jnp.square(recon - mel), axis=(1, 2))
  if weight is None:
    return jnp.mean(l1), jnp.mean(mse)
  return jnp.sum(l1 * weight), jnp.sum(mse * weight)


def mel_spectral_convergence(recon, mel, stem_mean, stem_std) -> jax.Array:
  """[batch] spectral convergence of the mel magnitudes of normalized log-mels.

  The log-mel losses weigh every band alike after normalization; this one
  weighs the loud parts of the spectrum as listeners (and the metric) do.
  """
  return spectral_metrics.spectral_convergence(
      normalization.denormalize_with(mel, stem_mean, stem_std),
      normalization.denormalize_with(recon, stem_mean, stem_std))


def spectral_convergence_loss(recon, mel, stem_mean, stem_std) -> jax.Array:
  """Mean over the batch of `mel_spectral_convergence`."""
  return jnp.mean(mel_spectral_convergence(recon, mel, stem_mean, stem_std))
