"""Errors a user can fix (a bad value, a missing or tampered file, a busy folder), told apart
from bugs.

Two places act on the difference: the command-line entry points (``sqsp/cli.py``) print a
user error as one line and exit 2, without a traceback; and a study records a trial that
raised one as ``failed`` at once, without Ray's retries, since the same config on the same
files fails the same way again.
"""
from __future__ import annotations


class UserError(Exception):
    """Base of sqsp's own user errors; the message names the bad value and what is allowed."""


class ZooError(UserError, ValueError):
    """A manifest or a zoo file the user must fix: invalid, tampered with, or naming a pickle
    where sqsp never writes one (here, below zoo.py and zoo_bundle.py, which both raise it)."""


class ConfigError(UserError, ValueError):
    """A config value is not allowed; the message names the field, the value and what is allowed."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, NotADirectoryError,
                                                 IsADirectoryError, PermissionError, ModuleNotFoundError)
"""Exceptions that come from what the user gave (sqsp's own, and a missing file, folder,
permission or package), never from a bug that a retry or a traceback would help with."""
