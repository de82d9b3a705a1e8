"""The Ray Tune function trainable: one ``sqsp.train.train`` run per trial.

``train()`` reports through a callback; here each report becomes ``tune.report(metrics,
checkpoint=tune.Checkpoint.from_directory(...))``, and a trial Tune resumes (``--resume``, a
retry after a crash) continues from its newest complete checkpoint in storage, which is
Tune's (``tune.get_checkpoint()``) unless the driver died before Tune's experiment snapshot
recorded a later one (sqsp/tune/resume_point.py).

Failures. A trial that crashes is retried ``max_failures`` times from its last checkpoint,
then becomes a ``failed`` row; the study goes on (``fail_fast=False``). Two kinds of error
are results, not crashes, and are not retried, since the same config fails the same way
again: a NaN/inf loss (``TrainingDiverged``, a ``FloatingPointError``; training resumes
bit-for-bit) ends as a ``diverged`` row, and a user error (``sqsp.errors.USER_ERRORS``: a
bad config or file found only when the trial loads it, e.g. a malformed data file or an
image PIL cannot read) or a failed allocation (``record.OutOfMemory``: the config needs more
memory than the machine gives it) as a ``failed`` row, each with its message. A collapsed
run completes and is recorded as ``collapsed``. A trial resumed from its final checkpoint
reports its end again from the metrics stored in it (history.parquet drops the replayed
reports).
"""
from __future__ import annotations

from typing import Any, Callable

from ray import tune

from .. import record
from ..errors import USER_ERRORS
from ..provenance import trial_provenance
from .resume_point import continue_trial
from .study import trial_config

PROGRESS_METRICS = ("epoch", "loss", "student_std", "knn_acc", "probe_acc")
"""Ray's progress table shows the first four metrics of a result: these come first."""


def decorate(metrics: dict[str, Any], info: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """A train() report as a trial reports it: the progress metrics first, the row's info (its
    generator's FID, provenance) and the study run's id beside it, the final one marked."""
    return record.mark_final({**{k: metrics[k] for k in PROGRESS_METRICS if k in metrics}, **info, **metrics, **run})


def sqsp_trial(space: dict[str, Any], *, fixed: dict[str, Any], threads: int = 1,
               train_fn: Callable | None = None, run_id: str | None = None) -> None:
    """Ray Tune function trainable: one ``train()`` run, resumed from Tune's checkpoint if any.

    ``train_fn`` replaces ``sqsp.train.train`` (same signature), for tests and benchmarks.
    ``run_id`` (the study run's) goes with every report, so each trial records which run of
    its study ran it last.
    """
    import logging
    import sys

    if train_fn is None or "torch" in sys.modules:  # a stand-in that never trains need not load torch
        import torch
        torch.set_num_threads(max(1, int(threads)))  # one thread per CPU Ray gave us, not per core
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    config = trial_config(space, fixed)
    info = fixed.get("info", {}).get(space.get("row"), {})  # e.g. the FID of the row's checkpoint
    if train_fn is None:
        from ..train import train as train_fn
    reported, since = [], []  # since: the reports after the last checkpoint, kept in the next one's seal
    run = {record.RUN_ID: run_id} if run_id else {}

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        metrics = decorate(metrics, info, run)
        reported.append(True)
        since.append(metrics)
        if checkpoint_dir is None:
            tune.report(metrics)
            return
        record.save_with_checkpoint(checkpoint_dir, metrics)
        record.seal_checkpoint(checkpoint_dir, metrics.get("step", len(reported)), since)
        since.clear()
        # the directory lives only during this call: Ray copies it to storage inside report()
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

    try:
        info = {**info, **trial_provenance(config)}  # the generator's sha256, library versions, the device here
        done = continue_trial(train_fn, config, report)
        if done.resumed and not reported and done.stored.get(record.DONE):
            tune.report({**done.stored, **run})  # resumed from its final checkpoint: its end again
    except record.TrainingDiverged as e:  # a result, not a crash to retry
        tune.report({**record.diverged_report(e), **run})
    except USER_ERRORS as e:  # a bad config or file fails the same way again: no retry either
        tune.report({**record.failed_report(e), **run})
    except Exception as e:
        oom = record.out_of_memory(e)  # a config too large for this machine: the same again on a retry
        if oom is None:
            raise
        tune.report({**record.failed_report(oom), **run})
