"""Which JAX, flax and accelerator plugin releases are installed, and pairs known not to work.

`pip install -e '.[cuda12]'` (or `[cuda13]`, `[tpu]`) installs one JAX with
the flax, optax and orbax releases this project ran on with it. An install
that mixes releases another way (an unpinned `pip install -U "jax[cuda12]"`
takes the newest JAX whatever setup.cfg says) may fail in ways far from
their cause; `KNOWN_BAD_PAIRS` lists the ones seen, and `check_installed()`
turns one into a one-line error before any compute (`train` calls it first,
`doctor` prints it).

Pure standard library: this runs before flax is imported, since importing a
flax that does not work with the installed JAX is what fails.
"""
import dataclasses
import importlib.metadata
import re
from typing import Mapping

from melodygan_jax import errors

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'jax-cuda12-plugin',
            'jax-cuda12-pjrt', 'jax-cuda13-plugin', 'jax-cuda13-pjrt', 'libtpu')
PLUGINS = ('jax-cuda12-plugin', 'jax-cuda12-pjrt', 'jax-cuda13-plugin', 'jax-cuda13-pjrt')
INSTALL_FIX = "pip install -e '.[cuda12]' (or [cuda13], [tpu]; the extras pin releases that work together)"


@dataclasses.dataclass(frozen=True)
class BadPair:
  """`package` in [package_from, package_below) fails with `other` in [other_from, other_below)."""
  package: str
  package_from: str
  package_below: str | None
  other: str
  other_from: str
  other_below: str | None
  failure: str
  fix: str


KNOWN_BAD_PAIRS = (
    BadPair('flax', '0', '0.12.10', 'jax', '0.11', None,
            'flax fails at its first import (jax.experimental.hijax has no HiPrimitive)',
            "pip install -U 'flax>=0.12.10,<0.13'"),
)


def release(version: str) -> tuple[int, ...]:
  """'0.12.10' -> (0, 12, 10); a pre-release or local tail ('0.5.0rc1', '0.4.1+cuda') is cut."""
  numbers = []
  for part in version.split('.'):
    match = re.match(r'\d+', part)
    if not match:
      break
    numbers.append(int(match.group()))
    if match.end() < len(part):
      break
  return tuple(numbers)


def _in_range(version: str, start: str, below: str | None) -> bool:
  return release(start) <= release(version) and (below is None or release(version) < release(below))


def installed_versions(packages=PACKAGES) -> dict[str, str | None]:
  """The installed version of each package; None where it is not installed."""
  versions = {}
  for name in packages:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def incompatibilities(versions: Mapping[str, str | None]) -> list[str]:
  """One line per installed pair known not to work, each naming the fix.

  Args:
    versions: package name -> installed version (None or absent: not installed).

  Returns:
    Lines such as "flax 0.12.8 does not work with jax 0.11.2: ...: FIX"; empty
    when no known-bad pair is installed.
  """
  lines = []
  for pair in KNOWN_BAD_PAIRS:
    version, other = versions.get(pair.package), versions.get(pair.other)
    if (version and other and _in_range(version, pair.package_from, pair.package_below)
        and _in_range(other, pair.other_from, pair.other_below)):
      lines.append(f'{pair.package} {version} does not work with {pair.other} {other} '
                   f'({pair.failure}): {pair.fix}, or {INSTALL_FIX}')
  jaxlib = versions.get('jaxlib')
  for plugin in PLUGINS:
    version = versions.get(plugin)
    if jaxlib and version and release(version)[:3] != release(jaxlib)[:3]:
      lines.append(f'{plugin} {version} does not match jaxlib {jaxlib} (JAX leaves the plugin '
                   f'unused and runs on the CPU): {INSTALL_FIX}')
  return lines


def check_installed(versions: Mapping[str, str | None] | None = None) -> None:
  """Raises errors.UserError (one line) if an installed pair is known not to work."""
  lines = incompatibilities(installed_versions() if versions is None else versions)
  if lines:
    raise errors.UserError('; '.join(lines))
