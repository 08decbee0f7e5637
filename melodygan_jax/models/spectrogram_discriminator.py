"""Multi-scale 2-D patch discriminator over normalized log-mel (VQGAN, MelGAN, EnCodec).

The log-mel [batch, frames, mels] is an image of one channel. Each scale sees it
average-pooled by 2 more in time and frequency, runs strided 4x4 convolutions
with leaky ReLU and ends in a map of patch logits: it judges local texture
(onsets, harmonics, noise), which an L1 loss averages away. Every hidden
activation is returned too, for the feature-matching loss.
"""
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from melodygan_jax.models import strided_conv


class PatchDiscriminator(nnx.Module):
  """[batch, frames, mels] -> (logits [batch, frames', mels'], hidden activations)."""

  def __init__(self, channels: Sequence[int], *, rngs: nnx.Rngs, dtype=jnp.float32):
    widths = (1,) + tuple(channels)
    self.convs = nnx.List([
        strided_conv.StridedConv(widths[i], widths[i + 1], kernel_size=(4, 4), strides=(2, 2),
                 padding='SAME', dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        for i in range(len(channels))])
    self.conv_out = nnx.Conv(widths[-1], 1, kernel_size=(3, 3), padding='SAME', dtype=dtype,
                             param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, mel: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    x = mel[..., None]
    features = []
    for conv in self.convs:
      x = jax.nn.leaky_relu(conv(x), 0.2)
      features.append(x)
    return self.conv_out(x)[..., 0].astype(jnp.float32), features


class MultiScaleDiscriminator(nnx.Module):
  """One patch discriminator per scale: the input, then average-pooled by 2, 4, ..."""

  def __init__(self, channels: Sequence[int], num_scales: int, *, rngs: nnx.Rngs,
               dtype=jnp.float32):
    self.scales = nnx.List([PatchDiscriminator(channels, rngs=rngs, dtype=dtype)
                            for _ in range(num_scales)])

  def __call__(self, mel: jax.Array) -> list[tuple[jax.Array, list[jax.Array]]]:
    """[batch, frames, mels] -> per scale (logits, hidden activations)."""
    outputs = []
    x = mel
    for index, discriminator in enumerate(self.scales):
      if index:
        x = nnx.avg_pool(x[..., None], window_shape=(2, 2), strides=(2, 2),
                         padding='SAME')[..., 0]
      outputs.append(discriminator(x))
    return outputs


def discriminator_loss(real_outputs, fake_outputs) -> jax.Array:
  """Hinge loss, averaged over scales (fake outputs of detached reconstructions)."""
  losses = [jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
            for (real, _), (fake, _) in zip(real_outputs, fake_outputs)]
  return sum(losses) / len(losses)


def generator_losses(real_outputs, fake_outputs) -> tuple[jax.Array, jax.Array]:
  """(adversarial hinge loss, feature-matching loss) for the codec, averaged over scales.

  Feature matching is EnCodec's: per layer, mean |D_l(x) - D_l(x_hat)| over
  mean |D_l(x)|, so every layer counts alike whatever its scale.
  """
  adversarial, matching, num_layers = 0.0, 0.0, 0
  for (_, real_features), (fake, fake_features) in zip(real_outputs, fake_outputs):
    adversarial += jnp.mean(jax.nn.relu(1.0 - fake))
    for real_feature, fake_feature in zip(real_features, fake_features):
      real_feature = jax.lax.stop_gradient(real_feature.astype(jnp.float32))
      matching += (jnp.mean(jnp.abs(real_feature - fake_feature.astype(jnp.float32)))
                   / (jnp.mean(jnp.abs(real_feature)) + 1e-6))
      num_layers += 1
  return adversarial / len(real_outputs), matching / num_layers


def from_config(model_config, *, rngs: nnx.Rngs) -> MultiScaleDiscriminator:
  """The discriminator of a configs/vqvae.py `model` section."""
  return MultiScaleDiscriminator(tuple(model_config.discriminator_channels),
                                 model_config.discriminator_scales, rngs=rngs,
                                 dtype=jnp.dtype(model_config.dtype))
