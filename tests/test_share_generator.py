"""``--share-generator``: the rows of a seed on one generator stream run as one Ray trial.

What must hold: each row gets the numbers it gets as a trial of its own (exact equality at
the same seed), rows whose stream differs are not grouped, a row that diverges or collapses
does not stop the others, and an interrupted grouped study resumes each row once. The plan is
checked without Ray; the rest runs real ``train()`` on plain digits through the session's Ray.
"""
from __future__ import annotations

import re
import signal
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from sqsp import results  # noqa: E402
from sqsp.config import ConfigError  # noqa: E402
from sqsp.tune import Study, read_study, run_study, study_main  # noqa: E402
from sqsp.tune.study import resolve  # noqa: E402
from sqsp.tune.groups import plan_groups  # noqa: E402
from sqsp.tune.search import Search  # noqa: E402
from sqsp.tune.study_file import study_from_document  # noqa: E402
from standins import drive  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# fp32 (precision=auto picks bf16 on some CPUs: exactness holds there too, but the test pins one);
# collapse_std 0.5 flags the squeeze rows' 4-step students collapsed and leaves row a's fixed target not
TINY = {"dataset": "digits", "steps": 4, "batch_size": 16, "generator": "random:stylegan@16", "probe": "fast",
        "eval_every": 0, "precision": "fp32", "checkpoint_every": 1, "syn_ratio": 1.0, "collapse_std": 0.5}
ROWS = [{"row": "a", "squeeze": False, "sim_weight": 1.0, "var_weight": 0.0, "cov_weight": 0.0},
        {"row": "e"},
        {"row": "nan", "sim_weight": 1e30},      # diverges at its first report
        {"row": "span", "syn_ratio": 0.5}]       # another α: another stream, a trial of its own
COMPARED = ["status", "error", "step", "epoch", "loss", "loss_sim", "loss_var", "loss_cov", "student_std",
            "teacher_std", "knn_acc", "probe_acc", "init_knn_acc", "init_probe_acc", "collapsed", "reports"]


STREAMLESS = {"row": "real", "method": "vicreg", "syn_ratio": 0.0}  # real images only: no stream to share


def rows_study(name: str, share: bool | None, seeds=(0, 1), rows=ROWS) -> Study:
    return Study(name=name, preset="smoke", seeds=seeds, grid=rows, share_generator=share)


# -------------------------------------------------------------------------------------------------
# the plan, without Ray
# -------------------------------------------------------------------------------------------------
def test_rows_of_a_seed_on_one_stream_are_grouped_and_other_streams_are_not():
    study = read_study(ROOT / "studies" / "ablation.yaml")
    _, _, trials = resolve(study)
    plan = plan_groups(study, trials, None)
    # the smoke preset's α = 0.5: row f (span) draws 32 synthetic images a step, rows a-e 64
    assert list(plan) == [f"{rows} seed {s}" for s in (0, 1, 2) for rows in ("a+b+c+d+e", "f")]
    assert plan["a+b+c+d+e seed 1"] == {"seed": 1, "members": [{"row": r} for r in "abcde"]}
    assert plan_groups(study, trials, False) is None
    from sqsp.tune.cli import dry_run  # --dry-run says how the rows will run
    assert dry_run(study).splitlines()[-1] == ("sharing the generator stream (--share-generator): 6 Ray trials, "
                                               "per seed: a+b+c+d+e | f")

    grid = Study(name="g", seeds=(0,), grid={"sim_weight": [1.0, 5.0], "syn_ratio": [0.5, 1.0]})
    _, _, trials = resolve(grid, {k: v for k, v in TINY.items() if k != "syn_ratio"})
    plan = plan_groups(grid, trials, None)
    assert [g["members"] for g in plan.values()] == [
        [{"sim_weight": 1.0, "syn_ratio": 0.5}, {"sim_weight": 5.0, "syn_ratio": 0.5}],
        [{"sim_weight": 1.0, "syn_ratio": 1.0}, {"sim_weight": 5.0, "syn_ratio": 1.0}]]
    # nothing shares (one row per stream): the study runs as it always did
    one = Study(name="one", seeds=(0, 1), grid=[{"row": "x"}])
    assert plan_groups(one, resolve(one, TINY)[2], None) is None


def test_where_sharing_is_not_exact_it_is_off_by_default_and_refused_when_asked_for(tmp_path):
    from ray.tune.search.optuna import OptunaSearch
    search = Study(name="s", seeds=(0,), search=Search(OptunaSearch(seed=0), {"sim_weight": ray.tune.uniform(1, 5)}))
    _, _, trials = resolve(search, TINY)
    assert plan_groups(search, trials, None) is None
    with pytest.raises(ConfigError, match=r"--share-generator on: study 's' is a search.*allowed here: "
                                          r"--share-generator off"):
        plan_groups(search, trials, True)

    pickle = tmp_path / "network.pkl"  # an official StyleGAN2 pickle: noise from torch's global RNG
    study = rows_study("p", None, seeds=(0,))
    _, _, trials = resolve(study, TINY)
    trials = [(row, cfg.replace(generator=str(pickle))) for row, cfg in trials]
    assert plan_groups(study, trials, None) is None
    with pytest.raises(ConfigError, match=r"row 'a': generator '.*network.pkl' is an official StyleGAN pickle"):
        plan_groups(study, trials, True)
    with pytest.raises(ConfigError, match="train_fn"):
        plan_groups(study, resolve(study, TINY)[2], True, custom_train=True)


def test_bad_share_generator_values_are_refused_before_ray(tmp_path, capsys):
    assert study_main(rows_study("bad", None), ["--share-generator", "maybe", "--storage", str(tmp_path)]) == 2
    assert "--share-generator 'maybe'; allowed: on, off, auto" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"share_generator: 'yes'; allowed: true, false"):
        study_from_document({"name": "x", "rows": {"e": {}}, "share_generator": "yes"})
    assert study_from_document({"name": "x", "rows": {"e": {}}, "share_generator": False}).share_generator is False


# -------------------------------------------------------------------------------------------------
# through Ray
# -------------------------------------------------------------------------------------------------
def _ended_lines(err: str) -> list[str]:
    """``[sqsp] 3/8 e seed 1: completed, probe 88.44, kNN 80.00, 7 s`` without the count and the seconds."""
    lines = [re.sub(r", \d+ s", "", line.split(" ", 2)[2]) for line in err.splitlines()
             if re.match(r"\[sqsp\] \d+/\d+ ", line)]
    return sorted(lines)


def _by_row(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index(["row", "seed"]).sort_index()


@pytest.mark.slow
def test_grouped_rows_get_the_numbers_they_get_alone(ray_session, tmp_path, capsys):
    # with a row that reads no stream (it runs as train() runs it, inside the group trainable)
    rows = [*ROWS, STREAMLESS]
    grouped = run_study(rows_study("grouped", None, rows=rows), storage=str(tmp_path), overrides=TINY, loggers=())
    grouped_lines = _ended_lines(capsys.readouterr().err)
    alone = run_study(rows_study("alone", False, rows=rows), storage=str(tmp_path), overrides=TINY, loggers=())
    # the console: a line per row as it ends, as for a trial of its own (the seconds aside)
    assert grouped_lines == _ended_lines(capsys.readouterr().err) and len(grouped_lines) == 10
    g, a = _by_row(grouped), _by_row(alone)
    assert len(g) == len(a) == 10 and g.index.equals(a.index)
    pd.testing.assert_frame_equal(g[COMPARED], a[COMPARED])  # exact: the same floats, not close ones
    assert a["stream_group"].isna().all()
    for seed in (0, 1):  # a, e and nan of a seed ran in one trial; span (another α) in its own
        shared = {g.loc[(r, seed), "stream_group"] for r in ("a", "e", "nan")}
        assert len(shared) == 1 and g.loc[("span", seed), "stream_group"] not in shared
    # the diverged row did not stop the others, and a collapsed one went on to its end as alone
    assert set(g["status"]) == {"completed", "collapsed", "diverged"}
    assert g.xs("real", level="row")["status"].isin(["completed", "collapsed"]).all()  # it ran, not failed
    assert (g.xs("nan", level="row")["status"] == "diverged").all()
    assert (g.loc[g["status"] != "diverged", "step"] == 4).all()
    # each row its own history, the same as alone
    hg, ha = (results.read_history(str(tmp_path / n)) for n in ("grouped", "alone"))
    keys = ["row", "seed", "step", "loss", "knn_acc"]
    pd.testing.assert_frame_equal(hg[keys].sort_values(keys[:3]).reset_index(drop=True),
                                  ha[keys].sort_values(keys[:3]).reset_index(drop=True))
    # a row's checkpoint folder is train()'s: its backbone loads from it
    from sqsp.train import load_backbone
    e0 = results.read_trials(str(tmp_path / "grouped")).set_index(["row", "seed"]).loc[("e", 0)]
    _, cfg = load_backbone(e0["checkpoint"])
    assert cfg.seed == 0 and cfg.squeeze


# 10 steps an epoch on digits: 3 reports; a narrower student than the smoke preset's (what is
# checked is what resume keeps, not what the student learns)
RESUMED = {**TINY, "steps": 30, "batch_size": 128, "probe": "none", "student_width": 0.0625, "projector_dim": 32,
           "squeeze_width": 32, "teacher_dim": 32}
_DRIVER = """
import test_share_generator as t
from sqsp.tune import run_study
run_study(t.rows_study("killed", None, seeds=(0,)), address={address!r}, storage={storage!r}, max_failures=0,
          overrides=t.RESUMED, loggers=())
"""


@pytest.mark.slow
def test_an_interrupted_grouped_study_resumes_each_row_once(ray_session, tmp_path):
    """SIGKILL of the driver once the group has a checkpoint; --resume finishes every row, none
    lost or doubled, each row's steps reported once, the numbers those of an uninterrupted run."""
    group_checkpoints = lambda: list(tmp_path.glob("killed/*group=a+e+nan*/checkpoint_00000[0-9]/m0/state.pt"))
    drive(_DRIVER.format(address=ray_session, storage=str(tmp_path)), tmp_path / "driver.log",
          until=lambda: bool(group_checkpoints()), sig=signal.SIGKILL)
    resumed = run_study(rows_study("killed", None, seeds=(0,)), storage=str(tmp_path), resume=True, max_failures=0,
                        overrides=RESUMED, loggers=())
    history = results.read_history(str(tmp_path / "killed"))
    assert sorted(resumed["row"]) == sorted(r["row"] for r in ROWS) and resumed["trial_id"].is_unique
    by = resumed.set_index("row")
    assert by.loc["nan", "status"] == "diverged"
    for row in ("a", "e", "span"):
        assert by.loc[row, "status"] in ("completed", "collapsed") and by.loc[row, "step"] == 30
        steps = history.loc[history["row"] == row, "step"].tolist()
        assert steps == [10, 20, 30], (row, steps)
    # grouped too (that a grouped row gets the numbers it gets alone is the test above)
    alone = run_study(rows_study("uninterrupted", None, seeds=(0,)), storage=str(tmp_path), overrides=RESUMED,
                      loggers=())
    cols = ["status", "step", "loss", "knn_acc", "student_std"]
    pd.testing.assert_frame_equal(_by_row(resumed)[cols], _by_row(alone)[cols])


@pytest.mark.slow
def test_train_group_resumes_mid_epoch_and_rows_of_other_lengths_report_apart(tmp_path):
    """Without Ray: a group checkpoint taken when one member's epoch ended and another's had not
    resumes both exactly; a member that diverged stays ended; train() alone is the reference."""
    import shutil

    from sqsp.config import preset
    from sqsp.grouped import train_group
    from sqsp.train import train
    # RESUMED's narrow student, no probe: what is checked is what resume keeps (the kNN monitor every
    # 2 epochs), not what the student learns
    base = [f"{k}={v}" for k, v in {**RESUMED, "steps": 25, "eval_every": 2}.items()]
    configs = [preset("smoke", base + extra) for extra in (["squeeze=false"], ["sim_weight=1e30"],
                                                            ["cov_weight=0", "steps=15"])]
    reports = []

    def keep(out, checkpoint):
        reports.append(sorted(out))
        if len(reports) == 2:  # step 15: member 2 ended, member 0 is half-way through its second epoch
            shutil.copytree(checkpoint, tmp_path / "ckpt")

    first = train_group(configs, keep)
    assert reports == [[0, 1, 2], [2], [0], [0]]  # epochs of 10 steps; member 2 runs 15 steps, 1 diverges
    assert first[1]["diverged"] and first[1]["error"].startswith("TrainingDiverged")
    resumed = train_group(configs, lambda out, d: reports.append(sorted(out)), resume_from=str(tmp_path / "ckpt"))
    assert reports[4:] == [[0], [0]]  # only member 0 had steps left
    for k in (0, 2):
        alone = train(configs[k])
        same = [key for key in alone if key != "img_per_s"]
        assert {key: first[k][key] for key in same} == {key: resumed[k][key] for key in same} == \
            {key: alone[key] for key in same}
