"""The VQ-VAE train step of configs/vqvae.py: JAX vs plain PyTorch, same batch.

  python benchmarks/train_step_bench.py [--steps=10]

Reports compile time, steps/s and examples/s after warm-up, peak memory,
parameters, model FLOPs per step (XLA's cost analysis of the lowered,
unoptimized step: melodygan_jax/training/flops.py, which also counts the
convolutions a GPU runs as cuDNN calls) and MFU: achieved FLOP/s over this
machine's measured float32 (or bf16) matmul peak. Baseline: the same
architecture in PyTorch eager, float32, 2 threads, and its bf16 autocast. On an accelerator the JAX rows use it (bf16 there).
"""
import argparse
import json
import os
import pathlib
import resource
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import functools  # pylint: disable=wrong-import-position

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from configs import vqvae as vqvae_config  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.training import flops as flops_lib  # pylint: disable=wrong-import-position
from melodygan_jax.training import vqvae_trainer  # pylint: disable=wrong-import-position


def time_jax(dtype: str, batch, steps: int, adversarial: bool = True) -> dict:
  config = vqvae_config.get_config()
  config.model.dtype = dtype
  (graphdef, disc_graphdef), state, optimizers, schedule = vqvae_trainer.init_state(config)
  # adversarial: a step after the warm-up, codec and discriminator.
  step_fn = jax.jit(functools.partial(vqvae_trainer.train_step, graphdef, disc_graphdef,
                                      *optimizers, schedule, config, adversarial, vqvae_trainer.unit_log_mel_stats()),
                    donate_argnums=0)
  rng = jax.random.key(0)
  start = time.perf_counter()
  lowered = step_fn.lower(state, batch, rng)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  flops = flops_lib.lowered_flops(lowered)
  for _ in range(3):  # Warm-up.
    state, metrics = compiled(state, batch, rng)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch, rng)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - start) / steps
  params = sum(x.size for x in jax.tree.leaves(state.params))
  device = jax.devices()[0]
  memory = device.memory_stats() or {}
  peak_bytes = memory.get('peak_bytes_in_use')
  if peak_bytes is None:  # CPU: the process's peak resident set.
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {'compile_s': compile_s, 'step_s': step_s, 'flops': flops, 'params': params,
          'peak_bytes': peak_bytes, 'loss': float(metrics['train/loss'])}


def time_torch(batch_np, steps: int, bf16: bool) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  import torch_vqvae  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count() or 1)
  torch.manual_seed(0)
  model = torch_vqvae.TorchVQVAE()
  step = torch_vqvae.make_train_step(model, bf16=bf16)
  mel = torch.from_numpy(np.ascontiguousarray(batch_np.transpose(0, 2, 1)))
  for _ in range(3):
    loss = step(mel)
  start = time.perf_counter()
  for _ in range(steps):
    loss = step(mel)
  return {'step_s': (time.perf_counter() - start) / steps, 'loss': float(loss),
          'params': sum(p.numel() for p in model.parameters())}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--skip_torch', action='store_true')
  args = parser.parse_args()
  config = vqvae_config.get_config()
  batch_size, frames = config.train.batch_size, config.data.crop_frames
  batch_np = np.random.default_rng(0).standard_normal((batch_size, frames, contract.NUM_MELS),
                                                      np.float32)
  batch = {'mel': jnp.asarray(batch_np), 'stem': jnp.zeros(len(batch_np), jnp.int32)}
  platform = jax.devices()[0].platform
  peak32 = flops_lib.measure_peak_flops(jnp.float32)
  peak16 = flops_lib.measure_peak_flops(jnp.bfloat16)
  rows, figures = [], {'platform': platform, 'device': jax.devices()[0].device_kind,
                       'peak_matmul_gflops_f32': round(peak32 / 1e9, 1),
                       'peak_matmul_gflops_bf16': round(peak16 / 1e9, 1)}
  for dtype, peak in (('float32', peak32), ('bfloat16', peak16)):
    result = time_jax(dtype, batch, args.steps)
    tag = 'f32' if dtype == 'float32' else 'bf16'
    mfu = flops_lib.model_flops_utilization(result['flops'], result['step_s'], peak)
    rows.append((f'JAX {dtype} ({platform})', result['step_s'], result['compile_s'], mfu))
    figures.update({
        f'jax_{tag}_step_ms': round(result['step_s'] * 1e3, 1),
        f'jax_{tag}_steps_per_s': round(1 / result['step_s'], 2),
        f'jax_{tag}_examples_per_s': round(batch_size / result['step_s'], 1),
        f'jax_{tag}_compile_s': round(result['compile_s'], 2),
        f'jax_{tag}_mfu': round(mfu, 3),
        f'jax_{tag}_peak_memory_mb': round(result['peak_bytes'] / 2**20, 1),
    })
    figures['params'] = result['params']
    figures['model_gflops_per_step'] = round(result['flops'] / 1e9, 2)
  warmup = time_jax('float32', batch, args.steps, adversarial=False)
  rows.append(('JAX float32, warm-up steps (no D)', warmup['step_s'], warmup['compile_s'],
               flops_lib.model_flops_utilization(warmup['flops'], warmup['step_s'], peak32)))
  figures['jax_f32_warmup_step_ms'] = round(warmup['step_s'] * 1e3, 1)
  if not args.skip_torch:
    for bf16 in (False, True):
      result = time_torch(batch_np, args.steps, bf16)
      tag = 'bf16' if bf16 else 'f32'
      rows.append((f'PyTorch eager {"bf16 autocast" if bf16 else "float32"} (cpu)',
                   result['step_s'], None, None))
      figures[f'torch_{tag}_step_ms'] = round(result['step_s'] * 1e3, 1)
      assert result['params'] == figures['params'], (result['params'], figures['params'])
    figures['speedup_vs_torch'] = round(figures['torch_f32_step_ms'] / figures['jax_f32_step_ms'], 3)
    figures['speedup_vs_torch_bf16'] = round(
        figures['torch_bf16_step_ms'] / figures['jax_bf16_step_ms'], 3)
  print(f'VQ-VAE train step, configs/vqvae.py: batch {batch_size} x {frames} frames x '
        f'{contract.NUM_MELS} mels, {config.model.num_levels} residual levels, after the '
        'discriminator warm-up (codec and discriminator trained each step), '
        f'{figures["params"] / 1e6:.2f} M parameters, {figures["model_gflops_per_step"]} GFLOP/step')
  print(f'measured matmul peak: {peak32 / 1e9:.0f} GFLOP/s float32, {peak16 / 1e9:.0f} bf16')
  print(f'{"":36s} {"ms/step":>9s} {"steps/s":>8s} {"compile s":>10s} {"MFU":>6s}')
  for name, step_s, compile_s, mfu in rows:
    print(f'{name:36s} {step_s * 1e3:9.1f} {1 / step_s:8.2f} '
          f'{"" if compile_s is None else f"{compile_s:.1f}":>10s} '
          f'{"" if mfu is None else f"{mfu:.0%}":>6s}')
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
