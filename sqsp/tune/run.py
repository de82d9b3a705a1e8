"""``run_study``: a study as a Ray Tune experiment, from its declaration to its Parquet files.

1. Every trial's config is resolved and validated in the driver (study.py), the pre-run
   checks refuse what would fail every trial (preflight.py), and the study folder is locked
   (folder.py), all before Ray starts.
2. Ray starts: a private local Ray on 127.0.0.1 (ray_session.py; never a cluster that happens
   to be running here) or, with ``address`` (``auto | host:port | ray://…``), the cluster named.
   ``Tuner.fit`` runs one trial per grid point × seed (or ``num_samples`` a searcher
   proposes), each with ``cpus_per_trial`` CPUs (and as many torch threads) and
   ``gpus_per_trial`` GPUs (fractions let small trials share a GPU).
3. ``trials.parquet`` and ``history.parquet`` are written in ``<storage>/<study>/`` from the
   ResultGrid (sqsp/results.py documents them): one row per trial whatever became of it.
4. A search that confirms its best trials runs the confirmation (confirm.py) through the
   same experiment code (experiment.py).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import sys
import uuid
from typing import Any, Callable, Sequence

import ray
from ray import tune

from .. import results
from ..checkpoints import FID_SAMPLES
from ..config import ConfigError, parse_overrides
from .preflight import (check_devices, check_paths_on_cluster, check_reachable, check_resources, check_run_options,
                        preflight, skipped_rows, trial_paths)
from .checkpoint_rows import checkpoint_info, checkpoint_rows, recorded_or_computable
from .confirm import run_confirmation
from .console import TrialLines, describe, logger_callbacks
from .experiment import RunOptions, fit_and_record, open_tuner, utc_now
from .folder import (check_same_study, check_state, storage_root, stored_skips, study_dir, study_lock, study_spec,
                     write_study)
from .groups import group_space, plan_groups, stored_groups
from .ray_session import init_ray
from .study import Study, expand, param_space, resolve, study_metadata


def run_study(study: Study, *, address: str | None = None, storage: str | None = None, resume: bool = False,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0, max_failures: int = 1,
              overrides: dict[str, Any] | list[str] | None = None, max_concurrent: int | None = None,
              reuse_actors: bool = True, train_fn: Callable | None = None, verbose: int = 0,
              loggers: Sequence[str] = ("tensorboard",),
              generators: str | None = None, fid_samples: int = FID_SAMPLES, manifests: Sequence[str] | None = None,
              status_every: float = 30.0):
    """Run (or ``resume``) a study and write its Parquet files; returns the trials DataFrame.

    Raises a UserError before Ray starts if any trial could not run (``preflight``: its
    config, generator, data layout or device), or if another run holds the study folder.
    Without ``address`` the study runs on a private local Ray, never on a cluster that
    happens to be running here.

    ``verbose`` 0 prints one line per trial that ends, with a count (``TrialLines``); 1 or 2 adds
    Ray's own trial tables and the trials' console output. ``loggers`` are Ray Tune's logger
    callbacks (``LOGGERS``); Tune's CSV and JSON files are always written (the Parquet files
    are built from them).

    ``generators`` (a glob, for a study with ``checkpoint_rows``) makes each matching file a row
    and records its FID (from ``manifests``, else computed in a Ray task per file with
    ``fid_samples`` images).

    Each run gets a run id; the Parquet files list every run of the study (``sqsp_runs``: id,
    UTC start and end, command) and each trial the run that ran it last (``run_id``).
    ``status_every`` seconds apart, a status line of the running trials goes to stderr.
    """
    checkpoints = checkpoint_rows(study, generators)
    if checkpoints:
        study = dataclasses.replace(study, grid=[{"row": c.label, "generator": c.path} for c in checkpoints])
    user = parse_overrides(overrides)
    check_run_options(cpus_per_trial, gpus_per_trial, max_failures, max_concurrent)
    callbacks = logger_callbacks(loggers, study.name)  # a logger that is not installed: refused now
    _, base, trials = resolve(study, user)
    path = study_dir(study, storage)
    spec = study_spec(study, base, user)
    fixed = spec["fixed"]
    check_devices([cfg for _, cfg in trials], local=address is None, gpus_per_trial=gpus_per_trial)
    if address and not ray.is_initialized():
        check_reachable(address)

    with study_lock(path):
        restoring = tune.Tuner.can_restore(path)
        if restoring and not resume:
            raise ConfigError(f"{path} already holds study {study.name!r}; pass --resume to continue it "
                              "(finished trials are kept), or choose another --storage")
        if restoring:
            fixed = check_same_study(path, spec)
            check_state(path, path)  # a corrupt Tune state: its kept copy, or refused, before Ray starts
            trials = expand(study, fixed["base"])  # the configs it started with
        elif resume:
            print(f"[sqsp] nothing to resume in {path}; starting the study", file=sys.stderr)
        if address and address.startswith("ray://") and "://" not in storage_root(storage):
            print(f"[sqsp] warning: with a Ray Client address the trials write to {path} on the cluster; "
                  "give --storage a bucket URI or a shared filesystem so this machine can read it too",
                  file=sys.stderr)
        skipped = skipped_rows(study, trials)
        if restoring:
            skipped = stored_skips(path, skipped)
        spec["skipped"] = skipped
        runnable = [(row, cfg) for row, cfg in trials if row not in skipped]
        preflight([cfg for _, cfg in runnable])
        groups = stored_groups(fixed, study.share_generator) if restoring else \
            plan_groups(study, runnable, study.share_generator, custom_train=train_fn is not None)
        if groups:
            fixed["groups"] = groups
        recorded = {} if restoring or not checkpoints else recorded_or_computable(checkpoints, manifests,
                                                                                   local=not address)
        describe(study, trials, path, cpus_per_trial, gpus_per_trial, restoring, groups=len(groups or {}))
        runs = [*(previous_runs(path) if restoring else []),
                {"run_id": uuid.uuid4().hex[:12], "started_at": utc_now(), "command": " ".join(sys.argv)}]
        order = list(study.rows or {})
        skipped_records = [
            results.TrialRecord(trial_id=f"skipped-{row}-seed{cfg.seed}", config=cfg.to_dict(), row=row,
                                row_index=order.index(row), skipped=skipped[row])
            for row, cfg in trials if row in skipped]
        if not runnable:  # nothing for Ray to do: record the rows and what they need
            write_study(path, study, spec)
            runs[-1]["ended_at"] = utc_now()
            trials_df, _ = results.write_study(path, study.name, skipped_records, metadata=study_metadata(study),
                                               runs=runs)
            print(f"[sqsp] study {study.name!r}: every row was skipped; wrote "
                  f"{results.join(path, results.TRIALS_FILE)}", file=sys.stderr)
            trials_df.attrs["interrupted"] = False
            return trials_df

        started = not ray.is_initialized()
        if started:
            _start_ray(address, verbose)
        try:
            check_resources(cpus_per_trial, gpus_per_trial, strict=address is None)
            if address:
                check_paths_on_cluster(trial_paths([cfg for _, cfg in runnable]))
            if checkpoints and not restoring:
                fixed["info"] = checkpoint_info(checkpoints, recorded, trials[0][1], fid_samples)
            _tune_environment()
            options = RunOptions(cpus_per_trial, gpus_per_trial, max_failures, max_concurrent, reuse_actors, verbose,
                                 callbacks, train_fn, runs=runs, status_every=status_every)
            if not restoring:
                write_study(path, study, spec)
            expected = study.search.num_samples if study.search is not None else len(trials)
            space = group_space(groups) if groups else param_space(study, skip=list(skipped), trials=trials)
            open_experiment = functools.partial(
                open_tuner, options, fixed, space, storage_path=storage_root(storage), name=study.name,
                lines=TrialLines(expected if study.search is not None else len(runnable)), study_folder=path,
                stop=copy.deepcopy(study.stopper), **_search_and_scheduler(study))
            trials_df, records, elapsed = fit_and_record(
                open_experiment(restoring=restoring), study, path, fixed, phase=study.phase, order=order,
                after=skipped_records, runs=runs, reopen=functools.partial(open_experiment, restoring=True))
            counts = trials_df["status"].value_counts().to_dict()
            print(f"[sqsp] study {study.name!r}: {len(trials_df)} trials {counts} in {elapsed:.0f} s; "
                  f"wrote {results.join(path, results.TRIALS_FILE)} and {results.HISTORY_FILE}", file=sys.stderr)
            trials_df.attrs["interrupted"] = bool(counts.get("unfinished")) or len(trials_df) < expected or \
                bool(trials_df.attrs["out_of_space"])
            trials_df.attrs["elapsed_s"] = {study.phase or "study": elapsed}
            if not trials_df.attrs["interrupted"] and study.search is not None and study.search.confirm_top:
                trials_df = run_confirmation(study, path, fixed, records, trials_df, options)
            if trials_df.attrs.get("out_of_space"):
                print(trials_df.attrs["out_of_space"], file=sys.stderr)
            elif trials_df.attrs["interrupted"]:
                print("[sqsp] the study was interrupted; continue it with --resume", file=sys.stderr)
            return trials_df
        finally:
            if started:
                ray.shutdown()


def previous_runs(path: str) -> list[dict[str, Any]]:
    """The runs recorded in the study's trials.parquet (none if it has no readable file yet)."""
    try:
        return list(json.loads(results.schema_metadata(path).get("sqsp_runs", "[]")))
    except (OSError, ValueError):
        return []


def _search_and_scheduler(study: Study) -> dict[str, Any]:
    """The search's and the scheduler's part of ``tune.TuneConfig`` (each copied: a run may not
    change the declaration). A scheduler with a metric of its own refuses Tune's; the searcher
    gets the study's anyway (``FinalMetricSearcher``)."""
    scheduler = copy.deepcopy(study.scheduler)
    guided = (study.search is not None or scheduler is not None) and not getattr(scheduler, "metric", None)
    return dict(metric=study.metric if guided else None, mode=study.mode if guided else None, scheduler=scheduler,
                search_alg=study.search.search_alg(study.metric, study.mode) if study.search is not None else None,
                num_samples=study.search.num_samples if study.search is not None else 1)


def _start_ray(address: str | None, verbose: int) -> None:
    import logging
    # Ray's notice that token authentication is on (a warning at every start) only with --verbose
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = notice.level
    if not verbose:
        notice.setLevel(logging.ERROR)
    try:
        # a private Ray on loopback (ray_session.py), never whatever RAY_ADDRESS or Ray's "current
        # cluster" file names (a dead one hangs, someone else's runs our trials)
        init_ray(address, runtime_env=_runtime_env(address),
                 # quiet unless asked: the trials' own output and Ray's startup lines
                 log_to_driver=verbose > 0, logging_level="INFO" if verbose > 0 else "WARNING")
    finally:
        notice.setLevel(level)
    have = ray.cluster_resources()
    print(f"[sqsp] {'joined the Ray cluster at ' + address if address else 'started a private local Ray'}: "
          f"{have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs", file=sys.stderr, flush=True)


def _runtime_env(address: str | None) -> dict[str, Any] | None:
    """On a cluster, ship this copy of sqsp to the nodes (``py_modules``): their Python may hold
    another version of the package, or none. A local Ray's workers run this interpreter, which
    imports the installed package (``pip install -r requirements.txt`` installs it)."""
    if address:
        return {"py_modules": [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]}
    return None


def _tune_environment() -> None:
    # probe_acc comes with the final report only; Tune's strict check would refuse the others
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # the loggers are logger_callbacks' choice
    # Tune's newer console output prints its experiment box and a TensorBoard hint whatever the
    # verbosity; the classic reporter honours verbose=0 (TrialLines and StatusLine speak then)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune snapshots the experiment state at most every 10 s by default; a driver killed
    # in between forgets that a trial ended and resumes it from an older checkpoint.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
