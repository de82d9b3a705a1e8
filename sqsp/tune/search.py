"""A searched study: the ``Search`` part of its declaration and the Ray Tune pieces around it.

A ``Search`` names a Ray Tune searcher, the space it samples, how many trials it proposes
(``num_samples``, all on the study's one seed) and how many of the best are confirmed on other
seeds (``confirm_top`` × ``confirm_seeds``, sqsp/tune/confirm.py). What a search selects on is
the study's ``metric`` (``val_probe_acc``: a validation split carved from the training images,
``val_fraction``; never the test split), and ``check_search`` refuses a metric the trials would
not report. Early stopping is the study's (``Study.scheduler``, ``Study.stopper``: a grid's
rows may be stopped too): ``CollapseStopper`` ends trials that stay collapsed (status
``collapsed``, never ``failed``), and ``FinalMetricSearcher`` tells Optuna that a stopped
trial was pruned.
"""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from ray import tune
from ray.tune.search import Searcher

from .. import record
from ..config import ConfigError, TrainConfig


@dataclass
class Search:
    """A searcher proposes ``num_samples`` configs from ``space`` ({field: Ray Tune domain},
    e.g. ``tune.loguniform``) on the study's one seed; the ``confirm_top`` best are re-run on
    each of ``confirm_seeds``. The searcher is copied per run."""
    searcher: Any
    space: dict[str, Any]
    num_samples: int = 1
    confirm_top: int = 0
    confirm_seeds: Sequence[int] = (1, 2, 3)

    @property
    def confirm_trials(self) -> int:
        return self.confirm_top * len(self.confirm_seeds)

    def check(self, study: str, seed: int) -> None:
        """Refuse a budget or a confirmation that cannot work (before Ray starts)."""
        if self.num_samples < 1:
            raise ConfigError(f"study {study!r}: num_samples={self.num_samples} must be >= 1")
        if not 0 <= self.confirm_top <= self.num_samples:
            raise ConfigError(f"study {study!r}: confirm_top={self.confirm_top} must be between 0 and num_samples="
                              f"{self.num_samples}")
        if self.confirm_top:
            seeds = [int(s) for s in self.confirm_seeds]
            if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
                raise ConfigError(f"study {study!r}: confirm seeds {seeds} must be distinct seeds >= 0, at least one")
            if int(seed) in seeds:
                raise ConfigError(f"study {study!r}: confirm seeds {seeds} include the search's seed {seed}; "
                                  "confirm on other seeds, since the best trials were selected on that one")

    def confirmation_text(self, metric: str) -> str:
        return f"the best {self.confirm_top} by {metric} on seeds {[int(s) for s in self.confirm_seeds]}"

    def spec(self, early_stopping: Sequence[str]) -> dict[str, Any]:
        """The budget, confirmation, sampler and early stopping, as study.json keeps them (a resume
        repeats them)."""
        return {"num_samples": self.num_samples, "confirm_top": self.confirm_top,
                "confirm_seeds": [int(s) for s in self.confirm_seeds] if self.confirm_top else [],
                "early_stopping": list(early_stopping), "sampler": sampler_spec(self.searcher)}

    def metadata(self, metric: str, mode: str) -> dict[str, str]:
        """What analysis/ needs to rebuild the search from the Parquet files alone: the metric it
        selected on, its direction, and each searched field's Optuna distribution."""
        meta = {"sqsp_metric": metric, "sqsp_mode": mode, "sqsp_sampler": json.dumps(sampler_spec(self.searcher))}
        if self.confirm_top:
            meta["sqsp_confirm_seeds"] = json.dumps([int(s) for s in self.confirm_seeds])
        try:  # Ray's own Tune-domain -> Optuna-distribution conversion, as OptunaSearch does it
            from optuna.distributions import distribution_to_json
            from ray.tune.search.optuna import OptunaSearch
            space = OptunaSearch.convert_search_space(dict(self.space))
            meta["sqsp_search_space"] = json.dumps({k: json.loads(distribution_to_json(d)) for k, d in space.items()})
        except (ImportError, ValueError) as e:  # a domain Optuna has no form for: tables still work, figures not
            print(f"[sqsp] note: the search space is not recorded for analysis ({e})", file=sys.stderr)
        return meta

    def search_alg(self, metric: str, mode: str) -> "FinalMetricSearcher":
        return FinalMetricSearcher(copy.deepcopy(self.searcher), metric, mode)


SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "gp": "GPSampler", "qmc": "QMCSampler",
            "cmaes": "CmaEsSampler"}
"""``--sampler`` names and the ``optuna.samplers`` class each builds (each takes a ``seed``)."""
_SAMPLER_NAMES = {v: k for k, v in SAMPLERS.items()}
STUDY_FILE_FORM = "_sqsp_study_file"
"""The attribute that keeps a searcher's, scheduler's or stopper's study-file form
(``{type: asha, ...}``), so that a study can be written back as YAML (study_file.py)."""
PRUNERS = ("asha", "median", "none")
"""``--pruner``: how a search stops trials early. Through Ray Tune, Optuna's own pruners never
see a trial's intermediate values (Tune runs the trials; OptunaSearch only proposes them), so
pruning is Tune's scheduler, on the study's per-epoch metric: ASHA (successive halving, as
Optuna's SuccessiveHalvingPruner), the median stopping rule (Optuna's MedianPruner), or none.
Optuna is told a stopped trial was pruned either way."""


def optuna_searcher(sampler: str, seed: int):
    """An OptunaSearch driving the named Optuna sampler with ``seed``; refused with a clear error
    for an unknown name or a sampler whose package is missing (CMA-ES needs ``cmaes``)."""
    import importlib.util

    import optuna
    from ray.tune.search.optuna import OptunaSearch
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise ConfigError("--sampler cmaes needs the cmaes package, which is not installed: pip install cmaes")
    searcher = OptunaSearch(sampler=getattr(optuna.samplers, SAMPLERS[sampler])(seed=int(seed)))
    searcher.sqsp_sampler = {"sampler": sampler, "seed": int(seed)}
    return searcher


def sampler_spec(searcher: Any) -> dict[str, Any]:
    """What proposes a search's trials, as study.json and the Parquet metadata record it:
    ``{"sampler": "tpe", "seed": 0}`` for an OptunaSearch, the searcher's class otherwise."""
    if getattr(searcher, "sqsp_sampler", None):
        return dict(searcher.sqsp_sampler)
    if type(searcher).__name__ == "OptunaSearch":
        sampler = getattr(searcher, "_sampler", None)
        name = "tpe" if sampler is None else _SAMPLER_NAMES.get(type(sampler).__name__, type(sampler).__name__)
        return {"sampler": name, "seed": getattr(searcher, "_seed", None)}
    return {"searcher": type(searcher).__name__}


def pruner_name(scheduler: Any) -> str:
    """The ``--pruner`` a declared scheduler is (``none`` for none)."""
    kind = type(scheduler).__name__
    return ("none" if scheduler is None else "asha" if kind in ("AsyncHyperBandScheduler", "ASHAScheduler") else
            "median" if kind == "MedianStoppingRule" else kind)


def pruner(name: str, declared: Any) -> Any:
    """The scheduler ``--pruner name`` asks for, on the declared scheduler's per-epoch metric
    and clock (``progress``): the declared one itself when it is that kind."""
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule
    if name not in PRUNERS:
        raise ConfigError(f"--pruner {name!r}; allowed: {', '.join(PRUNERS)}")
    if name == "none":
        return None
    if pruner_name(declared) == name:
        return declared
    metric, mode = getattr(declared, "metric", None), getattr(declared, "mode", None)
    if not metric:
        raise ConfigError(f"--pruner {name}: the study declares no scheduler, so no per-epoch metric to prune on")
    if name == "asha":
        kind, make, kwargs = "asha", ASHAScheduler, dict(max_t=1.0, grace_period=0.25, reduction_factor=3)
    else:
        kind, make, kwargs = "median_stopping", MedianStoppingRule, dict(grace_period=0.25, min_samples_required=3)
    kwargs = dict(time_attr="progress", metric=metric, mode=mode, **kwargs)
    scheduler = make(**kwargs)
    setattr(scheduler, STUDY_FILE_FORM, {"type": kind, **kwargs})  # for its study.yaml (study_file.py)
    return scheduler


def domain_text(domain: Any) -> str:
    """A Ray Tune domain as a person reads it: ``log-uniform [1, 100]``, ``[a, b]``."""
    if hasattr(domain, "categories"):
        return str(list(domain.categories))
    if hasattr(domain, "lower") and hasattr(domain, "upper"):
        sampler = type(getattr(domain, "sampler", None)).__name__.lower()
        kind = "log-uniform" if "log" in sampler else "uniform"
        return f"{kind} [{domain.lower:g}, {domain.upper:g}]"
    return repr(domain)


def domain_probe(domain: Any) -> list[Any]:
    """Representative values of a Ray Tune domain (its bounds, or every category)."""
    if hasattr(domain, "categories"):
        return list(domain.categories)
    if hasattr(domain, "lower") and hasattr(domain, "upper"):
        upper = domain.upper - 1 if type(domain).__name__ == "Integer" else domain.upper
        return [domain.lower, upper]
    if hasattr(domain, "sample"):
        return [domain.sample()]
    return [domain]


def check_search(study, configs: list[TrainConfig]) -> None:
    """Refuse, before Ray starts, a search whose selection could not work: confirmation
    settings that do not fit the search, or a metric that its trials would never report
    (a ``val_*`` metric without a validation split, a probe metric with ``probe='none'``).
    ``study`` is a ``Study`` (sqsp/tune/study.py, which imports this module)."""
    name, search = study.name, study.search
    if search is not None:
        search.check(name, study.seeds[0])
    metrics = {study.metric: "the study's metric"} if search is not None or study.scheduler is not None else {}
    if getattr(study.scheduler, "metric", None):
        metrics[study.scheduler.metric] = "the scheduler's metric"
    for metric, what in metrics.items():
        if metric.startswith("val_") and any(c.val_fraction == 0 for c in configs):
            raise ConfigError(f"study {name!r}: {what} {metric!r} comes from a validation split, but val_fraction=0; "
                              "set e.g. --set val_fraction=0.2")
        if metric.endswith("probe_acc") and any(c.probe == "none" for c in configs):
            raise ConfigError(f"study {name!r}: {what} {metric!r} needs a linear probe, but probe='none'; "
                              "use probe='fast' or 'paper'")


class CollapseStopper(tune.Stopper):
    """Stop a trial whose representation has stayed collapsed for ``patience`` reports in a row.

    The collapse is train()'s own per-epoch flag (``methods.Method.is_collapsed``: the student's spread
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
