"""Searched studies through a real local Ray and real Optuna: early stopping (a collapsed trial
stopped and recorded ``collapsed``), the confirmation of the best trials on more seeds, and a
driver killed outright (SIGKILL) then resumed with the restored OptunaSearch: no trial
repeated, none missing, no report twice.

Trials run the real ``train()`` on tiny configs where the test is about training (collapse),
and tests/standins.py's ``search_standin`` (same signature, sleeps instead of training) where it
is about Ray. The Ray is the session's (conftest.py's ``ray_session``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("optuna")
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

from sqsp import results  # noqa: E402
from sqsp.config import ConfigError  # noqa: E402
from sqsp.tune import CollapseStopper, Search, Study, run_study, study_main  # noqa: E402
from standins import calls as _calls, drive, ended, search_standin  # noqa: E402

# the real train() at its smallest with several epochs: plain digits (1,347 images) at batch 128
# is 10 steps an epoch; a random generator, so nothing is built
REAL = {"dataset": "digits", "batch_size": 128, "epochs": 4, "steps": 0, "student_width": 0.125,
        "generator": "random:stylegan@16", "projector_dim": 64, "squeeze_width": 64, "teacher_dim": 64, "eval_every": 0,
        "eval_init": False, "eval_mmd": False, "probe": "fast", "precision": "fp32", "channels_last": False,
        "base_lr": 0.5, "crop_min": 0.2}  # the collapse of row c shows at the former smoke's lr (README)


def searched_study(**kw):
    """6 Optuna trials over base_lr (seed 0), ASHA on val_knn_acc, the collapse stopper, and the 2
    best re-run on seeds 1 and 2."""
    return Study(name="searched", preset="smoke", seeds=(0,), metric="val_probe_acc", mode="max",
                 search=Search(OptunaSearch(seed=0), {"base_lr": tune.uniform(0.05, 0.5)}, num_samples=6,
                               confirm_top=2, confirm_seeds=(1, 2)),
                 scheduler=ASHAScheduler(time_attr="progress", metric="val_knn_acc", mode="max", max_t=1.0,
                                         grace_period=0.5, reduction_factor=2),
                 stopper=CollapseStopper(patience=2), overrides={"val_fraction": 0.2}, **kw)


SCALE = {"steps": 6, "batch_size": 16, "generator": "random:stylegan@16", "checkpoint_every": 1}
"""The scale of ``searched_study``'s trials: given by the user (``run_study(overrides=…)``, i.e. --set)."""


_DRIVER = """
import functools
import ray, ray.cloudpickle, standins, test_search
ray.cloudpickle.register_pickle_by_value(standins)
from sqsp.tune import run_study
run_study(test_search.searched_study(), address={address!r}, storage={storage!r}, max_failures=0, max_concurrent=2,
          resume={resume}, overrides=test_search.SCALE,
          train_fn=functools.partial(standins.search_standin, sleep={sleep}, log_dir={storage!r}))
"""


def _ended(pattern: str) -> set[str]:
    """Trial folders (glob) whose result.json ends with a last report (train()'s end, or a stop)."""
    return ended(pattern, mark="done")


def _kill_when(address, storage, *, resume, until, sleep=0.3, timeout=600):
    """A driver of ``searched_study`` on our cluster, killed outright (SIGKILL) once ``until()``."""
    script = _DRIVER.format(address=address, storage=str(storage), resume=resume, sleep=sleep)
    drive(script, Path(storage) / f"driver-{int(resume)}.log", until=until, timeout=timeout)


@pytest.mark.slow
def test_killed_search_resumes_with_its_sampler_and_confirms_without_a_duplicate(ray_session, tmp_path):
    folder = tmp_path / "searched"
    # 1. killed during the search, once 3 search trials have ended
    _kill_when(ray_session, tmp_path, resume=False, until=lambda: len(_ended(f"{folder}/*/result.json")) >= 3)
    ended_before = _ended(f"{folder}/*/result.json")
    assert not (folder / "trials.parquet").exists()  # a kill writes nothing on the way out
    searched_before = {json.loads(p.read_text().splitlines()[0])["config"]["base_lr"]
                       for p in folder.glob("*/result.json") if p.read_text().strip()}
    n_calls = len(_calls(tmp_path))
    # 2. resumed, and killed again during the confirmation, once one confirmation trial has ended
    _kill_when(ray_session, tmp_path, resume=True, until=lambda: len(_ended(f"{folder}/confirm/*/result.json")) >= 1)
    assert (folder / "confirm.json").exists()
    candidates = json.loads((folder / "confirm.json").read_text())["rows"]
    # 3. resumed to the end, in this process
    trials = run_study(searched_study(), storage=str(tmp_path), resume=True, max_failures=0, overrides=SCALE,
                       train_fn=functools.partial(search_standin, sleep=0.05, log_dir=str(tmp_path)))
    history = results.read_history(str(folder))
    on_disk = results.read_trials(str(folder))
    assert list(on_disk["trial_id"]) == list(trials["trial_id"]) and not trials.attrs["interrupted"]

    search, confirm = trials[trials["phase"] == "search"], trials[trials["phase"] == "confirm"]
    # which trials ASHA stops depends on the order they reach a rung; the best (up to 2) are confirmed
    best = search.dropna(subset=["val_probe_acc"]).sort_values("val_probe_acc", ascending=False).head(2)
    assert len(best) >= 1
    # exactly num_samples search trials and best × 2 seeds confirmation trials: none repeated, none missing
    assert len(search) == 6 and len(confirm) == 2 * len(best) and trials["trial_id"].is_unique
    assert search["base_lr"].is_unique and search["base_lr"].between(0.05, 0.5).all()
    assert searched_before <= set(search["base_lr"])  # the trials proposed before the kill are all kept
    assert not history.duplicated(["trial_id", "training_iteration"]).any()
    assert not history.dropna(subset=["step"]).duplicated(["trial_id", "step"]).any()
    counts = history.groupby("trial_id").size().reindex(trials["trial_id"], fill_value=0)
    assert (trials.set_index("trial_id")["reports"] == counts).all()
    for t in trials.itertuples():  # every report of a trial once, from step 1 to where it ended
        steps = list(history.loc[history["trial_id"] == t.trial_id, "step"])
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 1, (t.trial_id, steps)
    # finished search trials were not run again after a kill
    ended_lrs = {t.base_lr for t in search.itertuples() if os.path.basename(t.trial_path) in ended_before}
    assert len(ended_lrs) >= 3
    assert not [c for c in _calls(tmp_path)[n_calls:] if c["seed"] == 0 and c["base_lr"] in ended_lrs]

    # early stopping: collapsing trials were stopped and recorded as collapsed, never failed
    assert not search["status"].isin(["failed", "diverged", "unfinished"]).any()
    collapsing = search[search["base_lr"] > 0.33]
    assert len(collapsing) >= 1
    assert (collapsing["status"] == "collapsed").all() and (collapsing["progress"] < 1).all()
    assert collapsing["val_probe_acc"].isna().all()  # stopped before the final probe
    assert ((search["status"] == "completed") == (search["progress"] == 1.0)).all()

    # the confirmation re-ran the two best search trials by val_probe_acc, on seeds 1 and 2, with their values
    assert set(candidates) == set(best["trial_id"]) == set(confirm["confirms"])
    assert sorted(confirm["seed"]) == sorted([1, 2] * len(best)) and (confirm["status"] == "completed").all()
    by_id = search.set_index("trial_id")
    for t in confirm.itertuples():
        assert t.base_lr == by_id.loc[t.confirms, "base_lr"] and t.seed in (1, 2)
        assert t.val_probe_acc == pytest.approx(100 * t.base_lr + t.seed / 10)

    # the restored OptunaSearch kept what it knew before the kill: its last saved Optuna study holds
    # every search trial that had ended by then, with their results. (Tune saves the searcher with
    # its throttled experiment snapshot, so under load the very last completion may not be in it.)
    state = max(folder.glob("searcher-state-*.pkl"), key=os.path.getmtime)
    with open(state, "rb") as f:
        saved = pickle.load(f)
    ot = saved["_ot_study"].trials
    assert len(ot) == len(saved["_ot_trials"]) and len(ended_lrs) <= len(ot) <= 6
    known = {round(t.params["base_lr"], 12) for t in ot}
    assert {round(x, 12) for x in ended_lrs} <= known, (ended_lrs, known)
    for tid, ot_trial in saved["_ot_trials"].items():
        frozen = ot[ot_trial.number]
        row = by_id.loc[tid]
        if round(row["base_lr"], 12) not in {round(x, 12) for x in ended_lrs}:
            continue  # still running when that snapshot was taken
        assert frozen.params["base_lr"] == pytest.approx(row["base_lr"])
        if pd.notna(row["val_probe_acc"]):
            assert frozen.state.name == "COMPLETE" and frozen.value == pytest.approx(row["val_probe_acc"])
        else:
            assert frozen.state.name == "PRUNED"  # stopped early: Optuna is told so, not that it failed


@pytest.mark.slow
def test_a_collapsed_trial_is_stopped_early_and_recorded_as_collapsed(ray_session, tmp_path):
    """The real train(): row c of Table 3 (squeeze without L_var/L_cov) collapses on these digits;
    the stopper ends it after two collapsed epochs, as ``collapsed`` with the validation signal it
    had; the healthy row e runs all its epochs.

    Chosen so that the check holds on every CPU type (measured over seeds 0-2 with the default
    AVX-512 kernels and with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2): at lr 0.2 row c's
    per-epoch student std is 0.12-0.18 at epoch 2, under ``collapse_std`` = 0.1 from epoch 3 on
    (0.066-0.078, then below 0.05), so the stopper ends it at epoch 4 of 8 whatever the kernels;
    row e stays above 0.37, nearly four times the threshold. (At the former lr 0.5 row e diverged
    with the AVX2 kernels and not with the AVX-512 ones.)"""
    off = {"sim_weight": 1.0, "var_weight": 0.0, "cov_weight": 0.0, "syn_ratio": 1.0}
    study = Study(name="collapse", preset="smoke", seeds=(0,), stopper=CollapseStopper(patience=2),
                  grid=[{"row": "c", **off}, {"row": "e", "syn_ratio": 1.0}], overrides={"val_fraction": 0.2})
    trials = run_study(study, storage=str(tmp_path), max_failures=0,
                       overrides={**REAL, "base_lr": 0.2, "epochs": 8})
    trials = trials.set_index("row")
    history = results.read_history(str(tmp_path / "collapse"))
    assert trials.loc["c", "status"] == "collapsed" and pd.isna(trials.loc["c", "error"])
    assert trials.loc["c", "progress"] <= 5 / 8 and trials.loc["c", "reports"] <= 5
    c = history[history["row"] == "c"]
    assert c["collapsed"].iloc[-2:].all() and c["val_knn_acc"].notna().all()  # the signal of every epoch
    assert trials.loc["e", "status"] == "completed" and trials.loc["e", "progress"] == 1.0
    assert trials.loc["e", "reports"] == 8 and not history.loc[history["row"] == "e", "collapsed"].any()
    assert 0 < trials.loc["e", "val_probe_acc"] <= 100 and 0 < trials.loc["e", "probe_acc"] <= 100


def test_a_finished_search_is_an_optuna_study_optuna_reads_with_the_sampler_asked_for(ray_session, tmp_path):
    """``--sampler random --sampler-seed 5 --pruner median``: the search runs with them, records
    them, and leaves ``optuna.journal`` beside the Parquet files for optuna.load_study (and
    optuna-dashboard) with every search trial, its value and state."""
    import argparse

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from sqsp.tune import add_search_flags, apply_search_flags
    p = argparse.ArgumentParser()
    base = dataclasses.replace(searched_study(), search=dataclasses.replace(searched_study().search, num_samples=4,
                                                                            confirm_top=0))
    add_search_flags(p, base)
    study = apply_search_flags(base, p.parse_args(["--sampler", "random", "--sampler-seed", "5", "--pruner", "median",
                                                   "--num-samples", "4", "--confirm-top", "0"]))
    assert type(study.scheduler).__name__ == "MedianStoppingRule" and study.scheduler._metric == "val_knn_acc"
    trials = run_study(study, storage=str(tmp_path), max_failures=0, overrides=SCALE,
                       train_fn=functools.partial(search_standin, sleep=0.01))
    assert json.loads(trials.attrs["sqsp"]["sqsp_sampler"]) == {"sampler": "random", "seed": 5}
    spec = json.loads((tmp_path / "searched" / "study.json").read_text())
    assert spec["search"]["sampler"] == {"sampler": "random", "seed": 5}
    journal = tmp_path / "searched" / "optuna.journal"
    loaded = optuna.load_study(study_name="searched", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert len(loaded.trials) == 4 and loaded.user_attrs["sampler"] == {"sampler": "random", "seed": 5}
    complete = [t for t in loaded.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = trials["val_probe_acc"].max()
    assert complete and loaded.best_value == pytest.approx(best)
    assert {t.user_attrs["trial_id"] for t in loaded.trials} == set(trials["trial_id"])
    assert not list((tmp_path / "searched").glob("optuna.journal.*"))  # no temporary left beside it
    with pytest.raises(SystemExit):
        p.parse_args(["--sampler", "grid"])
    with pytest.raises(ConfigError, match="--pruner median with --early-stopping off"):
        apply_search_flags(base, p.parse_args(["--pruner", "median", "--early-stopping", "off"]))


def test_a_search_that_could_not_select_is_refused_before_ray(tmp_path):
    cases = [(dict(overrides={"val_fraction": 0.0}), "val_probe_acc' comes from a validation split, but val_fraction=0"),
             (dict(confirm_seeds=(0, 1)), "include the search's seed 0"),
             (dict(confirm_top=7), "confirm_top=7 must be between 0 and num_samples=6"),
             (dict(overrides={"val_fraction": 0.2, "probe": "none"}), "needs a linear probe, but probe='none'")]
    for change, says in cases:
        sets = {**SCALE, **change.pop("overrides", {})}
        study = searched_study()
        study = dataclasses.replace(study, search=dataclasses.replace(study.search, **change))
        with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
            run_study(study, storage=str(tmp_path), overrides=sets)
        assert not (tmp_path / "searched").exists()
    # a confirmation belongs to a search (Search.confirm_top): a grid with a search is refused
    grid = Study(name="grid", preset="smoke", seeds=(0,), grid={"sim_weight": [1.0, 2.0]},
                 search=searched_study().search)
    with pytest.raises(ConfigError, match="a searcher takes a search_space, not a grid"):
        run_study(grid, storage=str(tmp_path))
    sets = [a for k, v in SCALE.items() for a in ("--set", f"{k}={v}")]
    rc = study_main(searched_study(), ["--storage", str(tmp_path), "--confirm-seeds", "0,", "--confirm-top", "1", *sets])
    assert rc == 2 and not (tmp_path / "searched").exists()


def test_the_command_line_sets_budget_confirmation_and_early_stopping():
    import argparse

    from sqsp.tune import add_search_flags, apply_search_flags
    p = argparse.ArgumentParser()
    add_search_flags(p, searched_study())
    as_declared = apply_search_flags(searched_study(), p.parse_args([]))
    assert type(as_declared.scheduler).__name__ == "AsyncHyperBandScheduler" and as_declared.stopper is not None
    search = as_declared.search
    assert (search.num_samples, search.confirm_top, list(search.confirm_seeds)) == (6, 2, [1, 2])
    changed = apply_search_flags(searched_study(), p.parse_args(["--early-stopping", "off", "--num-samples", "3",
                                                                  "--confirm-top", "1", "--confirm-seeds", "5,6"]))
    assert changed.scheduler is None and changed.stopper is None
    assert (changed.search.num_samples, changed.search.confirm_top, changed.search.confirm_seeds) == (3, 1, [5, 6])
    with pytest.raises(ConfigError, match="--confirm-seeds '5,5': seed"):
        apply_search_flags(searched_study(), p.parse_args(["--confirm-seeds", "5,5"]))
