"""1-D convolutional building blocks over [batch, frames, channels]."""
import jax
import jax.numpy as jnp
from flax import nnx


def conv(in_channels: int, out_channels: int, kernel_size: int, *, rngs: nnx.Rngs,
         stride: int = 1, dtype=jnp.float32) -> nnx.Conv:
  """A 1-D convolution; strided ones halve time exactly (kernel 2*stride)."""
  if stride == 1:
    padding = 'SAME'
  else:  # Kernel 2s, padding s/2 on each side: frames / s outputs, no overlap loss.
    padding = ((stride // 2, stride - stride // 2),)
  return nnx.Conv(in_channels, out_channels, kernel_size=(kernel_size,), strides=(stride,),
                  padding=padding, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def upsample_conv(in_channels: int, out_channels: int, stride: int, *, rngs: nnx.Rngs,
                  dtype=jnp.float32) -> nnx.ConvTranspose:
  """Transposed convolution (kernel 2*stride) that multiplies frames by `stride`."""
  return nnx.ConvTranspose(in_channels, out_channels, kernel_size=(2 * stride,),
                           strides=(stride,), padding='SAME', dtype=dtype,
                           param_dtype=jnp.float32, rngs=rngs)


class ResidualBlock(nnx.Module):
  """x + Conv_k1(ReLU(Conv_k3(ReLU(x)))), hidden width = block width."""

  def __init__(self, width: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.conv_k3 = conv(width, width, 3, rngs=rngs, dtype=dtype)
    self.conv_k1 = conv(width, width, 1, rngs=rngs, dtype=dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.conv_k1(jax.nn.relu(self.conv_k3(jax.nn.relu(x))))
