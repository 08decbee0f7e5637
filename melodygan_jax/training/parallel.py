"""Data parallelism: one mesh over every device of every host.

The batch is split over the 'data' axis; parameters and optimizer state are
replicated. The same code runs on one CPU, 8 GPUs and a multi-host TPU pod.
"""
import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """A 1-D ('data',) mesh over `devices` (default: all devices, all hosts)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the devices."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def global_batch(local_batch, mesh: Mesh):
  """This host's NumPy batch -> global jax.Arrays sharded on the batch axis."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def local_batch_size(global_batch_size: int) -> int:
  """This host's share of the global batch."""
  return global_batch_size // jax.process_count()


def host_values(tree):
  """Fetches (replicated or global) arrays to host NumPy values."""
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
