"""Data parallelism: one mesh over every device of every host.

The batch is split over the 'data' axis; parameters and optimizer state are
replicated. The same code runs on one CPU, 8 GPUs and a multi-host TPU pod.
Every process runs every jitted computation over these global arrays (a
collective left out on one host hangs the others); only process 0 writes
files other than checkpoints.
"""
import collections
from typing import Iterable, Iterator

import jax
import numpy as np
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

DATA_AXIS = 'data'
PREFETCHED_BATCHES = 2  # On the devices ahead of the step: one in use, one arriving.


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins this process to a multi-process run (`jax.distributed.initialize`).

  Without arguments JAX detects the cluster (TPU VM, SLURM, ...). CPU devices
  of several processes reach each other through gloo (XLA's own CPU
  collectives are in-process only). Call before any computation.
  """
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def make_mesh(devices=None) -> Mesh:
  """A 1-D ('data',) mesh over `devices` (default: all devices, all hosts)."""
  if devices is None:  # jax.make_mesh orders devices for the fastest collectives.
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the devices."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree, mesh: Mesh):
  """A host value (the same on every process) -> arrays replicated over `mesh`.

  Goes through NumPy, so it also works for arrays committed to one local
  device, which `jax.device_put` cannot move onto other hosts' devices.
  """
  sharding = replicated(mesh)

  def put(x):
    host = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
  return jax.tree.map(put, tree)


def global_batch(local_batch, mesh: Mesh):
  """This host's NumPy batch -> global jax.Arrays sharded on the batch axis."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def prefetch_to_mesh(local_batches: Iterable, mesh: Mesh,
                     size: int = PREFETCHED_BATCHES) -> Iterator:
  """Global batches, `size` of them already on their way to the devices.

  The host-to-device copy of batch n+1 overlaps step n, so the step never
  waits on the host (the transfer is asynchronous once dispatched).

  Args:
    local_batches: this host's NumPy batches.
    mesh: the batch axis is split over its 'data' axis.
    size: batches kept in flight.

  Yields:
    The global batches, in order.
  """
  queue = collections.deque()
  local_batches = iter(local_batches)

  def enqueue(count):
    for local in local_batches:
      queue.append(global_batch(local, mesh))
      count -= 1
      if count == 0:
        return

  enqueue(size)
  while queue:
    yield queue.popleft()
    enqueue(1)


def local_batch_size(global_batch_size: int) -> int:
  """This host's share of the global batch."""
  return global_batch_size // jax.process_count()


def host_values(tree):
  """Fetches replicated (or fully addressable) arrays to host NumPy values."""
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
