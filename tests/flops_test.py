"""Model FLOPs from the lowered step match an analytic count; the peak is measured."""
from flax import nnx
import jax
import jax.numpy as jnp
import pytest

from melodygan_jax.training import flops

BATCH, LENGTH, IN_CHANNELS, CHANNELS, KERNEL, OUTPUTS = 8, 67, 13, 32, 5, 11


class ConvDense(nnx.Module):
  """[batch, length, in] -> [batch, outputs]: a VALID 1-D convolution, ReLU, a dense layer."""

  def __init__(self, rngs):
    self.conv = nnx.Conv(IN_CHANNELS, CHANNELS, (KERNEL,), padding='VALID', rngs=rngs)
    self.dense = nnx.Linear((LENGTH - KERNEL + 1) * CHANNELS, OUTPUTS, rngs=rngs)

  def __call__(self, x):
    y = jax.nn.relu(self.conv(x))
    return self.dense(y.reshape(y.shape[0], -1))


def analytic_forward_flops() -> int:
  out_length = LENGTH - KERNEL + 1
  conv = 2 * (BATCH * out_length * CHANNELS) * KERNEL * IN_CHANNELS  # 2 * out elems * taps * in.
  dense = 2 * BATCH * OUTPUTS * (out_length * CHANNELS)              # 2 * M * N * K.
  return conv + dense


@pytest.fixture(scope='module')
def model():
  return ConvDense(nnx.Rngs(0))


def test_forward_count_matches_the_analytic_count(model):
  graphdef, params = nnx.split(model)
  x = jnp.ones((BATCH, LENGTH, IN_CHANNELS))
  lowered = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x)).lower(params, x)
  expected = analytic_forward_flops()
  # XLA's count adds the bias adds and the ReLU: a few percent at most.
  assert flops.lowered_flops(lowered) == pytest.approx(expected, rel=0.03)
  assert flops.dot_and_conv_flops(lowered.as_text()) == expected


def test_train_step_count_is_three_forward_passes(model):
  """Forward, input gradient and weight gradient: 3x the forward's dots and convs."""
  graphdef, params = nnx.split(model)
  x = jnp.ones((BATCH, LENGTH, IN_CHANNELS))

  def step(params, x):
    grads = jax.grad(lambda p: jnp.mean(nnx.merge(graphdef, p)(x) ** 2))(params)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

  lowered = jax.jit(step).lower(params, x)
  expected = 3 * analytic_forward_flops() - 2 * BATCH * (LENGTH - KERNEL + 1) * CHANNELS * KERNEL * IN_CHANNELS
  # No gradient w.r.t. the input x: the first convolution has no input-gradient pass.
  assert flops.dot_and_conv_flops(lowered.as_text()) == expected
  assert flops.lowered_flops(lowered) == pytest.approx(expected, rel=0.03)


def test_the_stablehlo_count_reads_batched_dots_and_grouped_convs():
  a, b = jnp.ones((3, 7, 11)), jnp.ones((3, 11, 13))
  text = jax.jit(lambda a, b: jnp.einsum('bij,bjk->bik', a, b)).lower(a, b).as_text()
  assert flops.dot_and_conv_flops(text) == 2 * 3 * 7 * 13 * 11
  x, kernel = jnp.ones((2, 17, 12)), jnp.ones((3, 4, 12))  # 3 groups of 4 channels.
  grouped = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1,), 'VALID', dimension_numbers=('NWC', 'WIO', 'NWC'), feature_group_count=3)
  text = jax.jit(grouped).lower(x, kernel).as_text()
  assert flops.dot_and_conv_flops(text) == 2 * (2 * 15 * 12) * 3 * 4


def test_measured_peak_and_mfu():
  peak = flops.measure_peak_flops(jnp.float32, size=256, repeats=3)
  assert 1e8 < peak < 1e16
  assert flops.model_flops_utilization(1e9, 0.5, 4e9) == pytest.approx(0.5)
