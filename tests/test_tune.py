"""Studies through a real local Ray: Parquet output, failures as rows, interrupt + resume, Optuna restore.

The session's private Ray (conftest.py's ``ray_session``). Trials run either the real ``train()`` on
tiny configs or tests/standins.py's ``standin_train`` (same signature, sleeps instead of training)
where the test is about Ray, not about learning.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from sqsp import results  # noqa: E402
from sqsp.config import STUDY_FIELDS, ConfigError  # noqa: E402
from sqsp.tune import Search, Study, base_config, expand, run_study, study_main  # noqa: E402
from standins import calls as _calls, drive, failing_train, standin_train  # noqa: E402
from standins import ended  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = {"steps": 4, "batch_size": 16, "generator": "random:stylegan@16", "probe": "none", "eval_every": 0,
        "precision": "fp32", "checkpoint_every": 1}


def _rows(path):
    """Lines of each trial's result.json (one per report Ray recorded), by trial folder."""
    return {p.parent.name: len(p.read_text().splitlines()) for p in Path(path).glob("*/result.json")}


def _assert_one_row_per_trial(trials, history, n):
    assert len(trials) == n and trials["trial_id"].is_unique
    assert not history.duplicated(["trial_id", "training_iteration"]).any()
    assert set(history["trial_id"]) <= set(trials["trial_id"])
    counts = history.groupby("trial_id").size().reindex(trials["trial_id"], fill_value=0)
    assert (trials.set_index("trial_id")["reports"] == counts).all()


# -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_study_writes_both_files_and_failures_are_rows(ray_session, tmp_path):
    study = Study(name="failures", preset="smoke", seeds=(0,), grid=[
        {"row": "ok"},
        {"row": "nan", "sim_weight": 1e30},    # TrainingDiverged at the first report
        {"row": "raises", "cov_weight": 0.7},  # crashes before any report: retried, then failed
        {"row": "user", "cov_weight": 0.8},    # a user error: failed at once, not retried
    ])
    trials = run_study(study, storage=str(tmp_path), max_failures=1, overrides=TINY,
                       train_fn=functools.partial(failing_train, log_dir=str(tmp_path)))

    folder = tmp_path / "failures"
    for name, kind in ((results.TRIALS_FILE, "trials"), (results.HISTORY_FILE, "history")):
        meta = results.schema_metadata(str(folder), name)
        runs = json.loads(meta.pop("sqsp_runs"))  # this one run of the study, with its id
        assert len(runs) == 1 and runs[0]["run_id"] and runs[0]["ended_at"] >= runs[0]["started_at"]
        assert meta == {"sqsp_schema_version": results.SCHEMA_VERSION, "sqsp_kind": kind, "sqsp_study": "failures"}
    on_disk = results.read_trials(str(folder))
    history = results.read_history(str(folder))
    assert list(on_disk.columns) == list(trials.columns)
    for col in ("trial_id", "study", "row", *results.CONFIG_FIELDS, "status", "error", *results.METRICS,
                "reports", "wall_time_s", "hostname", *results.PROVENANCE):
        assert col in on_disk, col
    assert list(history.columns[:5]) == ["trial_id", "row", "seed", "training_iteration", "time_total_s"]
    assert set(results.METRICS) <= set(history.columns)
    _assert_one_row_per_trial(on_disk, history, 4)

    by = on_disk.set_index("row")
    assert by.loc["ok", "status"] == "completed" and pd_isna(by.loc["ok", "error"])
    assert by.loc["ok", "step"] == 4 and by.loc["ok", "knn_acc"] > 0 and by.loc["ok", "steps"] == 4
    assert by.loc["nan", "status"] == "diverged"
    assert by.loc["nan", "error"].startswith("TrainingDiverged: loss became nan")
    assert by.loc["raises", "status"] == "failed" and by.loc["raises", "reports"] == 0
    assert by.loc["raises", "error"] == "RuntimeError: the worker crashed"
    assert by.loc["raises", "cov_weight"] == 0.7  # config kept without a report
    assert by.loc["user", "status"] == "failed" and by.loc["user", "reports"] == 0
    assert by.loc["user", "error"].startswith("ConfigError: generator_blocks='b999'")
    calls = [c["cov_weight"] for c in _calls(tmp_path)]
    assert calls.count(0.7) == 2 and calls.count(0.8) == 1  # retried once; the user error not at all
    assert on_disk["torch_version"].notna().all() and on_disk["ray_version"].iloc[0] == ray.__version__
    lines = results.failure_summary(on_disk)
    ids = by["trial_id"]
    assert sorted(lines) == sorted([f"1 trial diverged ({ids['nan']}): {by.loc['nan', 'error']}",
                                    f"1 trial failed ({ids['raises']}): RuntimeError: the worker crashed",
                                    f"1 trial failed ({ids['user']}): {by.loc['user', 'error']}"])


def pd_isna(v):
    import pandas as pd
    return pd.isna(v)


@pytest.mark.slow
def test_errored_trial_resumes_from_its_checkpoint_and_finished_ones_are_not_rerun(ray_session, tmp_path):
    study = Study(name="flaky", preset="smoke", seeds=(0,), grid=[{"row": "steady"}, {"row": "flaky", "cov_weight": 0.5}])
    tiny = {**TINY, "steps": 5}
    train_fn = functools.partial(standin_train, marker_dir=str(tmp_path))
    storage = f"file://{tmp_path}"  # a URI, as for a bucket: Ray and the Parquet writer go through pyarrow.fs
    first = run_study(study, storage=storage, max_failures=0, train_fn=train_fn, overrides=tiny)
    assert sorted(first["status"]) == ["completed", "failed"]
    assert first.loc[first["row"] == "flaky", "error"].str.contains("flaky trial lost its worker").all()
    before = _rows(tmp_path / "flaky")

    with pytest.raises(ConfigError, match="--resume"):  # not silently started over
        run_study(study, storage=storage, train_fn=train_fn, overrides=tiny)
    with pytest.raises(ConfigError, match="overrides: .* then, .* now"):  # nor resumed as another study
        run_study(study, storage=storage, resume=True, overrides={**tiny, "steps": 6}, train_fn=train_fn)
    trials = run_study(study, storage=storage, resume=True, max_failures=0, train_fn=train_fn, overrides=tiny)
    history = results.read_history(f"{storage}/flaky")
    assert (trials["status"] == "completed").all()
    _assert_one_row_per_trial(trials, history, 2)
    after = _rows(tmp_path / "flaky")
    for name, n in before.items():
        if "row=steady" in name:
            assert after[name] == n  # finished: not run again
    for tid in trials.loc[trials["row"] == "flaky", "trial_id"]:
        h = history[history["trial_id"] == tid]
        assert list(h["step"]) == [1, 2, 3, 4, 5]  # resumed after step 2, nothing lost or doubled


_DRIVER = """
import functools
import ray, ray.cloudpickle, standins, test_tune
ray.cloudpickle.register_pickle_by_value(standins)
from sqsp.tune import run_study
study = test_tune.{study}()
# joins the test's cluster the way --address does (run_study ships sqsp to its workers)
run_study(study, address={address!r}, storage={storage!r}, max_failures=0, max_concurrent={max_concurrent},
          resume={resume}, overrides=test_tune.SETS[{study!r}],
          train_fn=functools.partial(standins.standin_train, sleep={sleep}, log_dir={storage!r}))
"""


def _driver(address, storage, study, *, max_concurrent=2, sleep=0.25, resume=False):
    """The driver script; run it in tests/ (``cwd=ROOT / "tests"``), where it imports this module."""
    return _DRIVER.format(address=address, study=study, storage=str(storage), max_concurrent=max_concurrent,
                          sleep=sleep, resume=resume)


def _run_and_interrupt(address, storage, study, *, finished, sig, max_concurrent=2, sleep=0.25, timeout=120):
    """Run ``study`` in a separate driver on our cluster; send ``sig`` once ``finished`` trials ended."""
    script = _driver(address, storage, study, max_concurrent=max_concurrent, sleep=sleep)
    return drive(script, Path(storage) / "driver.log", until=lambda: len(_ended(storage)) >= finished, sig=sig,
                 timeout=timeout)


def _ended(storage):
    """Trial folders whose result.json ends with train()'s final report."""
    return ended(f"{storage}/*/*/result.json", mark="final")


# the tiny scale of the studies run in a separate driver (a user's --set: a study cannot set it)
SETS = {"killed_study": {**TINY, "steps": 8}, "optuna_study": {**TINY, "steps": 6, "probe": "fast"}, "locked_study": {**TINY, "steps": 6}}


def killed_study():
    return Study(name="killed", preset="smoke", seeds=(0, 1), grid=[{"row": "a"}, {"row": "b", "sim_weight": 10.0}])


@pytest.mark.slow
def test_killed_study_resumes_with_exactly_one_row_per_trial(ray_session, tmp_path, capfd):
    """SIGKILL of the driver: no trial lost, none doubled, every report once in the history, and
    no step run again whose checkpoint was in storage (Tune's snapshot may not know it yet)."""
    _run_and_interrupt(ray_session, tmp_path, "killed_study", finished=2, sig=signal.SIGKILL)
    saved = _checkpointed_steps(tmp_path / "killed")
    n_calls = len(_calls(tmp_path))
    capfd.readouterr()
    trials = run_study(killed_study(), storage=str(tmp_path), resume=True, max_failures=0,
                       overrides=SETS["killed_study"],
                       train_fn=functools.partial(standin_train, sleep=0.05, log_dir=str(tmp_path)))
    out, err = capfd.readouterr()
    assert "Could not fetch metrics" not in out + err, err[-3000:]  # a trial without a results file goes on
    history = results.read_history(str(tmp_path / "killed"))
    _assert_one_row_per_trial(trials, history, 4)
    assert (trials["status"] == "completed").all()
    assert sorted(zip(trials["row"], trials["seed"])) == [(r, s) for r in "ab" for s in (0, 1)]
    for tid in trials["trial_id"]:
        assert list(history.loc[history["trial_id"] == tid, "step"]) == list(range(1, 9))
    resumed = _calls(tmp_path)[n_calls:]
    keys = [(c["seed"], c["sim_weight"]) for c in resumed]
    assert len(keys) == len(set(keys)) and {k for k, step in saved.items() if step < 8} <= set(keys), (resumed, saved)
    for c in resumed:  # from the furthest checkpoint in storage: a trial that had ended runs no step
        assert c["start"] == saved.get((c["seed"], c["sim_weight"]), 0), (c, saved)


def _checkpointed_steps(folder: Path) -> dict[tuple[int, float], int]:
    """{(seed, sim_weight): the furthest step of a complete checkpoint in storage} of each trial
    that reached a report (state.json is standin_train's checkpoint, sealed by the trainable)."""
    from sqsp.tune.resume_point import newest_sealed
    from pyarrow.fs import LocalFileSystem
    out = {}
    for trial in folder.glob("*/params.json"):
        params = json.loads(trial.read_text())
        newest, _ = newest_sealed(LocalFileSystem(), str(trial.parent), None)
        step = json.loads((Path(newest) / "state.json").read_text())["step"] if newest else 0
        out[(params["seed"], params.get("sim_weight", 25.0))] = step
    return out


def optuna_study():
    from ray.tune.search.optuna import OptunaSearch
    return Study(name="optuna", preset="smoke", seeds=(0,), metric="probe_acc", mode="max",
                 search=Search(OptunaSearch(seed=0), {"base_lr": tune.uniform(0.05, 0.5)}, num_samples=5))


@pytest.mark.slow
def test_interrupted_optuna_study_continues_its_search_without_repeating(ray_session, tmp_path):
    """Ctrl-C (SIGINT) mid-search, then --resume: the restored OptunaSearch suggests the rest."""
    pytest.importorskip("optuna")
    log = _run_and_interrupt(ray_session, tmp_path, "optuna_study", finished=2, sig=signal.SIGINT,
                             max_concurrent=1, sleep=0.3)
    partial = results.read_trials(str(tmp_path / "optuna"))  # written on the way out
    assert "continue it with --resume" in log
    assert (partial["status"] == "completed").sum() >= 2 and set(partial["status"]) <= {"completed", "unfinished"}
    ended_before = _ended(tmp_path)
    # trials with a checkpoint the driver had registered (a result line naming it) before the interrupt
    checkpointed = {json.loads(line)["config"]["base_lr"] for p in (tmp_path / "optuna").glob("*/result.json")
                    for line in p.read_text().splitlines() if json.loads(line).get("checkpoint_dir_name")}
    n_calls = len(_calls(tmp_path))

    trials = run_study(optuna_study(), storage=str(tmp_path), resume=True, max_failures=0, max_concurrent=1,
                       overrides=SETS["optuna_study"],
                       train_fn=functools.partial(standin_train, sleep=0.05, log_dir=str(tmp_path)))
    history = results.read_history(str(tmp_path / "optuna"))
    _assert_one_row_per_trial(trials, history, 5)  # num_samples in all: none repeated, none extra
    assert (trials["status"] == "completed").all()
    assert trials["base_lr"].between(0.05, 0.5).all() and trials["base_lr"].is_unique
    assert (trials["probe_acc"] - 100 * trials["base_lr"]).abs().max() < 1e-6  # each its own config
    for tid in trials["trial_id"]:
        assert list(history.loc[history["trial_id"] == tid, "step"]) == list(range(1, 7))
    # graceful interruption: ended trials never ran again; the interrupted one went on from its checkpoint
    ended = {t.base_lr for t in trials.itertuples() if os.path.basename(t.trial_path) in ended_before}
    later = _calls(tmp_path)[n_calls:]
    assert not [c for c in later if c["base_lr"] in ended]
    assert not [c for c in later if c["start"] == 0 and c["base_lr"] in checkpointed]


def test_expand_validates_every_trial_and_refuses_shadowed_overrides():
    from studies.ablation import STUDY
    configs = expand(STUDY, base_config(STUDY, ["steps=4"]))
    assert len(configs) == 18
    assert {(r, c.seed) for r, c in configs} == {(r, s) for r in "abcdef" for s in (0, 1, 2)}
    by_row = {r: c for r, c in configs}
    assert (by_row["a"].syn_augment, by_row["a"].squeeze, by_row["a"].syn_ratio) == (False, False, 1.0)
    assert (by_row["c"].squeeze, by_row["c"].var_weight, by_row["c"].cov_weight) == (True, 0.0, 0.0)
    assert (by_row["d"].var_weight, by_row["d"].cov_weight) == (25.0, 0.0)   # μ from the preset
    assert (by_row["e"].cov_weight, by_row["e"].syn_ratio) == (1.0, 1.0)
    assert by_row["f"].syn_ratio == 0.5                                      # α from the preset
    assert expand(STUDY, base_config(STUDY, ["syn_ratio=0.25"]))[-1][1].syn_ratio == 0.25
    with pytest.raises(ConfigError, match="squeeze"):
        base_config(STUDY, ["squeeze=false"])
    with pytest.raises(ConfigError, match="--seeds"):
        base_config(STUDY, ["seed=3"])
    with pytest.raises(ConfigError, match="var_weight=-1.0 is negative"):
        expand(STUDY, base_config(STUDY, ["var_weight=-1"]))


@pytest.mark.slow
def test_bad_set_is_refused_before_ray_starts(tmp_path, capsys):
    """The CLI: a bad --set exits with the field, the value and what is allowed; no Ray started."""
    env = {**os.environ, "RAY_ADDRESS": ""}
    (tmp_path / "a-file").write_text("")
    random = ["--set", "generator=random:stylegan@16"]
    cases = [(["--set", "syn_ratio=1.5"], "syn_ratio=1.5 is outside (0, 1]"),
             (["--set", "batch_size=abc"], "batch_size='abc' is not a valid int"),
             (["--set", "no_such_field=1"], "unknown config field 'no_such_field'"),
             (["--set", "generator=no-such-gan"], "['no-such-gan'] are not zoo names"),
             ([*random, "--set", "generator_blocks=b999"], "has no block ['b999']; it has ['b4', 'b8', 'b16']"),
             ([*random, "--data-root", str(tmp_path)], f"data_root='{tmp_path}' is given, but dataset='digits-m'"),
             ([*random, "--seeds", "0"], "--seeds 0: a count of seeds must be >= 1 (--seeds 1 runs seed 0 alone)"),
             ([*random, "--seeds", "3,3"], "seed(s) [3] appear more than once"),
             ([*random, "--seeds", "1e25,"], "--seeds '1e25,': give a count"),
             ([*random, "--seeds", f"{2**40},"], f"seed={2**40} is out of range; allowed: 0..4294967295"),
             ([*random, "--storage", str(tmp_path / "a-file")], "is a file, not a folder"),
             ([*random, "--address", "127.0.0.1:9"], "--address '127.0.0.1:9': no Ray cluster answers")]
    if not __import__("torch").cuda.is_available():
        cases.append(([*random, "--gpus-per-trial", "1"], "--gpus-per-trial 1, but this machine has 0 CUDA GPU(s)"))
    # every case through the study's command line in-process (fast), four of them as a user runs
    # them, in subprocesses started together (each spends seconds importing torch and Ray)
    from studies.ablation import STUDY
    as_user = (4, 11)  # 4: needs the generator built; 11: a dead address, checked only before ray.init

    def user_run(argv, **extra):
        return subprocess.Popen([sys.executable, "studies/ablation.py", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**env, **extra})
    storage = {i: tmp_path / (f"user-{i}" if i in as_user else "in-process") for i in range(len(cases))}
    procs = {i: user_run(["--storage", str(storage[i]), *cases[i][0]]) for i in as_user}
    debug = user_run(["--storage", str(tmp_path / "debug"), *random, "--set", "generator_blocks=b999"], SQSP_DEBUG="1")
    for i, (bad, says) in enumerate(cases):
        if i in as_user:
            out, err = procs[i].communicate(timeout=120)
            rc = procs[i].returncode
            assert "Started a local Ray instance" not in out + err
        else:
            capsys.readouterr()
            rc, err = study_main(STUDY, ["--storage", str(storage[i]), *bad]), capsys.readouterr().err
        assert rc == 2, err
        assert says in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err  # one line
        assert err.startswith("python studies/ablation.py: error: "), err
        assert not (storage[i] / "ablation").exists()
    _, debug_err = debug.communicate(timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug_err and "ConfigError" in debug_err
    # and in-process: the error comes from run_study before ray.init is reached
    calls = []
    real_init = ray.init
    ray.init = lambda *a, **k: calls.append(a)
    try:
        with pytest.raises(ConfigError, match="var_weight"):
            run_study(STUDY, storage=str(tmp_path), overrides=["var_weight=-2"])
    finally:
        ray.init = real_init
    assert calls == []


# -------------------------------------------------------------------------------------------------
# nothing lost, nothing run that was not named (issue 16)
# -------------------------------------------------------------------------------------------------
def locked_study():
    return Study(name="locked", preset="smoke", seeds=(0, 1, 2), grid=[{"row": "a"}, {"row": "b", "sim_weight": 10.0}])


@pytest.mark.slow
def test_a_second_run_on_a_study_folder_is_refused_and_sigterm_leaves_parquet(ray_session, tmp_path):
    """Two real drivers on one study folder: the second (a fresh run, then a --resume) is
    refused at once, naming the holder; the first, stopped by SIGTERM (a timeout, a scheduler),
    writes its Parquet files as Ctrl-C would, and a --resume finishes it exactly."""
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        # no cap on concurrency: Tune creates all 6 trials at once, 5 wait for the session Ray's CPU
        first = subprocess.Popen([sys.executable, "-c", _driver(ray_session, tmp_path, "locked_study", sleep=0.8,
                                                                max_concurrent=None)],
                                 cwd=ROOT / "tests", stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 120
            while time.time() < deadline and first.poll() is None and not (tmp_path / "locked" / "study.json").exists():
                time.sleep(0.2)
            assert first.poll() is None, log_path.read_text()[-3000:]
            seconds = [subprocess.Popen([sys.executable, "-c", _driver(ray_session, tmp_path, "locked_study",
                                                                       resume=resume)],
                                        cwd=ROOT / "tests", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                       for resume in (False, True)]  # a fresh run, and a --resume, at the same time
            for second in seconds:
                _, err = second.communicate(timeout=120)
                assert second.returncode != 0
                assert f"study folder {tmp_path / 'locked'} is in use by another run (pid {first.pid} on " in err, \
                    err[-3000:]
                assert "choose another --storage" in err
            assert first.poll() is None, "the first run ended before the second was refused"
            while time.time() < deadline and first.poll() is None and len(_ended(tmp_path)) < 2:
                time.sleep(0.2)
            assert len(_ended(tmp_path)) >= 2, log_path.read_text()[-3000:]
        finally:
            first.send_signal(signal.SIGTERM)  # our own child, by its pid
            try:
                first.wait(timeout=60)
            except subprocess.TimeoutExpired:
                first.kill()
                first.wait()
    log = log_path.read_text()
    assert first.returncode == 0, log[-3000:]  # run_study returned: no traceback, no abort
    assert "continue it with --resume" in log, log[-3000:]
    partial = results.read_trials(str(tmp_path / "locked"))  # written on the way out
    assert len(partial) == 6 and set(partial["status"]) <= {"completed", "unfinished"}
    # trials still pending (never started, no report) keep their row and seed too
    assert sorted(zip(partial["row"], partial["seed"])) == [(r, s) for r in "ab" for s in (0, 1, 2)]
    assert (partial["status"] == "completed").sum() >= 2 and (partial["status"] == "unfinished").any()
    ended_before = _ended(tmp_path)
    n_calls = len(_calls(tmp_path))

    trials = run_study(locked_study(), storage=str(tmp_path), resume=True, max_failures=0,
                       overrides=SETS["locked_study"], train_fn=functools.partial(standin_train, sleep=0.05, log_dir=str(tmp_path)))
    history = results.read_history(str(tmp_path / "locked"))
    _assert_one_row_per_trial(trials, history, 6)
    assert (trials["status"] == "completed").all()
    for tid in trials["trial_id"]:
        assert list(history.loc[history["trial_id"] == tid, "step"]) == list(range(1, 7))
    done = {(t.sim_weight, t.seed) for t in trials.itertuples() if os.path.basename(t.trial_path) in ended_before}
    assert not [c for c in _calls(tmp_path)[n_calls:] if (c["sim_weight"], c["seed"]) in done]  # not run again


@pytest.mark.slow
def test_what_would_fail_every_trial_is_refused_before_ray(ray_session, tmp_path, monkeypatch):
    """In the driver, before any trial: the generator (missing, tampered, its blocks), the data
    layout, the device. Nothing is written to the study folder."""
    from sqsp.data import DatasetLayoutError
    from sqsp.generators import save_checkpoint, make_network
    from sqsp.zoo import ZooError
    ckpt = tmp_path / "mine.safetensors"
    save_checkpoint(make_network("dcgan", resolution=16), "dcgan", {"resolution": 16}, ckpt)
    user = tmp_path / "user.json"
    from sqsp.fid import file_sha256
    user.write_text(json.dumps({"entries": {"mine": {"file": str(ckpt), "sha256": file_sha256(ckpt), "arch": "dcgan",
                                                     "blocks": {"b4": 64, "b8": 32, "b16": 16}}}}))
    monkeypatch.setenv("SQSP_ZOO_MANIFESTS", str(user))
    (tmp_path / "cifar").mkdir()

    def study(**row):  # a study declares only what it compares; the scale goes with the run (--set)
        return Study(name="doomed", preset="smoke", seeds=(0, 1),
                     grid=[{"row": "ok"}, {"row": "bad", **{k: v for k, v in row.items() if k in STUDY_FIELDS}}])

    def sets(**row):
        return {**TINY, **{k: v for k, v in row.items() if k not in STUDY_FIELDS}}

    cases = [(dict(generator_blocks="b999"), ConfigError, r"generator_blocks='b999'.*has no block \['b999'\]"),
             (dict(generator="mine", generator_blocks="b32"), ConfigError, r"'mine'.*has no block \['b32'\]"),
             (dict(generator="mine", teacher_source="w"), ConfigError, "mapping network"),
             (dict(generator=str(tmp_path / "gone.safetensors")), ConfigError, "gone.safetensors.*do not exist"),
             (dict(dataset="cifar10", data_root=str(tmp_path / "cifar")), DatasetLayoutError, "cifar-10-batches-py"),
             (dict(device="cuda"), ConfigError, "device='cuda' needs --gpus-per-trial > 0")]
    for row, error, says in cases:
        with pytest.raises(error, match=says):
            run_study(study(**row), storage=str(tmp_path / "results"), overrides=sets(**row))
        assert not (tmp_path / "results" / "doomed").exists(), row
    run_study(study(generator="mine"), storage=str(tmp_path / "results"), max_failures=0, overrides=TINY,
              train_fn=functools.partial(standin_train, sleep=0.0))  # the same study with a good row runs
    ckpt.write_bytes(ckpt.read_bytes()[:-8])  # tampered with after the manifest was written
    with pytest.raises(ZooError, match="sha256"):
        run_study(study(generator="mine"), storage=str(tmp_path / "other"), overrides=TINY)
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ConfigError, match="--gpus-per-trial 1, but this machine has 0 CUDA GPU"):
            run_study(study(), storage=str(tmp_path / "other"), gpus_per_trial=1, overrides=TINY)
    with pytest.raises(ConfigError, match="--cpus-per-trial 64 --gpus-per-trial 0: no node of this machine's Ray"):
        run_study(study(), storage=str(tmp_path / "other"), cpus_per_trial=64, overrides=TINY)  # Ray knows only 1
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())


_STALE_STUDY = """
import sys
from analysis.tables import format_table, study_table
from sqsp.tune import Study, study_main
STUDY = Study(name="stale", preset="smoke", seeds=(0,), table=lambda t: format_table(study_table(t)),
              grid=[{"row": "a"}, {"row": "b", "sim_weight": 10.0}])
sys.exit(study_main(STUDY))
"""


@pytest.mark.slow
def test_a_stale_ray_address_is_not_joined_and_failed_trials_exit_nonzero_with_reasons(tmp_path):
    """Without --address a study starts its own Ray: a dead cluster named by RAY_ADDRESS or by
    Ray's "current cluster" file does not hang it (nor would a live one run its trials). A trial
    that fails in training (here: a tampered CIFAR batch, found when loaded) makes the study
    exit 1 with the reason under the table, once, without a retry; the tampered batch runs no code."""
    import pickle
    import tempfile
    from test_data import _Payload, write_cifar10
    write_cifar10(tmp_path / "data")
    marker = tmp_path / "marker"
    with open(tmp_path / "data" / "CIFAR10" / "cifar-10-batches-py" / "data_batch_2", "wb") as f:
        pickle.dump({"data": _Payload(marker), "labels": [0]}, f, protocol=2)
    script = tmp_path / "stale.py"
    script.write_text(_STALE_STUDY)
    sets = [f"--set={k}={v}" for k, v in {**TINY, "eval_init": False, "eval_mmd": False, "dataset": "cifar10",
                                           "data_root": tmp_path / "data"}.items()]
    ray_tmp = tempfile.mkdtemp(prefix="sq", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    try:
        os.makedirs(os.path.join(ray_tmp, "ray"))
        with open(os.path.join(ray_tmp, "ray", "ray_current_cluster"), "w") as f:
            f.write("127.0.0.1:9")  # nobody listens there: a cluster that died
        env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_ADDRESS": "127.0.0.1:9", "RAY_USAGE_STATS_ENABLED": "0"}
        out = subprocess.run([sys.executable, str(script), "--storage", str(tmp_path / "results"), *sets], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    finally:
        __import__("shutil").rmtree(ray_tmp, ignore_errors=True)
    log = out.stdout + out.stderr
    assert "[sqsp] started a private local Ray: " in log, log[-4000:]
    assert "127.0.0.1:9" not in log, log[-4000:]
    assert out.returncode == 1, log[-4000:]
    trials = results.read_trials(str(tmp_path / "results" / "stale")).set_index("row")
    assert (trials["status"] == "failed").all()
    ids = ", ".join(sorted(trials["trial_id"]))
    reason = (f"- 2 trials failed ({ids}): DatasetLayoutError: cifar10: malformed batch file "
              f"{tmp_path / 'data' / 'CIFAR10' / 'cifar-10-batches-py' / 'data_batch_2'}")
    table_end = out.stdout.index("Trials without a result:")
    assert "| a |" in out.stdout[:table_end] and reason in out.stdout[table_end:], out.stdout
    assert "posix.system" in out.stdout[table_end:] and out.stdout.count(reason) == 1
    assert "2 of 2 trials failed" in out.stderr
    assert not marker.exists()
    assert "Traceback" not in out.stdout


@pytest.mark.slow
def test_relative_paths_are_taken_from_the_launch_directory(ray_session, tmp_path, monkeypatch):
    """``--set generator=gens/g.safetensors`` from the folder that holds gens/: the trial runs in a
    working directory of its own, so the driver resolves the path before writing study.json."""
    from sqsp.generators import make_network, save_checkpoint
    kwargs = dict(resolution=16, channels=3, z_dim=64)
    (tmp_path / "gens").mkdir()
    save_checkpoint(make_network("stylegan", seed=0, **kwargs), "stylegan", kwargs, tmp_path / "gens" / "g.safetensors")
    monkeypatch.chdir(tmp_path)
    study = Study(name="relative", preset="smoke", seeds=(0,), grid=[{"row": "a"}])
    trials = run_study(study, storage="results", overrides={**TINY, "generator": "gens/g.safetensors"})
    assert trials["status"].tolist() == ["completed"], trials["error"].tolist()
    assert trials["generator"].tolist() == [str(tmp_path / "gens" / "g.safetensors")]
    spec = json.loads((tmp_path / "results" / "relative" / "study.json").read_text())
    assert spec["fixed"]["base"]["generator"] == str(tmp_path / "gens" / "g.safetensors")
    assert spec["overrides"]["generator"] == "gens/g.safetensors"  # as the user typed it, for --resume
    with pytest.raises(ConfigError, match=r"\['.*/gens/none.safetensors'\] do not exist"):
        run_study(Study(name="missing", preset="smoke", seeds=(0,), grid=[{"row": "a"}]), storage="results",
                  overrides={**TINY, "generator": "gens/none.safetensors"})


def test_a_resumed_trial_continues_from_its_furthest_complete_checkpoint(tmp_path):
    """Without Ray: of a trial's checkpoints in storage, the one sealed at the furthest step whose
    every file is whole (a copy cut short by its worker's death is passed over), if further than
    the one Tune knows, with the reports the seals after Tune's hold; unsealed folders (older
    sqsp, Ray's own) are never taken."""
    from pyarrow.fs import LocalFileSystem

    from sqsp import record
    from sqsp.tune.resume_point import newest_sealed

    def checkpoint(index: int, step: int, *, seal=True, cut=False):
        d = tmp_path / f"checkpoint_{index:06d}"
        (d / "m0").mkdir(parents=True)
        (d / "m0" / "state.pt").write_bytes(b"x" * (100 + step))
        if seal:  # the reports since the checkpoint before: one without a checkpoint, then its own
            record.seal_checkpoint(str(d), step, [{"step": step - 1}, {"step": step}])
        if cut:  # the copy in storage stopped half-way through a file
            (d / "m0" / "state.pt").write_bytes(b"x" * 10)
        return str(d)

    fs = LocalFileSystem()
    known = checkpoint(0, 2)
    assert newest_sealed(fs, str(tmp_path), known) == (None, [])  # nothing further than Tune's
    checkpoint(1, 4)
    further = checkpoint(5, 6)
    checkpoint(2, 8, cut=True)
    checkpoint(3, 10, seal=False)
    checkpoint(4, 2)  # sealed, but not beyond Tune's (an older copy under a newer number)
    path, replay = newest_sealed(fs, str(tmp_path), known)
    assert path == further and [r["step"] for r in replay] == [3, 4, 5, 6]
    path, replay = newest_sealed(fs, str(tmp_path), None)  # Tune knew none
    assert path == further and [r["step"] for r in replay] == [1, 2, 1, 2, 3, 4, 5, 6]  # history keeps a step once
    assert newest_sealed(fs, str(tmp_path), further) == (None, [])
    assert newest_sealed(fs, str(tmp_path / "missing"), None) == (None, [])


def test_tunes_warning_of_trials_without_a_results_file_is_held_back():
    """As Tune words it at restore after a kill -9 (benchmarks/cluster_scale.py's resumed driver)."""
    from sqsp.tune.watch import missing_metrics
    line = ("- sqsp_trial_a151b_00212: FileNotFoundError('Could not fetch metrics for sqsp_trial_a151b_00212: both "
            "result.json and progress.csv were not found at /tmp/s/scale/a151b_00212-seed=0')")
    assert missing_metrics(f"Failed to fetch metrics for 2 trial(s):\n{line}\n{line}")
    # another failure in the same warning is shown
    assert not missing_metrics(f"Failed to fetch metrics for 2 trial(s):\n{line}\n- t: PermissionError('denied')")
    assert not missing_metrics("Trial task failed for trial sqsp_trial_a151b_00212")
