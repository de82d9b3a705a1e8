"""What a trial reports: the one contract between ``train()``, the Tune trainable and the
Parquet files, imported by all three (and by nothing that needs Ray, torch or pandas).

``train(config, report)`` calls ``report(metrics, checkpoint_dir)`` at every epoch end with a
flat dict of the ``METRICS`` below (``when`` says which reports carry each) plus families
named by pattern: ``init_<metric>`` (the untrained backbone, ``eval_init``), ``raw_*`` (raw
pixels, ``eval_init``), ``<metric>@<dataset>`` (probes on a transfer dataset, final),
``generator_*`` (what the zoo records of the generator used). Any other key a report carries
is kept as a metric too (results.py gives it a column).

The trainable (sqsp/tune/trainable.py) adds the ``MARKS``: ``final`` on train()'s own last report, to
tell it from a scheduler's stop (Ray sets ``done`` on both); a run that diverged or raised a
user error ends with one report made by ``diverged_report`` / ``failed_report``, which carries
no metrics. ``trial_status`` reads a trial's status from its last report and the exception
it raised, if any: by the marks and the exception's type, never by its text.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Literal

from .errors import UserError


class TrainingDiverged(FloatingPointError):
    """The loss (or the backbone's features) became NaN or infinite: a result, not a crash."""


class OutOfMemory(UserError, MemoryError):
    """An allocation the trial's config needs failed (its batch, resolution or model is too
    large for the memory the machine gives it): the same config fails the same way again, so
    it is not retried; the message says how much was asked for."""


_CPU_ALLOCATOR_FAILURE = "can't allocate memory"  # torch's DefaultCPUAllocator, raised as a plain RuntimeError


def out_of_memory(error: BaseException) -> OutOfMemory | None:
    """``error`` as an ``OutOfMemory`` if it is a failed allocation, else None.

    Python's MemoryError and torch's OutOfMemoryError (CUDA, MPS) say so by their type; a
    failed CPU allocation in torch is a plain RuntimeError, told only by the allocator's text
    (the one place sqsp reads an exception's text, because torch gives it no type)."""
    if isinstance(error, OutOfMemory):
        return error
    names = {t.__name__ for t in type(error).__mro__}
    text = str(error).strip()
    if isinstance(error, MemoryError) or "OutOfMemoryError" in names or \
            (isinstance(error, RuntimeError) and _CPU_ALLOCATOR_FAILURE in text):
        line = next((x for x in text.splitlines() if _CPU_ALLOCATOR_FAILURE in x), text.splitlines()[0] if text else "")
        return OutOfMemory(f"out of memory ({type(error).__name__}: {line.strip()[:300]}); lower batch_size, or run "
                           "fewer trials at once (a larger --cpus-per-trial)")
    return None


@dataclass(frozen=True)
class Metric:
    name: str
    kind: type                                          # bool, int or float: its Parquet column type
    when: Literal["every", "eval", "final"]             # every report; evaluations only; the last report only


METRICS: tuple[Metric, ...] = (
    Metric("step", int, "every"), Metric("epoch", int, "every"),
    Metric("progress", float, "every"),                 # step / total steps: a scale-free clock (ASHA)
    Metric("loss", float, "every"), Metric("loss_sim", float, "every"), Metric("loss_var", float, "every"),
    Metric("loss_cov", float, "every"), Metric("loss_syn", float, "every"), Metric("loss_real", float, "every"),
    Metric("lr", float, "every"), Metric("student_std", float, "every"), Metric("teacher_std", float, "every"),
    Metric("student_nstd", float, "every"), Metric("backbone_nstd", float, "eval"),
    Metric("img_per_s", float, "every"), Metric("knn_acc", float, "eval"), Metric("probe_acc", float, "final"),
    Metric("probe_acc_best", float, "final"),           # probe='paper': the best of its evaluations (the authors')
    Metric("val_knn_acc", float, "every"),              # with val_fraction > 0: the per-epoch selection signal
    Metric("val_probe_acc", float, "final"),
    Metric("init_knn_acc", float, "every"), Metric("init_probe_acc", float, "every"),
    Metric("mmd_syn_real", float, "final"), Metric("collapsed", bool, "every"),
)
"""The metrics train() reports, in the column order of the Parquet files (schema version 1)."""
METRIC_NAMES = tuple(m.name for m in METRICS)
FINAL_METRICS = tuple(m.name for m in METRICS if m.when == "final")
INT_METRICS = tuple(m.name for m in METRICS if m.kind is int)
BOOL_METRICS = (*(m.name for m in METRICS if m.kind is bool), "done")

DONE, FINAL, DIVERGED, FAILED_MARK, ERROR = "done", "final", "diverged", "failed", "error"
RUN_ID = "run_id"  # the study run (``sqsp_runs`` in the Parquet metadata) that made the report
MARKS = (FINAL, DIVERGED, FAILED_MARK, ERROR, RUN_ID)
"""Keys the trainable adds to train()'s reports: bookkeeping, not metrics."""

RAY_KEYS = frozenset({"timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
                      "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
                      "iterations_since_restore", "should_checkpoint", "experiment_tag", "config"})
"""Keys Ray Tune adds to every result: not metrics."""
HISTORY_RAY_KEYS = ("training_iteration", "time_total_s", "done")
"""The Ray keys history.parquet keeps beside the metrics."""

STATUSES = ("completed", "collapsed", "failed", "diverged", "stopped", "unfinished", "skipped")
"""completed: ran to its final report. collapsed: ran to its end but its representation
collapsed (metrics kept). failed: raised (after Ray's retries; a user error, such as a
malformed data file, at once). diverged: NaN/inf loss (``TrainingDiverged``).
stopped: ended early by a scheduler or stopper (one stopped while its representation was
collapsed is ``collapsed``: its ``progress`` < 1 tells it ended early). unfinished: the study
was interrupted before the trial ended (``--resume`` finishes it). skipped: never started,
because the machine lacks something it needs (``error`` says what, e.g. "needs LPIPS weights: …")."""
FAILED = ("failed", "diverged")
"""The statuses of a trial that has no result."""
PHASES = ("search", "confirm")


def is_metric(key: str) -> bool:
    """A report's key that is a metric: not Ray's, not a mark, not the trial's row or seed."""
    return key not in RAY_KEYS and key not in MARKS and key not in ("row", "seed")


# ---------------------------------------------------------------------------------------------
# the trainable's side
# ---------------------------------------------------------------------------------------------
def mark_final(metrics: dict[str, Any]) -> dict[str, Any]:
    """train()'s own last report (``done``) marked ``final``, told apart from a scheduler's stop."""
    return {**metrics, FINAL: True} if metrics.get(DONE) else metrics


def diverged_report(error: TrainingDiverged) -> dict[str, Any]:
    return {DIVERGED: True, ERROR: f"{type(error).__name__}: {error}", DONE: True}


def failed_report(error: BaseException) -> dict[str, Any]:
    """A user error (a bad config or file, found when the trial loads it): not retried."""
    return {FAILED_MARK: True, ERROR: f"{type(error).__name__}: {error}", DONE: True}


CHECKPOINT_METRICS_FILE = "sqsp_metrics.json"


def save_with_checkpoint(checkpoint_dir: str, metrics: dict[str, Any]) -> None:
    """The report's metrics beside the checkpoint it came with, so that a trial resumed from its
    final checkpoint (the driver died before recording the end) can report its end again."""
    with open(os.path.join(checkpoint_dir, CHECKPOINT_METRICS_FILE), "w") as f:
        json.dump(metrics, f, default=float)


CHECKPOINT_SEAL_FILE = "sqsp_seal.json"


def seal_checkpoint(checkpoint_dir: str, progress: float, reports: list[dict[str, Any]]) -> None:
    """Record, last, how far the run this checkpoint saves had got (``progress``: its step), the
    reports made since the previous checkpoint (this one's included) and the size of every file
    in it, so that a copy of it can be told complete (``sealed_progress``).
    Why: Tune knows a trial's checkpoints and reports only up to its last experiment snapshot,
    which it throttles; a trial resumed after the driver died continues from the newest
    *complete* checkpoint in storage instead and reports again what Tune never recorded
    (sqsp/tune/resume_point.py); a copy cut short by the death of its worker must not be that one."""
    files = {}
    for root, _, names in os.walk(checkpoint_dir):
        for name in names:
            path = os.path.join(root, name)
            files[os.path.relpath(path, checkpoint_dir).replace(os.sep, "/")] = os.path.getsize(path)
    with open(os.path.join(checkpoint_dir, CHECKPOINT_SEAL_FILE), "w") as f:
        json.dump({"progress": progress, "files": files, "reports": reports}, f, default=float)


def sealed_progress(seal: dict[str, Any], sizes: dict[str, int | None]) -> float | None:
    """A checkpoint's ``progress`` if every file its seal lists has the recorded size
    (``sizes``: relative path -> size in storage, None where missing), else None."""
    files = seal.get("files")
    if not isinstance(files, dict) or not isinstance(seal.get("progress"), (int, float)):
        return None
    return float(seal["progress"]) if all(sizes.get(k) == v for k, v in files.items()) else None


def load_with_checkpoint(checkpoint_dir: str) -> dict[str, Any]:
    """What ``save_with_checkpoint`` stored in ``checkpoint_dir`` ({} if nothing)."""
    path = os.path.join(checkpoint_dir, CHECKPOINT_METRICS_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# the results' side
# ---------------------------------------------------------------------------------------------
def error_text(error: BaseException | str | None) -> str | None:
    """``Type: message`` of the exception a trial raised (Ray wraps it; we show the cause)."""
    if error is None:
        return None
    if isinstance(error, str):
        return error
    exc = _cause(error)
    msg = str(exc).strip()
    if exc is error and "\n" in msg:  # a Ray error without a cause: its last line says what
        msg = msg.splitlines()[-1].strip()
    return f"{type(exc).__name__}: {msg}"[:4000]


def trial_status(last: dict[str, Any], error: BaseException | str | None) -> str:
    """The status of a trial from its last report and the exception it raised, if any."""
    if error is not None:
        return "diverged" if isinstance(_cause(error), TrainingDiverged) else "failed"
    if last.get(FAILED_MARK):
        return "failed"
    if last.get(DIVERGED):
        return "diverged"
    if last.get(FINAL):
        return "collapsed" if _true(last.get("collapsed")) else "completed"
    if _true(last.get(DONE)):  # ended by a scheduler or stopper
        return "collapsed" if _true(last.get("collapsed")) else "stopped"
    return "unfinished"


def _cause(error: BaseException | str) -> BaseException | str:
    cause = getattr(error, "cause", None)  # RayTaskError keeps the user's exception here
    return cause if isinstance(cause, BaseException) else error


def _true(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and bool(v)
