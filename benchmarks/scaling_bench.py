"""Data-parallel scaling of the VQ-VAE train step, and the input pipeline's headroom.

  python benchmarks/scaling_bench.py [--steps=20] [--per_device_batch_size=8]

Weak scaling: each device gets `--per_device_batch_size` examples, so the
global batch grows with the devices. Rows: 1, 2, 4 and 8 simulated CPU devices
in one process (XLA_FLAGS=--xla_force_host_platform_device_count=N), and 2
processes of 2 devices each joined by jax.distributed on a localhost
coordinator (gloo collectives). Each row is a fresh process; the step is timed
after a warm-up on a batch already on the devices. Simulated devices share
this machine's cores, so examples/s per device falls once the devices
outnumber the cores: the figures show the code scales, not the chip.
Efficiency = examples/s per device / that of 1 device.

The input pipeline row reads real music (benchmarks/real_music.py) prepared
with data_prep, through input_pipeline.train_batches at configs/vqvae.py's
crop, and compares the examples/s the host feeds with those one step consumes
(headroom > 1: the host keeps up). On a GPU the same runs also print step
time and MFU (model FLOPs of the lowered, unoptimized step over a bf16 matmul
peak measured on the chip: melodygan_jax/training/flops.py) for configs/vqvae.py
and a large variant, in bf16.
"""
import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))

DEVICE_COUNTS = (1, 2, 4, 8)
LARGE_VQVAE = {'model.widths': (512, 512, 512), 'model.num_res_blocks': 3,
               'data.crop_frames': 256}


def make_config(variant: str, per_device_batch_size: int):
  from configs import vqvae, vqvae_tiny  # pylint: disable=g-import-not-at-top
  config = (vqvae_tiny if variant == 'tiny' else vqvae).get_config()
  if variant == 'large':
    for field, value in LARGE_VQVAE.items():
      section, name = field.split('.')
      config[section][name] = value
  config.train.per_device_batch_size = per_device_batch_size
  return config


def time_train_step(variant: str, per_device_batch_size: int, steps: int) -> dict:
  """Examples/s of the jitted train step on every device of this run."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from melodygan_jax.audio import contract  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import config_checks  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import flops as flops_lib  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import parallel  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import vqvae_trainer  # pylint: disable=g-import-not-at-top
  import functools  # pylint: disable=g-import-not-at-top
  config = make_config(variant, per_device_batch_size)
  config_checks.check_train_section(config.train)
  (graphdef, disc_graphdef), initial, optimizers, schedule = vqvae_trainer.init_state(config)
  mesh = parallel.make_mesh()
  state = parallel.replicate(initial, mesh)
  # The warm-up step (no discriminator), as the first adversarial_start_step steps run.
  step_fn = jax.jit(functools.partial(vqvae_trainer.train_step, graphdef, disc_graphdef,
                                      *optimizers, schedule, config, False,
                                      vqvae_trainer.unit_log_mel_stats()), donate_argnums=0,
                    out_shardings=parallel.replicated(mesh))
  local = config.train.batch_size // jax.process_count()
  mel = np.random.default_rng(jax.process_index()).standard_normal(
      (local, config.data.crop_frames, contract.NUM_MELS)).astype(np.float32)
  batch = parallel.global_batch({'mel': mel, 'stem': np.zeros(local, np.int32)}, mesh)
  rng = jax.random.key(0)
  lowered = step_fn.lower(state, batch, rng)
  compiled = lowered.compile()
  flops = flops_lib.lowered_flops(lowered)
  for _ in range(3):
    state, metrics = compiled(state, batch, rng)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch, rng)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - start) / steps
  return {'devices': jax.device_count(), 'processes': jax.process_count(),
          'global_batch': config.train.batch_size, 'step_s': step_s,
          'examples_per_s': config.train.batch_size / step_s,
          'examples_per_s_per_device': config.train.batch_size / step_s / jax.device_count(),
          'flops_per_step': flops, 'device_kind': jax.devices()[0].device_kind,
          'dtype': config.model.dtype}


def worker(args) -> None:
  """One timed run in this process (the parent sets XLA_FLAGS before JAX starts)."""
  import jax  # pylint: disable=g-import-not-at-top
  if args.num_processes > 1:
    from melodygan_jax.training import parallel  # pylint: disable=g-import-not-at-top
    parallel.initialize_distributed(args.coordinator_address, args.num_processes,
                                    args.process_id)
  result = time_train_step(args.variant, args.per_device_batch_size, args.steps)
  if jax.process_index() == 0:
    print('RESULT ' + json.dumps(result), flush=True)


def run_workers(devices_per_process: int, num_processes: int, args) -> dict:
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'TF_CPP_MIN_LOG_LEVEL': '2',
         'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices_per_process}'}
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  processes = [subprocess.Popen(
      [sys.executable, __file__, '--worker', f'--steps={args.steps}', '--variant=tiny',
       f'--per_device_batch_size={args.per_device_batch_size}',
       f'--num_processes={num_processes}', f'--process_id={index}',
       f'--coordinator_address=localhost:{port}'],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
      for index in range(num_processes)]
  outputs = [process.communicate(timeout=900)[0] for process in processes]
  lines = [line for line in outputs[0].splitlines() if line.startswith('RESULT ')]
  if not lines:
    raise RuntimeError(f'worker of {num_processes}x{devices_per_process} devices failed')
  return json.loads(lines[-1].removeprefix('RESULT '))


def input_pipeline_rate(dataset_dir: str, batches: int) -> float:
  """Examples/s this host's tf.data pipeline yields at configs/vqvae.py's crop and batch."""
  from configs import vqvae  # pylint: disable=g-import-not-at-top
  from melodygan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  config = vqvae.get_config()
  config.data.dataset_dir = dataset_dir
  config.data.crop_frames = 128
  meta = input_pipeline.load_dataset_meta(dataset_dir)
  stream = input_pipeline.train_batches(config.data, meta, config.train.batch_size, seed=0)
  for _ in range(3):
    next(stream)
  start = time.perf_counter()
  for _ in range(batches):
    next(stream)
  return batches * config.train.batch_size / (time.perf_counter() - start)


def prepare_music(work: pathlib.Path, seconds: float) -> str:
  import real_music  # pylint: disable=g-import-not-at-top
  from data_prep import prepare  # pylint: disable=g-import-not-at-top
  songs = work / 'songs'
  songs.mkdir()
  for path in real_music.music_files(seconds):
    (songs / path.name).symlink_to(path)
  options = prepare.PrepareOptions(input_dir=str(songs), output_dir=str(work / 'data'),
                                   num_workers=2, show_progress=False)
  prepare.prepare(options)
  return str(work / 'data')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--per_device_batch_size', type=int, default=8)
  parser.add_argument('--music_seconds', type=float, default=120)
  parser.add_argument('--worker', action='store_true')
  parser.add_argument('--variant', default='tiny')
  parser.add_argument('--num_processes', type=int, default=1)
  parser.add_argument('--process_id', type=int, default=0)
  parser.add_argument('--coordinator_address', default='')
  args = parser.parse_args()
  if args.worker:
    return worker(args)

  rows = [(f'{n} device(s), 1 process', run_workers(n, 1, args)) for n in DEVICE_COUNTS]
  rows.append(('2 processes x 2 devices', run_workers(2, 2, args)))
  base = rows[0][1]['examples_per_s_per_device']
  print(f'VQ-VAE tiny train step, {args.per_device_batch_size} examples per device, '
        f'simulated CPU devices on {os.cpu_count()} cores')
  print(f'{"run":28s} {"batch":>6s} {"step ms":>8s} {"ex/s":>8s} {"ex/s/dev":>9s} {"eff.":>6s}')
  figures = {}
  for name, row in rows:
    efficiency = row['examples_per_s_per_device'] / base
    print(f'{name:28s} {row["global_batch"]:6d} {row["step_s"] * 1e3:8.1f} '
          f'{row["examples_per_s"]:8.1f} {row["examples_per_s_per_device"]:9.1f} '
          f'{efficiency:6.2f}')
    key = f'{row["processes"]}x{row["devices"] // row["processes"]}'
    figures[f'examples_per_s_per_device_{key}'] = round(row['examples_per_s_per_device'], 2)
    figures[f'weak_scaling_efficiency_{key}'] = round(efficiency, 3)
  four_in_one = rows[2][1]['examples_per_s']
  figures['speedup_vs_one_process_4_devices'] = round(rows[-1][1]['examples_per_s']
                                                      / four_in_one, 3)

  import jax  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as work:
    dataset_dir = prepare_music(pathlib.Path(work), args.music_seconds)
    feed = input_pipeline_rate(dataset_dir, batches=30)
  print(f'\ninput pipeline (configs/vqvae.py crop 128, batch 32, real music): '
        f'{feed:.0f} examples/s from one host')
  figures['input_examples_per_s'] = round(feed, 1)
  if jax.default_backend() == 'gpu':
    from melodygan_jax.training import flops as flops_lib  # pylint: disable=g-import-not-at-top
    peak = flops_lib.measure_peak_flops(jax.numpy.bfloat16)
    figures['gpu_peak_matmul_tflops_bf16'] = round(peak / 1e12, 1)
    for variant in ('default', 'large'):
      row = time_train_step(variant, 32, args.steps)
      mfu = flops_lib.model_flops_utilization(row['flops_per_step'], row['step_s'], peak)
      headroom = feed / row['examples_per_s']
      print(f'{variant} on {row["device_kind"]} ({row["dtype"]}): step '
            f'{row["step_s"] * 1e3:.1f} ms, {row["examples_per_s"]:.0f} examples/s, MFU '
            f'{mfu:.1%}, input headroom {headroom:.2f}x')
      figures[f'gpu_{variant}_step_ms'] = round(row['step_s'] * 1e3, 2)
      figures[f'gpu_{variant}_mfu'] = round(mfu, 4)
      figures[f'gpu_{variant}_input_headroom'] = round(headroom, 2)
  else:
    print('no GPU here: step time, MFU and input headroom on an accelerator not measured')
    tiny_cpu = rows[0][1]['examples_per_s']
    figures['input_headroom_vs_cpu_tiny_step'] = round(feed / tiny_cpu, 2)
    print(f'input headroom over the 1-device CPU tiny step: {feed / tiny_cpu:.2f}x')
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
