"""Vocal/instrumental separation: the seam between cleaning and features.

`separate` turns a cleaned mix into the stems the data set asks for. The
`none` backend keeps the mix only.
"""
import dataclasses

import numpy as np

BACKENDS = ('none',)


class SeparationError(Exception):
  """A song whose stems cannot be produced; str() is the reason."""


@dataclasses.dataclass(frozen=True)
class SeparationOptions:
  backend: str = 'none'
  stems: tuple[str, ...] = ('mix',)


def check_options(options: SeparationOptions) -> None:
  """Fails before any work on an unusable backend/stem combination.

  Raises:
    ValueError: one line naming the flag and what is wrong.
  """
  if options.backend not in BACKENDS:
    raise ValueError(f'--separation={options.backend}: choose one of {", ".join(BACKENDS)}')
  if options.backend == 'none' and set(options.stems) != {'mix'}:
    raise ValueError(f'--stems={",".join(options.stems)}: without separation only '
                     '"mix" exists; pass --separation to get vocals or instrumental')


def separate(mix: np.ndarray, task, options: SeparationOptions) -> dict[str, np.ndarray]:
  """The cleaned mix -> {stem: samples} for every stem in `options.stems`."""
  del task  # Backends that read pre-separated stems find them from the task.
  if options.backend == 'none':
    return {'mix': mix}
  raise SeparationError(f'unknown separation backend {options.backend!r}')
