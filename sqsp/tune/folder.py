"""The study folder ``<storage>/<study>/``: its place, its lock, its signals and what a resume
must repeat (``study.json``).

The folder holds Ray's experiment, ``study.json`` (what every trial shares, and how the study
was started; Ray keeps what varies) and the Parquet files. It is locked for the whole run
(``study_lock``): a second run or a ``--resume`` of the same folder is refused at once,
naming the process that holds it. A resume runs the study as it was started: a ``--resume``
with another ``--preset``/``--set``/``--seeds`` is refused (``check_same_study``), and the
rows skipped when it started stay skipped (``stored_skips``).

Ctrl-C and SIGTERM (a timeout, a cluster scheduler) are graceful (``terminate_as_interrupt``):
Tune records every trial's state, the Parquet files are written with the unfinished trials
marked so, and ``--resume`` continues exactly.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow.fs as pafs

from .. import lockfile, results
from ..config import ConfigError
from ..storage import write_text
from .study import Study, fixed_spec

STUDY_FILE = "study.json"
LOCK_FILE = ".sqsp-study.lock"


def storage_root(storage: str | None = None) -> str:
    """A local folder (default ``./results``, made absolute) or a URI, as given."""
    storage = storage or "results"
    return storage if "://" in storage else os.path.abspath(os.path.expanduser(storage))


def study_dir(study: Study, storage: str | None = None) -> str:
    """``<storage>/<study.name>``: Ray's experiment folder, study.json and the Parquet files."""
    return results.join(storage_root(storage), study.name)


@contextlib.contextmanager
def study_lock(path: str) -> Iterator[None]:
    """Hold the study folder for the whole run, resume included: a second run or a
    ``--resume`` of the same folder is refused at once, naming the holder (sqsp/lockfile.py).
    A folder that this run created and left empty (it was refused before writing anything)
    is removed again. Object stores (s3://, gs://…) have no lock: a note says so."""
    fs, local = results.filesystem(path)
    if not isinstance(fs, pafs.LocalFileSystem):
        print(f"[sqsp] note: {path} is not a local or mounted folder, so it is not locked: do not run or resume "
              "this study from two places at once", file=sys.stderr)
        yield
        return
    folder = Path(local)
    for p in (folder.parent, folder):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"--storage: {p} is a file, not a folder; give a folder (or a URI) to hold "
                              f"{folder.name}/")
    created = not folder.exists()
    with lockfile.exclusive(folder / LOCK_FILE, what=f"study folder {folder}",
                            hint="wait for it to end, or choose another --storage"):
        try:
            yield
        except BaseException:
            if created and os.listdir(folder) == [LOCK_FILE]:  # refused before anything was written
                os.unlink(folder / LOCK_FILE)
                os.rmdir(folder)
            raise


@dataclass
class Signals:
    writing: bool = False  # the Parquet files are being written: a SIGTERM waits for them


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[Signals]:
    """SIGTERM (a timeout, a cluster scheduler, ``kill``) handled like Ctrl-C.

    Tune handles SIGINT itself: it stops the trials, records every trial's state and returns
    the ResultGrid, so the Parquet files are written and ``--resume`` continues. Ray's own
    SIGTERM handler in the driver (``sys.exit``, from ``ray.init``) ends the process without
    any of that. So SIGTERM goes to whatever handles SIGINT at that moment (Tune's handler
    during ``fit``, which restores the previous one after the first signal, so a second
    SIGTERM ends the run at once), and while the Parquet files are written it only waits."""
    state = Signals()
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        yield state
        return

    def on_sigterm(signum, frame):
        if state.writing:
            return
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):  # Tune's during fit, else Python's default (KeyboardInterrupt)
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job): still stop
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous)


def study_spec(study: Study, base: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """study.json: how the study was started (what a resume must repeat) and what it resolved to."""
    search = {"search": study.search.spec(study.early_stopping)} if study.search is not None else {}
    return {"name": study.name, "preset": study.preset, "overrides": user, "fixed": fixed_spec(study, base),
            "grid": None if isinstance(study.grid, list) else {k: list(v) for k, v in study.grid.items()},
            "search_space": {k: repr(v) for k, v in study.search_space.items()},
            "seeds": [int(s) for s in study.seeds], "metric": study.metric, "mode": study.mode,
            **search, "results_schema_version": results.SCHEMA_VERSION}


def check_same_study(path: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The fixed spec the study at ``path`` started with; refuses a resume with other flags.

    The trials go on with the configs they started with, even where the preset's defaults
    have changed since (then a note says so): a study is one set of configs.
    """
    try:
        stored = json.loads(read_text(results.join(path, STUDY_FILE)))
    except FileNotFoundError:
        return spec["fixed"]
    now = json.loads(json.dumps(spec))
    diff = [f"{k}: {stored.get(k)!r} then, {now.get(k)!r} now"
            for k in ("preset", "overrides", "seeds", "grid", "search") if k in stored and stored[k] != now.get(k)]
    if stored["fixed"]["rows"] != now["fixed"]["rows"]:
        diff.append("the rows differ")
    if diff:
        raise ConfigError(f"--resume continues {path} as it was started, but this invocation differs "
                          f"({'; '.join(diff)}); repeat the original --preset/--set/--seeds or choose another "
                          "--storage")
    then, base = stored["fixed"]["base"], now["fixed"]["base"]
    changed = [f"{k}={then.get(k)!r} (now {base.get(k)!r})" for k in sorted(set(then) | set(base))
               if then.get(k) != base.get(k)]
    if changed:
        print(f"[sqsp] note: the preset has changed since this study started; its trials keep "
              f"{', '.join(changed)}", file=sys.stderr)
    return stored["fixed"]


def stored_skips(path: str, now: dict[str, str]) -> dict[str, str]:
    """A resumed study keeps the rows it skipped when it started (Ray's experiment has no
    trials for them); rows that could run now are named, with how to run them."""
    try:
        stored = json.loads(read_text(results.join(path, STUDY_FILE))).get("skipped", {})
    except FileNotFoundError:
        stored = {}
    runnable_now = sorted(set(stored) - set(now))
    if runnable_now:
        print(f"[sqsp] note: row(s) {runnable_now} were skipped when this study started and stay skipped in "
              f"{path}; run the study with another --storage to train them", file=sys.stderr)
    return stored


def write_json(target: str, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=1, sort_keys=True, default=str))


def read_text(target: str) -> str:
    """A file of the study folder (a path or URI); FileNotFoundError if there is none."""
    fs, p = results.filesystem(target)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        raise FileNotFoundError(target)
    with fs.open_input_stream(p) as f:
        return f.read().decode()
