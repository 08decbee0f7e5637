"""The one Orbax path: checkpoints in WORKDIR/checkpoints, saved in training, restored anywhere.

A checkpoint at step n holds the state after n train steps. Saves are
asynchronous; Orbax writes each one under a temporary name and renames it when
complete, so a run killed mid-save (kill -9 included) restarts from the last
complete checkpoint. Inference restores only the entries it needs (`restore`).
"""
import logging

from absl import logging as absl_logging
import jax
import orbax.checkpoint as ocp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from melodygan_jax.runs import workdir as workdir_lib


class _OrbaxWarningsOnly(logging.Filter):
  """Orbax logs every save, step by step, at INFO; keep its warnings."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or '/orbax/' not in record.pathname


absl_logging.get_absl_handler().addFilter(_OrbaxWarningsOnly())


def make_manager(workdir: str, train_config) -> ocp.CheckpointManager:
  """The training run's manager: asynchronous saves, the last `keep_checkpoints` kept."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=train_config.keep_checkpoints,
      enable_async_checkpointing=True,
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(workdir_lib.path(workdir, workdir_lib.CHECKPOINTS_DIRNAME),
                               options=options)


def restore_latest(manager: ocp.CheckpointManager, state):
  """Returns (state, first_step): the latest checkpoint's, or (state, 0) if none.

  Args:
    manager: from `make_manager`.
    state: a freshly initialized state; gives structure, dtypes and shardings.
  """
  step = manager.latest_step()
  if step is None:
    return state, 0
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
  return restored, step


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore(workdir: str, abstract, step: int | None = None,
            mesh: Mesh | None = None) -> tuple[dict, int]:
  """Restores what `abstract` names of a run's train-state checkpoint.

  Args:
    workdir: a run with at least one checkpoint.
    abstract: a pytree of arrays or ShapeDtypeStructs: the whole train state,
      or a dict of some of its top-level entries, e.g. {'params': ...}, of
      which only those are read.
    step: default: the latest.
    mesh: restore every array replicated over this mesh (each process reads
      its own devices' copies: the way onto other hosts' devices); default:
      where the arrays of `abstract` are.

  Returns:
    (the restored tree, the step).

  Raises:
    WorkdirError: no checkpoint, or one whose arrays do not match.
  """
  step = workdir_lib.latest_step(workdir) if step is None else step
  directory = workdir_lib.path(workdir, workdir_lib.CHECKPOINTS_DIRNAME)
  if step is None:
    raise workdir_lib.WorkdirError(f'{workdir}: no checkpoint in {directory}')
  # Where each array goes is given, not read from the checkpoint: inference runs
  # on whatever devices this machine has, not the ones the run was saved from.
  replicated = None if mesh is None else NamedSharding(mesh, PartitionSpec())
  # An abstract leaf without a sharding (nnx.eval_shape's) goes to this machine's first device.
  first_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape, x.dtype, sharding=replicated or getattr(x, 'sharding', None) or first_device),
      abstract)
  try:
    with ocp.CheckpointManager(directory) as manager:
      # restore_args carry the target shardings; without them Orbax places
      # arrays as they were saved, on devices this machine may not have.
      restored = manager.restore(step, args=ocp.args.PyTreeRestore(
          item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
          partial_restore=True))
  except (ValueError, KeyError, FileNotFoundError) as e:
    raise workdir_lib.WorkdirError(f'{workdir}: its checkpoint does not match its config.json '
                                   f'({" ".join(str(e).split())[:200]})') from e
  return restored, int(step)
