"""The files under an input folder, with symbolic links to folders followed.

Each folder is read once, so a link cycle ends, and a file reachable by several
paths (links, hard links) is listed once: under its own path inside the folder
when it has one, else under the first of its paths in sorted order. Hidden
files and folders are left out.
"""
import os
import pathlib


def list_files(folder: str | os.PathLike,
               skip_dir: str | os.PathLike | None = None) -> list[pathlib.Path]:
  """Every non-hidden file under `folder`, sorted, outside `skip_dir`.

  Args:
    folder: the folder to list.
    skip_dir: a folder left out wherever it appears (prepare's own output).

  Returns:
    Paths that start with `folder`, one per distinct file. A broken link is
    listed too, so the caller can report it.
  """
  folder = pathlib.Path(folder)
  skip_dir = pathlib.Path(skip_dir).resolve() if skip_dir else None
  seen_dirs = set()
  linked_dirs = [folder]
  paths_by_file = {}
  # Real folders first, then the linked ones they hold: a folder reached both
  # ways is read through its real path.
  while linked_dirs:
    top = linked_dirs.pop(0)
    if not _first_visit(top, seen_dirs):
      continue
    for path in _walk_without_links(top, skip_dir, seen_dirs, linked_dirs):
      paths_by_file.setdefault(_file_identity(path), []).append(path)
  real_folder = folder.resolve()
  return sorted(min(paths, key=lambda path: (not _is_own_path(path, folder, real_folder), path))
                for paths in paths_by_file.values())


def _walk_without_links(top, skip_dir, seen_dirs, linked_dirs):
  """Yields the files under `top`; appends the linked folders met to `linked_dirs`."""
  for root, dirs, files in os.walk(top):
    root = pathlib.Path(root)
    kept = []
    for name in sorted(dirs):
      path = root / name
      if name.startswith('.') or (skip_dir and path.resolve() == skip_dir):
        continue
      if path.is_symlink():
        linked_dirs.append(path)
      elif _first_visit(path, seen_dirs):
        kept.append(name)
    dirs[:] = kept
    yield from (root / name for name in sorted(files) if not name.startswith('.'))


def _first_visit(folder: pathlib.Path, seen_dirs: set) -> bool:
  """True the first time a folder (by device and inode) is met."""
  try:
    stat = folder.stat()
  except OSError:
    return False
  identity = (stat.st_dev, stat.st_ino)
  if identity in seen_dirs:
    return False
  seen_dirs.add(identity)
  return True


def _file_identity(path: pathlib.Path):
  try:
    stat = path.stat()
  except OSError:  # A broken link: its own entry.
    return ('unreadable', str(path))
  return (stat.st_dev, stat.st_ino)


def _is_own_path(path: pathlib.Path, folder: pathlib.Path, real_folder: pathlib.Path) -> bool:
  """Whether `path` reaches its file without passing through a link."""
  return os.path.realpath(path) == str(real_folder / path.relative_to(folder))
