"""The errors a user can act on, and the one place each command turns them into a line.

Every error raised for a bad input (a flag, a config field, a file, a workdir,
a data set) derives from `UserError`, and its message is one line that names
the input and what is wrong. Each command catches `UserError` once, around its
work, and exits with that line: no traceback for a mistake the user can fix.
Bugs stay tracebacks.
"""
import contextlib
import sys


class UserError(Exception):
  """An input the command cannot use; str() names it and the problem, in one line."""


class ConfigError(UserError, ValueError):
  """A config that cannot run; str() names the field and the problem."""


@contextlib.contextmanager
def exit_on_user_error(command: str):
  """Exits with `COMMAND: message` (status 1) when the body raises a `UserError`."""
  try:
    yield
  except UserError as e:
    sys.exit(f'{command}: {e}')
