"""Files of runs and data sets, on any storage; writes that complete or leave nothing.

Paths go through `etils.epath`, so a workdir or data set may be local or on
`gs://` (or any location epath or tf.io.gfile reads): `as_path` is the one way
a path string enters. Writes go to a temporary name, then a rename: a job
killed mid-write (kill -9 included) leaves at most a `*.tmp-*` file that the
next run ignores and overwrites; it never leaves a half-written output under
the final name.
"""
import contextlib
import glob
import io
import json
import os
from typing import Any, Iterator

from etils import epath
import numpy as np


def is_url(path: str | os.PathLike) -> bool:
  """Whether `path` names remote storage (gs://, s3://, ...), not a local file."""
  return '://' in os.fspath(path)


def as_path(path: str | os.PathLike) -> epath.Path:
  """An epath.Path: local paths made absolute, URLs (gs://...) as they are."""
  return epath.Path(path) if is_url(path) else epath.Path(os.path.abspath(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[epath.Path]:
  """Yields a temporary path beside `path`; renames it to `path` on success."""
  path = as_path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  # The suffix keeps the real extension last, so writers that infer the
  # format from the name (soundfile, np.save) still see it.
  tmp_path = path.with_name(f'.{path.stem}.tmp-{os.getpid()}{path.suffix}')
  try:
    yield tmp_path
    tmp_path.replace(path)
  finally:
    if tmp_path.exists():
      tmp_path.unlink()


def remove_stale_temporaries(path: str | os.PathLike) -> None:
  """Deletes what writes of `path` killed by an earlier process left beside it.

  Call it before writing `path` again: `atomic_path`'s temporaries carry
  their writer's process id, so a new writer would not overwrite them.
  """
  path = as_path(path)
  if path.parent.is_dir():
    for stale in path.parent.glob(f'.{glob.escape(path.stem)}.tmp-*{glob.escape(path.suffix)}'):
      stale.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, payload: Any) -> None:
  with atomic_path(path) as tmp_path:
    tmp_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + '\n')


def read_json(path: str | os.PathLike) -> Any:
  return json.loads(as_path(path).read_text())


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
  """np.savez through a file object, so remote paths work too."""
  with atomic_path(path) as tmp_path, tmp_path.open('wb') as f:
    np.savez(f, **arrays)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Every array of an .npz file (read whole: remote files do not seek cheaply)."""
  with np.load(io.BytesIO(as_path(path).read_bytes())) as arrays:
    return {name: arrays[name] for name in arrays.files}


def copy_tree(source: str | os.PathLike, target: str | os.PathLike) -> None:
  """Copies a folder (e.g. a checkpoint step) file by file; works across storages."""
  source, target = as_path(source), as_path(target)
  for folder, _, files in source.walk():
    relative = epath.Path(folder).relative_to(source)
    (target / relative).mkdir(parents=True, exist_ok=True)
    for name in files:
      (epath.Path(folder) / name).copy(target / relative / name, overwrite=True)
