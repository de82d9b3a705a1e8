"""Where a resumed trial continues: the newest complete checkpoint in its storage folder.

Tune restores a trial from the last checkpoint its experiment snapshot names, and it takes
that snapshot at most every few seconds. When the driver dies (SIGKILL, a lost head node),
the trials' reports of the last seconds are in storage, checkpoints included, but not in the
snapshot: resumed from it, those trials would run again steps they had run (measured at 1,000
trials: 11 ran to their end twice, benchmarks/cluster_scale.py). So a trial looks in its own
folder for the checkpoint sealed at the furthest step (sqsp/record.py's ``seal_checkpoint``:
every file's size, written last) and continues from it, after reporting again, in order, the
reports that the seals of the checkpoints after Tune's hold (Tune lost them with the driver;
history.parquet keeps one report per step). A copy cut short by the death of its worker fails
the size check and is passed over; Tune's own checkpoint stays the fallback.
"""
from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow.fs as pafs
from ray import tune

from .. import record

CHECKPOINT_DIR = re.compile(r"checkpoint_\d+")


@dataclass(frozen=True)
class ResumePoint:
    checkpoint: tune.Checkpoint | None                          # None: a new trial
    replay: list[dict[str, Any]] = field(default_factory=list)  # reports Tune lost, to report again first


def resume_point() -> ResumePoint:
    """Where this trial continues: its newest complete checkpoint in storage with the reports
    Tune lost, else Tune's checkpoint (``tune.get_checkpoint()``), else a new start."""
    known = tune.get_checkpoint()
    try:  # the trial's folder in storage: a developer API of Ray's (ray.train's StorageContext)
        storage = tune.get_context().get_storage()
        fs, trial = storage.storage_filesystem, storage.trial_fs_path
    except Exception:  # noqa: BLE001 -- without it, Tune's checkpoint as before
        return ResumePoint(known)
    newest, replay = newest_sealed(fs, trial, known.path if known is not None else None)
    return ResumePoint(known) if newest is None else ResumePoint(tune.Checkpoint(newest, filesystem=fs), replay)


@dataclass(frozen=True)
class Continued:
    resumed: bool = False                                   # train ran from a checkpoint
    result: Any = None                                      # what train returned
    stored: dict[str, Any] = field(default_factory=dict)    # the metrics kept with that checkpoint


def continue_trial(train: Callable[..., Any], *args: Any) -> Continued:
    """``train(*args[, resume_from=...])`` from where this trial got to, after reporting again
    what Tune lost of it; nothing more if that was its end."""
    point = resume_point()
    for r in point.replay:
        tune.report(r)
    if point.replay and point.replay[-1].get(record.DONE):
        return Continued()
    if point.checkpoint is None:
        return Continued(result=train(*args))
    with point.checkpoint.as_directory() as d:
        result = train(*args, resume_from=d)
        return Continued(True, result, record.load_with_checkpoint(d))


def newest_sealed(fs: pafs.FileSystem, trial: str, known: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """(the path of the checkpoint in ``trial`` sealed at the furthest step, the reports the
    seals after ``known`` hold, in order) if further than ``known`` (Tune's; None: no checkpoint
    known), else (None, [])."""
    try:
        entries = fs.get_file_info(pafs.FileSelector(trial, allow_not_found=True))
    except OSError:
        return None, []
    start = _sealed(fs, known)[0] if known else None
    later = []
    for e in entries:
        if e.type != pafs.FileType.Directory or not CHECKPOINT_DIR.fullmatch(e.base_name):
            continue
        if known is not None and posixpath.normpath(e.path) == posixpath.normpath(known):
            continue
        progress, reports = _sealed(fs, e.path)
        if progress is not None and (start is None or progress > start):
            later.append((progress, e.path, reports))
    if not later:
        return None, []
    later.sort(key=lambda x: x[0])
    return later[-1][1], [r for _, _, reports in later for r in reports]


def _sealed(fs: pafs.FileSystem, path: str) -> tuple[float | None, list[dict[str, Any]]]:
    """(progress, reports) of a complete sealed checkpoint; (None, []) for any other folder."""
    try:
        with fs.open_input_stream(posixpath.join(path, record.CHECKPOINT_SEAL_FILE)) as f:
            seal = json.loads(f.read())
        files = seal.get("files") or {}
        infos = fs.get_file_info([posixpath.join(path, k) for k in files])
    except (OSError, ValueError, AttributeError):  # no seal (or a torn one): not a candidate
        return None, []
    sizes = {k: (i.size if i.type == pafs.FileType.File else None) for k, i in zip(files, infos)}
    progress = record.sealed_progress(seal, sizes)
    reports = seal.get("reports")
    return (progress, reports if isinstance(reports, list) else []) if progress is not None else (None, [])
