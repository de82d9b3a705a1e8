"""Studies as Ray Tune sweeps over ``sqsp.train.train``: the only module of sqsp that imports Ray.

A study is declared once as a ``Study`` (name, base preset, a grid of fields or a list of
named rows, seeds, metric and mode, optional scheduler and searcher) in a short file under
``studies/`` that ends with ``study_main(STUDY)``; ``run_study`` does the rest:

1. Every trial's ``TrainConfig`` is resolved and validated in the driver before Ray starts
   (a bad ``--set`` is refused with the field, the value and what is allowed).
2. The study folder is locked for the whole run (``study_lock``): a second run or a
   ``--resume`` of the same folder is refused at once, naming the process that holds it.
3. ``preflight`` checks, once per distinct value and before any trial starts, what would
   fail every trial: each data root's layout, each generator (zoo entries built if missing,
   18 trials must not all build them, and hash-checked; the blocks and the mapping network
   the configs ask for), and the devices and GPUs the trials ask for. Rows this machine
   cannot run at all (``sqsp.train.unavailable``: a file sqsp never downloads, such as
   LPIPS's ImageNet trunk) are not started: they become ``skipped`` rows that say what they
   need, and the other rows run. A resumed study keeps the rows it skipped when it started.
4. Ray starts: a private local Ray (``address="local"``, never a cluster that happens to be
   running here) or, with ``--address auto | host:port | ray://…``, the cluster named.
   ``Tuner.fit`` runs one trial per grid point × seed, each with ``--cpus-per-trial`` CPUs
   (and as many torch threads) and ``--gpus-per-trial`` GPUs (fractions let small trials
   share a GPU); a trial larger than every node is refused (``check_resources``).
5. ``trials.parquet`` and ``history.parquet`` are written in ``<storage>/<study>/`` from the
   ResultGrid (sqsp/results.py documents them): one row per trial whatever became of it.

A study declares only what it compares (``check_declaration``): its overrides and rows may set
the fields of ``config.STUDY_FIELDS`` and nothing of the scale, which comes from the preset
and ``--set`` alone. Paths (data root, checkpoints, StyleGAN checkout) are made absolute in
the driver, against the directory it was started in, before ``study.json`` is written; with
``--address`` a Ray task on every node checks that they exist there too.

Searched studies (a ``searcher`` and a ``search_space``, e.g. studies/loss_weights.py) run
``num_samples`` trials on one seed. What they select on is ``metric`` (``val_probe_acc``: a
validation split carved from the training images, ``val_fraction``; never the test split),
and ``check_search`` refuses a metric the trials would not report. A ``scheduler`` may act on
a signal of its own reported every epoch (ASHA on ``val_knn_acc`` against ``progress``, the
share of the run done, so its rungs mean the same on every preset) and a ``stopper`` ends
trials that stay collapsed (``CollapseStopper``: status ``collapsed``, never ``failed``);
Optuna is told that a stopped trial was pruned. Then ``run_confirmation`` re-runs the
``confirm_top`` best trials on each of ``confirm_seeds`` (other seeds than the search's, which
selected them) as a second Tune experiment in ``<study>/confirm/``; both phases land in the
same Parquet files (``phase``, ``confirms``), with the metric and the search space in their
metadata so that analysis/ can rank the candidates by their mean over seeds and rebuild the
Optuna study (importances, history) from the files alone.

Order of precedence of a trial's config: preset < study overrides < ``--set`` < the row's
overrides < the grid's or searcher's value < seed. Rows are written relative to the base
(row d of the ablation sets ``cov_weight=0`` and inherits μ from the preset), so ``--set``
changes the base that the rows are built on; a ``--set`` that no trial would see (a field
that every row or the grid sets, or ``seed``) is refused instead of silently ignored.

Failures. A trial that crashes is retried ``max_failures`` times from its last checkpoint,
then becomes a ``failed`` row; the study goes on (``fail_fast=False``). Two kinds of error
are results, not crashes, and are not retried, since the same config fails the same way
again: a NaN/inf loss (``TrainingDiverged``, a ``FloatingPointError``; training resumes
bit-for-bit) ends as a ``diverged`` row, and a user error (``sqsp.errors.USER_ERRORS``: a
bad config or file found only when the trial loads it, e.g. a malformed data file) as a
``failed`` row, each with its message. A collapsed run completes and is recorded as
``collapsed``. ``study_main`` prints each distinct reason under the table and exits 1
when a trial failed (diverged trials are findings, not failures).

Resume. ``--resume`` calls ``Tuner.restore(path, resume_unfinished=True,
resume_errored=True, restart_errored=False)``: trials that ended (completed, collapsed,
diverged, stopped) are skipped, so nothing finished is repeated; trials that were running
or pending continue from their latest checkpoint, so nothing is lost; trials that errored
get another chance from their latest checkpoint, because the usual cause of an error in an
interrupted study is the interruption (a dead worker or node), and a deterministic error
simply fails again and stays one ``failed`` row. ``restart_errored`` would throw their
progress away. Ctrl-C and SIGTERM (a timeout, a cluster scheduler) are graceful (Tune
records every trial's state, the Parquet files are written with the unfinished trials
marked so, and ``--resume`` continues exactly); a driver
killed outright loses at most the last ``TUNE_GLOBAL_CHECKPOINT_S`` (2 s here) of Tune's
bookkeeping, so a trial that ended in that window resumes from its last recorded checkpoint,
and one resumed from its final checkpoint reports its end again from the metrics stored in
it: still one row per trial, and history.parquet drops the replayed reports. A searched
study resumes its search with the restored searcher (Tune saves the OptunaSearch with the
experiment state, so it neither forgets a trial nor proposes one twice), then its
confirmation, with the candidates written down when the confirmation first started
(``confirm.json``). ASHA's rungs are not saved by Tune: after a resume they fill again from
the results that follow, so a trial may then run further than it would have. The study
folder keeps what every trial shares (``study.json``; Ray keeps what varies), so a resume
runs the study as it was started, and a ``--resume`` with another ``--preset``/``--set``/
``--seeds`` is refused.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import itertools
import json
import math
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pyarrow.fs as pafs
import ray
from ray import tune
from ray.tune.logger import TBXLoggerCallback
from ray.tune.search import Searcher

from . import cli, lockfile, record, results
from .checkpoints import FID_SAMPLES, Checkpoint, checkpoint_fid, find_checkpoints, info_from_entry, recorded_fids
from .config import (PRESETS, SCALE_FIELDS, STUDY_FIELDS, ConfigError, TrainConfig, absolute_paths, ignored_settings,
                     is_zoo_name, parse_overrides, parse_seeds, preset, refuse_ignored, row_scale)
from .errors import USER_ERRORS
from .provenance import trial_provenance
from .storage import write_text

FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))
STUDY_FILE = "study.json"
PROGRESS_METRICS = ("epoch", "loss", "student_std", "knn_acc", "probe_acc")


@dataclass
class Study:
    """A study declared once; ``studies/<name>.py`` holds one of these and calls ``study_main``.

    ``grid`` is either ``{field: [values]}`` (the Cartesian product) or a list of named rows,
    each ``{"row": label, field: value, ...}``: overrides on top of the base config.
    ``search_space`` maps fields to Ray Tune domains (``tune.uniform`` …) for a searcher.
    ``scheduler`` / ``searcher`` / ``stopper`` are Ray Tune objects (copied per run; a scheduler
    may carry its own metric, e.g. ASHA on a per-epoch signal while the searcher optimises the
    study's final ``metric``). A searched study re-runs its ``confirm_top`` best trials on each
    of ``confirm_seeds`` (``run_confirmation``). ``table`` turns the trials DataFrame into the
    text printed at the end; ``figures(trials, folder)`` draws into the study folder.
    """
    name: str
    grid: dict[str, list] | list[dict[str, Any]] = field(default_factory=dict)
    preset: str = "smoke"
    seeds: Sequence[int] = (0, 1, 2)
    metric: str = "probe_acc"
    mode: str = "max"
    overrides: dict[str, Any] = field(default_factory=dict)
    search_space: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 1
    scheduler: Any = None
    searcher: Any = None
    stopper: Any = None
    confirm_top: int = 0
    confirm_seeds: Sequence[int] = (1, 2, 3)
    table: Callable[[Any], str] | None = None
    figures: Callable[[Any, str], list] | None = None
    description: str = ""
    checkpoint_rows: bool = False
    """The rows compare generators: ``--generators GLOB`` replaces them by one row per file it
    matches, each trial reporting its generator's FID (``sqsp/checkpoints.py``)."""

    def __post_init__(self):
        check_declaration(self)

    @property
    def rows(self) -> dict[str, dict[str, Any]] | None:
        if not isinstance(self.grid, list):
            return None
        out: dict[str, dict[str, Any]] = {}
        for r in self.grid:
            if "row" not in r:
                raise ConfigError(f"study {self.name!r}: every row of the grid needs a 'row' label (got {r})")
            label = str(r["row"])
            if label in out:
                raise ConfigError(f"study {self.name!r}: row label {label!r} appears twice")
            out[label] = parse_overrides({k: v for k, v in r.items() if k != "row"})
        return out


def check_declaration(study: Study) -> None:
    """Refuse, when a study is declared, any setting of its own that sets the scale.

    A study's overrides and rows may only say what it compares (``config.STUDY_FIELDS``); the
    scale (data, image size, optimiser, schedule, widths, probe) comes from the preset it
    runs on, so a setting tuned for the embedded scale cannot follow it onto a paper preset.
    A dict grid or a search space may sweep any field: the swept field is the comparison.
    """
    where = {"overrides": [dict(study.overrides)]}
    if isinstance(study.grid, list):
        where["rows"] = [{k: v for k, v in r.items() if k != "row"} for r in study.grid]
    else:
        single = sorted(k for k, v in study.grid.items() if k in SCALE_FIELDS and len(list(v)) < 2)
        if single:
            raise ConfigError(f"study {study.name!r}: grid sets scale field(s) {single} to one value; a one-value "
                              "axis is not a comparison: the scale comes from the preset (or --set)")
    for part, dicts in where.items():
        for d in dicts:
            unknown = sorted(set(d) - FIELDS)
            if unknown:
                raise ConfigError(f"study {study.name!r}: {part} name unknown config field(s) {unknown}")
            scale = sorted(set(d) & SCALE_FIELDS)
            if part == "overrides" and "generator" in d:
                scale.append("generator")
            if scale:
                raise ConfigError(
                    f"study {study.name!r}: its {part} set {', '.join(f'{k}={d[k]!r}' for k in scale)}, which "
                    f"{'set' if len(scale) > 1 else 'sets'} the scale, not what the study compares; the scale comes "
                    "from the preset (--preset) and the user (--set). A study may declare only "
                    f"{sorted(STUDY_FIELDS - ({'generator'} if part == 'overrides' else set()))}")


# ---------------------------------------------------------------------------------------------
# configs: resolved and validated in the driver, re-resolved in the trainable
# ---------------------------------------------------------------------------------------------
def base_config(study: Study, overrides: dict[str, Any] | list[str] | None = None) -> dict[str, Any]:
    """The study's base: its preset, the study's overrides, then the user's ``--set``, with
    relative paths resolved against the directory the driver runs in (``absolute_paths``).

    Names and types are checked here; whole configs are validated per trial in ``expand``,
    since the base alone may be a config no trial runs (rows override parts of it).
    """
    user = parse_overrides(overrides)
    _refuse_shadowed(study, user)
    cfg = preset(study.preset, {**parse_overrides(study.overrides), **user}, validate=False)
    return absolute_paths(cfg.to_dict(), os.getcwd())


def _refuse_shadowed(study: Study, user: dict[str, Any]) -> None:
    rows = study.rows
    shadowed = {"seed"} | set(study.search_space)
    if rows is not None:
        shadowed |= set.intersection(*(set(o) for o in rows.values())) if rows else set()
    else:
        shadowed |= set(study.grid)
    hit = sorted(set(user) & shadowed)
    if hit:
        what = "every row" if rows is not None else "the grid or search space"
        raise ConfigError(
            f"--set {', '.join(f'{k}={user[k]!r}' for k in hit)} would have no effect: {what} of study "
            f"{study.name!r} sets {hit}" + ("; choose seeds with --seeds" if "seed" in hit else ""))


def fixed_spec(study: Study, base: dict[str, Any]) -> dict[str, Any]:
    """What every trial shares: the base config and the rows' overrides (plain JSON values)."""
    if study.searcher is not None:  # a searcher's trials run on the study's one seed
        base = {**base, "seed": int(study.seeds[0])}
    rows = {label: absolute_paths(row_scale(study.preset, base, o), os.getcwd())  # the row's method picks its scale
            for label, o in (study.rows or {}).items()}
    return json.loads(json.dumps({"base": base, "rows": rows}))


def param_space(study: Study, skip: Sequence[str] = (),
                trials: Sequence[tuple[str | None, TrainConfig]] = ()) -> dict[str, Any]:
    """Ray Tune's param_space: what varies between trials, and only that.

    The row, grid and search space, the seed, and for named rows every field whose value
    differs between them (``varying``: ablation row d's ``cov_weight=0``), so that Ray's own
    tools (``ResultGrid.get_dataframe``, TensorBoard's HParams through ``TensorBoardLogger``,
    MLflow, W&B) show the hyperparameters. The shared part goes to the trainable through
    ``tune.with_parameters`` and into ``study.json``: Ray would print all of it with every
    trial otherwise. Rows in ``skip`` (see ``skipped_rows``) are left out. ``trials`` is
    ``expand``'s list.
    """
    rows = study.rows
    space: dict[str, Any] = {}
    if rows is not None:
        labels = [r for r in rows if r not in skip]
        space["row"] = tune.grid_search(labels)
        space.update(row_domains({row: cfg.to_dict() for row, cfg in trials if row in labels}))
    else:
        for k in study.grid:
            space[k] = tune.grid_search(_grid_values(study, k))
    space.update(study.search_space)
    if study.searcher is None:
        space["seed"] = tune.grid_search([int(s) for s in study.seeds])
    return space


def varying(configs: dict[str, dict[str, Any]]) -> list[str]:
    """The config fields whose value differs between rows (seed aside), in TrainConfig's order."""
    values = list(configs.values())
    return [f for f in (x.name for x in dataclasses.fields(TrainConfig))
            if f != "seed" and values and any(v.get(f) != values[0].get(f) for v in values[1:])]


@dataclass(frozen=True)
class RowValue:
    """A field's value as a function of the trial's row: a ``tune.sample_from`` beside the rows'
    grid_search, so that the field is a hyperparameter of its own in Ray's tools (a class, not
    a lambda: Tune stores the param_space with the experiment, for ``--resume``)."""
    values: tuple[tuple[str, Any], ...]

    def __call__(self, spec: dict[str, Any]) -> Any:
        # Tune passes the whole spec ({"config": …}) while it generates the trials' variants
        config = spec["config"] if "config" in spec else spec
        return dict(self.values)[config["row"]]


def row_domains(per_row: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{field: tune.sample_from(the row's value)} for every field that differs between rows."""
    return {f: tune.sample_from(RowValue(tuple((row, cfg.get(f)) for row, cfg in per_row.items())))
            for f in varying(per_row)}


def _grid_values(study: Study, key: str) -> list[Any]:
    """The values of a dict grid's axis, paths resolved as in ``base_config``."""
    return [absolute_paths({key: v}, os.getcwd())[key] for v in study.grid[key]]


def trial_config(space: dict[str, Any], fixed: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of one trial from its param_space point and the study's fixed spec."""
    values = dict(fixed["base"])
    if space.get("row") is not None:
        values.update(fixed["rows"][space["row"]])
    values.update({k: v for k, v in space.items() if k in FIELDS})
    return TrainConfig.from_dict(values)


def expand(study: Study, base: dict[str, Any], user_keys: Sequence[str] = ()) -> list[tuple[str | None, TrainConfig]]:
    """Every trial of the study as (row label, validated TrainConfig); raises ConfigError.

    ``user_keys``: the fields the user set (``--set``). A field set explicitly (by the user, the
    study or a row) that a trial's method never reads is refused (``config.ignored_settings``)."""
    rows = study.rows
    fixed = fixed_spec(study, base)
    if study.searcher is not None:
        if len(study.seeds) != 1:
            raise ConfigError(f"study {study.name!r}: a searcher suggests one config per trial, so seeds must be "
                              f"a single seed (got {list(study.seeds)}); use --seeds 1")
        if rows or study.grid:
            raise ConfigError(f"study {study.name!r}: a searcher takes a search_space, not a grid")
    points: list[dict[str, Any]]
    if rows is not None:
        points = [{"row": r} for r in rows]
    else:
        keys = list(study.grid)
        points = [dict(zip(keys, vals)) for vals in itertools.product(*(_grid_values(study, k) for k in keys))]
    for k, domain in study.search_space.items():  # validate the ends of each search range
        if k not in FIELDS:
            raise ConfigError(f"study {study.name!r}: search_space key {k!r} is not a config field")
        points = [{**p, k: v} for p in points for v in _domain_probe(domain)]
    seeds = [study.seeds[0]] if study.searcher is not None else list(study.seeds)
    if not seeds:
        raise ConfigError(f"study {study.name!r}: seeds is empty; at least one seed is needed")
    twice = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if twice:
        raise ConfigError(f"study {study.name!r}: seed(s) {twice} appear more than once in seeds; each seed runs once")
    out = []
    for p in points:
        where = f"row {p['row']!r}" if "row" in p else ", ".join(f"{k}={v!r}" for k, v in p.items())
        own = set(rows[p["row"]]) if rows is not None else set(p)  # what the row, grid or searcher sets
        for s in seeds:
            space = {**p, "seed": int(s)}
            try:
                cfg = trial_config(space, fixed)
                refuse_ignored(cfg, own)
            except ConfigError as e:
                raise ConfigError(f"study {study.name!r}, trial {where or 'base'} seed {s}: {e}") from None
            out.append((p.get("row"), cfg))
    _refuse_ignored_everywhere(study, [cfg for _, cfg in out], set(study.overrides) | set(user_keys))
    return out


def _refuse_ignored_everywhere(study: Study, configs: list[TrainConfig], keys: set[str]) -> None:
    """A study-wide setting (``--set`` or the study's overrides) that every trial ignores is
    refused; one that some trials read (``--set vc_side=student`` on a study with distill and
    VICReg rows) applies to those."""
    for key in sorted(keys):
        whys = [ignored_settings(c, [key]).get(key) for c in configs]
        if whys and all(whys):
            raise ConfigError(f"{key}={getattr(configs[0], key)!r} would do nothing in any trial of study "
                              f"{study.name!r} ({whys[0]}); drop it")


def _domain_probe(domain: Any) -> list[Any]:
    """Representative values of a Ray Tune domain (its bounds, or every category)."""
    if hasattr(domain, "categories"):
        return list(domain.categories)
    if hasattr(domain, "lower") and hasattr(domain, "upper"):
        upper = domain.upper - 1 if type(domain).__name__ == "Integer" else domain.upper
        return [domain.lower, upper]
    if hasattr(domain, "sample"):
        return [domain.sample()]
    return [domain]


# ---------------------------------------------------------------------------------------------
# the trainable
# ---------------------------------------------------------------------------------------------
def sqsp_trial(space: dict[str, Any], *, fixed: dict[str, Any], threads: int = 1,
               train_fn: Callable | None = None) -> None:
    """Ray Tune function trainable: one ``train()`` run, resumed from Tune's checkpoint if any.

    ``train_fn`` replaces ``sqsp.train.train`` (same signature), for tests and benchmarks.
    """
    import logging

    import torch

    torch.set_num_threads(max(1, int(threads)))  # one thread per CPU Ray gave us, not per core
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
    config = trial_config(space, fixed)
    info = fixed.get("info", {}).get(space.get("row"), {})  # e.g. the FID of the row's checkpoint
    if train_fn is None:
        from .train import train as train_fn
    reported = []

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        # Ray's progress table shows the first four metrics of a result: make them these
        metrics = record.mark_final({**{k: metrics[k] for k in PROGRESS_METRICS if k in metrics}, **info, **metrics})
        reported.append(True)
        if checkpoint_dir is None:
            tune.report(metrics)
            return
        record.save_with_checkpoint(checkpoint_dir, metrics)
        # the directory lives only during this call: Ray copies it to storage inside report()
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

    checkpoint = tune.get_checkpoint()
    try:
        info = {**info, **trial_provenance(config)}  # the generator's sha256, library versions, the device here
        if checkpoint is None:
            train_fn(config, report)
            return
        with checkpoint.as_directory() as d:
            train_fn(config, report, resume_from=d)
            last = record.load_with_checkpoint(d)
        if not reported and last.get(record.DONE):
            tune.report(last)
    except record.TrainingDiverged as e:  # a result, not a crash to retry
        tune.report(record.diverged_report(e))
    except USER_ERRORS as e:  # a bad config or file fails the same way again: no retry either
        tune.report(record.failed_report(e))


LOGGERS = ("tensorboard", "mlflow", "wandb")
"""Ray Tune's standard logger callbacks that ``--loggers`` offers; ``none`` for none of them."""
_LOGGER_PACKAGES = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}


def parse_loggers(text: str) -> tuple[str, ...]:
    """``tensorboard,mlflow`` -> ("tensorboard", "mlflow"); ``none`` -> (); raises ConfigError."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if names == ("none",):
        return ()
    bad = [n for n in names if n not in LOGGERS]
    if bad or not names:
        raise ConfigError(f"--loggers {text!r}: {bad or 'empty'}; allowed: a comma-separated list of "
                          f"{', '.join(LOGGERS)}, or 'none'")
    return names


def logger_callbacks(loggers: Sequence[str], study_name: str) -> list:
    """Tune's CSV and JSON loggers (the Parquet files are built from what they write) and the
    ``loggers`` asked for, each refused here, before Ray starts, if its package is missing.
    Tune would add TensorBoard's by itself; run_study turns that off so that the flag decides."""
    import importlib.util

    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    out = [CSVLoggerCallback(), JsonLoggerCallback()]
    for name in loggers:
        if name not in LOGGERS:
            raise ConfigError(f"logger {name!r}; allowed: {', '.join(LOGGERS)}")
        package = _LOGGER_PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"--loggers {name} needs the {package} package, which is not installed: "
                              f"pip install {package}")
        if name == "tensorboard":
            out.append(TensorBoardLogger())
        elif name == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback
            out.append(MLflowLoggerCallback(experiment_name=study_name))
        else:
            from ray.air.integrations.wandb import WandbLoggerCallback
            out.append(WandbLoggerCallback(project=study_name))
    return out


class TensorBoardLogger(TBXLoggerCallback):
    """Ray's TensorBoard logger, with every value of the trial's param_space in its HParams.

    Ray takes the HParams from ``trial.evaluated_params``, which holds the grid's and the
    searcher's values but not those a ``tune.sample_from`` resolved (the fields that vary
    between rows, ``row_domains``); the trial's config holds both, and nothing else, since the
    shared part is not in param_space. MLflow's and W&B's callbacks log the config itself."""

    def _try_log_hparams(self, trial, result):
        evaluated = trial.evaluated_params
        trial.evaluated_params = {**trial.config, **evaluated}
        try:
            super()._try_log_hparams(trial, result)
        finally:
            trial.evaluated_params = evaluated


class TrialLines(tune.Callback):
    """The compact console: one line per trial that ends, with how many of the study's have.

    ``[sqsp] 3/18 b seed 1: completed, probe 78.12, kNN 69.00, 31 s``. Ray's own trial
    tables (hundreds of lines for a study) are behind ``--verbose``."""

    def __init__(self, total: int, prefix: str = ""):
        self.total, self.prefix = total, prefix
        self.ended: set[str] = set()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trials, trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trials, trial, "error")

    def _line(self, trials, trial, error) -> None:
        # trials that ended before a --resume count too
        self.ended |= {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")} | {trial.trial_id}
        last = trial.last_result or {}
        status = results.trial_status(last, error)
        parts = [status]
        for key, label in (("probe_acc", "probe"), ("knn_acc", "kNN")):
            value = last.get(key)
            if isinstance(value, (int, float)) and not math.isnan(value):
                parts.append(f"{label} {value:.2f}")
        if last.get("time_total_s") is not None:
            parts.append(f"{last['time_total_s']:.0f} s")
        if status in results.FAILED and last.get("error"):
            parts.append(str(last["error"]).splitlines()[0][:120])
        print(f"[sqsp] {self.prefix}{len(self.ended)}/{self.total} {trial_label(trial.config)}: {', '.join(parts)}",
              file=sys.stderr, flush=True)


def trial_label(space: dict[str, Any]) -> str:
    """A trial as a person names it: its row and seed, or the values a grid or searcher chose."""
    if space.get("row") is not None:
        return f"{space['row']} seed {space.get('seed')}"
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in space.items())


def _trial_dirname(trial) -> str:
    tag = "-".join(f"{k}={trial.config[k]}" for k in ("row", "seed") if k in trial.config)
    return f"{trial.trial_id}-{tag}" if tag else trial.trial_id


class FinalMetricSearcher(Searcher):
    """Wraps a searcher so that it only sees results carrying the study's metric.

    ``probe_acc`` comes with the final report only, and OptunaSearch.on_trial_result indexes
    every result by the metric. Everything else is forwarded. Like Ray's ConcurrencyLimiter it
    is a wrapper (it has ``.searcher``): Tune saves the wrapped searcher's own state next to
    the experiment and restores it on ``Tuner.restore``, so a resumed study continues the
    same Optuna study.
    """

    def __init__(self, searcher: Searcher, metric: str | None = None, mode: str | None = None):
        self.searcher = searcher
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        # Tune passes no metric when the scheduler has its own (ASHA on a per-epoch signal):
        # the searcher still optimises the study's
        self._study_metric, self._study_mode = metric, mode

    def set_search_properties(self, metric, mode, config, **spec):
        metric, mode = metric or getattr(self, "_study_metric", None), mode or getattr(self, "_study_mode", None)
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def set_max_concurrency(self, max_concurrent):
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id):
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id, result):
        if self.searcher.metric in result:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False):
        error = error or bool(result and result.get(record.FAILED_MARK))  # a user error, reported as a result
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def add_evaluated_point(self, *args, **kwargs):
        return self.searcher.add_evaluated_point(*args, **kwargs)

    def get_state(self) -> dict:
        state = self.__dict__.copy()
        del state["searcher"]
        return copy.deepcopy(state)

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path):
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path):
        self.searcher.restore(checkpoint_path)


# ---------------------------------------------------------------------------------------------
# running a study
# ---------------------------------------------------------------------------------------------
def storage_root(storage: str | None = None) -> str:
    """A local folder (default ``./results``, made absolute) or a URI, as given."""
    storage = storage or "results"
    return storage if "://" in storage else os.path.abspath(os.path.expanduser(storage))


def study_dir(study: Study, storage: str | None = None) -> str:
    """``<storage>/<study.name>``: Ray's experiment folder, study.json and the Parquet files."""
    return results.join(storage_root(storage), study.name)


def run_study(study: Study, *, address: str | None = None, storage: str | None = None, resume: bool = False,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0, max_failures: int = 1,
              overrides: dict[str, Any] | list[str] | None = None, max_concurrent: int | None = None,
              reuse_actors: bool = True, train_fn: Callable | None = None, verbose: int = 0,
              loggers: Sequence[str] = ("tensorboard",),
              generators: str | None = None, fid_samples: int = FID_SAMPLES, manifests: Sequence[str] | None = None):
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
    """
    checkpoints = _checkpoint_rows(study, generators)
    if checkpoints:
        study = dataclasses.replace(study, grid=[{"row": c.label, "generator": c.path} for c in checkpoints])
    user = parse_overrides(overrides)
    _check_run_options(cpus_per_trial, gpus_per_trial, max_failures, max_concurrent)
    callbacks = logger_callbacks(loggers, study.name)  # a logger that is not installed: refused now
    base = base_config(study, user)
    trials = expand(study, base, list(user))
    check_search(study, [cfg for _, cfg in trials])
    path = study_dir(study, storage)
    spec = _spec(study, base, user)
    fixed = spec["fixed"]
    check_devices([cfg for _, cfg in trials], local=address is None, gpus_per_trial=gpus_per_trial)
    if address and not ray.is_initialized():
        check_reachable(address)

    with study_lock(path):
        restoring = False
        if tune.Tuner.can_restore(path):
            if not resume:
                raise ConfigError(f"{path} already holds study {study.name!r}; pass --resume to continue it "
                                  "(finished trials are kept), or choose another --storage")
            fixed = _check_same_study(path, spec)
            trials = expand(study, fixed["base"])  # the configs it started with
            restoring = True
        elif resume:
            print(f"[sqsp] nothing to resume in {path}; starting the study", file=sys.stderr)

        if address and address.startswith("ray://") and "://" not in storage_root(storage):
            print(f"[sqsp] warning: with a Ray Client address the trials write to {path} on the cluster; "
                  "give --storage a bucket URI or a shared filesystem so this machine can read it too",
                  file=sys.stderr)
        skipped = skipped_rows(study, trials)
        if restoring:
            skipped = _stored_skips(path, skipped)
        spec["skipped"] = skipped
        runnable = [(row, cfg) for row, cfg in trials if row not in skipped]
        preflight([cfg for _, cfg in runnable])
        recorded = {} if restoring or not checkpoints else recorded_fids([c.path for c in checkpoints], manifests)
        if checkpoints and not restoring and not address and len(recorded) < len(checkpoints):
            _inception_available_here()
        _describe(study, trials, path, cpus_per_trial, gpus_per_trial, restoring)
        order = list(study.rows or {})
        skipped_records = [
            results.TrialRecord(trial_id=f"skipped-{row}-seed{cfg.seed}", config=cfg.to_dict(), row=row,
                                row_index=order.index(row), skipped=skipped[row])
            for row, cfg in trials if row in skipped]
        if not runnable:  # nothing for Ray to do: record the rows and what they need
            _write_json(results.join(path, STUDY_FILE), spec)
            trials_df, _ = results.write_study(path, study.name, skipped_records, metadata=study_metadata(study))
            print(f"[sqsp] study {study.name!r}: every row was skipped; wrote "
                  f"{results.join(path, results.TRIALS_FILE)}", file=sys.stderr)
            trials_df.attrs["interrupted"] = False
            return trials_df

        started = False
        if not ray.is_initialized():
            # "local": a private Ray; None would join whatever RAY_ADDRESS or Ray's "current
            # cluster" file names (a dead one hangs, someone else's runs our trials)
            ray.init(address=address or "local", runtime_env=_runtime_env(address),
                     # quiet unless asked: the trials' own output and Ray's startup lines
                     log_to_driver=verbose > 0, logging_level="INFO" if verbose > 0 else "WARNING")
            started = True
            have = ray.cluster_resources()
            print(f"[sqsp] {'joined the Ray cluster at ' + address if address else 'started a private local Ray'}: "
                  f"{have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs", file=sys.stderr, flush=True)
        try:
            check_resources(cpus_per_trial, gpus_per_trial, strict=address is None)
            if address:
                check_paths_on_cluster(trial_paths([cfg for _, cfg in runnable]))
            if checkpoints and not restoring:
                fixed["info"] = checkpoint_info(checkpoints, recorded, trials[0][1], fid_samples)
            # probe_acc comes with the final report only; Tune's strict check would refuse the others
            os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # the loggers are logger_callbacks' choice
            # Tune snapshots the experiment state at most every 10 s by default; a driver killed
            # in between forgets that a trial ended and resumes it from an older checkpoint.
            os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
            def make_trainable(fixed: dict[str, Any]):
                return tune.with_resources(
                    tune.with_parameters(sqsp_trial, fixed=fixed, threads=max(1, int(cpus_per_trial)),
                                         train_fn=train_fn),
                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
            trainable = make_trainable(fixed)
            space = param_space(study, skip=list(skipped), trials=trials)
            if restoring:  # the same param_space again: Tune needs its sample_from functions back
                tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True,
                                           restart_errored=False, param_space=space)
            else:
                _write_json(results.join(path, STUDY_FILE), spec)
                lines = TrialLines(study.num_samples if study.searcher is not None else len(runnable))
                tuner = tune.Tuner(trainable, param_space=space,
                                   tune_config=_tune_config(study, max_concurrent, reuse_actors),
                                   run_config=_run_config(study, storage, max_failures, verbose, [*callbacks, lines]))
            with _terminate_as_interrupt() as signals:
                t0 = time.perf_counter()
                grid = tuner.fit()
                elapsed = time.perf_counter() - t0
                signals.writing = True
                records = _records(grid, fixed, order, phase="search" if study.searcher is not None else None)
                records += skipped_records
                trials_df, _ = results.write_study(path, study.name, records, metadata=study_metadata(study))
            counts = trials_df["status"].value_counts().to_dict()
            print(f"[sqsp] study {study.name!r}: {len(trials_df)} trials {counts} in {elapsed:.0f} s; "
                  f"wrote {results.join(path, results.TRIALS_FILE)} and {results.HISTORY_FILE}", file=sys.stderr)
            expected = study.num_samples if study.searcher is not None else len(trials)
            trials_df.attrs["interrupted"] = bool(counts.get("unfinished")) or len(trials_df) < expected
            trials_df.attrs["elapsed_s"] = {"search" if study.searcher is not None else "study": elapsed}
            if not trials_df.attrs["interrupted"] and study.searcher is not None and study.confirm_top:
                trials_df = run_confirmation(study, path, fixed, records, trials_df, make_trainable=make_trainable,
                                             max_failures=max_failures, max_concurrent=max_concurrent,
                                             reuse_actors=reuse_actors, verbose=verbose, callbacks=callbacks)
            if trials_df.attrs["interrupted"]:
                print("[sqsp] the study was interrupted; continue it with --resume", file=sys.stderr)
            return trials_df
        finally:
            if started:
                ray.shutdown()


# ---------------------------------------------------------------------------------------------
# searched studies: early stopping, confirmation of the best trials on more seeds
# ---------------------------------------------------------------------------------------------
CONFIRM_DIR = "confirm"          # Ray's experiment folder of the confirmation, inside the study's
CONFIRM_FILE = "confirm.json"    # the candidates it re-runs, fixed when it starts


class CollapseStopper(tune.Stopper):
    """Stop a trial whose representation has stayed collapsed for ``patience`` reports in a row.

    The collapse is train()'s own per-epoch flag (``train.is_collapsed``: the student's spread
    under ``collapse_std`` of the spread it is asked for), so the stopper applies whatever the
    method. The trial ends as ``collapsed`` with the metrics of its last report, never
    ``failed`` (results.trial_status); its ``progress`` < 1 shows it was stopped. A streak is
    counted in the driver: after a ``--resume`` it starts again from zero."""

    def __init__(self, patience: int = 2):
        if int(patience) < 1:
            raise ConfigError(f"CollapseStopper(patience={patience!r}) must be >= 1 (reports in a row)")
        self.patience = int(patience)
        self._streak: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        collapsed = result.get("collapsed") is True or result.get("collapsed") == 1
        self._streak[trial_id] = self._streak.get(trial_id, 0) + 1 if collapsed else 0
        return self._streak[trial_id] >= self.patience and not result.get("done")

    def stop_all(self) -> bool:
        return False


def check_search(study: Study, configs: list[TrainConfig]) -> None:
    """Refuse, before Ray starts, a search whose selection could not work: confirmation
    settings that do not fit the search, or a metric that its trials would never report
    (a ``val_*`` metric without a validation split, a probe metric with ``probe='none'``)."""
    name = study.name
    if study.confirm_top and study.searcher is None:
        raise ConfigError(f"study {name!r}: confirm_top={study.confirm_top} re-runs the best trials of a search, "
                          "but the study has no searcher (its grid already runs every seed)")
    if study.searcher is not None:
        if study.num_samples < 1:
            raise ConfigError(f"study {name!r}: num_samples={study.num_samples} must be >= 1")
        if not 0 <= study.confirm_top <= study.num_samples:
            raise ConfigError(f"study {name!r}: confirm_top={study.confirm_top} must be between 0 and num_samples="
                              f"{study.num_samples}")
        if study.confirm_top:
            seeds = [int(s) for s in study.confirm_seeds]
            if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
                raise ConfigError(f"study {name!r}: confirm seeds {seeds} must be distinct seeds >= 0, at least one")
            if int(study.seeds[0]) in seeds:
                raise ConfigError(f"study {name!r}: confirm seeds {seeds} include the search's seed {study.seeds[0]}; "
                                  "confirm on other seeds, since the best trials were selected on that one")
    metrics = {study.metric: "the study's metric"} if study.searcher is not None or study.scheduler is not None else {}
    if getattr(study.scheduler, "metric", None):
        metrics[study.scheduler.metric] = "the scheduler's metric"
    for metric, what in metrics.items():
        if metric.startswith("val_") and any(c.val_fraction == 0 for c in configs):
            raise ConfigError(f"study {name!r}: {what} {metric!r} comes from a validation split, but val_fraction=0; "
                              "set e.g. --set val_fraction=0.2")
        if metric.endswith("probe_acc") and any(c.probe == "none" for c in configs):
            raise ConfigError(f"study {name!r}: {what} {metric!r} needs a linear probe, but probe='none'; "
                              "use probe='fast' or 'paper'")


def study_metadata(study: Study) -> dict[str, str]:
    """What the Parquet files keep of the study's declaration for analysis/: its table's
    ``spec`` (``sqsp_table``: analysis/tables.py's ``Table``) and, for a search, its
    ``search_metadata``."""
    meta = search_metadata(study)
    spec = getattr(study.table, "spec", None)
    if spec is not None:
        meta["sqsp_table"] = json.dumps(spec)
    return meta


def search_metadata(study: Study) -> dict[str, str]:
    """What analysis/ needs to rebuild a search from the Parquet files alone: the metric it
    selected on, its direction, and each searched field's Optuna distribution."""
    if study.searcher is None:
        return {}
    meta = {"sqsp_metric": study.metric, "sqsp_mode": study.mode}
    if study.confirm_top:
        meta["sqsp_confirm_seeds"] = json.dumps([int(s) for s in study.confirm_seeds])
    try:  # Ray's own Tune-domain -> Optuna-distribution conversion, as OptunaSearch does it
        from optuna.distributions import distribution_to_json
        from ray.tune.search.optuna import OptunaSearch
        space = OptunaSearch.convert_search_space(dict(study.search_space))
        meta["sqsp_search_space"] = json.dumps({k: json.loads(distribution_to_json(d)) for k, d in space.items()})
    except (ImportError, ValueError) as e:  # a domain Optuna has no form for: tables still work, figures not
        print(f"[sqsp] note: the search space is not recorded for analysis ({e})", file=sys.stderr)
    return meta


def select_candidates(trials, study: Study) -> dict[str, dict[str, Any]]:
    """The ``confirm_top`` best search trials by the study's metric (ties: the earlier trial),
    as {search trial id: its searched values}. Trials without the metric (stopped early,
    failed, diverged) are not candidates."""
    import pandas as pd
    search = trials[trials["phase"] == "search"] if "phase" in trials else trials
    if study.metric not in search:
        return {}
    value = pd.to_numeric(search[study.metric], errors="coerce")
    ranked = search.assign(_value=value)[value.notna()].sort_values(
        ["_value", "trial_id"], ascending=[study.mode == "min", True])
    return {str(t["trial_id"]): {k: _plain(t[k]) for k in study.search_space}
            for _, t in ranked.head(study.confirm_top).iterrows()}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def run_confirmation(study: Study, path: str, fixed: dict[str, Any], search_records: list[results.TrialRecord],
                     search_df, *, make_trainable: Callable, max_failures: int, max_concurrent: int | None,
                     reuse_actors: bool, verbose: int, callbacks: Sequence[Any] = ()):
    """Re-run the ``confirm_top`` best search trials on each of ``confirm_seeds``, as a second
    Ray Tune experiment in ``<study>/confirm/``; both phases go into the study's Parquet files
    (``phase`` search / confirm, ``confirms`` naming the search trial). The candidates are
    written to ``confirm.json`` when the confirmation starts, and a ``--resume`` continues with
    those, whatever the search's ranking has become since (a retried search trial)."""
    where = results.join(path, CONFIRM_DIR)
    seeds = [int(s) for s in study.confirm_seeds]
    restoring = tune.Tuner.can_restore(where)
    try:  # the candidates of a confirmation that started (maybe killed before Tune recorded anything)
        rows = json.loads(_read_text(results.join(path, CONFIRM_FILE)))["rows"]
    except FileNotFoundError:
        rows = select_candidates(search_df, study)
        if not rows:
            print(f"[sqsp] no search trial reported {study.metric!r}: nothing to confirm", file=sys.stderr)
            return search_df
        _write_json(results.join(path, CONFIRM_FILE), {"metric": study.metric, "mode": study.mode, "rows": rows,
                                                       "seeds": seeds})
    cfixed = {"base": fixed["base"], "rows": rows}
    for row in rows:  # validated in the driver, as every trial is
        for seed in seeds:
            trial_config({"row": row, "seed": seed}, cfixed)
    print(f"[sqsp] {'resuming the confirmation of' if restoring else 'confirming'} the {len(rows)} best search "
          f"trials by {study.metric} ({', '.join(rows)}) on seeds {seeds}", file=sys.stderr)
    trainable = make_trainable(cfixed)
    space = {"row": tune.grid_search(list(rows)), **row_domains(rows), "seed": tune.grid_search(seeds)}
    if restoring:  # the same param_space again: Tune needs its sample_from functions back
        tuner = tune.Tuner.restore(where, trainable, resume_unfinished=True, resume_errored=True,
                                   restart_errored=False, param_space=space)
    else:
        tuner = tune.Tuner(
            trainable, param_space=space,
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=reuse_actors,
                                        trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(name=CONFIRM_DIR, storage_path=path, verbose=verbose,
                                      callbacks=[*callbacks, TrialLines(len(rows) * len(seeds), "confirm ")],
                                      failure_config=tune.FailureConfig(max_failures=max_failures, fail_fast=False),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))
    with _terminate_as_interrupt() as signals:
        t0 = time.perf_counter()
        grid = tuner.fit()
        elapsed = time.perf_counter() - t0
        signals.writing = True
        confirm = _records(grid, cfixed, phase="confirm")
        trials_df, _ = results.write_study(path, study.name, search_records + confirm, metadata=study_metadata(study))
    done = trials_df[trials_df["phase"] == "confirm"]
    counts = done["status"].value_counts().to_dict()
    print(f"[sqsp] confirmation: {len(done)} trials {counts} in {elapsed:.0f} s", file=sys.stderr)
    trials_df.attrs["interrupted"] = bool(counts.get("unfinished")) or len(done) < len(rows) * len(seeds)
    trials_df.attrs["elapsed_s"] = {**search_df.attrs.get("elapsed_s", {}), "confirm": elapsed}
    return trials_df


def _check_run_options(cpus: float, gpus: float, max_failures: int, max_concurrent: int | None) -> None:
    if not cpus > 0:
        raise ConfigError(f"--cpus-per-trial {cpus!r} must be > 0 (fractions share a core)")
    if not gpus >= 0:
        raise ConfigError(f"--gpus-per-trial {gpus!r} must be >= 0 (fractions share a GPU)")
    if max_failures < 0:
        raise ConfigError(f"--max-failures {max_failures!r} must be >= 0")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"--max-concurrent {max_concurrent!r} must be >= 1")


def _runtime_env(address: str | None) -> dict[str, Any] | None:
    """On a cluster, ship this copy of sqsp to the nodes (``py_modules``): their Python may hold
    another version of the package, or none. A local Ray's workers run this interpreter, which
    imports the installed package (``pip install -r requirements.txt`` installs it)."""
    if address:
        return {"py_modules": [os.path.dirname(os.path.abspath(__file__))]}
    return None


def _tune_config(study: Study, max_concurrent: int | None, reuse_actors: bool):
    searcher = copy.deepcopy(study.searcher)
    scheduler = copy.deepcopy(study.scheduler)
    # a scheduler with a metric of its own refuses Tune's; the searcher gets the study's anyway
    guided = (searcher is not None or scheduler is not None) and not getattr(scheduler, "metric", None)
    return tune.TuneConfig(
        metric=study.metric if guided else None, mode=study.mode if guided else None,
        search_alg=FinalMetricSearcher(searcher, study.metric, study.mode) if searcher is not None else None,
        scheduler=scheduler, num_samples=study.num_samples if searcher is not None else 1,
        max_concurrent_trials=max_concurrent, reuse_actors=reuse_actors, trial_dirname_creator=_trial_dirname)


def _run_config(study: Study, storage: str | None, max_failures: int, verbose: int, callbacks: list):
    return tune.RunConfig(
        name=study.name, storage_path=storage_root(storage), verbose=verbose, stop=copy.deepcopy(study.stopper),
        callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=max_failures, fail_fast=False),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2))


def skipped_rows(study: Study, trials: list[tuple[str | None, TrainConfig]]) -> dict[str, str]:
    """Rows this machine cannot run, with what they need (``sqsp.train.unavailable``): they are
    recorded as skipped while the other rows run. Checked in the driver, before Ray starts, so
    no trial fails for a missing file. A study without named rows cannot leave trials out, so
    there the first such trial is a ConfigError."""
    from .train import unavailable
    out: dict[str, str] = {}
    for row, cfg in trials:
        why = unavailable(cfg)
        if why is None or row in out:
            continue
        if row is None or study.rows is None:  # a grid's or a searcher's trials are not left out
            raise ConfigError(f"study {study.name!r}: a trial cannot run on this machine: {why}")
        out[row] = why
    if out:
        print(f"[sqsp] skipping row(s) {sorted(out)}: {'; '.join(sorted(set(out.values())))}", file=sys.stderr)
    return out


def _stored_skips(path: str, now: dict[str, str]) -> dict[str, str]:
    """A resumed study keeps the rows it skipped when it started (Ray's experiment has no
    trials for them); rows that could run now are named, with how to run them."""
    try:
        stored = json.loads(_read_text(results.join(path, STUDY_FILE))).get("skipped", {})
    except FileNotFoundError:
        stored = {}
    runnable_now = sorted(set(stored) - set(now))
    if runnable_now:
        print(f"[sqsp] note: row(s) {runnable_now} were skipped when this study started and stay skipped in "
              f"{path}; run the study with another --storage to train them", file=sys.stderr)
    return stored


def _records(grid, fixed: dict[str, Any], order: Sequence[str] = (),
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


def prepare_generators(configs: list[TrainConfig]) -> None:
    """Make sure the zoo entries the trials use exist, once, in the driver, before any trial
    runs (missing runs train in parallel), and refuse a generator name nothing knows or a
    checkpoint path that names no file here."""
    specs = sorted({c.generator for c in configs if c.uses_generator})
    missing = [s for s in specs if not is_zoo_name(s) and not s.startswith("random:") and not os.path.isfile(s)]
    if missing:
        raise ConfigError(f"generator checkpoint(s) {missing} do not exist (relative paths are taken from the "
                          f"directory the study was started in, {os.getcwd()})")
    names = [s for s in specs if is_zoo_name(s)]
    if not names:
        return  # untrained generators need nothing
    from . import zoo
    _refuse_other_datasets(configs, {n: zoo.DATASET for n in names if n in zoo.zoo_names()})  # before a build
    known = zoo.ensure(names)
    unknown = [s for s in names if s not in known]
    if unknown:
        raise ConfigError(f"generator(s) {unknown} are not zoo names, 'random:<arch>[@<res>]' specs or "
                          f"checkpoint paths; zoo names: {sorted(known)}")
    _refuse_other_datasets(configs, {n: known[n].get("dataset") for n in names})


def _refuse_other_datasets(configs: list[TrainConfig], trained_on: dict[str, str | None]) -> None:
    """A named generator trained on another dataset than a trial on real data learns from (the
    embedded zoo's digits GANs under a paper preset) is a mistake, not a comparison."""
    for c in configs:
        data = trained_on.get(c.generator)
        if c.uses_generator and c.data_root is not None and data and data != c.dataset:
            raise ConfigError(
                f"generator {c.generator!r} was trained on {data!r}, but the trials learn from {c.dataset!r}; "
                "name a generator of that dataset (--set generator=PATH), or for studies/generators.py a folder of "
                "them (--generators 'runs/00000/network-snapshot-*.pkl')")


# ---------------------------------------------------------------------------------------------
# checkpoint rows and their FIDs: one Ray task per checkpoint, on a GPU where the cluster has them
# ---------------------------------------------------------------------------------------------
def _checkpoint_rows(study: Study, pattern: str | None) -> list[Checkpoint]:
    if pattern is None:
        return []
    if not study.checkpoint_rows:
        raise ConfigError(f"study {study.name!r} does not compare generators; --generators is for "
                          "studies/generators.py")
    return find_checkpoints(pattern, os.getcwd())


def _inception_available_here() -> None:
    from .fid import inception_weights_path
    path = inception_weights_path()
    if not path.is_file():
        raise ConfigError(
            f"computing a checkpoint's FID needs torchvision's Inception-v3 weights at {path} (the torch hub "
            "cache, $TORCH_HOME), and they are not there; sqsp does not download them. Copy the file there from a "
            "machine with internet (python -c \"import torchvision; torchvision.models.inception_v3(weights="
            "'IMAGENET1K_V1')\"), or record each checkpoint's FID in a manifest (--manifest, format in sqsp/zoo.py)")


def checkpoint_info(checkpoints: list[Checkpoint], recorded: dict[str, dict], config: TrainConfig,
                    fid_samples: int) -> dict[str, dict[str, Any]]:
    """{row: what its trials report about the generator}: the recorded FID, else one computed
    by a Ray task per checkpoint (all at once; each on one GPU where the cluster has GPUs)."""
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus)(checkpoint_fid)
    todo = [c for c in checkpoints if c.path not in recorded]
    if todo:
        print(f"[sqsp] computing the FID of {len(todo)} checkpoint(s) ({fid_samples} samples each, "
              f"{'one GPU' if gpus else 'CPU'} per task)", file=sys.stderr)
    refs = {c.path: task.remote(c.path, dataset=config.dataset, data_root=config.data_root, n_samples=fid_samples,
                                stylegan_repo=config.stylegan_repo) for c in todo}
    out = {}
    for c in checkpoints:
        if c.path in recorded:
            out[c.label] = info_from_entry(recorded[c.path], c.step)
            continue
        try:
            info = ray.get(refs[c.path])
        except Exception as e:  # a RayTaskError wrapping what the task raised
            cause = getattr(e, "cause", None) or e
            raise ConfigError(f"FID of {c.path}: {type(cause).__name__}: {cause}") from None
        out[c.label] = {**info, "generator_step": c.step}
    return out


# ---------------------------------------------------------------------------------------------
# paths on a cluster: trials run on other nodes, where the driver's paths may name nothing
# ---------------------------------------------------------------------------------------------
def trial_paths(configs: list[TrainConfig]) -> dict[str, str]:
    """Every file or folder the trials read, as {absolute path: 'file' | 'dir'}."""
    out: dict[str, str] = {}
    for c in configs:
        if c.data_root:
            out[c.data_root] = "dir"
        if c.stylegan_repo:
            out[c.stylegan_repo] = "dir"
        if c.uses_generator and not is_zoo_name(c.generator) and not c.generator.startswith("random:"):
            out[c.generator] = "file"
    return out


def _missing_here(paths: dict[str, str]) -> tuple[str, list[str]]:
    import socket
    return socket.gethostname(), sorted(p for p, kind in paths.items()
                                        if not (os.path.isdir(p) if kind == "dir" else os.path.isfile(p)))


def check_paths_on_cluster(paths: dict[str, str]) -> None:
    """Check, in a Ray task on every alive node that can run trials, that the trials' paths
    exist there too (a shared filesystem or the same layout on every node); refuse otherwise,
    before any trial is scheduled. Nodes an autoscaler adds later are not seen here."""
    if not paths:
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    task = ray.remote(num_cpus=0)(_missing_here)
    nodes = [n for n in ray.nodes() if n.get("Alive") and (n.get("Resources", {}).get("CPU", 0) > 0
                                                            or n.get("Resources", {}).get("GPU", 0) > 0)]
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(paths)
            for n in nodes]
    bad = []
    for n, (host, missing) in zip(nodes, ray.get(refs)):
        if missing:
            bad.append(f"node {n.get('NodeManagerAddress', host)} ({host}) lacks {missing}")
    if bad:
        raise ConfigError("the trials' paths do not exist on every node of the cluster: " + "; ".join(bad) +
                          ". Put data, checkpoints and the StyleGAN checkout on a filesystem every node mounts "
                          "at the same path (or copy them there)")


# ---------------------------------------------------------------------------------------------
# driver-side checks: what would fail every trial is refused before Ray starts
# ---------------------------------------------------------------------------------------------
def preflight(configs: list[TrainConfig]) -> None:
    """Raise a UserError if a trial could not run, checking each distinct data root and
    generator once: the data layout (``data.check_layout``), then the generator (zoo entries
    built if missing, hash-checked; blocks and mapping network present; ``zoo.check_generator``).
    Without this, every trial found the same error, was retried, and the study exited 0."""
    from .data import check_layout
    from .data import SPLITS
    needed: dict[tuple[str, str | None], set[str]] = {}
    for c in configs:  # the pretraining dataset, and the datasets only probed at the end (transfer_datasets)
        needed.setdefault((c.dataset, c.data_root), set()).update(SPLITS)
        for t in c.transfer_targets:
            needed.setdefault((t, c.data_root), set()).update(("train", "test"))
    for (dataset, root), splits in sorted(needed.items(), key=str):
        check_layout(dataset, root, [s for s in SPLITS if s in splits])
    used = [c for c in configs if c.uses_generator]
    prepare_generators(used)
    from . import zoo
    seen = set()
    for c in used:
        direct = c.method == "discriminator"  # reads the discriminator, not blocks or w
        source = "features" if direct else c.synthetic_target
        key = (c.generator, "all" if direct else c.generator_blocks, source, direct, c.stylegan_repo)
        if key not in seen:
            seen.add(key)
            zoo.check_generator(key[0], blocks=key[1], teacher_source=key[2], discriminator=direct,
                                stylegan_repo=c.stylegan_repo)


def check_devices(configs: list[TrainConfig], *, local: bool, gpus_per_trial: float) -> None:
    """Refuse GPUs or a ``device`` no trial would have. Ray hides the GPUs from a trial that asks for
    none and numbers a trial's own GPUs from cuda:0; on a local Ray, this machine's devices
    are the trials' devices."""
    import torch
    if local and gpus_per_trial > 0 and torch.cuda.device_count() < math.ceil(gpus_per_trial):
        raise ConfigError(f"--gpus-per-trial {gpus_per_trial:g}, but this machine has {torch.cuda.device_count()} "
                          "CUDA GPU(s), so no trial could start; use --gpus-per-trial 0 (or --address to run on a "
                          "cluster with GPUs)")
    for device in sorted({c.device for c in configs}):
        if device.startswith("cuda"):
            if gpus_per_trial <= 0:
                raise ConfigError(f"device={device!r} needs --gpus-per-trial > 0: Ray hides the GPUs from trials that "
                                  "ask for none (device='auto' takes a GPU where a trial has one)")
            if device not in ("cuda", "cuda:0"):
                raise ConfigError(f"device={device!r}: Ray gives each trial its own GPU(s), numbered from cuda:0 "
                                  "inside the trial; use device='cuda' or 'auto'")
            if local and not torch.cuda.is_available():
                raise ConfigError(f"device={device!r}, but CUDA is not available on this machine; use device='auto' "
                                  "or 'cpu' (or --address to run on a cluster with GPUs)")
        if device == "mps" and local and not torch.backends.mps.is_available():
            raise ConfigError("device='mps', but MPS is not available on this machine; use device='auto' or 'cpu'")


def check_resources(cpus: float, gpus: float, *, strict: bool) -> None:
    """Refuse (``strict``: a local Ray) or warn about a trial larger than any node of the
    cluster: Tune would keep it pending forever. A cluster may grow (an autoscaler), hence
    only a warning there."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        return
    most = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    where = "this machine's Ray" if strict else "the Ray cluster"
    msg = (f"--cpus-per-trial {cpus:g} --gpus-per-trial {gpus:g}: no node of {where} has that much (the largest "
           f"has {most.get('CPU', 0):g} CPUs, {most.get('GPU', 0):g} GPUs), so no trial could start")
    if strict:
        raise ConfigError(msg)
    print(f"[sqsp] warning: {msg} until a node that large joins the cluster", file=sys.stderr)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an ``--address`` where no Ray cluster listens: ``ray.init`` waits for a dead one
    for many minutes (measured: still waiting after 5). ``auto`` is resolved as ``ray.init``
    does (RAY_ADDRESS, then Ray's "current cluster" file)."""
    target = address
    if address == "auto":
        from ray._private import services
        try:
            target = services.canonicalize_bootstrap_address(address)
        except ConnectionError as e:
            raise ConfigError(f"--address auto: {e}") from None
        except Exception:  # noqa: BLE001 -- a private API of Ray: if it changed, let ray.init decide
            return
    host, _, port = target.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected 'auto', 'host:port' or 'ray://host:port'")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"--address {address!r}: no Ray cluster answers at {host}:{port} ({e.strerror or e}); "
                          "start one (ray start --head) or drop --address to run on a private local Ray") from None


LOCK_FILE = ".sqsp-study.lock"


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
class _Signals:
    writing: bool = False  # the Parquet files are being written: a SIGTERM waits for them


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[_Signals]:
    """SIGTERM (a timeout, a cluster scheduler, ``kill``) handled like Ctrl-C.

    Tune handles SIGINT itself: it stops the trials, records every trial's state and returns
    the ResultGrid, so the Parquet files are written and ``--resume`` continues. Ray's own
    SIGTERM handler in the driver (``sys.exit``, from ``ray.init``) ends the process without
    any of that. So SIGTERM goes to whatever handles SIGINT at that moment (Tune's handler
    during ``fit``, which restores the previous one after the first signal, so a second
    SIGTERM ends the run at once), and while the Parquet files are written it only waits."""
    state = _Signals()
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


def _describe(study: Study, trials: list, path: str, cpus: float, gpus: float, restoring: bool) -> None:
    rows = study.rows
    if study.searcher is not None:
        count, shape = study.num_samples, f"{type(study.searcher).__name__} samples"
        if study.scheduler is not None or study.stopper is not None:
            shape += ", stopped early by " + " and ".join(type(x).__name__ for x in (study.scheduler, study.stopper)
                                                         if x is not None)
        if study.confirm_top:
            shape += (f"; then the best {study.confirm_top} by {study.metric} on seeds "
                      f"{[int(s) for s in study.confirm_seeds]}")
    else:
        count = len(trials)
        shape = (f"{len(rows)} rows × {len(study.seeds)} seeds" if rows is not None else
                 f"{count // len(study.seeds)} grid points × {len(study.seeds)} seeds")
    print(f"[sqsp] study {study.name!r} on preset {study.preset!r}: {count} trials ({shape}), "
          f"{cpus:g} CPU / {gpus:g} GPU per trial; {'resuming' if restoring else 'results in'} {path}",
          file=sys.stderr)


def _spec(study: Study, base: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """study.json: how the study was started (what a resume must repeat) and what it resolved to."""
    return {"name": study.name, "preset": study.preset, "overrides": user, "fixed": fixed_spec(study, base),
            "grid": None if isinstance(study.grid, list) else {k: list(v) for k, v in study.grid.items()},
            "search_space": {k: repr(v) for k, v in study.search_space.items()},
            "seeds": [int(s) for s in study.seeds], "metric": study.metric, "mode": study.mode,
            **_search_spec(study), "results_schema_version": results.SCHEMA_VERSION}


def _search_spec(study: Study) -> dict[str, Any]:
    """A searched study's budget, confirmation and early stopping: what a resume must repeat."""
    if study.searcher is None:
        return {}
    return {"search": {"num_samples": study.num_samples, "confirm_top": study.confirm_top,
                       "confirm_seeds": [int(s) for s in study.confirm_seeds] if study.confirm_top else [],
                       "early_stopping": [type(x).__name__ for x in (study.scheduler, study.stopper) if x is not None]}}


def _check_same_study(path: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The fixed spec the study at ``path`` started with; refuses a resume with other flags.

    The trials go on with the configs they started with, even where the preset's defaults
    have changed since (then a note says so): a study is one set of configs.
    """
    try:
        stored = json.loads(_read_text(results.join(path, STUDY_FILE)))
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


def _write_json(target: str, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=1, sort_keys=True, default=str))


def _read_text(target: str) -> str:
    import pyarrow.fs as pafs
    fs, p = results.filesystem(target)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        raise FileNotFoundError(target)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


# ---------------------------------------------------------------------------------------------
# command line shared by every studies/<name>.py
# ---------------------------------------------------------------------------------------------
def study_main(study: Study, argv: list[str] | None = None) -> int:
    """The command line of a study file: parse flags, run the study, print its table.

    Exit status: 0 when every trial ended (completed, collapsed, diverged or stopped by a
    scheduler); 1 when a trial failed or the study was interrupted (``--resume`` continues
    it); 2 for a user error, found before any trial ran (one line, see sqsp/cli.py)."""
    p = argparse.ArgumentParser(prog=f"python studies/{study.name}.py",
                                description=study.description or f"Run the {study.name} study with Ray Tune.")
    p.add_argument("--preset", default=study.preset, choices=sorted(PRESETS), metavar="PRESET",
                   help=f"base preset: {', '.join(sorted(PRESETS))} (default {study.preset})")
    p.add_argument("--data-root", help="dataset folder, for presets on real data (same as --set data_root=…)")
    declared = ",".join(str(s) for s in study.seeds)
    p.add_argument("--seeds", default=None,
                   help=f"a comma-separated list (4,7; a single seed: 7,) or a count N (seeds 0..N-1); default: "
                        f"the study's own seeds, {declared}")
    p.add_argument("--address", help="join a running Ray cluster: 'auto' or 'ray://host:10001' "
                                     "(default: a private local Ray)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU, e.g. 0.25")
    p.add_argument("--storage", default="results",
                   help="folder or URI (s3://, gs://, file://…) that holds <study>/ (default ./results)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study in --storage")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the base config (repeatable), e.g. --set steps=200")
    p.add_argument("--max-failures", type=int, default=1,
                   help="retries of a trial that crashes (default 1; a config or file error is not retried)")
    p.add_argument("--max-concurrent", type=int, default=None, help="cap on trials running at once")
    p.add_argument("--dry-run", action="store_true",
                   help="print the trials the study would run (row, seed, the fields that vary) and exit; "
                        "starts no Ray, trains nothing")
    p.add_argument("--verbose", action="store_true",
                   help="Ray's own trial tables and the trials' console output (default: a line per finished trial)")
    p.add_argument("--loggers", default="tensorboard",
                   help=f"Ray Tune logger callbacks, comma separated: {', '.join(LOGGERS)} (MLflow and W&B when "
                        "installed), or none (default tensorboard; view with tensorboard --logdir <storage>/<study>)")
    if study.searcher is not None:
        _add_search_flags(p, study)
    if study.checkpoint_rows:
        p.add_argument("--generators", metavar="GLOB",
                       help="generator checkpoints to compare, one row each, e.g. 'runs/00000/network-snapshot-*.pkl' "
                            "(quote it); each one's FID is recorded with its trials")
        p.add_argument("--fid-samples", type=int, default=FID_SAMPLES,
                       help=f"generated images per checkpoint FID (default {FID_SAMPLES})")
        p.add_argument("--manifest", action="append", default=[],
                       help="a manifest recording checkpoints' FIDs (sqsp/zoo.py format; repeatable): those are not "
                            "recomputed")
    args = p.parse_args(argv)
    overrides = list(args.overrides) + ([f"data_root={args.data_root}"] if args.data_root else [])

    def run() -> int:
        seeds = study.seeds if args.seeds is None else parse_seeds(args.seeds)
        chosen = dataclasses.replace(study, preset=args.preset, seeds=seeds)
        if chosen.searcher is not None:
            chosen = _apply_search_flags(chosen, args)
        loggers = parse_loggers(args.loggers)
        if args.dry_run:
            print(dry_run(chosen, overrides))
            return 0
        extra = {}
        if chosen.checkpoint_rows:
            if args.fid_samples < 2:
                raise ConfigError(f"--fid-samples {args.fid_samples}: a FID needs at least 2 images")
            for m in args.manifest:
                if not os.path.isfile(m):
                    raise ConfigError(f"--manifest {m!r} does not exist (relative to {os.getcwd()})")
            extra = dict(generators=args.generators, fid_samples=args.fid_samples,
                         manifests=[os.path.abspath(m) for m in args.manifest] or None)
        trials = run_study(chosen, address=args.address, storage=args.storage, resume=args.resume,
                           cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                           max_failures=args.max_failures, overrides=overrides, max_concurrent=args.max_concurrent,
                           verbose=2 if args.verbose else 0, loggers=loggers, **extra)
        if study.table is not None:
            print(study.table(trials))
        if study.figures is not None and not trials.attrs.get("interrupted"):
            _draw(study, trials, study_dir(study, args.storage))
        reasons = results.failure_summary(trials)
        if reasons:
            print("\nTrials without a result:\n" + "\n".join(f"- {r}" for r in reasons))
        failed = int((trials["status"] == "failed").sum())
        if failed:
            print(f"[sqsp] {failed} of {len(trials)} trials failed; the reasons are printed under the table",
                  file=sys.stderr)
        return 1 if failed or trials.attrs.get("interrupted") else 0

    return cli.run(p.prog, run)


def dry_run(study: Study, overrides: dict[str, Any] | list[str] | None = None) -> str:
    """The trials ``run_study`` would run, one line each: row, seed and the fields that vary
    (``param_space``'s), every config validated, without Ray, data or generators."""
    user = parse_overrides(overrides)
    base = base_config(study, user)
    trials = expand(study, base, list(user))
    check_search(study, [cfg for _, cfg in trials])
    shown = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed" and
             len({json.dumps(getattr(c, f.name)) for _, c in trials}) > 1]
    head = f"study {study.name!r} on preset {study.preset!r}"
    if study.searcher is not None:
        space = ", ".join(f"{k} {_domain_text(v)}" for k, v in study.search_space.items())
        lines = [f"{head}: {study.num_samples} trials on seed {study.seeds[0]}, proposed by "
                 f"{type(study.searcher).__name__} from {space}"]
        if study.confirm_top:
            lines.append(f"then the best {study.confirm_top} by {study.metric} re-run on seeds "
                         f"{[int(s) for s in study.confirm_seeds]}: {study.confirm_top * len(study.confirm_seeds)} "
                         "trials")
        return "\n".join(lines)
    lines = [f"{head}: {len(trials)} trials" + (f" (varying {', '.join(shown)})" if shown else "")]
    width = max((len(str(row)) for row, _ in trials), default=0)
    for row, cfg in trials:
        values = "  ".join(f"{k}={getattr(cfg, k)}" for k in shown)
        lines.append(f"  {'' if row is None else str(row):<{width}}  seed {cfg.seed:<3} {values}".rstrip())
    return "\n".join(lines)


def _domain_text(domain: Any) -> str:
    if hasattr(domain, "categories"):
        return str(list(domain.categories))
    if hasattr(domain, "lower") and hasattr(domain, "upper"):
        sampler = type(getattr(domain, "sampler", None)).__name__.lower()
        kind = "log-uniform" if "log" in sampler else "uniform"
        return f"{kind} [{domain.lower:g}, {domain.upper:g}]"
    return repr(domain)


def _add_search_flags(p: argparse.ArgumentParser, study: Study) -> None:
    stops = [type(x).__name__ for x in (study.scheduler, study.stopper) if x is not None]
    p.add_argument("--num-samples", type=int, default=study.num_samples,
                   help=f"trials the searcher proposes (default {study.num_samples})")
    p.add_argument("--confirm-top", type=int, default=study.confirm_top,
                   help=f"re-run the K best search trials on the confirm seeds (default {study.confirm_top}; 0: none)")
    p.add_argument("--confirm-seeds", default=",".join(str(s) for s in study.confirm_seeds),
                   help="seeds of the confirmation, as --seeds takes them (default "
                        f"{','.join(str(s) for s in study.confirm_seeds)}; never the search's seed)")
    p.add_argument("--early-stopping", choices=("on", "off"), default="on" if stops else "off",
                   help=f"stop trials early ({' and '.join(stops) or 'the study declares no scheduler or stopper'}; "
                        f"default {'on' if stops else 'off'})")


def _apply_search_flags(study: Study, args: argparse.Namespace) -> Study:
    """The searched study as the command line asks: budget, confirmation, early stopping."""
    if args.early_stopping == "on" and study.scheduler is None and study.stopper is None:
        raise ConfigError(f"--early-stopping on: study {study.name!r} declares no scheduler or stopper")
    if args.num_samples < 1:
        raise ConfigError(f"--num-samples {args.num_samples}: must be >= 1")
    off = args.early_stopping == "off"
    seeds = parse_seeds(args.confirm_seeds, "--confirm-seeds") if args.confirm_top else study.confirm_seeds
    return dataclasses.replace(study, num_samples=args.num_samples, confirm_top=args.confirm_top, confirm_seeds=seeds,
                               scheduler=None if off else study.scheduler, stopper=None if off else study.stopper)


def _draw(study: Study, trials, folder: str) -> None:
    """A study's figures, into its folder (a local one: figures are for reading here)."""
    if "://" in folder:
        print(f"[sqsp] note: figures are drawn into local folders; run python analysis/plots.py on a copy of "
              f"{folder}", file=sys.stderr)
        return
    try:
        for path in study.figures(trials, folder):
            print(f"[sqsp] wrote {path}", file=sys.stderr)
    except ValueError as e:  # too few finished trials for a figure: the table says why
        print(f"[sqsp] no figures: {e}", file=sys.stderr)
