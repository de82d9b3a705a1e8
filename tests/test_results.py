"""sqsp/results.py without Ray: statuses, de-duplication, the documented schema, atomic writes."""
from __future__ import annotations

import math
import os

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from sqsp import results, storage
from sqsp.config import preset
from sqsp.record import STATUSES, TrainingDiverged
from sqsp.results import TrialRecord

CFG = preset("smoke", {"steps": 4}).to_dict()


def report(it, step, **m):
    return {"training_iteration": it, "time_total_s": float(it), "trial_id": "x", "hostname": "h",
            "node_ip": "1.2.3.4", "done": False, "config": {"row": "a"}, "config/row": "a", "step": step,
            "epoch": step, "loss": 1.0 / step, "student_std": 0.9, **m}


def final(it, step, **m):
    return report(it, step, probe_acc=80.0, knn_acc=70.0, collapsed=False, done=True, final=True, **m)


class FakeRayTaskError(Exception):
    """Ray wraps a trial's exception and keeps it as ``.cause``."""
    def __init__(self, cause):
        super().__init__("Traceback (most recent call last):\n  ...\nValueError: wrapped")
        self.cause = cause


@pytest.mark.parametrize("last, error, status", [
    ({"final": True, "collapsed": False, "done": True}, None, "completed"),
    ({"final": True, "collapsed": True, "done": True}, None, "collapsed"),
    ({"diverged": True, "error": "TrainingDiverged: nan", "done": True}, None, "diverged"),
    ({"step": 3}, RuntimeError("boom"), "failed"),
    ({}, FakeRayTaskError(TrainingDiverged("loss became nan")), "diverged"),
    ({}, "OSError: disk full", "failed"),
    ({"done": True, "step": 2}, None, "stopped"),     # a scheduler ended it early
    ({"step": 2, "done": False}, None, "unfinished"),  # the study was interrupted
    ({}, None, "unfinished"),
])
def test_status(last, error, status):
    assert results.trial_status(last, error) == status
    assert status in STATUSES


def test_error_text_shows_the_users_exception():
    assert results.error_text(FakeRayTaskError(ValueError("bad value"))) == "ValueError: bad value"
    assert results.error_text(RuntimeError("x")) == "RuntimeError: x"
    assert results.error_text(None) is None


def test_history_drops_replayed_reports_keeping_the_newest():
    # reports 1-3, a checkpoint at 2, then a resume replays 3 (new value) and goes on to 4
    reps = [report(1, 1), report(2, 2), report(3, 3, loss=0.30), report(3, 3, loss=0.33), final(4, 4)]
    # and a trial resumed at its end re-reports its final metrics as a new iteration
    reps += [final(5, 4)]
    h = results.history_frame([TrialRecord("t1", CFG, "a", reps)])
    assert list(h["step"]) == [1, 2, 3, 4]
    assert h.loc[h["step"] == 3, "loss"].item() == 0.33
    assert not h.duplicated(["trial_id", "training_iteration"]).any()
    assert list(h.columns[:5]) == ["trial_id", "row", "seed", "training_iteration", "time_total_s"]
    assert "config/row" not in h and "hostname" not in h and "final" not in h


def test_history_of_a_trial_resumed_past_the_checkpoint_tune_knew_keeps_every_step_once():
    # Tune's snapshot knew the checkpoint of step 2, storage held step 4's: the resumed run
    # reports step 5 as Tune's iteration 3, which before named step 3
    reps = [report(i, i) for i in range(1, 5)] + [report(5, 5, loss=0.5), final(3, 5, loss=0.25)]
    h = results.history_frame([TrialRecord("t1", CFG, "a", reps)])
    assert list(h["step"]) == [1, 2, 3, 4, 5] and list(h["training_iteration"]) == [1, 2, 3, 4, 5]
    assert h.loc[h["step"] == 5, "loss"].item() == 0.25  # the newest report of step 5
    # a step-less end (a divergence) stays last
    diverged = {"training_iteration": 3, "diverged": True, "error": "TrainingDiverged: nan", "done": True}
    h = results.history_frame([TrialRecord("t2", CFG, "a", [report(1, 1), report(2, 2), diverged])])
    assert list(h["training_iteration"]) == [1, 2, 3] and h["step"].isna().tolist() == [False, False, True]


def test_trials_frame_has_a_row_for_every_trial_whatever_happened():
    recs = [
        TrialRecord("t1", {**CFG, "seed": 0}, "a", [report(1, 1), final(2, 2)], checkpoint="/c/1"),
        TrialRecord("t2", {**CFG, "seed": 1}, "a", [report(1, 1), {"training_iteration": 2, "diverged": True,
                                                                   "error": "TrainingDiverged: nan", "done": True}]),
        TrialRecord("t3", {**CFG, "seed": 2}, "b", [], error=FakeRayTaskError(OSError("no generator"))),
    ]
    prov = {"python_version": "3.11", "torch_version": "2", "ray_version": "2", "sqsp_commit": None, "sqsp_dirty": None}
    t = results.trials_frame("s", recs, prov).set_index("trial_id")
    assert list(t["status"]) == ["completed", "diverged", "failed"]
    assert t.loc["t1", "probe_acc"] == 80.0 and t.loc["t1", "reports"] == 2 and t.loc["t1", "checkpoint"] == "/c/1"
    assert t.loc["t2", "error"] == "TrainingDiverged: nan" and t.loc["t2", "step"] == 1
    assert t.loc["t3", "error"] == "OSError: no generator" and t.loc["t3", "reports"] == 0
    assert t.loc["t3", "seed"] == 2 and t.loc["t3", "batch_size"] == CFG["batch_size"]  # config without a report
    assert pd.isna(t.loc["t3", "probe_acc"]) and pd.isna(t.loc["t3", "wall_time_s"])
    assert t.loc["t1", "wall_time_s"] == 2.0 and t.loc["t1", "hostname"] == "h"


def test_written_files_follow_the_documented_schema(tmp_path):
    recs = [TrialRecord("t1", CFG, "a", [report(1, 1), final(2, 2, extra_metric=1.5)]),
            TrialRecord("t2", CFG, "b", [], error="RuntimeError: x")]
    results.write_study(str(tmp_path), "s", recs)
    t = results.read_trials(str(tmp_path))
    h = results.read_history(str(tmp_path))
    assert results.schema_metadata(str(tmp_path))["sqsp_schema_version"] == results.SCHEMA_VERSION
    cols = list(t.columns)
    assert cols[:3] == ["trial_id", "study", "row"]
    assert cols[3:3 + len(results.CONFIG_FIELDS)] == list(results.CONFIG_FIELDS)
    assert cols[cols.index("status"):cols.index("status") + 2] == ["status", "error"]
    assert set(results.METRICS) < set(cols) and "extra_metric" in cols and "extra_metric" in h
    assert cols[-len(results.PROVENANCE):] == list(results.PROVENANCE)
    schema = pq.read_schema(tmp_path / results.TRIALS_FILE)
    assert str(schema.field("squeeze").type) == "bool" and str(schema.field("batch_size").type) == "int64"
    assert str(schema.field("base_lr").type) == "double"
    assert str(schema.field("data_root").type) in ("string", "large_string")
    assert str(schema.field("collapsed").type) == "bool" and str(schema.field("step").type) == "int64"
    assert str(pq.read_schema(tmp_path / results.HISTORY_FILE).field("done").type) == "bool"
    assert t["sqsp_commit"].notna().all()  # this is a git checkout
    assert len(h) == 2 and set(h["trial_id"]) == {"t1"}


def test_a_crash_while_writing_leaves_the_old_file(tmp_path, monkeypatch):
    df = pd.DataFrame({"a": [1, 2]})
    target = tmp_path / "trials.parquet"
    results.write_parquet(df, str(target), kind="trials", study="s")

    def half_write(table, where, **kw):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")
    monkeypatch.setattr(results.pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        results.write_parquet(pd.DataFrame({"a": [9]}), str(target), kind="trials", study="s")
    monkeypatch.undo()
    assert list(pd.read_parquet(target)["a"]) == [1, 2]
    assert os.listdir(tmp_path) == ["trials.parquet"]  # no temporary left behind


def test_uri_storage_writes_through_pyarrow_filesystems(tmp_path, monkeypatch):
    # file:// resolves to the local filesystem; a mock store exercises the temporary-key-then-move path
    uri = f"file://{tmp_path}/study"
    results.write_study(uri, "s", [TrialRecord("t1", CFG, "a", [final(1, 1)])])
    assert results.read_trials(uri)["status"].tolist() == ["completed"]
    mock = pafs._MockFileSystem()
    for module in (results, storage):  # storage writes, results reads
        monkeypatch.setattr(module, "filesystem", lambda loc: (mock, loc.split("://", 1)[1]))
    results.write_study("mock://bucket/study", "s", [TrialRecord("t1", CFG, "a", [final(1, 1)])])
    names = sorted(i.path for i in mock.get_file_info(pafs.FileSelector("bucket/study")))
    assert names == ["bucket/study/history.parquet", "bucket/study/trials.parquet"]
    assert results.read_trials("mock://bucket/study")["probe_acc"].tolist() == [80.0]


def test_reader_refuses_another_schema_version(tmp_path):
    results.write_parquet(pd.DataFrame({"a": [1]}), str(tmp_path / "trials.parquet"), kind="trials", study="s")
    monkey = pq.read_table(tmp_path / "trials.parquet")
    pq.write_table(monkey.replace_schema_metadata({b"sqsp_schema_version": b"0"}), tmp_path / "trials.parquet")
    with pytest.raises(ValueError, match="sqsp_schema_version='0'"):
        results.read_trials(str(tmp_path))


def test_nan_metric_values_stay_missing():
    h = results.history_frame([TrialRecord("t", CFG, None, [report(1, 1, knn_acc=float("nan")), final(2, 2)])])
    assert math.isnan(h["knn_acc"].iloc[0]) and h["knn_acc"].iloc[1] == 70.0
    assert h["row"].isna().all()


def test_a_copied_study_folder_reads_its_own_checkpoints_and_runs_are_told_apart(tmp_path):
    """Paths are stored relative to the study folder and resolved against the folder read; each
    trial names the run that wrote it, with UTC start and end; columns carry unit and meaning."""
    import json
    import shutil
    original = tmp_path / "a" / "ablation"
    ckpt = original / "trial_0" / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(b"original")
    reports = [dict(report(1, 2), timestamp=1_700_000_010.0, time_total_s=10.0),
               dict(final(2, 4), timestamp=1_700_000_030.0, time_total_s=30.0)]
    rec = TrialRecord("t0", CFG, "a", reports, checkpoint=str(ckpt), path=str(original / "trial_0"))
    outside = TrialRecord("t1", CFG, "b", [final(1, 4)], checkpoint="s3://bucket/elsewhere/ckpt")
    runs = [{"run_id": "r1", "started_at": "2026-01-01T00:00:00+00:00", "command": "studies/ablation.py"}]
    results.write_study(str(original), "ablation", [rec, outside], runs=runs)
    stored = pq.read_table(original / results.TRIALS_FILE).to_pandas()
    assert stored.loc[0, "checkpoint"] == os.path.join("trial_0", "checkpoint_000001")
    assert stored.loc[0, "trial_path"] == "trial_0" and stored.loc[1, "checkpoint"] == "s3://bucket/elsewhere/ckpt"

    copy = tmp_path / "b" / "ablation"
    shutil.copytree(original, copy)
    (copy / "trial_0" / "checkpoint_000001" / "state.pt").write_bytes(b"copy")
    shutil.rmtree(original)  # the original is gone: the copy must not need it
    trials = results.read_trials(str(copy)).set_index("trial_id")
    assert open(os.path.join(trials.loc["t0", "checkpoint"], "state.pt"), "rb").read() == b"copy"
    assert trials.loc["t1", "checkpoint"] == "s3://bucket/elsewhere/ckpt"

    assert (trials["run_id"] == "r1").all() and json.loads(trials.attrs["sqsp"]["sqsp_runs"]) == runs
    assert trials.loc["t0", "started_at"] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert trials.loc["t0", "ended_at"] == pd.Timestamp(1_700_000_030, unit="s", tz="UTC")
    schema = pq.read_schema(copy / results.TRIALS_FILE)
    probe = schema.field("probe_acc").metadata
    assert probe[b"unit"] == b"top-1 accuracy, %" and b"test split" in probe[b"description"]
    assert schema.field("wall_time_s").metadata[b"unit"] == b"s"
