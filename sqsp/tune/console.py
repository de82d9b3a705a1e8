"""What a user sees of a running study, and what Ray's own tools see of it.

The compact console (``TrialLines``: one line per trial that ends, with a count; Ray's own
trial tables are behind ``--verbose``), the opening line of a run (``describe``), how a trial
is named (``trial_label``, ``trial_dirname``), and Ray Tune's logger callbacks
(``--loggers``: TensorBoard, MLflow, W&B), with every hyperparameter in TensorBoard's HParams.
"""
from __future__ import annotations

import importlib.util
import math
import sys
import time
from typing import Any, Sequence

from ray import tune
from ray.tune.logger import TBXLoggerCallback

from .. import results
from ..config import ConfigError

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

    def log_trial_result(self, iteration, trial, result):
        # TensorBoard's x-axis: the optimiser step train() reports, not Ray's report count
        # (Ray plots against ``timesteps_total`` when a result has it)
        if isinstance(result.get("step"), int):
            result = {**result, "timesteps_total": result["step"]}
        super().log_trial_result(iteration, trial, result)

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
    tables (hundreds of lines for a study) are behind ``--verbose``. A Ray trial that runs the
    rows sharing a generator stream (sqsp/tune/groups.py) gets a line per row as it ends."""

    def __init__(self, total: int, prefix: str = ""):
        self.total, self.prefix = total, prefix
        self.ended: set[str] = set()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        labels = (result.get("member_labels") or "").splitlines()  # a group's rows, one per line
        for k, label in enumerate(labels):
            own = _member(result, k)
            if own.get("done"):
                self._line(trials, f"{trial.trial_id}-m{k}", label, {**own, "time_total_s": result.get("time_total_s")},
                           None)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not (trial.last_result or {}).get("members"):
            self._line(trials, trial.trial_id, trial_label(trial.config), trial.last_result or {}, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        if not last.get("members"):
            self._line(trials, trial.trial_id, trial_label(trial.config), last, "error", _error_line(trial))
            return
        for k, label in enumerate((last.get("member_labels") or "").splitlines()):  # the rows of a group that had not ended
            if f"{trial.trial_id}-m{k}" not in self.ended:
                self._line(trials, f"{trial.trial_id}-m{k}", label, {}, "error", _error_line(trial))

    def _line(self, trials, key: str, label: str, last: dict[str, Any], error, reason=None) -> None:
        # trials that ended before a --resume count too (a group's rows, each)
        for t in trials:
            if t.status in ("TERMINATED", "ERROR"):
                n = int((t.last_result or {}).get("members") or 0)
                self.ended |= {f"{t.trial_id}-m{k}" for k in range(n)} if n else {t.trial_id}
        self.ended.add(key)
        status = results.trial_status(last, error)
        parts = [status]
        for metric, name in (("probe_acc", "probe"), ("knn_acc", "kNN")):
            value = last.get(metric)
            if isinstance(value, (int, float)) and not math.isnan(value):
                parts.append(f"{name} {value:.2f}")
        if last.get("time_total_s") is not None:
            parts.append(f"{last['time_total_s']:.0f} s")
        reason = last.get("error") or (error and reason)
        if status in results.FAILED and reason:
            parts.append(str(reason).splitlines()[0][:300])
        print(f"[sqsp] {self.prefix}{len(self.ended)}/{self.total} {label}: {', '.join(parts)}",
              file=sys.stderr, flush=True)


def _member(result: dict[str, Any], k: int) -> dict[str, Any]:
    """Row ``k``'s part of a group trial's report (``m<k>/<key>``)."""
    prefix = f"m{k}/"
    return {key[len(prefix):]: v for key, v in result.items() if isinstance(key, str) and key.startswith(prefix)}


class StatusLine(tune.Callback):
    """While trials run, one line on stderr at most every ``every`` seconds (and as soon as the
    first trial starts): how many run and have ended, and each running trial's epoch, share of
    its run and time so far. A paper-scale trial runs for hours between the lines TrialLines
    prints; this says it is alive."""

    SHOWN = 6  # running trials named on the line; the rest are counted

    def __init__(self, total: int, every: float = 30.0, prefix: str = ""):
        self.total, self.every, self.prefix = total, every, prefix
        self._last: float | None = None
        self._started: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self._started.setdefault(trial.trial_id, time.monotonic())
        if self._last is None:  # the first line at the next step, once the trial counts as running
            self._last = time.monotonic() - self.every

    def on_step_end(self, iteration, trials, **info):
        if self._last is not None and time.monotonic() - self._last >= self.every:
            self._print(trials)

    def _print(self, trials) -> None:
        now = time.monotonic()
        running = [t for t in trials if t.status == "RUNNING"]
        ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        parts = []
        for t in running[:self.SHOWN]:
            r = t.last_result or {}
            where = f"epoch {r['epoch']}" if r.get("epoch") else "starting"
            if isinstance(r.get("progress"), (int, float)):
                where += f" ({100 * r['progress']:.0f}%)"
            parts.append(f"{trial_label(t.config)} {where}, {now - self._started.get(t.trial_id, now):.0f} s")
        if len(running) > self.SHOWN:
            parts.append(f"{len(running) - self.SHOWN} more")
        print(f"[sqsp] {self.prefix}{len(running)} running, {ended}/{self.total} ended"
              + (": " + "; ".join(parts) if parts else ""), file=sys.stderr, flush=True)
        self._last = now


def _error_line(trial) -> str | None:
    """What a trial that raised raised: the last line of Tune's error file (Ray's traceback of
    the trial's exception ends with ``Type: message``), read from the driver's own copy."""
    try:
        with open(trial.error_file) as f:
            lines = [x.strip() for x in f.read().splitlines() if x.strip()]
    except (OSError, TypeError):  # no error file (yet), or Tune's API moved
        return None
    return lines[-1] if lines else None


def trial_label(space: dict[str, Any]) -> str:
    """A trial as a person names it: its row and seed, or the values a grid or searcher chose."""
    if space.get("row") is not None:
        return f"{space['row']} seed {space.get('seed')}"
    if space.get("group") is not None:  # the rows sharing a generator stream, and their seed
        return str(space["group"])
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in space.items())


def trial_dirname(trial) -> str:
    """A trial's folder: its id, then its row and seed where it has them (``a1b2-row=c-seed=0``)."""
    tag = "-".join(f"{k}={trial.config[k]}" for k in ("row", "seed") if k in trial.config)
    if "group" in trial.config:  # "a+b+c seed 0": the rows, then the seed
        tag = "group=" + str(trial.config["group"]).replace(" seed ", "-seed=")
    return f"{trial.trial_id}-{tag}" if tag else trial.trial_id


def describe(study, trials: list, path: str, cpus: float, gpus: float, restoring: bool, groups: int = 0) -> None:
    """The run's first line: how many trials of which shape, the resources, where results go."""
    rows, search = study.rows, study.search
    if search is not None:
        count, shape = search.num_samples, f"{type(search.searcher).__name__} samples"
        if study.early_stopping:
            shape += ", stopped early by " + " and ".join(study.early_stopping)
        if search.confirm_top:
            shape += "; then " + search.confirmation_text(study.metric)
    else:
        count = len(trials)
        shape = (f"{len(rows)} rows × {len(study.seeds)} seeds" if rows is not None else
                 f"{count // len(study.seeds)} grid points × {len(study.seeds)} seeds")
    if groups:
        shape += f"; {groups} Ray trials, the rows of a seed on one generator stream sharing it (--share-generator)"
    print(f"[sqsp] study {study.name!r} on preset {study.preset!r}: {count} trials ({shape}), "
          f"{cpus:g} CPU / {gpus:g} GPU per trial; {'resuming' if restoring else 'results in'} {path}",
          file=sys.stderr)
