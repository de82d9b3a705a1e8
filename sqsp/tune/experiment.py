"""One Ray Tune experiment of a study, set up and recorded the same way for both phases.

A study runs one experiment (its grid, or its search) and, when a search confirms its best
trials, a second one in ``<study>/confirm/``. Both are built here (``open_tuner``: a new
``tune.Tuner(trainable, param_space=…, tune_config=TuneConfig(…), run_config=RunConfig(…))``,
or ``tune.Tuner.restore`` for ``--resume``) and both are fitted and written to the study's
Parquet files here (``fit_and_record``).

Resume. ``Tuner.restore(path, resume_unfinished=True, resume_errored=True,
restart_errored=False)``: trials that ended (completed, collapsed, diverged, stopped) are
skipped, so nothing finished is repeated; trials that were running or pending continue from
their latest checkpoint, so nothing is lost; trials that errored get another chance from
their latest checkpoint, because the usual cause of an error in an interrupted study is the
interruption (a dead worker or node), and a deterministic error simply fails again and stays
one ``failed`` row. ``restart_errored`` would throw their progress away. A driver killed
outright loses at most the last ``TUNE_GLOBAL_CHECKPOINT_S`` (2 s here) of Tune's
bookkeeping, so a trial that ended in that window resumes from its last recorded checkpoint:
still one row per trial.

Node loss. A trial whose node leaves the cluster (a machine lost or removed) failed through no
fault of its own, yet Ray Tune counts the loss against ``max_failures``, and for a trial just
placed on that node twice at once (its actor's creation fails, then the actor is reported
dead), so under the default ``--max-failures 1`` such a trial fails outright. ``fit_and_record``
therefore resumes the experiment once more, in the same run, when trials failed that way and
nothing else stopped it (an interruption, a full disk), which is what a ``--resume`` would do:
those trials continue from their latest checkpoints on the nodes that are left.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import os
import pickle
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ray import tune

from .. import results
from ..config import ConfigError
from ..lockfile import Unwritable
from ..optuna_study import write_journal
from ..record import trial_status
from .console import StatusLine, TrialLines, trial_dirname
from .folder import check_state, terminate_as_interrupt
from .groups import GROUP, member_records, sqsp_group_trial
from .study import Study, study_metadata, trial_config
from .trainable import sqsp_trial
from .watch import DiskWatch, without_missing_metrics


@dataclass
class RunOptions:
    """How a study's trials run: the same for its search (or grid) and its confirmation."""
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_failures: int = 1
    max_concurrent: int | None = None
    reuse_actors: bool = True
    verbose: int = 0
    callbacks: Sequence[Any] = ()
    train_fn: Callable | None = None
    runs: list[dict[str, Any]] | None = None
    """Every run of the study so far, this one last (``run_id``, ``started_at``, ``command``)."""
    status_every: float = 30.0
    """Seconds between the status lines of the running trials on stderr (``StatusLine``)."""

    @property
    def run_id(self) -> str | None:
        return self.runs[-1]["run_id"] if self.runs else None

    def trainable(self, fixed: dict[str, Any]):
        """``sqsp_trial`` (or, for a study whose rows share generator streams, ``sqsp_group_trial``)
        with the study's shared spec and the resources each trial asks Ray for."""
        trial = sqsp_group_trial if fixed.get("groups") else sqsp_trial
        return tune.with_resources(
            tune.with_parameters(trial, fixed=fixed, threads=max(1, int(self.cpus_per_trial)),
                                 train_fn=self.train_fn, run_id=self.run_id),
            {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial})


def open_tuner(options: RunOptions, fixed: dict[str, Any], space: dict[str, Any], *, storage_path: str, name: str,
               restoring: bool, lines: TrialLines, stop: Any = None, study_folder: str | None = None,
               **tune_config: Any) -> tune.Tuner:
    """The experiment ``<storage_path>/<name>``: restored as it was (``--resume``; the same
    param_space again, since Tune needs its sample_from functions back), or a new Tuner.
    ``tune_config``: the search's and the scheduler's part of ``tune.TuneConfig``."""
    trainable = options.trainable(fixed)
    if restoring:
        check_state(results.join(storage_path, name), study_folder or storage_path)
        with without_missing_metrics():
            return tune.Tuner.restore(results.join(storage_path, name), trainable, resume_unfinished=True,
                                      resume_errored=True, restart_errored=False, param_space=space)
    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=options.max_concurrent, reuse_actors=options.reuse_actors,
                                    trial_dirname_creator=trial_dirname, **tune_config),
        run_config=tune.RunConfig(name=name, storage_path=storage_path, verbose=options.verbose, stop=stop,
                                  callbacks=[*options.callbacks, lines,
                                             StatusLine(lines.total, every=options.status_every,
                                                        prefix=lines.prefix)],
                                  failure_config=tune.FailureConfig(max_failures=options.max_failures,
                                                                    fail_fast=False),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


def fit_and_record(tuner: tune.Tuner, study: Study, path: str, fixed: dict[str, Any], *, phase: str | None,
                   order: Sequence[str] = (), before: Sequence[results.TrialRecord] = (),
                   after: Sequence[results.TrialRecord] = (), experiment: str | None = None,
                   runs: list[dict[str, Any]] | None = None, reopen: Callable[[], tune.Tuner] | None = None):
    """Fit the experiment (in ``experiment``, default ``path``) and write the study's Parquet
    files in ``path`` (a SIGTERM during the fit stops it as Ctrl-C does; while the files are
    written it waits; a storage that fills up stops it too, see watch.py). The files hold
    ``before``, this experiment's trials, then ``after``, and ``runs`` (the current run's end
    time set now). Returns (trials DataFrame, the records written, seconds the fit took); the
    DataFrame's ``attrs["out_of_space"]`` is the line that says the storage filled up, else None.
    ``reopen`` restores the experiment: the fit runs once more if trials were lost with a node.

    Whatever Ray Tune prints during the fit goes to stderr: stdout carries the study's table
    alone, so ``python studies/ablation.py > table.md`` holds just that."""
    experiment = experiment or path
    watch = DiskWatch(path, experiment)
    with terminate_as_interrupt() as signals:
        t0 = time.perf_counter()
        with watch.watching(), contextlib.redirect_stdout(sys.stderr):
            mine = trial_records(_fit(tuner, experiment), fixed, order, phase=phase)
            lost = [r for r in mine if lost_with_a_node(r.error)]
            if lost and reopen is not None and watch.message is None and not any(
                    trial_status(r.reports[-1] if r.reports else {}, r.error) == "unfinished" for r in mine):
                names = sorted({r.row or r.trial_id for r in lost})
                print(f"[sqsp] {len(lost)} trials failed because their node left the Ray cluster "
                      f"({', '.join(names[:8])}{', …' if len(names) > 8 else ''}); running them again from their "
                      "latest checkpoints on the nodes that are left", file=sys.stderr)
                before_loss = {r.trial_id: r.failures or 0 for r in lost}
                mine = trial_records(_fit(reopen(), experiment), fixed, order, phase=phase)
                for r in mine:  # Tune's snapshot may predate the loss it counted: keep the count
                    r.failures = max(r.failures or 0, before_loss.get(r.trial_id, 0))
        elapsed = time.perf_counter() - t0
        signals.writing = True
        records = [*before, *mine, *after]
        if runs:
            runs[-1]["ended_at"] = utc_now()
        try:
            trials_df, _ = results.write_study(path, study.name, records, metadata=study_metadata(study), runs=runs)
            if study.search is not None and "sqsp_search_space" in trials_df.attrs.get("sqsp", {}):
                write_journal(trials_df, path)  # Optuna's own tools read the search there
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise Unwritable(f"no space left on {path} to write {results.TRIALS_FILE} and {results.HISTORY_FILE} "
                             "(the files there, if any, are those of the last run); free space and --resume writes "
                             "them") from None
        finally:
            watch.release()
    trials_df.attrs["out_of_space"] = watch.message
    return trials_df, records, elapsed


_NODE_LOST = re.compile(r"node was terminated|because its node has died|node it was running on is dead", re.I)
"""Ray's words for an actor or a task whose node died or was removed (ActorDiedError, NodeDiedError)."""


def lost_with_a_node(error: BaseException | str | None) -> bool:
    """Whether a trial failed because its node left the cluster, not because of its own code
    (an error in its actor's creation task is the trial's own, whatever it says)."""
    if error is None or getattr(error, "actor_init_failed", False):
        return False
    return bool(_NODE_LOST.search(str(error)))


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _fit(tuner: tune.Tuner, experiment: str):
    """``tuner.fit()``; if Tune cannot build its ResultGrid because a trial's ``error.pkl`` was
    cut short (a full disk), those files go (Tune then reads the trial's ``error.txt``) and
    the results are read again."""
    try:
        return tuner.fit()
    except (EOFError, pickle.UnpicklingError):
        for bad in Path(results.filesystem(experiment)[1]).glob("*/error.pkl"):
            try:
                with open(bad, "rb") as f:
                    pickle.load(f)
            except Exception:  # noqa: BLE001 -- whatever a cut-short pickle raises
                bad.unlink()
        return tuner.get_results()


def trial_records(grid, fixed: dict[str, Any], order: Sequence[str] = (),
                  phase: str | None = None) -> list[results.TrialRecord]:
    """The ResultGrid as plain records, robust to trials that died before their first report."""
    # A Result takes its config from the trial's last report, so a trial that never reported
    # (pending when the study was interrupted) would lose its row and seed; Tune's own trial
    # objects keep it (ResultGrid holds them; a private attribute, hence the fallback).
    tune_trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None) or []
    known = {t.trial_id: t.config for t in tune_trials}
    number = {t.trial_id: i for i, t in enumerate(tune_trials)}  # Tune's list is in creation order
    failures = {t.trial_id: int(getattr(t, "num_failures", 0) or 0) for t in tune_trials}
    out = []
    for res in grid:
        last = res.metrics or {}
        trial_id = last.get("trial_id") or os.path.basename(str(res.path)).split("-")[0]
        space = res.config or known.get(trial_id) or {}
        df = res.metrics_dataframe
        reports = (df.to_dict("records") if df is not None and len(df) else
                   [last] if "training_iteration" in last else [])  # else: died before its first report
        try:
            cfg = trial_config(space, fixed).to_dict()
        except (ConfigError, KeyError, TypeError):
            cfg = {}
        row = space.get("row")
        record = results.TrialRecord(
            trial_id=str(trial_id), config=cfg, row=row, reports=reports, error=res.error,
            checkpoint=res.checkpoint.path if res.checkpoint is not None else None, path=str(res.path),
            row_index=order.index(row) if row in order else None,
            phase=phase, confirms=row if phase == "confirm" else None, number=number.get(str(trial_id)),
            failures=failures.get(str(trial_id)))
        out.extend(member_records(record, space, fixed, order) if GROUP in space else [record])
    return sorted(out, key=lambda r: r.trial_id)
