"""Vocos-style vocoder: log-mel frames -> the complex STFT of the waveform.

Siuzdak 2023 ("Vocos"): a ConvNeXt backbone runs at frame rate over the
mel frames and a linear head predicts, per frame, the log-magnitude and the
phase angle of every STFT bin; the waveform is the inverse STFT of
magnitude * (cos phase + i sin phase). Nothing upsamples, so it is fast on a
CPU. This module stops at the spectrum: the inverse STFT with the audio
contract's window and hop is `melodygan_jax.audio.inversion.istft`, so the
head cannot drift from the features it is trained on.

Optionally (`magnitude_prior`, as FreeV, Lv et al. 2024) the head predicts
the log-magnitude as a correction of a prior the caller computes from the mel
itself (the mel filterbank's least-squares inverse): the network starts from
the right spectral envelope and spends its training on phase and detail.

Optionally (`phase_prior`) it also hears the phase Griffin-Lim finds for that
magnitude (as unit phasors, through a linear embedding) and predicts the
angle as a correction of it. Both corrections start at zero, so an untrained
generator is exactly Griffin-Lim from the NNLS magnitude, and training moves
it from there: what a CPU's few thousand steps cannot learn from nothing (a
coherent phase), it starts with.
"""
import functools

import jax
import jax.numpy as jnp
from flax import nnx

# Named sizes: a config says variant='base'; tests say variant='tiny'.
VARIANTS = {
    'tiny': {'width': 32, 'intermediate_width': 96, 'num_blocks': 1},
    'cpu': {'width': 128, 'intermediate_width': 384, 'num_blocks': 4},
    'base': {'width': 512, 'intermediate_width': 1536, 'num_blocks': 8},  # Vocos' own.
}
MAX_LOG_MAGNITUDE = 4.6  # exp(4.6) ~ 100: Vocos clips the magnitude there, so early steps stay finite.


class ConvNeXtBlock(nnx.Module):
  """Depthwise conv (k=7), LayerNorm, pointwise MLP with GELU, layer scale, residual."""

  def __init__(self, width: int, intermediate_width: int, layer_scale: float, *,
               rngs: nnx.Rngs, dtype=jnp.float32):
    self.depthwise = nnx.Conv(width, width, kernel_size=(7,), padding='SAME',
                              feature_group_count=width, dtype=dtype,
                              param_dtype=jnp.float32, rngs=rngs)
    self.norm = nnx.LayerNorm(width, epsilon=1e-6, dtype=dtype, param_dtype=jnp.float32,
                              rngs=rngs)
    self.expand = nnx.Linear(width, intermediate_width, dtype=dtype, param_dtype=jnp.float32,
                             rngs=rngs)
    self.project = nnx.Linear(intermediate_width, width, dtype=dtype, param_dtype=jnp.float32,
                              rngs=rngs)
    # A small residual branch at first: every block starts near the identity.
    self.scale = nnx.Param(jnp.full((width,), layer_scale, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.project(jax.nn.gelu(self.expand(self.norm(self.depthwise(x)))))
    return x + self.scale[...].astype(y.dtype) * y


class SpectralRefiner(nnx.Module):
  """2-D convolutions over (frames, bins): per-bin corrections of a spectrum.

  The ConvNeXt runs over frames and its head maps one frame vector to every
  bin, so a correction of the phase prior must pass through `width` numbers
  per frame, far fewer than the bins it corrects. This network instead sees
  each bin with its neighbours in time and frequency (dilated along frequency,
  to reach the next partials) as Deep Griffin-Lim Iteration's denoiser does
  (Masuyama et al. 2019): its inputs are the log-magnitude, the phase as a
  unit phasor and the phase differences across frames (instantaneous
  frequency) and across bins (group delay), which say whether neighbouring
  bins agree. Its last layer starts at zero, so it starts as the identity.
  """

  INPUTS = 7  # log-magnitude, cos/sin of phase, of its frame difference, of its bin difference.

  def __init__(self, channels: int, frequency_dilations: tuple[int, ...], *, rngs: nnx.Rngs,
               dtype=jnp.float32):
    conv = functools.partial(nnx.Conv, kernel_size=(3, 3), padding='SAME', dtype=dtype,
                             param_dtype=jnp.float32, rngs=rngs)
    self.inputs = conv(self.INPUTS, channels)
    self.layers = nnx.List([conv(channels, channels, kernel_dilation=(1, dilation))
                            for dilation in frequency_dilations])
    self.outputs = conv(channels, 2)
    self.outputs.kernel[...] = jnp.zeros_like(self.outputs.kernel[...])
    self.outputs.bias[...] = jnp.zeros_like(self.outputs.bias[...])

  def __call__(self, log_magnitude: jax.Array, phase: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[batch, frames, bins] each -> the same, corrected."""
    over_frames = jnp.diff(phase, axis=1, prepend=phase[:, :1])
    over_bins = jnp.diff(phase, axis=2, prepend=phase[:, :, :1])
    # Log-magnitudes span ~-12 (the floor) to ~5: centred and scaled to about unit range.
    features = jnp.stack([(log_magnitude + 4.0) / 4.0, jnp.cos(phase), jnp.sin(phase),
                          jnp.cos(over_frames), jnp.sin(over_frames), jnp.cos(over_bins),
                          jnp.sin(over_bins)], axis=-1).astype(self.inputs.dtype)
    x = jax.nn.gelu(self.inputs(features))
    for layer in self.layers:
      x = x + jax.nn.gelu(layer(x))
    corrections = self.outputs(x).astype(jnp.float32)
    # Bounded as the head's own correction is, so early steps stay finite.
    return (log_magnitude + jnp.minimum(corrections[..., 0], MAX_LOG_MAGNITUDE),
            phase + corrections[..., 1])


class VocosGenerator(nnx.Module):
  """[batch, frames, num_mels] log-mel -> [batch, frames, n_fft // 2 + 1] complex64 STFT."""

  def __init__(self, *, num_mels: int, n_fft: int, width: int, intermediate_width: int,
               num_blocks: int, rngs: nnx.Rngs, magnitude_prior: bool = False,
               phase_prior: bool = False, refiner_channels: int = 0,
               refiner_dilations: tuple[int, ...] = (1, 2, 4), dtype=jnp.float32):
    self.num_bins = n_fft // 2 + 1
    self.magnitude_prior = magnitude_prior  # __call__ then needs `log_magnitude_prior`...
    self.phase_prior = phase_prior  # ... and `phase_prior`.
    self.embed = nnx.Conv(num_mels, width, kernel_size=(7,), padding='SAME', dtype=dtype,
                          param_dtype=jnp.float32, rngs=rngs)
    self.embed_norm = nnx.LayerNorm(width, epsilon=1e-6, dtype=dtype,
                                    param_dtype=jnp.float32, rngs=rngs)
    self.blocks = nnx.List([
        ConvNeXtBlock(width, intermediate_width, 1.0 / num_blocks, rngs=rngs, dtype=dtype)
        for _ in range(num_blocks)])
    self.final_norm = nnx.LayerNorm(width, epsilon=1e-6, dtype=dtype,
                                    param_dtype=jnp.float32, rngs=rngs)
    self.head = nnx.Linear(width, 2 * self.num_bins, dtype=dtype, param_dtype=jnp.float32,
                           rngs=rngs)
    if magnitude_prior:  # Start from the prior itself: no correction yet.
      self.head.kernel[...] = self.head.kernel[...].at[:, :self.num_bins].set(0.0)
    if phase_prior:
      self.phase_embed = nnx.Linear(2 * self.num_bins, width, dtype=dtype,
                                    param_dtype=jnp.float32, rngs=rngs)
      self.head.kernel[...] = self.head.kernel[...].at[:, self.num_bins:].set(0.0)
    self.refiner = (SpectralRefiner(refiner_channels, tuple(refiner_dilations), rngs=rngs,
                                    dtype=dtype) if refiner_channels else None)

  def head_outputs(self, log_mel: jax.Array, phase_prior: jax.Array | None = None
                   ) -> tuple[jax.Array, jax.Array]:
    """(log-magnitude, phase angle), each [batch, frames, bins] float32 (corrections
    of the priors where the model has them)."""
    x = self.embed_norm(self.embed(log_mel.astype(self.embed.dtype)))
    if self.phase_prior:
      phasors = jnp.concatenate([jnp.real(phase_prior), jnp.imag(phase_prior)], axis=-1)
      x = x + self.phase_embed(phasors.astype(self.phase_embed.dtype))
    for block in self.blocks:
      x = block(x)
    out = self.head(self.final_norm(x)).astype(jnp.float32)
    return out[..., :self.num_bins], out[..., self.num_bins:]

  def __call__(self, log_mel: jax.Array, log_magnitude_prior: jax.Array | None = None,
               phase_prior: jax.Array | None = None) -> jax.Array:
    """log_mel [batch, frames, mels] (with `magnitude_prior`, the prior's [batch,
    frames, bins] log-magnitude; with `phase_prior`, its unit phasors, complex)
    -> the complex STFT."""
    log_magnitude, phase = self.head_outputs(log_mel, phase_prior)
    if self.magnitude_prior:
      # The clip bounds the correction, not the prior: loud bins are far above exp(4.6).
      log_magnitude = log_magnitude_prior + jnp.minimum(log_magnitude, MAX_LOG_MAGNITUDE)
    else:
      log_magnitude = jnp.minimum(log_magnitude, MAX_LOG_MAGNITUDE)
    if self.phase_prior:
      phase = phase + jnp.angle(phase_prior)
    if self.refiner is not None:
      log_magnitude, phase = self.refiner(log_magnitude, phase)
    return spectrum_from_head(log_magnitude, phase)


def spectrum_from_head(log_magnitude: jax.Array, phase: jax.Array) -> jax.Array:
  """The complex STFT the head describes: exp(log-magnitude) at angle `phase`.

  The angle enters as (cos, sin): a unit phasor has no wrap-around, so the
  loss is smooth in the angle (Vocos' parametrization).
  """
  magnitude = jnp.exp(log_magnitude)
  return jax.lax.complex(magnitude * jnp.cos(phase), magnitude * jnp.sin(phase))


def from_config(model_config, *, num_mels: int, n_fft: int, rngs: nnx.Rngs) -> VocosGenerator:
  """The generator of a configs/vocoder.py `model` section (its variant's sizes)."""
  sizes = VARIANTS[model_config.variant]
  return VocosGenerator(num_mels=num_mels, n_fft=n_fft, rngs=rngs,
                        # Runs from before the field had no prior.
                        magnitude_prior=model_config.get('magnitude_prior', False),
                        phase_prior=model_config.get('phase_prior_iterations', 0) > 0,
                        refiner_channels=model_config.get('refiner_channels', 0),
                        refiner_dilations=tuple(model_config.get('refiner_dilations', (1, 2, 4))),
                        dtype=jnp.dtype(model_config.dtype), **sizes)
