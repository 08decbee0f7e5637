"""Writes that either complete or leave nothing: a temporary name, then a rename.

A job killed mid-write (kill -9 included) leaves at most a `*.tmp-*` file that
the next run ignores and overwrites; it never leaves a half-written output
under the final name.
"""
import contextlib
import glob
import json
import os
import pathlib
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Yields a temporary path beside `path`; renames it to `path` on success."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  # The suffix keeps the real extension last, so writers that infer the
  # format from the name (soundfile, np.save) still see it.
  tmp_path = path.with_name(f'.{path.stem}.tmp-{os.getpid()}{path.suffix}')
  try:
    yield tmp_path
    os.replace(tmp_path, path)
  finally:
    if tmp_path.exists():
      tmp_path.unlink()


def remove_stale_temporaries(path: str | os.PathLike) -> None:
  """Deletes what writes of `path` killed by an earlier process left beside it.

  Call it before writing `path` again: `atomic_path`'s temporaries carry
  their writer's process id, so a new writer would not overwrite them.
  """
  path = pathlib.Path(path)
  if path.parent.is_dir():
    for stale in path.parent.glob(f'.{glob.escape(path.stem)}.tmp-*{glob.escape(path.suffix)}'):
      stale.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, payload: Any) -> None:
  with atomic_path(path) as tmp_path:
    tmp_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + '\n')


def read_json(path: str | os.PathLike) -> Any:
  return json.loads(pathlib.Path(path).read_text())
