"""Waveform discriminators of a vocoder (HiFi-GAN's, UnivNet's, as Vocos trains with).

- Multi-period (Kong et al. 2020): the waveform folded into [samples / p, p]
  for each period p, 2-D convolutions along time only, so each judges the
  samples p apart: periodic structure at once for several periods.
- Multi-resolution spectrogram (Jang et al. 2021): the STFT magnitude at a few
  FFT sizes, 2-D convolutions over time and frequency: each resolution sees
  what the others blur.

Every discriminator returns (logits, hidden activations) for the hinge and
feature-matching losses below.
"""
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from melodygan_jax.models import strided_conv

PERIODS = (2, 3, 5, 7, 11)  # Primes: no two periods see the same folds.
# (n_fft, hop) of each resolution; window = n_fft (Vocos' choice).
RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
_LEAK = 0.1


class PeriodDiscriminator(nnx.Module):
  """[batch, samples] -> (logits, activations), on the waveform folded by `period`."""

  def __init__(self, period: int, channels: Sequence[int], *, rngs: nnx.Rngs):
    self.period = period
    widths = (1,) + tuple(channels)
    self.convs = nnx.List([
        strided_conv.StridedConv(widths[i], widths[i + 1], kernel_size=(5, 1), strides=(3, 1),
                 padding=((2, 2), (0, 0)), rngs=rngs) for i in range(len(channels))])
    self.conv_out = nnx.Conv(widths[-1], 1, kernel_size=(3, 1), padding=((1, 1), (0, 0)),
                             rngs=rngs)

  def __call__(self, waveform: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    batch, num_samples = waveform.shape
    pad = -num_samples % self.period
    x = jnp.pad(waveform, ((0, 0), (0, pad)), mode='reflect')
    x = x.reshape(batch, -1, self.period, 1)
    features = []
    for conv in self.convs:
      x = jax.nn.leaky_relu(conv(x), _LEAK)
      features.append(x)
    return self.conv_out(x), features


def magnitude_spectrogram(waveform: jax.Array, n_fft: int, hop: int,
                          window_length: int | None = None) -> jax.Array:
  """|STFT| [batch, frames, n_fft // 2 + 1] with a periodic Hann window, centred frames.

  A `window_length` below n_fft is zero-padded to n_fft in the middle, as librosa does.
  """
  window_length = window_length or n_fft
  padded = jnp.pad(waveform, ((0, 0), (n_fft // 2, n_fft // 2)))
  num_frames = 1 + (padded.shape[1] - n_fft) // hop
  index = np.arange(num_frames)[:, None] * hop + np.arange(n_fft)[None, :]
  window = np.zeros(n_fft, np.float32)
  start = (n_fft - window_length) // 2
  window[start:start + window_length] = (
      0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window_length) / window_length))
  spectrum = jnp.fft.rfft(padded[:, index] * window, axis=-1)
  # Gradients of |z| at z = 0 are undefined: a tiny floor inside the root.
  return jnp.sqrt(jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2 + 1e-9)


class SpectrogramDiscriminator(nnx.Module):
  """[batch, samples] -> (logits, activations), on one STFT resolution's magnitude."""

  def __init__(self, n_fft: int, hop: int, channels: Sequence[int], *, rngs: nnx.Rngs):
    self.n_fft, self.hop = n_fft, hop
    widths = (1,) + tuple(channels)
    # Every conv halves the frequency axis. (UnivNet's first conv keeps it; halving
    # there too costs a CPU half the discriminator's time, and the next layers
    # see the same bands.)
    self.convs = nnx.List([
        strided_conv.StridedConv(widths[i], widths[i + 1], kernel_size=(3, 9), strides=(1, 2),
                 padding='SAME', rngs=rngs) for i in range(len(channels))])
    self.conv_out = nnx.Conv(widths[-1], 1, kernel_size=(3, 3), padding='SAME', rngs=rngs)

  def __call__(self, waveform: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    # Log compression: music spans ~80 dB, linear magnitude would see only the loudest bins.
    x = jnp.log1p(magnitude_spectrogram(waveform, self.n_fft, self.hop))[..., None]
    features = []
    for conv in self.convs:
      x = jax.nn.leaky_relu(conv(x), _LEAK)
      features.append(x)
    return self.conv_out(x), features


class MultiPeriodDiscriminator(nnx.Module):
  def __init__(self, channels: Sequence[int], periods: Sequence[int] = PERIODS, *,
               rngs: nnx.Rngs):
    self.discriminators = nnx.List([PeriodDiscriminator(p, channels, rngs=rngs)
                                    for p in periods])

  def __call__(self, waveform: jax.Array) -> list[tuple[jax.Array, list[jax.Array]]]:
    return [discriminator(waveform) for discriminator in self.discriminators]


class MultiResolutionDiscriminator(nnx.Module):
  def __init__(self, channels: Sequence[int], resolutions=RESOLUTIONS, *, rngs: nnx.Rngs):
    self.discriminators = nnx.List([SpectrogramDiscriminator(n_fft, hop, channels, rngs=rngs)
                                    for n_fft, hop in resolutions])

  def __call__(self, waveform: jax.Array) -> list[tuple[jax.Array, list[jax.Array]]]:
    return [discriminator(waveform) for discriminator in self.discriminators]


class Discriminators(nnx.Module):
  """Both families; `__call__` gives {'period': outputs, 'resolution': outputs}."""

  def __init__(self, period_channels: Sequence[int], resolution_channels: Sequence[int], *,
               rngs: nnx.Rngs):
    self.period = MultiPeriodDiscriminator(period_channels, rngs=rngs)
    self.resolution = MultiResolutionDiscriminator(resolution_channels, rngs=rngs)

  def __call__(self, waveform: jax.Array) -> dict:
    return {'period': self.period(waveform), 'resolution': self.resolution(waveform)}


def discriminator_loss(real_outputs, fake_outputs) -> jax.Array:
  """Hinge loss, summed over the discriminators of one family."""
  return sum(jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
             for (real, _), (fake, _) in zip(real_outputs, fake_outputs))


def generator_adversarial_loss(fake_outputs) -> jax.Array:
  """Hinge loss of the generator, summed over the discriminators of one family."""
  return sum(jnp.mean(jax.nn.relu(1.0 - fake)) for fake, _ in fake_outputs)


def feature_matching_loss(real_outputs, fake_outputs) -> jax.Array:
  """Mean |D_l(x) - D_l(G(s))| summed over layers and discriminators (HiFi-GAN, Vocos)."""
  return sum(jnp.mean(jnp.abs(jax.lax.stop_gradient(real) - fake))
             for (_, real_features), (_, fake_features) in zip(real_outputs, fake_outputs)
             for real, fake in zip(real_features, fake_features))


def from_config(model_config, *, rngs: nnx.Rngs) -> Discriminators:
  """The discriminators of a configs/vocoder.py `model` section."""
  return Discriminators(tuple(model_config.period_discriminator_channels),
                        tuple(model_config.resolution_discriminator_channels), rngs=rngs)
