"""What the driver watches while Tune runs an experiment: the storage filling up, and a good
copy of Tune's state.

A full disk under a study breaks everything Tune writes there at once: checkpoints fail to
upload (the trial errors), its error files and its experiment state are cut short (the next
resume would start from scratch), its ResultGrid cannot be built (an empty ``error.pkl``),
and its log fills with tracebacks. So, for a study folder on a local or mounted filesystem:

- Space is set aside in the folder before the fit for what must still be written when the
  disk is full: ``RESERVE_BYTES`` for Tune's last state (``.sqsp-reserve``, released when the
  disk fills), and as much for each Parquet file, which is then written over its reserve
  (``storage.atomic_output``), so another program that fills the disk cannot take that room.
- A thread checks the free space every ``POLL_S`` seconds; when it falls under
  ``LOW_BYTES``, or a log record of Ray's says "No space left on device", the reserve is
  released and the study is stopped as Ctrl-C stops it (Tune's SIGUSR1 to this process: Tune
  records every trial's state and returns). The trials that ended are written to both
  Parquet files, the others are ``unfinished``, and ``--resume`` continues once there is room.
- Ray's log records of the full disk (a traceback each) are held back while it is watched;
  the study says it once, in one line (``DiskWatch.message``).
- The same thread keeps a copy of Tune's experiment state whenever it is valid JSON
  (``folder.keep_state``), which ``folder.check_state`` puts back if the state is corrupt.

Ray's "Failed to fetch metrics" warning about trials that never started (a resumed study
with pending trials: they have no result files yet) is held back too: nothing is missing.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Callable, Iterator

import pyarrow.fs as pafs

from .. import results
from ..storage import reserve_path
from .folder import keep_state

RESERVE_FILE = ".sqsp-reserve"
RESERVE_BYTES = 8 << 20
"""Room kept for Tune's last state, and for each Parquet file (tens of kB to a few MB a study)."""
LOW_BYTES = 1 << 20
POLL_S = 1.0
_PARQUET = (results.TRIALS_FILE, results.HISTORY_FILE)


class DiskWatch:
    """The watch over one experiment's fit (see the module docstring); ``full`` says whether
    the storage ran out of space, ``message`` says it in one line."""

    def __init__(self, study_folder: str, experiment: str):
        self.experiment = experiment
        fs, local = results.filesystem(study_folder)
        self.folder = Path(local) if isinstance(fs, pafs.LocalFileSystem) else None  # object stores do not fill
        self.full: str | None = None
        self._stop = threading.Event()
        self._stopped_study = False

    @property
    def message(self) -> str | None:
        if self.full is None:
            return None
        return (f"[sqsp] error: no space left on {self.folder} ({self.full}): the study stopped, the trials that "
                f"ended are in its Parquet files; free at least {_size(self._needed())} there and continue with "
                "--resume")

    @contextlib.contextmanager
    def watching(self) -> Iterator["DiskWatch"]:
        """Watch for the block (the fit): reserve, poll, hold back Ray's records of it."""
        with _on_ray_handlers(_RayRecords(self)):
            thread = None
            if self.folder is not None:
                self._reserve()
                thread = threading.Thread(target=self._poll, name="sqsp-disk-watch", daemon=True)
                thread.start()
            try:
                yield self
            finally:
                self._stop.set()
                if thread is not None:
                    thread.join()
                with contextlib.suppress(OSError):
                    keep_state(self.experiment)
                self._release(RESERVE_FILE)

    def release(self) -> None:
        """Remove what is left of the reserves (the Parquet files' once they are written)."""
        if self.folder is None:
            return
        for name in (RESERVE_FILE, *(os.path.basename(reserve_path(self.folder / f)) for f in _PARQUET)):
            self._release(name)

    def saw(self, reason: str) -> None:
        """The storage is full: release the reserve and stop the study, once."""
        if self.full is None:
            self.full = reason
        self._release(RESERVE_FILE)
        # Tune's own graceful stop, as Ctrl-C; SIGUSR1 because Tune handles it from its first fit
        # on and never restores it (a late one is harmless), where SIGINT would be a
        # KeyboardInterrupt once the fit has returned
        if not self._stopped_study and callable(signal.getsignal(signal.SIGUSR1)):
            self._stopped_study = True
            os.kill(os.getpid(), signal.SIGUSR1)

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            with contextlib.suppress(OSError):
                keep_state(self.experiment)
            try:
                free = shutil.disk_usage(self.folder).free
            except OSError:
                continue
            if free < LOW_BYTES:
                self.saw(os.strerror(errno.ENOSPC))

    def _reserve(self) -> None:
        for path in (self.folder / RESERVE_FILE, *(Path(reserve_path(self.folder / f)) for f in _PARQUET)):
            try:
                with open(path, "wb") as f:
                    os.posix_fallocate(f.fileno(), 0, RESERVE_BYTES)
            except OSError as e:
                with contextlib.suppress(OSError):
                    path.unlink()
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    self.saw(e.strerror)
                return  # else (a filesystem without fallocate): no reserve; the watch still stops the study

    def _release(self, name: str) -> None:
        if self.folder is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()

    def _needed(self) -> int:
        """A guess at the room the rest needs: the largest trial folder, twice, and the reserve."""
        sizes = [sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
                 for d in Path(results.filesystem(self.experiment)[1]).iterdir() if d.is_dir()]
        return 2 * max(sizes, default=0) + RESERVE_BYTES


class _RayRecords(logging.Filter):
    """Holds back Ray's log records of a full disk (noting it) and of metrics that trials
    which never started do not have. Ray gives neither a type of its own, so they are told
    by the errno of the exception logged, or by their text."""

    def __init__(self, watch: DiskWatch):
        super().__init__()
        self.watch = watch

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if missing_metrics(message):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if _no_space(exc) or "No space left on device" in message:
            self.watch.saw(os.strerror(errno.ENOSPC))
            return False
        return True


def missing_metrics(message: str) -> bool:
    """Tune's warning for trials whose results file is not in storage: trials that never
    reported, and, after a kill -9, trials whose checkpoint reached storage before their results
    file did. Both go on (the latter from that checkpoint, resume_point.py): nothing to act on."""
    lines = message.splitlines()
    return message.startswith("Failed to fetch metrics") and all("Could not fetch metrics" in x for x in lines[1:])


@contextlib.contextmanager
def without_missing_metrics() -> Iterator[None]:
    """Hold back ``missing_metrics`` warnings for the block (Tune restoring an experiment)."""
    with _on_ray_handlers(lambda record: not missing_metrics(record.getMessage())):
        yield


@contextlib.contextmanager
def _on_ray_handlers(keep: logging.Filter | Callable[[logging.LogRecord], bool]) -> Iterator[None]:
    """``keep`` filters what the handlers of Ray's loggers (and the root's) print, for the block."""
    handlers = [h for name in ("ray", "ray.tune", "ray.train", "") for h in logging.getLogger(name).handlers]
    for h in handlers:
        h.addFilter(keep)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(keep)


def _no_space(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "No space left on device" in str(exc)):
            return True
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__  # RayTaskError keeps it in .cause
    return False


def _size(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n / 1024:.0f} kB"
