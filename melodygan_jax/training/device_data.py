"""Training data kept in device memory, cropped inside the jitted step.

The data sets this project trains on are small (8.5 h of 128-band log-mel is
1.3 GB in float32; the GAN's codes of it 85 MB), so the whole training split
fits in the accelerators' memory many times over. Kept there, sharded over the
devices along its rows, a step needs from the host only where each crop
starts: [batch] integers, drawn exactly as the host pipeline draws them, so a
device-placed run trains on the very crops a host-placed one does and resumes
as exactly (batches stay a function of (seed, step)). The crop itself is a
gather inside the step: XLA gathers each device's rows where they live and
sums the partial crops across devices, a collective of the batch's size, not
of the table's.

`config.data.placement` chooses: 'device', 'host' (the tf.data / NumPy
pipeline, one batch copied to the devices per step), or 'auto': on a GPU or
TPU, device when the split takes at most `DEVICE_MEMORY_SHARE` of the
devices' memory, else host, said in one log line; on a CPU, host.
"""
import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from melodygan_jax.training import parallel

# Of each device's memory, what the split may take under 'auto': the model,
# its optimizer state and the step's activations need the rest.
DEVICE_MEMORY_SHARE = 0.25


def device_memory_bytes(device=None) -> int:
  """What one device can hold: its allocator's limit, or this host's RAM for a CPU."""
  device = device or jax.local_devices()[0]
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  if stats and stats.get('bytes_limit'):
    return int(stats['bytes_limit'])
  # A CPU device's memory is the host's, shared by all of its devices.
  host_bytes = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  return host_bytes // max(1, jax.local_device_count())


def on_device(placement: str, split_bytes: int, what: str, mesh=None,
              memory_bytes: int | None = None, platform: str | None = None) -> bool:
  """Whether to keep a split of `split_bytes` on the devices; logs the choice.

  Sharded over the mesh, each device holds 1/devices of it. Under 'auto' it
  goes there on a GPU or TPU when that share is at most DEVICE_MEMORY_SHARE
  of a device's memory (`memory_bytes`: default, measured). A CPU's devices
  are the host's own memory, so there 'auto' keeps the host pipeline: on the
  2-core CPU the default VQ-VAE's step was 4% faster with its split in device
  memory and the default vocoder's 5-25% slower. `placement` is checked by
  config_checks.check_placement.
  """
  if placement != 'auto':
    logging.info('%s: %.0f MB, data.placement=%s', what, split_bytes / 1e6, placement)
    return placement == 'device'
  platform = platform or (mesh.devices.flat[0].platform if mesh is not None
                          else jax.default_backend())
  if platform == 'cpu':
    logging.info('%s: %.0f MB, read through the host pipeline (data.placement=auto on a CPU)',
                 what, split_bytes / 1e6)
    return False
  devices = mesh.devices.size if mesh is not None else jax.device_count()
  memory_bytes = device_memory_bytes() if memory_bytes is None else memory_bytes
  per_device = split_bytes / devices
  fits = per_device <= DEVICE_MEMORY_SHARE * memory_bytes
  if fits:
    logging.info('%s: %.0f MB kept in device memory (%.0f MB on each of %d devices), '
                 'cropped inside the step', what, split_bytes / 1e6, per_device / 1e6, devices)
  else:
    logging.warning('%s: %.0f MB would take %.0f MB of each device\'s %.0f MB, over the '
                    '%d%% kept for data: training reads it through the host pipeline',
                    what, split_bytes / 1e6, per_device / 1e6, memory_bytes / 1e6,
                    round(DEVICE_MEMORY_SHARE * 100))
  return fits


def put_rows(host_array: np.ndarray, mesh) -> jax.Array:
  """A host array (the same on every process) on the devices, its rows sharded over them.

  Rows are padded with zeros to a multiple of the device count; no crop
  index ever points at the padding. Each process places only its own
  devices' rows.
  """
  devices = mesh.devices.size
  pad = -len(host_array) % devices
  shape = (len(host_array) + pad,) + host_array.shape[1:]
  sharding = NamedSharding(mesh, PartitionSpec(parallel.DATA_AXIS))

  def rows(index):
    block = host_array[index[0]]
    wanted = len(range(*index[0].indices(shape[0])))
    if len(block) < wanted:
      block = np.concatenate([block, np.zeros((wanted - len(block),) + block.shape[1:],
                                              host_array.dtype)])
    return block
  return jax.make_array_from_callback(shape, sharding, rows)


def crop_rows(table: jax.Array, rows: jax.Array, starts: jax.Array, length: int) -> jax.Array:
  """table[rows[b], starts[b]:starts[b] + length] for each b: [batch, length, ...]."""
  return table[rows[:, None], starts[:, None] + jnp.arange(length)[None]]


def crop_flat(table: jax.Array, starts: jax.Array, length: int) -> jax.Array:
  """table[starts[b]:starts[b] + length] for each b of a table stored end to end."""
  return table[starts[:, None] + jnp.arange(length)[None]]
