"""Two processes on this machine, as two hosts: jax.distributed on a localhost coordinator.

Each process has 2 CPU devices (4 in all, like the single-process tests), and
they reach each other through gloo. The tiny VQ-VAE is preempted (SIGTERM to
one process), resumed through an eval and checkpoints, and must equal a
single-process run of the same config and seed (the global batches do not depend
on the process layout); the tiny GAN then trains from it.
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import gan_tiny
from configs import vqvae_tiny
from melodygan_jax.runs import checkpoints
from melodygan_jax.runs import loading
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import gan_trainer
from melodygan_jax.training import latent_encoding
from melodygan_jax.training import parallel
from melodygan_jax.training import vqvae_trainer

pytestmark = pytest.mark.multiprocess  # Two processes talk over a localhost coordinator.


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_PROCESSES = 2
VQVAE_OVERRIDES = {'train.num_steps': 24, 'train.checkpoint_every_steps': 8,
                   'train.eval_every_steps': 16, 'train.log_every_steps': 4,
                   'train.keep_checkpoints': 10}
GAN_OVERRIDES = {'data.crop_steps': 8, 'train.num_steps': 12,
                 'train.checkpoint_every_steps': 6, 'train.eval_every_steps': 12,
                 'train.log_every_steps': 6, 'train.num_eval_samples': 32}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def start_processes(config_file, workdir, overrides, log_dir):
  """Starts the train CLI as process 0 and 1 of one run; returns the Popens."""
  port = free_port()
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu',
         'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  processes = []
  for index in range(NUM_PROCESSES):
    log = open(log_dir / f'process_{index}.{time.monotonic_ns()}.log', 'w+')
    processes.append(subprocess.Popen(
        [sys.executable, '-m', 'melodygan_jax.train', f'--config={REPO_ROOT / config_file}',
         f'--workdir={workdir}', f'--coordinator_address=localhost:{port}',
         f'--num_processes={NUM_PROCESSES}', f'--process_id={index}',
         *[f'--config.{field}={value}' for field, value in overrides.items()]],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
    processes[-1].log = log
  return processes


def wait_all(processes, timeout_s=400) -> list[str]:
  """Waits for every process; returns their logs; fails if one did not exit 0."""
  deadline = time.time() + timeout_s
  logs = []
  try:
    for process in processes:
      process.wait(timeout=max(1.0, deadline - time.time()))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for index, process in enumerate(processes):
    process.log.seek(0)
    logs.append(process.log.read())
    process.log.close()
    assert process.returncode == 0, f'process {index}:\n{logs[-1][-3000:]}'
  return logs


def saved_steps(workdir):
  folder = pathlib.Path(workdir) / 'checkpoints'
  return sorted(int(p.name) for p in folder.glob('*') if p.name.isdigit()) if folder.exists() else []


def tiny_vqvae_config(prepared_dir):
  config = vqvae_tiny.get_config()
  config.data.dataset_dir = str(prepared_dir)
  for field, value in VQVAE_OVERRIDES.items():
    section, name = field.split('.')
    config[section][name] = value
  return config


@pytest.fixture(scope='module')
def two_process_vqvae(prepared_dir, tmp_path_factory):
  """A 2-process VQ-VAE run, preempted once and resumed: (workdir, first logs, resumed logs).

  Its train split is in device memory, sharded over both processes' devices
  (the one-process runs it is compared with read it through the host pipeline).
  """
  root = tmp_path_factory.mktemp('two_process')
  workdir = root / 'vqvae'
  flags = {'data.dataset_dir': prepared_dir, 'data.placement': 'device', **VQVAE_OVERRIDES}
  processes = start_processes('configs/vqvae_tiny.py', workdir, flags, root)
  deadline = time.time() + 300
  while not saved_steps(workdir):
    assert time.time() < deadline and all(p.poll() is None for p in processes), (
        'no checkpoint before the processes ended')
    time.sleep(0.01)
  processes[1].send_signal(signal.SIGTERM)  # A preemption notice reaches one host only.
  first_logs = wait_all(processes)
  resumed_logs = wait_all(start_processes('configs/vqvae_tiny.py', workdir, flags, root))
  return workdir, first_logs, resumed_logs


def test_sigterm_to_one_process_stops_both_at_the_same_step(two_process_vqvae):
  workdir, first_logs, resumed_logs = two_process_vqvae
  stopped = []
  for log in first_logs:
    lines = [line for line in log.splitlines() if 'preempted: saved the checkpoint of step' in line]
    assert lines, log[-3000:]
    stopped.append(int(lines[-1].split('step ')[-1].split(',')[0]))
  assert stopped[0] == stopped[1] < VQVAE_OVERRIDES['train.num_steps']
  for log in resumed_logs:
    assert f'resuming from the checkpoint of step {stopped[0]}' in log
  assert saved_steps(workdir)[-1] == VQVAE_OVERRIDES['train.num_steps']


class SilentWriter:
  """Process 0 of nothing: summaries are computed, not written."""
  active = False


def train_losses(workdir) -> dict[int, dict]:
  """Step -> the last logged training row of that step (a resumed run logs some again)."""
  return {row['step']: row for row in workdir_lib.read_metrics(str(workdir))
          if 'train/loss' in row}


def test_the_train_command_logs_the_same_losses_on_2x2_and_1x4_devices(
    two_process_vqvae, prepared_dir, tmp_path):
  """Topology-independent training: 2 processes x 2 devices (preempted and resumed on
  the way, the split in device memory) and 1 process x 4 devices (the split read
  through tf.data), through the train command, same config and seed."""
  workdir, _, _ = two_process_vqvae
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu',
         'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  subprocess.run(
      [sys.executable, '-m', 'melodygan_jax.train',
       f'--config={REPO_ROOT / "configs/vqvae_tiny.py"}', f'--workdir={tmp_path / "one"}',
       f'--config.data.dataset_dir={prepared_dir}',
       *[f'--config.{field}={value}' for field, value in VQVAE_OVERRIDES.items()]],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400, check=True)
  two, one = train_losses(workdir), train_losses(tmp_path / 'one')
  assert sorted(two) == sorted(one) == list(range(4, VQVAE_OVERRIDES['train.num_steps'] + 1, 4))
  # Float rounding of gloo's all-reduce, magnified a little by training (see
  # below): the gradient norm, the smallest of these, moves most.
  tolerance = {'train/loss': 1e-2, 'train/spectral_convergence': 1e-2, 'train/grad_norm': 5e-2}
  differences = {(step, name): abs(two[step][name] / one[step][name] - 1)
                 for step in one for name in tolerance}
  assert all(difference <= tolerance[name] for (_, name), difference in differences.items()), (
      {key: round(value, 4) for key, value in differences.items()})


def test_two_processes_equal_one_process(two_process_vqvae, prepared_dir):
  workdir, _, _ = two_process_vqvae
  trainer = vqvae_trainer.VQVAETrainer(tiny_vqvae_config(prepared_dir))
  state = trainer.fresh_start(trainer.create_state())
  batches = trainer.train_batches(0)
  for _ in range(8):
    state, _ = trainer.jit_train_step(state, next(batches))
  two, _ = checkpoints.restore(str(workdir), trainer.create_state(), 8)
  # The same arithmetic in another order (gloo's all-reduce across processes):
  # equal to float32 rounding, which training magnifies a little: Adam's moments
  # differ by up to ~3e-3 of their norm, a near-zero gradient's normalized update
  # can flip (a weight then moves by up to one step of the learning rate, 2e-3
  # at its peak) and a vector near a boundary can change its nearest code. A real
  # difference (a host's share left out, a batch counted twice) changes the
  # gradients themselves: Adam's moments then differ by tens of percent.
  for a, b in zip(jax.tree.leaves(parallel.host_values(two)),
                  jax.tree.leaves(parallel.host_values(state))):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.linalg.norm(a - b) <= 1e-2 * np.linalg.norm(b) + 1e-6 * np.sqrt(b.size), b.shape
    np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-3)
  # The eval ran on both hosts' shares of the validation split: the same
  # figures as one process evaluating the same state.
  final, step = checkpoints.restore(str(workdir), trainer.create_state())
  assert step == VQVAE_OVERRIDES['train.num_steps']
  one = trainer.evaluate(final, SilentWriter(), step)
  rows = [row for row in workdir_lib.read_metrics(str(workdir)) if 'eval/mse' in row]
  assert [row['step'] for row in rows] == [16, 24]
  for name in ('eval/mse', 'eval/l1', 'eval/spectral_convergence', 'eval/perplexity',
               'eval/codebook_usage'):
    np.testing.assert_allclose(rows[-1][name], one[name], rtol=1e-5)
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  events = event_accumulator.EventAccumulator(str(workdir), size_guidance={'tensors': 0})
  events.Reload()
  assert {'eval/mse', 'reconstruction/0', 'reconstruction/0/output'} <= set(
      events.Tags()['tensors'])


def test_gan_trains_on_two_processes_from_that_vqvae(two_process_vqvae, tmp_path):
  vqvae_workdir, _, _ = two_process_vqvae
  workdir = tmp_path / 'gan'
  # With context masking, so its eval (continuations of held-out crops) runs on both too.
  logs = wait_all(start_processes('configs/gan_tiny.py', workdir,
                                  {'vqvae_workdir': vqvae_workdir, **GAN_OVERRIDES,
                                   'model.context_probability': 0.5}, tmp_path))
  assert saved_steps(workdir) == [6, 12]
  rows = workdir_lib.read_metrics(str(workdir))
  assert [row['step'] for row in rows if 'eval/latent_frechet' in row] == [12]
  evaluated = [row for row in rows if 'eval/latent_frechet' in row][0]
  assert np.isfinite(evaluated['eval/continuation_context_ratio'])
  # The cache holds every segment's codes, both hosts' shares gathered once:
  # the same rows a single process encodes.
  assert sorted(name for name in os.listdir(workdir) if 'latents' in name) == [
      'latents.json', 'latents.npz']  # No temporary file left by a second writer.
  assert sum('wrote the latent cache' in log for log in logs) == 1
  config = gan_tiny.get_config()
  config.vqvae_workdir = str(vqvae_workdir)
  for field, value in GAN_OVERRIDES.items():
    section, name = field.split('.')
    config[section][name] = value
  vqvae = gan_trainer.check_config(config)
  single = latent_encoding.load_or_encode_latents(config, str(tmp_path / 'single'), vqvae,
                                              parallel.make_mesh())
  with np.load(workdir / 'latents.npz') as cached:
    for split in ('train', 'validation'):
      one = getattr(single, split)
      assert len(one.codes) > 0
      # Runs are sorted by source and start: the same arrays whichever host read what.
      np.testing.assert_array_equal(cached[f'{split}_codes'], one.codes)
      np.testing.assert_array_equal(cached[f'{split}_run_offsets'], one.offsets)
  generator = loading.load_generator(str(workdir))
  assert generator.step == 12
  assert json.loads((workdir / 'latents.json').read_text())['vqvae_step'] == 24


@pytest.mark.parametrize('flags, message', [
    (['--coordinator_address=localhost:1234'],
     'train: --coordinator_address needs --num_processes, --process_id too'),
    (['--coordinator_address=localhost', '--num_processes=2', '--process_id=0'],
     "train: --coordinator_address='localhost': expected HOST:PORT"),
    (['--coordinator_address=localhost:1234', '--num_processes=2', '--process_id=2'],
     'train: --process_id=2: must be in [0, --num_processes=2)'),
])
def test_incomplete_distributed_flags_are_one_line(flags, message, tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'melodygan_jax.train', f'--config={REPO_ROOT / "configs/vqvae_tiny.py"}',
       f'--workdir={tmp_path}', *flags], cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=120, check=False)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(message)
