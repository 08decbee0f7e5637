"""Model FLOPs of a compiled step, and this device's measured peak: the two halves of MFU.

The count comes from the lowered, unoptimized computation, before the backend
rewrites anything: XLA:GPU turns convolutions and large matmuls into cuDNN and
cuBLAS calls, which the cost analysis of the *compiled* executable does not
count (2.7 GFLOP reported there for the default VQ-VAE step at batch 32,
against 74.2 GFLOP in the unoptimized module). So:

  lowered = jax.jit(step).lower(state, batch)
  flops = flops_lib.lowered_flops(lowered)          # model FLOPs per step
  peak = flops_lib.measure_peak_flops(jnp.bfloat16)  # FLOP/s, measured here
  mfu = flops_lib.model_flops_utilization(flops, step_s, peak)

`lowered_flops` is XLA's cost analysis of the unoptimized module (every
operation: convolutions and dots, and the elementwise work beside them; the
taps of a convolution that fall in its zero padding are not counted). Where a
backend gives none, it falls back to `dot_and_conv_flops`, which counts only
the dot_general and convolution ops of the StableHLO text from their shapes.
"""
import math
import re
import time

import jax
import jax.numpy as jnp

_TENSOR = re.compile(r'tensor<([^>]*)>')
_DOT_DIMS = re.compile(r'contracting_dims = \[([\d, ]*)\] x \[([\d, ]*)\]')
_CONV_KERNEL_SPEC = re.compile(r'dim_numbers = \[[^\]]*\]x\[([^\]]*)\]')


def _shape(tensor_type: str) -> tuple[int, ...]:
  """'8x16x3xf32' -> (8, 16, 3); 'f32' -> ()."""
  return tuple(int(part) for part in tensor_type.split('x') if part.isdigit())


def _signature(line: str) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
  """The operand shapes and the result shape of one op's `: (A, B) -> C` signature."""
  operands, _, result = line.rpartition(' : (')[2].partition(') -> ')
  return [_shape(t) for t in _TENSOR.findall(operands)], _shape(_TENSOR.findall(result)[0])


def dot_and_conv_flops(stablehlo_text: str) -> float:
  """FLOPs of every dot_general and convolution in a StableHLO module's text.

  A dot: 2 x result elements x the product of the contracted sizes (2*M*N*K
  for a matmul). A convolution: 2 x result elements x kernel elements per
  output feature (2 * out_elems * kernel window * input channels per group),
  zero padding and dilation included. Elementwise work is not counted, and an
  op inside a function or loop body is counted once, however often it runs.

  Args:
    stablehlo_text: `jax.jit(f).lower(...).as_text()`.

  Returns:
    The FLOP count.
  """
  total = 0
  for line in stablehlo_text.splitlines():
    if 'stablehlo.dot_general' in line or 'stablehlo.dot ' in line:
      (lhs, _), result = _signature(line)
      dims = _DOT_DIMS.search(line)
      contracted = ([int(d) for d in dims.group(1).split(',') if d.strip()] if dims
                    else [len(lhs) - 1])
      total += 2 * math.prod(result) * math.prod(lhs[d] for d in contracted)
    elif 'stablehlo.convolution' in line:
      (_, kernel), result = _signature(line)
      kernel_spec = [d.strip() for d in _CONV_KERNEL_SPEC.search(line).group(1).split(',')]
      out_features = kernel[kernel_spec.index('o')]
      total += 2 * math.prod(result) * math.prod(kernel) // out_features
  return float(total)


def lowered_flops(lowered) -> float:
  """Model FLOPs of one call of a lowered (not yet compiled) computation.

  Args:
    lowered: `jax.jit(f).lower(*args)`.

  Returns:
    XLA's FLOP count of the unoptimized module, or where the backend gives
    none, the dot and convolution FLOPs of its StableHLO text.
  """
  try:
    cost = lowered.cost_analysis() or {}
  except Exception:  # pylint: disable=broad-except  # Backends without it.
    cost = {}
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per module.
    cost = cost[0] if cost else {}
  flops = float(cost.get('flops', 0.0))
  return flops if flops > 0 else dot_and_conv_flops(lowered.as_text())


def measure_peak_flops(dtype=jnp.float32, size: int | None = None, repeats: int = 10,
                       device=None) -> float:
  """FLOP/s of a large square matmul of `dtype`: this device's practical peak.

  Args:
    dtype: the compute dtype (bf16 on accelerators, float32 on a CPU).
    size: the matrices' side; default 8192 on an accelerator, 2048 on a CPU.
    repeats: timed matmuls, after one that compiles and warms up.
    device: default: the first device.

  Returns:
    FLOP/s (2 * size**3 per matmul).
  """
  device = device or jax.devices()[0]
  if size is None:
    size = 2048 if device.platform == 'cpu' else 8192
  a = jax.device_put(jnp.ones((size, size), dtype), device)
  # Scaled by 1/size, a matrix of ones stays ones however often it is squared.
  matmul = jax.jit(lambda a: (a @ a) * jnp.asarray(1 / size, dtype))
  out = matmul(a).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    out = matmul(out)
  out.block_until_ready()
  return 2 * size**3 * repeats / (time.perf_counter() - start)


def model_flops_utilization(flops_per_step: float, step_s: float, peak_flops: float) -> float:
  """Achieved model FLOP/s over the peak: the MFU of a step that took `step_s` seconds."""
  return flops_per_step / step_s / peak_flops
