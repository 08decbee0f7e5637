"""JAX's persistent compilation cache, on by default for `train` and `sample`.

Compiling a train step takes 20-32 s on a GPU, paid again at every start and
every resume; with the cache a second start of the same step on the same
devices and JAX reads the compiled program from disk instead. The cache is a
folder of compiled executables keyed by the program, the devices and the JAX
release, so a stale entry is never used, only left behind.

Where: $MELODYGAN_JAX_CACHE if set (`off`, `0` or empty turns the cache off),
else the folder JAX_COMPILATION_CACHE_DIR names, else
$XDG_CACHE_HOME/melodygan_jax/jax_cache (~/.cache/melodygan_jax/jax_cache).
Deleting the folder is always safe.
"""
import os
import pathlib

from absl import logging
import jax

ENVIRONMENT_VARIABLE = 'MELODYGAN_JAX_CACHE'
OFF_VALUES = ('', '0', 'off', 'false', 'no', 'none')
# A program that compiles faster than this is not worth a disk read (and a file).
# Train steps take seconds even on a CPU, so they are always cached.
MIN_COMPILE_TIME_S = 0.5


def default_cache_dir() -> pathlib.Path:
  cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return pathlib.Path(cache_home) / 'melodygan_jax' / 'jax_cache'


def cache_dir_from_environment() -> str | None:
  """The cache folder this environment asks for; None: the cache is off."""
  value = os.environ.get(ENVIRONMENT_VARIABLE)
  if value is not None:
    return None if value.strip().lower() in OFF_VALUES else os.path.expanduser(value)
  return jax.config.jax_compilation_cache_dir or str(default_cache_dir())


def enable(cache_dir: str | None = None,
           min_compile_time_s: float = MIN_COMPILE_TIME_S) -> str | None:
  """Turns on the persistent compilation cache; call before the first compile.

  Args:
    cache_dir: the folder (created if missing); default: `cache_dir_from_environment()`.
    min_compile_time_s: programs that compile faster are not cached.

  Returns:
    The cache folder, or None when the environment turns the cache off (or the
    folder cannot be created: then compiles are simply not cached).
  """
  cache_dir = cache_dir or cache_dir_from_environment()
  if cache_dir is None:
    return None
  if '://' not in cache_dir:
    try:
      os.makedirs(cache_dir, exist_ok=True)
    except OSError as e:
      logging.warning('compilation cache off: cannot create %s (%s)', cache_dir, e)
      return None
  jax.config.update('jax_compilation_cache_dir', cache_dir)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', min_compile_time_s)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  logging.info('compilation cache: %s (%s=off turns it off)', cache_dir, ENVIRONMENT_VARIABLE)
  return cache_dir
