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
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ray import tune

from .. import results
from ..config import ConfigError
from .console import TrialLines, trial_dirname
from .folder import terminate_as_interrupt
from .study import Study, study_metadata, trial_config
from .trainable import sqsp_trial


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

    def trainable(self, fixed: dict[str, Any]):
        """``sqsp_trial`` with the study's shared spec and the resources each trial asks Ray for."""
        return tune.with_resources(
            tune.with_parameters(sqsp_trial, fixed=fixed, threads=max(1, int(self.cpus_per_trial)),
                                 train_fn=self.train_fn),
            {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial})


def open_tuner(options: RunOptions, fixed: dict[str, Any], space: dict[str, Any], *, storage_path: str, name: str,
               restoring: bool, lines: TrialLines, stop: Any = None, **tune_config: Any) -> tune.Tuner:
    """The experiment ``<storage_path>/<name>``: restored as it was (``--resume``; the same
    param_space again, since Tune needs its sample_from functions back), or a new Tuner.
    ``tune_config``: the search's and the scheduler's part of ``tune.TuneConfig``."""
    trainable = options.trainable(fixed)
    if restoring:
        return tune.Tuner.restore(results.join(storage_path, name), trainable, resume_unfinished=True,
                                  resume_errored=True, restart_errored=False, param_space=space)
    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=options.max_concurrent, reuse_actors=options.reuse_actors,
                                    trial_dirname_creator=trial_dirname, **tune_config),
        run_config=tune.RunConfig(name=name, storage_path=storage_path, verbose=options.verbose, stop=stop,
                                  callbacks=[*options.callbacks, lines],
                                  failure_config=tune.FailureConfig(max_failures=options.max_failures,
                                                                    fail_fast=False),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


def fit_and_record(tuner: tune.Tuner, study: Study, path: str, fixed: dict[str, Any], *, phase: str | None,
                   order: Sequence[str] = (), before: Sequence[results.TrialRecord] = (),
                   after: Sequence[results.TrialRecord] = ()):
    """Fit the experiment and write the study's Parquet files in ``path`` (a SIGTERM during the
    fit stops it as Ctrl-C does; while the files are written it waits). The files hold
    ``before``, this experiment's trials, then ``after``. Returns (trials DataFrame, the
    records written, seconds the fit took)."""
    with terminate_as_interrupt() as signals:
        t0 = time.perf_counter()
        grid = tuner.fit()
        elapsed = time.perf_counter() - t0
        signals.writing = True
        records = [*before, *trial_records(grid, fixed, order, phase=phase), *after]
        trials_df, _ = results.write_study(path, study.name, records, metadata=study_metadata(study))
    return trials_df, records, elapsed


def trial_records(grid, fixed: dict[str, Any], order: Sequence[str] = (),
                  phase: str | None = None) -> list[results.TrialRecord]:
    """The ResultGrid as plain records, robust to trials that died before their first report."""
    # A Result takes its config from the trial's last report, so a trial that never reported
    # (pending when the study was interrupted) would lose its row and seed; Tune's own trial
    # objects keep it (ResultGrid holds them; a private attribute, hence the fallback).
    tune_trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None) or []
    known = {t.trial_id: t.config for t in tune_trials}
    number = {t.trial_id: i for i, t in enumerate(tune_trials)}  # Tune's list is in creation order
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
        out.append(results.TrialRecord(
            trial_id=str(trial_id), config=cfg, row=row, reports=reports, error=res.error,
            checkpoint=res.checkpoint.path if res.checkpoint is not None else None, path=str(res.path),
            row_index=order.index(row) if row in order else None,
            phase=phase, confirms=row if phase == "confirm" else None, number=number.get(str(trial_id))))
    return sorted(out, key=lambda r: r.trial_id)
