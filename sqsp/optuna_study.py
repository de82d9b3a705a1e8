"""A searched study's search as an Optuna study: rebuilt from trials.parquet, and kept beside
the results as an Optuna journal file that Optuna's own tools read.

    optuna.load_study(study_name="loss_weights",
                      storage=optuna.storages.JournalStorage(
                          optuna.storages.journal.JournalFileBackend("results/loss_weights/optuna.journal")))
    optuna-dashboard results/loss_weights/optuna.journal

The searcher Ray Tune drives keeps its Optuna study in memory (and pickles it into Tune's
experiment state for ``--resume``); the Parquet files are the source of truth. So the journal
is rewritten from them each time a study writes its Parquet files, never appended to by two
writers, and a copied study folder can always rebuild it (``write_journal``). No Ray here.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from .storage import join

JOURNAL_FILE = "optuna.journal"


def optuna_study(trials: pd.DataFrame, storage: Any = None):
    """The search phase of ``trials`` (``sqsp.results.read_trials``, whose ``attrs["sqsp"]`` carry
    the metric, its direction and the search space) as an ``optuna.Study`` in ``storage``
    (None: in memory). Trials in the order the searcher proposed them (``trial_number``); a
    trial with the metric is COMPLETE, one that failed or diverged FAIL, one stopped early (no
    final metric) PRUNED; each keeps its Tune ``trial_id`` and status as user attributes."""
    import optuna
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState

    meta = trials.attrs.get("sqsp", {})
    if "sqsp_search_space" not in meta:
        raise ValueError("these results record no search space: not a searched study (e.g. studies/loss_weights.py), "
                         "or written before sqsp recorded it")
    space = {k: json_to_distribution(json.dumps(v)) for k, v in json.loads(meta["sqsp_search_space"]).items()}
    metric, mode = meta.get("sqsp_metric", "probe_acc"), meta.get("sqsp_mode", "max")
    search = trials[trials["phase"].fillna("search") == "search"] if "phase" in trials else trials
    search = search.sort_values(["trial_number", "trial_id"] if "trial_number" in search else ["trial_id"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize", storage=storage,
                                study_name=str(meta.get("sqsp_study", "search")))
    for _, t in search.iterrows():
        value = pd.to_numeric(pd.Series([t.get(metric)]), errors="coerce").iloc[0]
        state = (TrialState.COMPLETE if pd.notna(value) else
                 TrialState.FAIL if str(t["status"]) in ("failed", "diverged") else TrialState.PRUNED)
        params = {k: _param(t[k], d) for k, d in space.items()}
        study.add_trial(optuna.trial.create_trial(
            state=state, value=float(value) if state == TrialState.COMPLETE else None, params=params,
            distributions=space, user_attrs={"trial_id": str(t["trial_id"]), "status": str(t["status"])}))
    study.set_user_attr("metric", metric)
    if meta.get("sqsp_sampler"):
        study.set_user_attr("sampler", json.loads(meta["sqsp_sampler"]))
    return study


def write_journal(trials: pd.DataFrame, folder: str) -> str | None:
    """``<folder>/optuna.journal`` rebuilt from ``trials`` (a local folder; None for a URI, which
    Optuna's journal cannot write to). Written to a temporary name and renamed, so a reader
    sees the old journal or the new one."""
    if "://" in str(folder):
        return None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    target = join(folder, JOURNAL_FILE)
    tmp = f"{target}.{os.getpid()}.tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    try:
        optuna_study(trials, storage=JournalStorage(JournalFileBackend(tmp)))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _param(v, distribution):
    from optuna.distributions import CategoricalDistribution, IntDistribution
    v = v.item() if hasattr(v, "item") else v
    if isinstance(distribution, IntDistribution):
        return int(v)
    if isinstance(distribution, CategoricalDistribution):
        return next((c for c in distribution.choices if c == v), v)
    return float(v)
