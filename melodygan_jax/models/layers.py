"""1-D convolutional building blocks over [batch, frames, channels]."""
import jax
import jax.numpy as jnp
from flax import nnx


def conv(in_channels: int, out_channels: int, kernel_size: int, *, rngs: nnx.Rngs,
         stride: int = 1, dilation: int = 1, dtype=jnp.float32) -> nnx.Conv:
  """A 1-D convolution keeping length (stride 1) or dividing it by `stride`."""
  if stride == 1:
    padding = 'SAME'
  else:  # Kernel 2s, padding s/2 on each side: frames / s outputs, no overlap loss.
    padding = ((stride // 2, stride - stride // 2),)
  return nnx.Conv(in_channels, out_channels, kernel_size=(kernel_size,), strides=(stride,),
                  kernel_dilation=(dilation,), padding=padding, dtype=dtype,
                  param_dtype=jnp.float32, rngs=rngs)


class UpsampleConv(nnx.Module):
  """Transposed convolution, kernel 2s and stride s: [b, t, c] -> [b, s*t, c'].

  The same function as PyTorch's ConvTranspose1d(kernel=2s, stride=s,
  padding=s//2), computed as s ordinary 2-tap convolutions (one per output
  phase) whose outputs are interleaved. XLA:CPU lowers the gradient of a
  transposed convolution ~25x slower than its forward pass; the gradients of
  these plain convolutions are as fast as any other.
  """

  def __init__(self, in_channels: int, out_channels: int, stride: int, *, rngs: nnx.Rngs,
               dtype=jnp.float32):
    self.stride = stride
    self.dtype = dtype
    fan_in = in_channels * 2  # Each output sees two input steps.
    self.kernel = nnx.Param(jax.random.normal(
        rngs.params(), (2 * stride, in_channels, out_channels), jnp.float32) / fan_in**0.5)
    self.bias = nnx.Param(jnp.zeros((out_channels,), jnp.float32))

  def phase_taps(self, phase: int) -> tuple[int, tuple[int, int]]:
    """(offset of the first input step, kernel taps) that output phase `phase` uses.

    Output o = s*i + k - s//2 receives input i through tap k; for o = s*t + phase
    the taps are k = phase + s//2 (+ or - s), from inputs t and t -/+ 1.
    """
    s, k = self.stride, phase + self.stride // 2
    return (-1, (k + s, k)) if k < s else (0, (k, k - s))

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, steps, _ = x.shape
    x = x.astype(self.dtype)
    padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
    phases = []
    for phase in range(self.stride):
      first, taps = self.phase_taps(phase)
      window = padded[:, 1 + first:1 + first + steps + 1]
      kernel = jnp.stack([self.kernel[...][k] for k in taps]).astype(self.dtype)
      phases.append(jax.lax.conv_general_dilated(
          window, kernel, window_strides=(1,), padding='VALID',
          dimension_numbers=('NWC', 'WIO', 'NWC')))
    out = jnp.stack(phases, axis=2).reshape(batch, steps * self.stride, -1)
    return out + self.bias[...].astype(self.dtype)


def upsample_conv(in_channels: int, out_channels: int, stride: int, *, rngs: nnx.Rngs,
                  dtype=jnp.float32) -> UpsampleConv:
  """Transposed convolution (kernel 2*stride) that multiplies frames by `stride`."""
  return UpsampleConv(in_channels, out_channels, stride, rngs=rngs, dtype=dtype)


class ResidualBlock(nnx.Module):
  """x + Conv_k1(ReLU(Conv_k3(ReLU(x)))), hidden width = block width."""

  def __init__(self, width: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.conv_k3 = conv(width, width, 3, rngs=rngs, dtype=dtype)
    self.conv_k1 = conv(width, width, 1, rngs=rngs, dtype=dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.conv_k1(jax.nn.relu(self.conv_k3(jax.nn.relu(x))))
