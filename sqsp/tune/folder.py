"""The study folder ``<storage>/<study>/``: its place, its lock, its signals and what a resume
must repeat (``study.json``).

The folder holds Ray's experiment, ``study.json`` (what every trial shares, and how the study
was started; Ray keeps what varies), ``study.yaml`` (the study as it ran, with the settings it
ran with: ``--config <folder>/study.yaml --storage elsewhere`` runs the same trials again) and
the Parquet files. It is locked for the whole run
(``study_lock``): a second run or a ``--resume`` of the same folder is refused at once,
naming the process that holds it. A resume runs the study as it was started: it needs the
folder's ``study.json`` (``read_study_file``: a missing or garbled one is refused, never
replaced by the flags of the resume), a ``--resume`` with another ``--preset``/``--set``/
``--seeds`` is refused (``check_same_study``), and the rows skipped when it started stay
skipped (``stored_skips``). Tune's experiment state, which a resume reads, is kept as a last good
copy while the study runs (``keep_state``) and checked before a resume (``check_state``): a
corrupt one (a full disk cuts it short) is replaced by the copy, or the resume is refused,
never a silent start from scratch, which Tune would do.

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
from ..config import ConfigError, absolute_paths
from ..storage import write_text
from .study import Study, fixed_spec
from .study_file import study_document, study_yaml

STUDY_FILE = "study.json"
STUDY_YAML = "study.yaml"
LOCK_FILE = ".sqsp-study.lock"
STATE_COPY_DIR = ".sqsp-tune-state"
"""Where the last good copy of Tune's experiment state is kept, inside the experiment folder."""
_STATE_PATTERN = "experiment_state-*.json"  # Tune's own name (TuneController.CKPT_FILE_TMPL); it resumes the newest


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
    The folders this run created (the study folder, and the storage folders above it) are
    removed again if it was refused before writing anything. Object stores (s3://, gs://…)
    have no lock: a note says so."""
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
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # what the lock creates, deepest first
    with lockfile.exclusive(folder / LOCK_FILE, what=f"study folder {folder}",
                            hint="wait for it to end, or choose another --storage"):
        try:
            yield
        except BaseException:
            if made and os.listdir(folder) == [LOCK_FILE]:  # refused before anything was written
                os.unlink(folder / LOCK_FILE)
                for p in made:  # the study folder, then the storage folders made for it, while empty
                    with contextlib.suppress(OSError):
                        p.rmdir()
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
            "settings": study.settings, "seeds": [int(s) for s in study.seeds], "metric": study.metric,
            "mode": study.mode,
            **search, "results_schema_version": results.SCHEMA_VERSION}


def check_same_study(path: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The fixed spec the study at ``path`` started with; refuses a resume with other flags.

    The trials go on with the configs they started with, even where the preset's defaults
    have changed since (then a note says so): a study is one set of configs.
    """
    stored = read_study_file(path)
    now = json.loads(json.dumps(spec))
    for s in (stored, now):  # a study file's set: and the command line's --set are one setting (study.yaml)
        s["set"] = absolute_paths({**s.get("settings", {}), **s.get("overrides", {})}, os.getcwd())
    diff = [f"{'overrides' if k == 'set' else k}: {stored.get(k)!r} then, {now.get(k)!r} now"
            for k in ("preset", "set", "seeds", "grid", "search") if k in stored and stored[k] != now.get(k)]
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


def read_study_file(path: str) -> dict[str, Any]:
    """The ``study.json`` of the study folder ``path``, which a resume requires: without it the
    configs the trials started with are unknown, and resuming them with today's flags would
    mix two studies in one folder (checkpoints of one config continued under another)."""
    target = results.join(path, STUDY_FILE)
    try:
        stored = json.loads(read_text(target))
        problem = None if isinstance(stored, dict) and isinstance(stored.get("fixed"), dict) and \
            {"base", "rows"} <= set(stored["fixed"]) else "it is not a study.json sqsp wrote (no 'fixed' base and rows)"
    except FileNotFoundError:
        problem = "it is missing"
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        problem = f"it is not valid JSON ({e})"
    if problem:
        raise ConfigError(f"--resume: {target} says how this study was started, and {problem}; a resume cannot "
                          "know the configs its trials started with. Restore the file, or run the study into "
                          "another --storage") from None
    return stored


def stored_skips(path: str, now: dict[str, str]) -> dict[str, str]:
    """A resumed study keeps the rows it skipped when it started (Ray's experiment has no
    trials for them); rows that could run now are named, with how to run them."""
    stored = read_study_file(path).get("skipped", {})
    runnable_now = sorted(set(stored) - set(now))
    if runnable_now:
        print(f"[sqsp] note: row(s) {runnable_now} were skipped when this study started and stay skipped in "
              f"{path}; run the study with another --storage to train them", file=sys.stderr)
    return stored


def write_study(path: str, study: Study, spec: dict[str, Any]) -> None:
    """``study.json`` (``study_spec``) and ``study.yaml``: the study's own file with every
    setting it ran with (the command line's ``--set``, paths made absolute as the trials saw
    them, under ``set:``), so that ``--config`` on it expands to the same trials. A study
    declared in Python with parts no study file can name (a lambda table) has no study.yaml."""
    write_json(results.join(path, STUDY_FILE), spec)
    try:
        doc = study_document(study)
    except ConfigError as e:
        print(f"[sqsp] note: no {STUDY_YAML} in {path}: {e}", file=sys.stderr)
        return
    here = os.getcwd()
    settings = absolute_paths({**doc.get("set", {}), **spec["overrides"]}, here)
    if settings:
        doc["set"] = settings
    if "rows" in doc:
        doc["rows"] = {label: absolute_paths(over, here) for label, over in doc["rows"].items()}
    if "grid" in doc:
        doc["grid"] = {k: [absolute_paths({k: v}, here)[k] for v in vals] for k, vals in doc["grid"].items()}
    head = (f"# study {study.name!r} as it ran; run the same trials again with\n"
            f"#   python -m sqsp.tune --config {results.join(path, STUDY_YAML)} --storage <another folder>\n")
    write_text(results.join(path, STUDY_YAML), head + study_yaml(doc))


def write_json(target: str, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=1, sort_keys=True, default=str))


def read_text(target: str) -> str:
    """A file of the study folder (a path or URI); FileNotFoundError if there is none."""
    fs, p = results.filesystem(target)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        raise FileNotFoundError(target)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def keep_state(experiment: str) -> None:
    """Copy the newest Tune experiment state of the experiment folder ``experiment`` to
    ``STATE_COPY_DIR`` if it is valid JSON (Tune writes it in place, so a full disk or a kill
    can leave it cut short; the copy is written atomically). Best effort: a copy that cannot
    be written (a full disk) leaves the previous one."""
    newest = _newest_state(experiment)
    if newest is None:
        return
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
        text = read_text(newest)
        json.loads(text)
        target = results.join(experiment, STATE_COPY_DIR, newest.rsplit("/", 1)[-1])
        with contextlib.suppress(FileNotFoundError):
            if read_text(target) == text:
                return
        write_text(target, text)


def check_state(experiment: str, study_folder: str) -> None:
    """Before Tune restores ``experiment``: its newest experiment state must be valid JSON.
    A corrupt one is replaced by the copy ``keep_state`` kept (the trials that ended after
    that copy resume from their last checkpoints and report their end again, as after a
    ``kill -9``); without a good copy the resume is refused, naming the file: Tune would
    log one line and start every trial again from step 0 under new ids."""
    newest = _newest_state(experiment)
    if newest is None:
        return
    try:
        json.loads(read_text(newest))
        return
    except (ValueError, UnicodeDecodeError) as e:
        problem = e
    name = newest.rsplit("/", 1)[-1]
    for copy in sorted(_listing(results.join(experiment, STATE_COPY_DIR), _STATE_PATTERN), reverse=True):
        try:
            text = read_text(copy)
            json.loads(text)
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        write_text(newest, text)
        print(f"[sqsp] note: Tune's experiment state {newest} was corrupt ({problem}); restored the copy kept of "
              f"{copy.rsplit('/', 1)[-1]}: trials that ended after it continue from their last checkpoints",
              file=sys.stderr)
        return
    parquet = results.join(study_folder, results.TRIALS_FILE)
    try:
        kept = f"the trials recorded so far are in {parquet} ({len(results.read_trials(study_folder))} rows)"
    except (OSError, ValueError):
        kept = f"there is no readable {parquet}"
    raise ConfigError(f"--resume: Tune's experiment state {newest} is corrupt ({problem}) and no good copy of "
                      f"{name} was kept, so the study cannot continue where it stopped; {kept}. Run the study "
                      "into another --storage to run it again") from None


def _newest_state(experiment: str) -> str | None:
    found = _listing(experiment, _STATE_PATTERN)
    return max(found) if found else None


def _listing(folder: str, pattern: str) -> list[str]:
    """Files in ``folder`` (a path or URI) whose names match ``pattern``, as paths or URIs."""
    import fnmatch
    fs, p = results.filesystem(folder)
    try:
        infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    except OSError:
        return []
    return [results.join(folder, i.base_name) for i in infos
            if i.type == pafs.FileType.File and fnmatch.fnmatch(i.base_name, pattern)]
