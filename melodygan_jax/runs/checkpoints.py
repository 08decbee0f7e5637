"""Orbax checkpoints in WORKDIR/checkpoints: save every N steps, keep the last K.

A checkpoint at step n holds the state after n train steps. Saves are
asynchronous; Orbax writes each one under a temporary name and renames it when
complete, so a run killed mid-save (kill -9 included) restarts from the last
complete checkpoint.
"""
import logging

from absl import logging as absl_logging
import jax
import orbax.checkpoint as ocp

from melodygan_jax import atomic_files


class _OrbaxWarningsOnly(logging.Filter):
  """Orbax logs every save, step by step, at INFO; keep its warnings."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or '/orbax/' not in record.pathname


absl_logging.get_absl_handler().addFilter(_OrbaxWarningsOnly())


def make_manager(workdir: str, train_config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=train_config.keep_checkpoints,
      enable_async_checkpointing=True,
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(atomic_files.as_path(workdir) / 'checkpoints', options=options)


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


def restore_step(workdir: str, state, step: int | None = None):
  """Restores `step` (default: latest) of a finished run, for sampling/eval.

  Raises:
    FileNotFoundError: the workdir has no checkpoint.
  """
  directory = atomic_files.as_path(workdir) / 'checkpoints'
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'{directory}: no checkpoint (train first)')
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract)), step
