"""The confirmation phase of a searched study: its best trials re-run on other seeds.

``run_confirmation`` re-runs the ``confirm_top`` best search trials on each of
``confirm_seeds`` (other seeds than the search's, which selected them) as a second Tune
experiment in ``<study>/confirm/``; both phases land in the same Parquet files (``phase``,
``confirms``), with the metric and the search space in their metadata so that analysis/ can
rank the candidates by their mean over seeds and rebuild the Optuna study (importances,
history) from the files alone. The candidates are written down when the confirmation first
starts (``confirm.json``), and a ``--resume`` continues with those.
"""
from __future__ import annotations

import functools
import json
import sys
from typing import Any

from ray import tune

from .. import results
from .console import TrialLines
from .experiment import RunOptions, fit_and_record, open_tuner
from .folder import read_text, write_json
from .study import Study, row_domains, trial_config

CONFIRM_DIR = "confirm"          # Ray's experiment folder of the confirmation, inside the study's
CONFIRM_FILE = "confirm.json"    # the candidates it re-runs, fixed when it starts


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
            for _, t in ranked.head(study.search.confirm_top).iterrows()}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def run_confirmation(study: Study, path: str, fixed: dict[str, Any], search_records: list[results.TrialRecord],
                     search_df, options: RunOptions):
    """Re-run the best search trials on the confirmation seeds, as a second Ray Tune experiment
    in ``<study>/confirm/``; both phases go into the study's Parquet files (``phase`` search /
    confirm, ``confirms`` naming the search trial). The candidates are written to
    ``confirm.json`` when the confirmation starts, and a ``--resume`` continues with those,
    whatever the search's ranking has become since (a retried search trial)."""
    seeds = [int(s) for s in study.search.confirm_seeds]
    restoring = tune.Tuner.can_restore(results.join(path, CONFIRM_DIR))
    try:  # the candidates of a confirmation that started (maybe killed before Tune recorded anything)
        rows = json.loads(read_text(results.join(path, CONFIRM_FILE)))["rows"]
    except FileNotFoundError:
        rows = select_candidates(search_df, study)
        if not rows:
            print(f"[sqsp] no search trial reported {study.metric!r}: nothing to confirm", file=sys.stderr)
            return search_df
        write_json(results.join(path, CONFIRM_FILE), {"metric": study.metric, "mode": study.mode, "rows": rows,
                                                      "seeds": seeds})
    cfixed = {"base": fixed["base"], "rows": rows}
    for row in rows:  # validated in the driver, as every trial is
        for seed in seeds:
            trial_config({"row": row, "seed": seed}, cfixed)
    print(f"[sqsp] {'resuming the confirmation of' if restoring else 'confirming'} the {len(rows)} best search "
          f"trials by {study.metric} ({', '.join(rows)}) on seeds {seeds}", file=sys.stderr)
    space = {"row": tune.grid_search(list(rows)), **row_domains(rows), "seed": tune.grid_search(seeds)}
    open_confirmation = functools.partial(open_tuner, options, cfixed, space, storage_path=path, name=CONFIRM_DIR,
                                          lines=TrialLines(len(rows) * len(seeds), "confirm "))
    trials_df, _, elapsed = fit_and_record(open_confirmation(restoring=restoring), study, path, cfixed, phase="confirm",
                                           before=search_records, runs=options.runs,
                                           experiment=results.join(path, CONFIRM_DIR),
                                           reopen=functools.partial(open_confirmation, restoring=True))
    done = trials_df[trials_df["phase"] == "confirm"]
    counts = done["status"].value_counts().to_dict()
    print(f"[sqsp] confirmation: {len(done)} trials {counts} in {elapsed:.0f} s", file=sys.stderr)
    trials_df.attrs["interrupted"] = bool(counts.get("unfinished")) or len(done) < len(rows) * len(seeds) or \
        bool(trials_df.attrs.get("out_of_space"))
    trials_df.attrs["elapsed_s"] = {**search_df.attrs.get("elapsed_s", {}), "confirm": elapsed}
    return trials_df
