"""TensorBoard summaries plus a JSON-lines copy (WORKDIR/metrics.jsonl).

Only process 0 writes; on other hosts every method is a no-op. The JSON lines
make metrics easy to read from scripts and tests without TensorBoard.
"""
import json
import os

import jax
import numpy as np

from melodygan_jax import atomic_files


class MetricWriter:
  """Scalars, images and audio to WORKDIR (TensorBoard) and metrics.jsonl."""

  def __init__(self, workdir: str, resumed_step: int = 0):
    """Opens the writers; a run resumed at `resumed_step` drops the rows after it.

    Rows past the restored checkpoint were written by steps that will run
    again; keeping them would list those steps twice.
    """
    self.active = jax.process_index() == 0
    self._summary_writer = None
    self._evaluated_steps = set()  # Steps with eval/ figures in metrics.jsonl (process 0).
    self._jsonl_path = atomic_files.as_path(workdir) / 'metrics.jsonl'
    if self.active:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._jsonl_path.parent.mkdir(parents=True, exist_ok=True)
      self._evaluated_steps = {row['step'] for row in truncate_metrics(self._jsonl_path,
                                                                      resumed_step)
                               if _has_eval_figures(row)}
      self._tf = tf
      self._summary_writer = tf.summary.create_file_writer(os.fspath(self._jsonl_path.parent))

  def write_scalars(self, step: int, scalars: dict) -> None:
    if not self.active:
      return
    scalars = {name: float(value) for name, value in scalars.items()}
    if _has_eval_figures(scalars):
      self._evaluated_steps.add(step)
    with self._summary_writer.as_default(step=step):
      for name, value in scalars.items():
        self._tf.summary.scalar(name, value)
    row = json.dumps({'step': step, **scalars}) + '\n'
    if atomic_files.is_url(self._jsonl_path):  # Object stores cannot append: rewrite.
      old = self._jsonl_path.read_text() if self._jsonl_path.exists() else ''
      self._jsonl_path.write_text(old + row)
    else:
      with self._jsonl_path.open('a') as f:
        f.write(row)

  def has_eval_row(self, step: int) -> bool:
    """Whether metrics.jsonl holds evaluation figures of `step` (False off process 0)."""
    return step in self._evaluated_steps

  def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
    """images: name -> [height, width, 3] uint8."""
    if not self.active:
      return
    with self._summary_writer.as_default(step=step):
      for name, image in images.items():
        self._tf.summary.image(name, image[None], step=step)

  def write_audio(self, step: int, clips: dict[str, np.ndarray], sample_rate: int) -> None:
    """clips: name -> [samples] float in [-1, 1]."""
    if not self.active:
      return
    with self._summary_writer.as_default(step=step):
      for name, samples in clips.items():
        self._tf.summary.audio(name, np.asarray(samples, np.float32)[None, :, None],
                               sample_rate, step=step)

  def flush(self) -> None:
    if self.active:
      self._summary_writer.flush()


def _has_eval_figures(row: dict) -> bool:
  return any(name.startswith('eval/') for name in row)


def truncate_metrics(path: str, last_step: int) -> list[dict]:
  """Keeps the rows of a metrics.jsonl up to `last_step` (all of them if none is later).

  Returns:
    The rows kept, parsed.
  """
  path = atomic_files.as_path(path)
  if not path.exists():
    return []
  lines = [line + '\n' for line in path.read_text().splitlines() if line.strip()]
  rows = [json.loads(line) for line in lines]
  kept = [(line, row) for line, row in zip(lines, rows) if row.get('step', 0) <= last_step]
  if len(kept) < len(rows):
    with atomic_files.atomic_path(path) as tmp_path:
      tmp_path.write_text(''.join(line for line, _ in kept))
  return [row for _, row in kept]


def read_metrics(workdir: str) -> list[dict]:
  """All rows of WORKDIR/metrics.jsonl, in order."""
  path = atomic_files.as_path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
