r"""What each model costs on this machine's accelerator: one table, then short real runs.

  python benchmarks/accelerator_check.py            # the full check (GPU/TPU)
  python benchmarks/accelerator_check.py --quick    # tiny configs, a few steps: minutes on a CPU

Step costs, one row per config: configs/vqvae.py and vqvae_large.py, gan.py,
vocoder.py and vocoder_large.py (--quick: the _tiny siblings), each the step a
long run spends its time in (the codec's and the vocoder's adversarial step,
discriminators included), on batches of random arrays of the step's shapes
made on the host, data parallel over every local device as training runs it:
  - compile s, first start: lowering and compiling in a fresh process with an
    empty persistent compilation cache (melodygan_jax/compilation_cache.py);
  - compile s, second start: the same in a second fresh process, which finds
    the step in that cache (what a restart or resume of `train` pays);
  - ms/step, examples/s and audio seconds/s (seconds of music the step trains
    on per second) after a warm-up;
  - model GFLOP per step, counted on the lowered, unoptimized step
    (melodygan_jax/training/flops.py), beside what XLA's cost analysis of the
    compiled step reports (on a GPU it misses the cuDNN/cuBLAS calls);
  - MFU: model FLOP/s over a matmul peak measured here in the step's compute
    dtype, times the device count;
  - peak device memory (device.memory_stats(); on a CPU the process's RSS).
Without --quick, each config then trains for --train_steps on real music
(its train split in device memory when it fits: config.data.placement 'auto';
the table gives the share of wall time the loop waited for its next batch)
(--music_seconds of both soundtracks of benchmarks/real_music.py, prepared by
data_prep with 15% of the files held out, cached in benchmarks/.cache) through
`python -m melodygan_jax.train`, and its eval figures are listed; the GAN
trains on the VQ-VAE run of the same size.

Step costs run in child processes that import only JAX, flax, optax, orbax,
numpy, scipy, absl, etils, ml_collections (the configs/ files are
ml_collections) and this package; no TensorFlow. The VQ-VAE and GAN rows do
not import librosa or soundfile; the vocoder's step computes log-mel with
librosa's mel filterbank (the audio contract's), so its rows need librosa. The
table says what each child imported. To carry ml_collections (pure Python) to
a machine that cannot reach a package index:

  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux2014_x86_64 -d .whl ml_collections==1.1.0
  # there: pip install --no-deps .whl/*.whl  (it needs absl-py and PyYAML)

Ends with one JSON line of the figures (`<config>_<figure>`), and
`speedup_vs_first_start_compile`: first-start compile time over second-start,
summed over the configs.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

FULL_CONFIGS = ('vqvae', 'vqvae_large', 'gan', 'vocoder', 'vocoder_large')
QUICK_CONFIGS = ('vqvae_tiny', 'gan_tiny', 'vocoder_tiny')
# The GAN trains on codes of a VQ-VAE of this shape: (levels, codebook size, dim).
GAN_CODEBOOKS = {'gan': (8, 1024, 64), 'gan_tiny': (3, 64, 16)}
VQVAE_TIME_STRIDE = 4  # Frames per code, in both VQ-VAE sizes.
CHECKED_MODULES = ('tensorflow', 'librosa', 'soundfile', 'ml_collections')


# ----------------------------------------------------------------------------- step costs
# (run in a child process: `--worker`)


def build_step(name: str):
  """(jitted step, args, examples per step, audio seconds per example, compute dtype)."""
  import functools  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from melodygan_jax.audio import contract  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import parallel  # pylint: disable=g-import-not-at-top

  config = importlib.import_module(f'configs.{name}').get_config()
  mesh = parallel.make_mesh()
  rng = np.random.default_rng(0)
  batch_size = config.train.batch_size
  replicated = parallel.replicated(mesh)
  if config.trainer == 'vqvae':
    from melodygan_jax.training import vqvae_trainer  # pylint: disable=g-import-not-at-top
    (graphdef, disc_graphdef), state, optimizers, schedule = vqvae_trainer.init_state(config)
    step = jax.jit(functools.partial(
        vqvae_trainer.train_step, graphdef, disc_graphdef, *optimizers, schedule, config, True,
        vqvae_trainer.unit_log_mel_stats()), donate_argnums=0, out_shardings=replicated)
    frames = config.data.crop_frames
    batch = {'mel': rng.standard_normal((batch_size, frames, contract.NUM_MELS), np.float32),
             'stem': np.zeros(batch_size, np.int32)}
    args = (parallel.replicate(state, mesh), parallel.global_batch(batch, mesh),
            jax.random.key(0))
    seconds = contract.frames_to_seconds(frames)
  elif config.trainer == 'gan':
    from melodygan_jax.evaluation import latent_metrics  # pylint: disable=g-import-not-at-top
    from melodygan_jax.training import gan_trainer  # pylint: disable=g-import-not-at-top
    levels, codebook_size, dim = GAN_CODEBOOKS[name]
    gen_graphdef, disc_graphdef, state, optimizers = gan_trainer.init_state(
        config, levels, codebook_size, dim)
    step = jax.jit(functools.partial(gan_trainer.train_step, gen_graphdef, disc_graphdef,
                                     optimizers, config),
                   donate_argnums=2, out_shardings=replicated)
    codes = rng.integers(0, codebook_size, (batch_size, config.data.crop_steps, levels),
                         dtype=np.int32)
    codebooks = rng.standard_normal((levels, codebook_size, dim)).astype(np.float32)
    histogram = latent_metrics.code_histogram(codes, codebook_size).astype(np.float32)
    args = (parallel.replicate(codebooks, mesh), parallel.replicate(histogram, mesh),
            parallel.replicate(state, mesh), parallel.global_batch(codes, mesh),
            jax.random.key(config.seed))
    seconds = contract.frames_to_seconds(config.data.crop_steps * VQVAE_TIME_STRIDE)
  else:
    from melodygan_jax.training import vocoder_trainer  # pylint: disable=g-import-not-at-top
    (graphdef, disc_graphdef), state, optimizers, schedule = vocoder_trainer.init_state(config)
    step = jax.jit(functools.partial(
        vocoder_trainer.train_step, graphdef, disc_graphdef, *optimizers, schedule, config,
        lambda codec, log_mel: log_mel, True), donate_argnums=0, out_shardings=replicated)
    samples = config.data.crop_samples
    audio = 0.1 * rng.standard_normal((batch_size, samples)).astype(np.float32)
    args = (parallel.replicate(state, mesh), parallel.global_batch({'audio': audio}, mesh), None)
    seconds = samples / contract.SAMPLE_RATE_HZ
  return step, args, batch_size, seconds, config.model.dtype


def peak_memory_bytes() -> tuple[int, str]:
  import resource  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return int(stats['peak_bytes_in_use']), 'device'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'rss'


def time_step(name: str, steps: int) -> dict:
  """Compile, count and time one config's train step in this process."""
  import jax  # pylint: disable=g-import-not-at-top

  from melodygan_jax.training import flops as flops_lib  # pylint: disable=g-import-not-at-top
  step, args, batch_size, seconds, dtype = build_step(name)
  start = time.perf_counter()
  lowered = step.lower(*args)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  model_flops = flops_lib.lowered_flops(lowered)
  compiled_cost = compiled.cost_analysis() or {}
  if isinstance(compiled_cost, (list, tuple)):
    compiled_cost = compiled_cost[0] if compiled_cost else {}
  state_index = 2 if name.startswith('gan') else 0
  args = list(args)
  for _ in range(2):  # Warm-up; the step donates its state, so each call takes the new one.
    args[state_index], metrics = compiled(*args)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    args[state_index], metrics = compiled(*args)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - start) / steps
  memory, memory_kind = peak_memory_bytes()
  return {'config': name, 'compile_s': compile_s, 'step_s': step_s,
          'examples_per_s': batch_size / step_s,
          'audio_s_per_s': batch_size * seconds / step_s, 'model_flops': model_flops,
          'compiled_cost_analysis_flops': float(compiled_cost.get('flops', 0.0)),
          'dtype': dtype, 'peak_memory_bytes': memory, 'memory_kind': memory_kind,
          'loss': float(metrics['train/loss']) if 'train/loss' in metrics else None}


def worker(args) -> None:
  """Times `args.configs` in this process; prints one RESULT line of JSON."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from melodygan_jax import compilation_cache  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import flops as flops_lib  # pylint: disable=g-import-not-at-top
  hits = []
  jax.monitoring.register_event_listener(
      lambda event, **kwargs: hits.append(event) if event.endswith('cache_hits') else None)
  compilation_cache.enable(args.cache_dir)
  result = {'rows': [], 'platform': jax.devices()[0].platform,
            'device_kind': jax.devices()[0].device_kind, 'device_count': jax.device_count()}
  if args.measure_peak:
    size = 1024 if args.quick and jax.default_backend() == 'cpu' else None
    result['peak_flops'] = {dtype: flops_lib.measure_peak_flops(getattr(jnp, dtype), size=size)
                            for dtype in ('float32', 'bfloat16')}
  for name in args.configs.split(','):
    before = len(hits)
    row = time_step(name, args.steps)
    row['cache_hits'] = len(hits) - before
    # Cumulative: the rows run in this order in one process.
    row['imported'] = [module for module in CHECKED_MODULES if module in sys.modules]
    result['rows'].append(row)
  print('RESULT ' + json.dumps(result), flush=True)


def run_worker(configs, cache_dir: str, args, measure_peak: bool) -> dict:
  command = [sys.executable, __file__, '--worker', f'--configs={",".join(configs)}',
             f'--cache_dir={cache_dir}', f'--steps={args.steps}']
  command += ['--quick'] if args.quick else []
  command += ['--measure_peak'] if measure_peak else []
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'PYTHONPATH': str(ROOT)}
  process = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  lines = [line for line in process.stdout.splitlines() if line.startswith('RESULT ')]
  if process.returncode or not lines:
    raise RuntimeError(f'step worker for {",".join(configs)} failed:\n{process.stderr[-3000:]}')
  return json.loads(lines[-1].removeprefix('RESULT '))


# ----------------------------------------------------------------------------- real runs


def prepare_music(seconds: float) -> pathlib.Path:
  """About `seconds` of both soundtracks, prepared with 15% of the files held out (cached)."""
  import real_music  # pylint: disable=g-import-not-at-top
  from data_prep import prepare  # pylint: disable=g-import-not-at-top
  cache = ROOT / 'benchmarks' / '.cache'
  songs, output = cache / f'accelerator_music_{seconds:.0f}s', cache / f'accelerator_data_{seconds:.0f}s'
  songs.mkdir(parents=True, exist_ok=True)
  for path in real_music.music_files(seconds, ('drascula-music', 'singularity-music')):
    link = songs / f'{path.parent.name}_{path.name}'
    if not link.exists():
      link.symlink_to(path)
  prepare.prepare(prepare.PrepareOptions(  # A re-run finds the work done.
      input_dir=str(songs), output_dir=str(output), validation_fraction=0.15, num_workers=2,
      show_progress=False))
  return output


def train_on_real_music(configs, train_steps: int, music_seconds: float, work: pathlib.Path,
                        cache_dir: str) -> dict:
  """Trains each config for `train_steps` on real music; its last eval row, and wall time."""
  import importlib  # pylint: disable=g-import-not-at-top
  dataset_dir = prepare_music(music_seconds)
  results = {}
  for name in configs:
    workdir = work / name
    flags = [f'--config={ROOT / "configs" / f"{name}.py"}', f'--workdir={workdir}',
             f'--config.data.dataset_dir={dataset_dir}',
             f'--config.train.num_steps={train_steps}',
             f'--config.train.eval_every_steps={train_steps}',
             f'--config.train.checkpoint_every_steps={train_steps}',
             f'--config.train.log_every_steps={max(1, train_steps // 4)}']
    train_config = importlib.import_module(f'configs.{name}').get_config().train
    if train_config.get('warmup_steps', 0) >= train_steps:  # A short run still warms up.
      flags.append(f'--config.train.warmup_steps={train_steps // 4}')
    if name.startswith('gan'):
      vqvae = work / name.replace('gan', 'vqvae')
      flags = [f for f in flags if 'dataset_dir' not in f] + [f'--config.vqvae_workdir={vqvae}']
    start = time.perf_counter()
    env = {**os.environ, 'MELODYGAN_JAX_CACHE': cache_dir}  # Not the user's cache.
    process = subprocess.run([sys.executable, '-m', 'melodygan_jax.train', *flags], cwd=ROOT,
                             env=env, capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - start
    if process.returncode:
      results[name] = {'error': process.stderr.strip().splitlines()[-1][:300], 'wall_s': wall_s}
      continue
    rows = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
    evals = [row for row in rows if any(key.startswith('eval/') for key in row)]
    # The first logged interval holds the compilation: the share after it.
    waits = [row['train/input_wait_share'] for row in rows
             if 'train/input_wait_share' in row][1:]
    results[name] = {'wall_s': wall_s,
                     'input_wait_share': float(sum(waits) / len(waits)) if waits else None,
                     **({k: v for k, v in evals[-1].items()
                         if k.startswith('eval/')} if evals else {})}
  return results


# ----------------------------------------------------------------------------- report


def print_table(first: dict, second: dict) -> dict:
  """The step-cost table; returns its figures."""
  peaks = first['peak_flops']
  devices = first['device_count']
  print(f'step costs on {devices} x {first["platform"]} ({first["device_kind"]}); measured '
        f'matmul peak {peaks["float32"] / 1e9:.0f} GFLOP/s float32, '
        f'{peaks["bfloat16"] / 1e9:.0f} bf16 per device')
  header = (f'{"config":15s} {"compile s":>9s} {"2nd start":>9s} {"ms/step":>9s} {"ex/s":>8s} '
            f'{"audio s/s":>9s} {"GFLOP":>9s} {"XLA GFLOP":>9s} {"MFU":>7s} {"peak MiB":>9s}')
  print(header)
  figures = {}
  for row, again in zip(first['rows'], second['rows']):
    name = row['config']
    peak = peaks['bfloat16' if row['dtype'] == 'bfloat16' else 'float32'] * devices
    mfu = row['model_flops'] / row['step_s'] / peak
    print(f'{name:15s} {row["compile_s"]:9.1f} {again["compile_s"]:9.1f} '
          f'{row["step_s"] * 1e3:9.1f} {row["examples_per_s"]:8.1f} '
          f'{row["audio_s_per_s"]:9.1f} {row["model_flops"] / 1e9:9.2f} '
          f'{row["compiled_cost_analysis_flops"] / 1e9:9.2f} {mfu:7.1%} '
          f'{row["peak_memory_bytes"] / 2**20:9.0f}{"*" if row["memory_kind"] == "rss" else ""}')
    figures.update({
        f'{name}_compile_s_first_start': round(row['compile_s'], 2),
        f'{name}_compile_s_second_start': round(again['compile_s'], 2),
        f'{name}_second_start_cache_hits': again['cache_hits'],
        f'{name}_step_ms': round(row['step_s'] * 1e3, 2),
        f'{name}_examples_per_s': round(row['examples_per_s'], 2),
        f'{name}_audio_s_per_s': round(row['audio_s_per_s'], 2),
        f'{name}_model_gflop_per_step': round(row['model_flops'] / 1e9, 3),
        f'{name}_compiled_cost_analysis_gflop': round(row['compiled_cost_analysis_flops'] / 1e9, 3),
        f'{name}_mfu': round(mfu, 4),
        f'{name}_peak_memory_mib': round(row['peak_memory_bytes'] / 2**20, 1),
        f'{name}_dtype': row['dtype'],
    })
  if any(row['memory_kind'] == 'rss' for row in first['rows']):
    print('* no device memory statistics here: the process\'s peak resident set')
  for row in first['rows']:  # With --quick, what the rows before it in its process imported too.
    print(f'{row["config"]} step imported {", ".join(row["imported"]) or "none"} '
          f'of {", ".join(CHECKED_MODULES)}')
    figures[f'{row["config"]}_step_imports'] = row['imported']
  first_total = sum(row['compile_s'] for row in first['rows'])
  second_total = sum(row['compile_s'] for row in second['rows'])
  figures.update({
      'platform': first['platform'], 'device_kind': first['device_kind'],
      'device_count': devices,
      'peak_matmul_gflops_float32': round(peaks['float32'] / 1e9, 1),
      'peak_matmul_gflops_bfloat16': round(peaks['bfloat16'] / 1e9, 1),
      'speedup_vs_first_start_compile': round(first_total / second_total, 3)})
  return figures


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--quick', action='store_true', help='tiny configs, few steps, no runs')
  parser.add_argument('--steps', type=int, default=None, help='timed steps (default 10; 2 quick)')
  parser.add_argument('--train_steps', type=int, default=300, help='steps of each real run')
  parser.add_argument('--music_seconds', type=float, default=900,
                      help='seconds of real music the runs train and evaluate on')
  parser.add_argument('--configs', default=None, help='comma-separated configs/ names')
  parser.add_argument('--cache_dir', default=None,
                      help='compilation cache of the step children (default: a new temporary '
                           'folder, so the first start compiles)')
  parser.add_argument('--runs_only', action='store_true', help='only the real runs')
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--measure_peak', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.steps is None:
    args.steps = 2 if args.quick else 10
  if args.worker:
    return worker(args)
  configs = (args.configs.split(',') if args.configs
             else QUICK_CONFIGS if args.quick else FULL_CONFIGS)
  with tempfile.TemporaryDirectory() as work:
    cache_dir = args.cache_dir or str(pathlib.Path(work) / 'jax_cache')
    figures = {}
    if not args.runs_only:
      # One process per config, so each row's peak memory is its own; --quick runs them all
      # in one process (two starts in all), and a row's peak is then the largest so far.
      groups = [configs] if args.quick else [[name] for name in configs]
      first = [run_worker(group, cache_dir, args, measure_peak=index == 0)
               for index, group in enumerate(groups)]
      second = [run_worker(group, cache_dir, args, measure_peak=False) for group in groups]
      first[0]['rows'] = [row for result in first for row in result['rows']]
      second[0]['rows'] = [row for result in second for row in result['rows']]
      figures = print_table(first[0], second[0])
    if not args.quick:
      runs = train_on_real_music(configs, args.train_steps, args.music_seconds,
                                 pathlib.Path(work), cache_dir)
      print(f'\n{args.train_steps} steps of each on real music (eval figures at the last step):')
      for name, result in runs.items():
        shown = ', '.join(f'{key.removeprefix("eval/")} {value:.4g}' for key, value in
                          list((k, v) for k, v in result.items() if k.startswith('eval/'))[:6])
        wait = result.get('input_wait_share')
        wait = f'input wait {wait:5.1%}' if wait is not None else 'input wait -'
        print(f'{name:15s} {result["wall_s"]:7.0f} s  {wait}  {result.get("error") or shown}')
        figures.update({f'{name}_run_{key.replace("/", "_")}': value
                        for key, value in result.items()})
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
