"""VQ-VAE over log-mel spectrograms: 1-D convolutions in time, mels as channels.

Encoder: Conv_k3(mels -> w0); per stride s: residual blocks, Conv(k=2s, stride s);
residual blocks; Conv_k1(-> codebook_dim). The decoder mirrors it with
transposed convolutions. With the defaults (strides (2, 2)) a [batch, 128, 128]
crop becomes a [batch, 32, 64] latent whose every vector is a sum of one entry
of each level's codebook (residual quantization), and [batch, 32, levels] codes.
"""
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from melodygan_jax.models import layers
from melodygan_jax.models import residual_quantizer


class Encoder(nnx.Module):
  """[batch, frames, num_mels] -> [batch, frames / prod(strides), codebook_dim]."""

  def __init__(self, num_mels: int, widths: Sequence[int], strides: Sequence[int],
               num_res_blocks: int, codebook_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.conv_in = layers.conv(num_mels, widths[0], 3, rngs=rngs, dtype=dtype)
    self.stages = nnx.List()
    for level, stride in enumerate(strides):
      blocks = nnx.List([layers.ResidualBlock(widths[level], rngs=rngs, dtype=dtype)
                         for _ in range(num_res_blocks)])
      down = layers.conv(widths[level], widths[level + 1], 2 * stride, stride=stride,
                         rngs=rngs, dtype=dtype)
      self.stages.append(nnx.List([blocks, down]))
    self.blocks_out = nnx.List([layers.ResidualBlock(widths[-1], rngs=rngs, dtype=dtype)
                                for _ in range(num_res_blocks)])
    self.conv_out = layers.conv(widths[-1], codebook_dim, 1, rngs=rngs, dtype=dtype)

  def __call__(self, mel: jax.Array) -> jax.Array:
    x = self.conv_in(mel)
    for blocks, down in self.stages:
      for block in blocks:
        x = block(x)
      x = down(x)
    for block in self.blocks_out:
      x = block(x)
    return self.conv_out(jax.nn.relu(x))


class Decoder(nnx.Module):
  """[batch, steps, codebook_dim] -> [batch, steps * prod(strides), num_mels]."""

  def __init__(self, num_mels: int, widths: Sequence[int], strides: Sequence[int],
               num_res_blocks: int, codebook_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.conv_in = layers.conv(codebook_dim, widths[-1], 1, rngs=rngs, dtype=dtype)
    self.blocks_in = nnx.List([layers.ResidualBlock(widths[-1], rngs=rngs, dtype=dtype)
                               for _ in range(num_res_blocks)])
    self.stages = nnx.List()
    for level in reversed(range(len(strides))):
      up = layers.upsample_conv(widths[level + 1], widths[level], strides[level],
                                rngs=rngs, dtype=dtype)
      blocks = nnx.List([layers.ResidualBlock(widths[level], rngs=rngs, dtype=dtype)
                         for _ in range(num_res_blocks)])
      self.stages.append(nnx.List([up, blocks]))
    self.conv_out = layers.conv(widths[0], num_mels, 3, rngs=rngs, dtype=dtype)

  def __call__(self, z: jax.Array) -> jax.Array:
    x = self.conv_in(z)
    for block in self.blocks_in:
      x = block(x)
    for up, blocks in self.stages:
      x = up(x)
      for block in blocks:
        x = block(x)
    return self.conv_out(jax.nn.relu(x)).astype(jnp.float32)


class VQVAE(nnx.Module):
  """Encoder, residual vector quantizer and decoder.

  Sizes are plain numbers (from the config's `model` section); `dtype` is the
  compute dtype of the convolutions (parameters stay float32; the quantizer
  always computes in float32).
  """

  def __init__(self, *, num_mels: int, widths: Sequence[int], strides: Sequence[int],
               num_res_blocks: int, num_levels: int, codebook_size: int, codebook_dim: int,
               ema_decay: float, usage_window_steps: int,
               restart_every_steps: int, lookup_dim: int = 0, rngs: nnx.Rngs,
               dtype=jnp.float32):
    if len(widths) != len(strides) + 1:
      raise ValueError(f'widths {tuple(widths)} needs one entry per stride plus one')
    self.time_stride = 1
    for stride in strides:
      self.time_stride *= stride
    self.encoder = Encoder(num_mels, widths, strides, num_res_blocks, codebook_dim,
                           rngs=rngs, dtype=dtype)
    self.quantizer = residual_quantizer.ResidualVectorQuantizer(
        num_levels, codebook_size, codebook_dim, decay=ema_decay,
        usage_window_steps=usage_window_steps, restart_every_steps=restart_every_steps,
        lookup_dim=lookup_dim, rngs=rngs)
    self.decoder = Decoder(num_mels, widths, strides, num_res_blocks, codebook_dim,
                           rngs=rngs, dtype=dtype)

  def encode(self, mel: jax.Array, active_levels: jax.Array | None = None
             ) -> tuple[jax.Array, dict]:
    """[batch, frames, mels] -> quantized latents [batch, steps, dim] and aux.

    `active_levels` [batch]: levels each example's latent keeps (quantizer
    dropout); None: all.
    """
    return self.quantizer(self.encoder(mel), active_levels)

  def encode_to_codes(self, mel: jax.Array) -> jax.Array:
    """[batch, frames, mels] -> [batch, steps, levels] int32 codes."""
    return self.quantizer.nearest_codes(self.encoder(mel))

  def decode(self, latents: jax.Array) -> jax.Array:
    """[batch, steps, dim] latents -> [batch, frames, mels] normalized log-mel."""
    return self.decoder(latents)

  def decode_codes(self, codes: jax.Array) -> jax.Array:
    """[batch, steps, n] codes of the first n levels -> [batch, frames, mels]."""
    return self.decoder(self.quantizer.codes_to_latents(codes))

  def __call__(self, mel: jax.Array, active_levels: jax.Array | None = None
               ) -> tuple[jax.Array, dict]:
    """Reconstruction [batch, frames, mels] and the quantizer's aux."""
    latents, aux = self.encode(mel, active_levels)
    return self.decode(latents), aux


def from_config(model_config, *, rngs: nnx.Rngs, num_mels: int) -> VQVAE:
  """Builds the model from a config's `model` section."""
  return VQVAE(num_mels=num_mels, widths=tuple(model_config.widths),
               strides=tuple(model_config.strides),
               num_res_blocks=model_config.num_res_blocks,
               num_levels=model_config.num_levels, codebook_size=model_config.codebook_size,
               codebook_dim=model_config.codebook_dim, ema_decay=model_config.ema_decay,
               usage_window_steps=model_config.usage_window_steps,
               restart_every_steps=model_config.restart_every_steps,
               # Absent from configs written before the factorized lookup: plain.
               lookup_dim=model_config.get('lookup_dim', 0), rngs=rngs,
               dtype=jnp.dtype(model_config.dtype))
