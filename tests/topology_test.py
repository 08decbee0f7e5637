"""A checkpoint saved on 8 devices resumes on 2 and on 1 (simulated CPU devices)."""
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from configs import vqvae_tiny
from melodygan_jax.runs import checkpoints
from melodygan_jax.training import parallel
from melodygan_jax.training import vqvae_trainer


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SAVED_STEPS = 3

# Trains a few steps on 8 devices and saves, as the training loop does.
TRAIN_ON_8_DEVICES = textwrap.dedent('''
    import sys
    import jax
    import numpy as np
    from configs import vqvae_tiny
    from melodygan_jax.runs import checkpoints
    from melodygan_jax.training import parallel, vqvae_trainer
    dataset_dir, workdir, num_steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    assert jax.device_count() == 8
    config = vqvae_tiny.get_config()
    config.data.dataset_dir = dataset_dir
    trainer = vqvae_trainer.VQVAETrainer(config)
    state = trainer.fresh_start(trainer.create_state())
    batches = trainer.train_batches(0)
    for _ in range(num_steps):
      state, _ = trainer.jit_train_step(state, next(batches))
    assert all(len(x.sharding.device_set) == 8 for x in jax.tree.leaves(state))
    manager = checkpoints.make_manager(workdir, config.train)
    checkpoints.save(manager, num_steps, state)
    manager.wait_until_finished()
    leaves = jax.tree.leaves(parallel.host_values(state))
    np.savez(f'{workdir}/saved_leaves.npz', *leaves)
''')


@pytest.mark.multiprocess
def test_a_checkpoint_of_8_devices_resumes_on_2_and_on_1(prepared_dir, tmp_path):
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=8',
         'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': str(REPO_ROOT)}
  result = subprocess.run([sys.executable, '-c', TRAIN_ON_8_DEVICES, str(prepared_dir),
                           str(tmp_path), str(SAVED_STEPS)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(tmp_path / 'saved_leaves.npz') as saved:
    saved_leaves = [saved[f'arr_{i}'] for i in range(len(saved.files))]

  config = vqvae_tiny.get_config()
  config.data.dataset_dir = str(prepared_dir)
  stepped = []
  for devices in (jax.devices(), jax.devices()[:1]):
    trainer = vqvae_trainer.VQVAETrainer(config, mesh=parallel.make_mesh(devices))
    manager = checkpoints.make_manager(str(tmp_path), config.train)
    state, first_step = checkpoints.restore_latest(manager, trainer.create_state())
    manager.close()
    assert first_step == SAVED_STEPS
    for leaf in jax.tree.leaves(state):
      assert leaf.sharding.device_set == set(devices)  # Placed on this mesh, not the saved one.
    for restored, expected in zip(jax.tree.leaves(parallel.host_values(state)), saved_leaves):
      np.testing.assert_array_equal(restored, expected)
    state, metrics = trainer.jit_train_step(state, next(trainer.train_batches(first_step)))
    assert int(state.step) == SAVED_STEPS + 1 and np.isfinite(float(metrics['train/loss']))
    stepped.append(parallel.host_values(state))
  for sharded, one in zip(jax.tree.leaves(stepped[0]), jax.tree.leaves(stepped[1])):
    np.testing.assert_allclose(sharded, one, rtol=2e-4, atol=2e-5)
