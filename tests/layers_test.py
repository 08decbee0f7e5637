"""The convolution layers compute what their names promise."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from melodygan_jax.models import layers


@pytest.mark.parametrize('stride', [2, 3, 4])
def test_upsample_conv_is_a_transposed_convolution(stride):
  layer = layers.UpsampleConv(5, 7, stride, rngs=nnx.Rngs(0))
  x = np.random.default_rng(stride).standard_normal((2, 11, 5)).astype(np.float32)
  kernel, bias = np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])
  # PyTorch's ConvTranspose1d(kernel=2s, stride=s, padding=s//2), by definition.
  expected = np.zeros((2, 11 * stride, 7), np.float32) + bias
  for i in range(11):
    for k in range(2 * stride):
      out = stride * i + k - stride // 2
      if 0 <= out < 11 * stride:
        expected[:, out] += x[:, i] @ kernel[k]
  np.testing.assert_allclose(layer(jnp.asarray(x)), expected, atol=1e-5)


def test_strided_conv_halves_time_and_residual_block_keeps_shape():
  down = layers.conv(7, 11, 4, stride=2, rngs=nnx.Rngs(0))
  block = layers.ResidualBlock(11, rngs=nnx.Rngs(1))
  x = jnp.ones((3, 26, 7))
  y = down(x)
  assert y.shape == (3, 13, 11)
  assert block(y).shape == (3, 13, 11)
