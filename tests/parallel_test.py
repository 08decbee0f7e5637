"""Mesh helpers: device prefetch, per-device batch sizes, the compute dtype per platform."""
import jax
import numpy as np
import pytest

from configs import vqvae_tiny
from melodygan_jax import errors
from melodygan_jax.training import config_checks
from melodygan_jax.training import parallel


def test_prefetch_keeps_two_batches_on_the_devices_in_order():
  mesh = parallel.make_mesh()
  assert mesh.devices.size == jax.device_count() == 2
  drawn = []

  def local_batches():
    for index in range(5):
      drawn.append(index)
      yield {'mel': np.full((8, 3), index, np.float32)}

  batches = parallel.prefetch_to_mesh(local_batches(), mesh)
  first = next(batches)
  assert drawn == [0, 1]  # Two in flight: the one handed out and the next, already copying.
  assert first['mel'].sharding == parallel.batch_sharded(mesh)
  rest = [int(batch['mel'][0, 0]) for batch in batches]
  assert [int(first['mel'][0, 0])] + rest == [0, 1, 2, 3, 4]


def test_per_device_batch_size_sets_the_global_batch():
  train = vqvae_tiny.get_config().train
  train.per_device_batch_size = 3
  config_checks.check_train_section(train)
  assert train.batch_size == 3 * jax.device_count()
  train.per_device_batch_size = -1
  with pytest.raises(errors.ConfigError, match='per_device_batch_size=-1'):
    config_checks.check_train_section(train)


def test_auto_dtype_is_float32_on_cpu_and_bfloat16_on_accelerators():
  model = vqvae_tiny.get_config().model
  assert model.dtype == 'auto'
  config_checks.resolve_dtype(model, 'config.model.dtype')
  assert model.dtype == ('float32' if jax.default_backend() == 'cpu' else 'bfloat16')
  model.dtype = 'float16'
  with pytest.raises(errors.ConfigError, match='config.model.dtype'):
    config_checks.resolve_dtype(model, 'config.model.dtype')
