"""Studies through a real local Ray: Parquet output, failures as rows, interrupt + resume, Optuna restore.

One Ray session for the module (``ray.init(num_cpus=2)``), stopped by handle. Trials run
either the real ``train()`` on tiny configs or ``standin_train`` below (same signature,
sleeps instead of training) where the test is about Ray, not about learning.
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
from sqsp.config import ConfigError  # noqa: E402
from sqsp.tune import Study, base_config, expand, run_study  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = {"steps": 4, "batch_size": 16, "generator": "random:stylegan@16", "probe": "none", "eval_every": 0,
        "precision": "fp32", "checkpoint_every": 1}


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # the stand-ins below live in this test module, which Ray's workers cannot import
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def standin_train(config, report=None, *, resume_from=None, generator=None, marker_dir=None, log_dir=None,
                  sleep=0.25):
    """train()'s contract without the training: a checkpoint at every report.

    ``cov_weight == 0.5`` marks a flaky trial: it raises after step 2 the first time it runs
    (a marker file in ``marker_dir`` remembers it), as a worker lost to an interruption would.
    ``log_dir`` gets a line per call: which trial, from which step.
    """
    import tempfile
    import shutil
    start = 0
    if resume_from:
        with open(os.path.join(resume_from, "state.json")) as f:
            start = json.load(f)["step"]
    if log_dir:
        with open(os.path.join(log_dir, "calls.jsonl"), "a") as f:
            f.write(json.dumps({"base_lr": config.base_lr, "seed": config.seed, "start": start}) + "\n")
    for step in range(start + 1, config.steps + 1):
        time.sleep(sleep)
        if marker_dir and config.cov_weight == 0.5 and step == 3:
            marker = os.path.join(marker_dir, f"flaky-{config.seed}")
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("flaky trial lost its worker")
        m = {"step": step, "epoch": step, "loss": 1.0 / step, "student_std": 0.8, "teacher_std": 0.8,
             "lr": config.base_lr, "img_per_s": 100.0, "collapsed": False}
        if step == config.steps:
            m.update(knn_acc=50.0 + config.seed, probe_acc=100.0 * config.base_lr, done=True)
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump({"step": step}, f)
        report(m, d)
        shutil.rmtree(d)
    return m


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
def test_study_writes_both_files_and_failures_are_rows(ray_session, tmp_path):
    broken = tmp_path / "gen.safetensors"  # exists (the driver checks that), but is no checkpoint
    broken.write_bytes(b"not a checkpoint")
    study = Study(name="failures", preset="smoke", seeds=(0,), grid=[
        {"row": "ok"},
        {"row": "nan", "sim_weight": 1e30},                       # TrainingDiverged at the first report
        {"row": "raises", "generator": str(broken)},              # raises before any report
    ])
    trials = run_study(study, storage=str(tmp_path), max_failures=0, overrides=TINY)

    folder = tmp_path / "failures"
    for name, kind in ((results.TRIALS_FILE, "trials"), (results.HISTORY_FILE, "history")):
        meta = results.schema_metadata(str(folder), name)
        assert meta == {"sqsp_schema_version": results.SCHEMA_VERSION, "sqsp_kind": kind, "sqsp_study": "failures"}
    on_disk = results.read_trials(str(folder))
    history = results.read_history(str(folder))
    assert list(on_disk.columns) == list(trials.columns)
    for col in ("trial_id", "study", "row", *results.CONFIG_FIELDS, "status", "error", *results.METRICS,
                "reports", "wall_time_s", "hostname", *results.PROVENANCE):
        assert col in on_disk, col
    assert list(history.columns[:5]) == ["trial_id", "row", "seed", "training_iteration", "time_total_s"]
    assert set(results.METRICS) <= set(history.columns)
    _assert_one_row_per_trial(on_disk, history, 3)

    by = on_disk.set_index("row")
    assert by.loc["ok", "status"] == "completed" and pd_isna(by.loc["ok", "error"])
    assert by.loc["ok", "step"] == 4 and by.loc["ok", "knn_acc"] > 0 and by.loc["ok", "steps"] == 4
    assert by.loc["nan", "status"] == "diverged"
    assert by.loc["nan", "error"].startswith("TrainingDiverged: loss became nan")
    assert by.loc["raises", "status"] == "failed" and by.loc["raises", "reports"] == 0
    assert "gen.safetensors" in by.loc["raises", "error"]
    assert by.loc["raises", "generator"] == str(broken)  # config kept without a report
    assert on_disk["torch_version"].notna().all() and on_disk["ray_version"].iloc[0] == ray.__version__


def pd_isna(v):
    import pandas as pd
    return pd.isna(v)


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
import functools, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import ray, ray.cloudpickle, test_tune
ray.cloudpickle.register_pickle_by_value(test_tune)
from sqsp.tune import run_study
study = test_tune.{study}()
# joins the test's cluster the way --address does (run_study ships sqsp to its workers)
run_study(study, address={address!r}, storage={storage!r}, max_failures=0, max_concurrent={max_concurrent},
          overrides=test_tune.SETS[{study!r}],
          train_fn=functools.partial(test_tune.standin_train, sleep={sleep}, log_dir={storage!r}))
"""


def _run_and_interrupt(address, storage, study, *, finished, sig, max_concurrent=2, sleep=0.25, timeout=120):
    """Run ``study`` in a separate driver on our cluster; send ``sig`` once ``finished`` trials ended."""
    script = _DRIVER.format(root=str(ROOT), tests=str(ROOT / "tests"), address=address, study=study,
                            storage=str(storage), max_concurrent=max_concurrent, sleep=sleep)
    log_path = Path(storage) / "driver.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + timeout
            while time.time() < deadline and proc.poll() is None and len(_ended(storage)) < finished:
                time.sleep(0.2)
            assert proc.poll() is None, "the study ended before the interruption:\n" + log_path.read_text()[-3000:]
            assert len(_ended(storage)) >= finished, log_path.read_text()[-3000:]
        finally:
            proc.send_signal(sig)  # our own child, by its pid
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return log_path.read_text()


def _ended(storage):
    """Trial folders whose result.json ends with train()'s final report."""
    out = set()
    for p in Path(storage).glob("*/*/result.json"):
        lines = p.read_text().splitlines()
        if lines and json.loads(lines[-1]).get("final"):
            out.add(p.parent.name)
    return out


def _calls(storage):
    return [json.loads(x) for x in (Path(storage) / "calls.jsonl").read_text().splitlines()]


# the tiny scale of the studies run in a separate driver (a user's --set: a study cannot set it)
SETS = {"killed_study": {**TINY, "steps": 8}, "optuna_study": {**TINY, "steps": 6}}


def killed_study():
    return Study(name="killed", preset="smoke", seeds=(0, 1), grid=[{"row": "a"}, {"row": "b", "sim_weight": 10.0}])


def test_killed_study_resumes_with_exactly_one_row_per_trial(ray_session, tmp_path):
    """SIGKILL of the driver: no trial lost, none doubled, every report once in the history."""
    _run_and_interrupt(ray_session, tmp_path, "killed_study", finished=2, sig=signal.SIGKILL)
    time.sleep(1.0)  # let Ray notice the dead driver and release its trial actors
    trials = run_study(killed_study(), storage=str(tmp_path), resume=True, max_failures=0,
                       overrides=SETS["killed_study"],
                       train_fn=functools.partial(standin_train, sleep=0.05, log_dir=str(tmp_path)))
    history = results.read_history(str(tmp_path / "killed"))
    _assert_one_row_per_trial(trials, history, 4)
    assert (trials["status"] == "completed").all()
    assert sorted(zip(trials["row"], trials["seed"])) == [(r, s) for r in "ab" for s in (0, 1)]
    for tid in trials["trial_id"]:
        assert list(history.loc[history["trial_id"] == tid, "step"]) == list(range(1, 9))


def optuna_study():
    from ray.tune.search.optuna import OptunaSearch
    return Study(name="optuna", preset="smoke", seeds=(0,), searcher=OptunaSearch(seed=0), num_samples=5,
                 search_space={"base_lr": tune.uniform(0.05, 0.5)}, metric="probe_acc", mode="max")


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


def test_bad_set_is_refused_before_ray_starts(tmp_path):
    """The CLI: a bad --set exits with the field, the value and what is allowed; no Ray started."""
    env = {**os.environ, "RAY_ADDRESS": ""}
    for bad, says in ((["--set", "syn_ratio=1.5"], "syn_ratio=1.5 is outside (0, 1]"),
                      (["--set", "batch_size=abc"], "batch_size='abc' is not a valid int"),
                      (["--set", "no_such_field=1"], "unknown config field 'no_such_field'"),
                      (["--set", "generator=no-such-gan"], "['no-such-gan'] are not zoo names")):
        t0 = time.time()
        out = subprocess.run([sys.executable, "studies/ablation.py", "--storage", str(tmp_path), *bad], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 2, out.stderr
        assert says in out.stderr, out.stderr
        assert "Started a local Ray instance" not in out.stdout + out.stderr
        assert not (tmp_path / "ablation").exists()
    # and in-process: the error comes from run_study before ray.init is reached
    from studies.ablation import STUDY
    calls = []
    real_init = ray.init
    ray.init = lambda *a, **k: calls.append(a)
    try:
        with pytest.raises(ConfigError, match="var_weight"):
            run_study(STUDY, storage=str(tmp_path), overrides=["var_weight=-2"])
    finally:
        ray.init = real_init
    assert calls == []


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
