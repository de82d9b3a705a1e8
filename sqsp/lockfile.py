"""Exclusive locks on folders held for as long as a process works in them.

A study run holds its study folder (two runs into one folder would overwrite each other's
Parquet files, and a ``--resume`` beside a live run would take over its trials), and a zoo
build holds the zoo. ``fcntl.flock`` on a file in the folder: the kernel releases it when
the holder exits, however it exits (SIGKILL included), so no stale lock outlives a crash,
and Linux's NFS client maps it onto NFS byte-range locks. The holder writes who it is
(pid, host, start time, command) into the file so that a refused run can say who holds it.
Object stores (``s3://``, ``gs://``) have no such lock; sqsp/tune/folder.py says so when it runs
a study there.

Why not ``filelock``: its ``FileLock`` is the same ``flock`` underneath, but it empties or
removes the lock file on release and has no place for the holder's identity, which is what
turns "locked" into a message a user can act on (which pid, host and command to wait for).
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Iterator

from .errors import UserError


class Busy(UserError, RuntimeError):
    """Another process holds the lock."""


class Unwritable(UserError, OSError):
    """The folder to lock cannot be written here (a read-only mount, no permission, no space):
    the user chose the place, so it is theirs to change."""


_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, *, what: str, hint: str = "", wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    ``wait=False`` raises ``Busy`` at once when another process holds it, naming ``what``,
    the holder and ``hint``; ``wait=True`` blocks until it is free."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
    except OSError as e:
        if e.errno not in _UNWRITABLE:
            raise
        raise Unwritable(f"{what}: cannot write {e.filename or path} ({e.strerror}); choose a folder this "
                                  "process can write to") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(f"{what} is in use by another run ({_holder(f)}){'; ' + hint if hint else ''}") from None
        try:
            f.seek(0)
            f.truncate()
            json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                       "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                       "command": " ".join([os.path.basename(sys.executable), *sys.argv])}, f)
            f.flush()
            yield path
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _holder(f) -> str:
    f.seek(0)
    try:
        h = json.loads(f.read())
        return f"pid {h['pid']} on {h['host']}, started {h['started']}: {h['command']}"
    except (ValueError, KeyError, TypeError):  # the holder is between truncating and writing
        return "holder unknown"
