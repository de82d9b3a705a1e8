"""Studies as YAML files (sqsp/tune/study_file.py): the paper's studies read from studies/*.yaml
are the studies their Python files declared, a bad file is refused with one line naming the
key, the value and what is allowed, before Ray; end to end (marked slow), a study defined in
YAML alone and a sweep given on the command line run, resume and print their tables, and a
finished study's study.yaml re-runs the same trials."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from sqsp.tune.study_file import read_study, study_document, study_from_document
from study_description import describe

ROOT = Path(__file__).resolve().parents[1]
PAPER = json.loads((ROOT / "tests" / "data" / "paper_studies.json").read_text())


@pytest.mark.parametrize("name", sorted(PAPER))
def test_each_paper_study_file_declares_what_its_python_declaration_did(name):
    """rows, seeds, overrides, table, param_space and every expanded trial config, against the
    Python declarations the YAML files replaced (their description, frozen in tests/data)."""
    from_yaml = describe(read_study(ROOT / "studies" / f"{name}.yaml"))
    assert from_yaml == PAPER[name]
    assert describe(importlib.import_module(f"studies.{name}").STUDY) == PAPER[name]


@pytest.mark.parametrize("name", sorted(PAPER))
def test_a_study_written_back_reads_as_the_same_study(name):
    """study.yaml is ``study_document``: read back, it declares the same study."""
    study = read_study(ROOT / "studies" / f"{name}.yaml")
    again = study_from_document(json.loads(json.dumps(study_document(study))))
    assert describe(again) == PAPER[name]


TINY = {"dataset": "digits", "steps": 2, "batch_size": 16, "generator": "random:stylegan@16", "probe": "none",
        "eval_every": 0, "eval_init": False, "eval_mmd": False}
TINY_YAML = """\
name: tiny
seeds: [0, 1]
set: {dataset: digits, steps: 2, batch_size: 16, generator: "random:stylegan@16", probe: none, eval_every: 0,
      eval_init: false, eval_mmd: false}
rows:
  e: {}
  d: {cov_weight: 0.0}
"""


def _write(tmp_path, text, name="study.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_command_line_sets_a_studys_own_keys_and_sweeps_a_grid(capsys):
    """Dotted --set reaches the study's own keys; --grid values take their field's type; both
    before anything runs (--dry-run)."""
    from sqsp.tune import study_main
    from sqsp.tune.study_file import command_line_study
    ablation = importlib.import_module("studies.ablation").STUDY
    edited = command_line_study(ablation, None, (), ["rows.e.sim_weight=10", "seeds=[4,5]"])
    assert edited.rows["e"] == {"syn_augment": True, "squeeze": True, "syn_ratio": 1.0, "sim_weight": 10.0}
    assert edited.rows["d"] == ablation.rows["d"] and list(edited.seeds) == [4, 5]
    sweep = command_line_study(None, None, ["sim_weight=1,5,25", "syn_augment=true,false"], ["seeds=[3]"])
    assert sweep.grid == {"sim_weight": [1.0, 5.0, 25.0], "syn_augment": [True, False]}
    assert sweep.table.spec == {"build": "grid_table", "columns": ["sim_weight", "syn_augment"]}
    assert list(sweep.seeds) == [3] and sweep.name == "sweep"
    assert study_main(None, ["--grid", "sim_weight=1,5", "--grid", "var_weight=2,3", "--set", "name=lam",
                             "--set", "steps=2", "--seeds", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("study 'lam' on preset 'smoke': 8 trials (varying sim_weight, var_weight)\n"), out
    assert "seed 1   sim_weight=5.0  var_weight=3.0" in out


BAD_FILES = [
    ("rowz: {e: {}}\n", "rowz: unknown key (did you mean 'rows'?); allowed: ['name',"),
    ("rows: {e: {sim_wieght: 1}}\n", "rows.e: unknown config field 'sim_wieght'"),
    ("rows: {e: {squeeze: maybe}}\n", "rows.e: squeeze='maybe' is not a valid bool"),
    ("grid: {sim_weight: [1, 5]}\nrows: {e: {}}\n", "rows: a study has named rows or a grid, not both"),
    ("search: {space: {sim_weight: {loguniform: [0, 10]}}}\n",
     "search.space.sim_weight: loguniform [0, 10]: a log scale needs lower > 0"),
    ("search: {space: {sim_weight: {normal: [0, 1]}}}\n",
     "search.space.sim_weight: {'normal': [0, 1]} is not a distribution; allowed: one of ['uniform', 'quniform', "
     "'loguniform', 'randint', 'choice']"),
    ("search: {space: {sim_weight: {uniform: [5, 1]}}}\n", "uniform [5, 1]: lower must be below upper"),
    ("search: {space: {lambda: {uniform: [0, 1]}}}\n", "search.space.lambda: 'lambda' is not a config field"),
    ("search: {searcher: hyperopt, space: {sim_weight: {uniform: [0, 1]}}}\n",
     "search.searcher: 'hyperopt' is not one this study file may name; allowed: ['optuna']"),
    ("scheduler: {type: asha, patience: 3}\n", "scheduler.patience: asha takes no argument 'patience'; allowed: "
                                                "['time_attr', 'metric', 'mode', 'max_t', 'grace_period',"),
    ("search: {searcher: {type: optuna, storage: x.db}, space: {sim_weight: {uniform: [0, 1]}}}\n",
     "search.searcher.storage: optuna takes no argument 'storage'; allowed: ['seed', 'sampler']"),
    ("search: {searcher: {type: optuna, sampler: annealing}, space: {sim_weight: {uniform: [0, 1]}}}\n",
     "search.searcher: optuna(sampler='annealing'): sampler 'annealing'; allowed: ['tpe', 'random',"),
    ("scheduler: {type: asha, max_t: -1}\n", "scheduler: asha(max_t=-1): "),
    ("table: no_such_table\n", "table: table 'no_such_table' is not a table of analysis/tables.py; allowed: "),
    ("figures: fid_figure\n", "figures: 'fid_figure' is not a figure set of analysis/plots.py; allowed: "
                              "['search_figures']"),
    ("seeds: [0, -1]\n", "seeds: [0, -1]; allowed: a count N (seeds 0..N-1) or a list of distinct integers >= 0"),
    ("mode: maximise\n", "mode: 'maximise'; allowed: max, min"),
    ("preset: huge\n", "preset: 'huge' is not a preset; allowed: ['paper-cifar10',"),
    ("overrides: {steps: 5}\n", "its overrides set steps=5, which sets the scale"),
    ("rows: [a, b\n", "not valid YAML at line 2, column 1: did not find expected ',' or ']'"),
    ("- a\n- b\n", "holds a list, not a mapping of the keys"),
    ("rows: {e: {generator: '${nowhere}'}}\n", "Interpolation key 'nowhere' not found"),
]


@pytest.mark.parametrize("text,says", BAD_FILES, ids=[s.split(":")[0] for _, s in BAD_FILES])
def test_a_bad_study_file_is_refused_with_one_line_naming_key_value_and_allowed(tmp_path, capsys, monkeypatch, text,
                                                                               says):
    from sqsp.tune import study_main
    ran = []  # the refusal comes before the run (and so before Ray), whatever Ray other tests keep running
    monkeypatch.setattr("sqsp.tune.cli.run_study", lambda *a, **k: ran.append(1))
    path = _write(tmp_path, text)
    rc = study_main(None, ["--config", path, "--storage", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"python -m sqsp.tune: error: study file {path}: "), err
    assert says in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not ran and not (tmp_path / "results").exists()


def test_bad_command_lines_are_refused_before_ray(tmp_path, capsys):
    """--config, --grid and dotted --set mistakes, and one case as a user runs it (exit 2, one line)."""
    import subprocess
    import sys
    from sqsp.tune import study_main
    good = _write(tmp_path, TINY_YAML)
    cases = [(["--config", str(tmp_path / "none.yaml")], f"--config {tmp_path / 'none.yaml'}: no such file"),
             (["--grid", "sim_weight"], "--grid 'sim_weight' is not of the form FIELD=V1,V2,..."),
             (["--grid", "seed=1,2"], "--grid 'seed=1,2': 'seed' is not a config field a grid sweeps (seeds: --seeds)"),
             (["--grid", "syn_ratio=0.5,2"], "syn_ratio=2.0 is outside (0, 1]"),
             (["--grid", "sim_weight=1,2", "--grid", "sim_weight=3"], "sim_weight is given twice"),
             (["--config", good, "--grid", "sim_weight=1,2"], "--grid: study 'tiny' declares named rows"),
             (["--config", good, "--set", "rows.e.nope=1"], "rows.e: unknown config field 'nope'"),
             (["--config", good, "--set", "seeds=[0,0]"], "seed(s) [0] appear more than once"),
             ([], "give --config FILE (a study file) or --grid FIELD=V1,V2,..."),]
    for argv, says in cases:
        rc, err = study_main(None, [*argv, "--storage", str(tmp_path / "results")]), capsys.readouterr().err
        assert rc == 2 and says in err and len(err.strip().splitlines()) == 1, (argv, err)
    out = subprocess.run([sys.executable, "-m", "sqsp.tune", "--config", _write(tmp_path, "rowz: {}\n", "bad.yaml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("python -m sqsp.tune: error: study file "), out.stderr
    assert "rowz: unknown key" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


# -------------------------------------------------------------------------------------------------
# end to end, on the session's private Ray (conftest.py): each test runs a few 2-step trials
# -------------------------------------------------------------------------------------------------

def _run(capsys, *argv):
    from sqsp.tune import study_main
    capsys.readouterr()
    rc = study_main(None, [*argv, "--loggers", "none"])
    out, err = capsys.readouterr()
    return rc, out, err


def _configs(folder):
    """Every trial's config, by row and seed (what a re-run must repeat)."""
    from sqsp import results
    from sqsp.config import TrainConfig
    trials = results.read_trials(str(folder))
    fields = [f for f in TrainConfig().to_dict() if f in trials]
    return {(r["row"], r["seed"]): {f: r[f] for f in fields} for _, r in trials.iterrows()}, trials


@pytest.mark.slow
def test_a_yaml_study_runs_resumes_prints_its_table_and_reruns_from_its_study_yaml(ray_session, tmp_path, capsys):
    path = _write(tmp_path, TINY_YAML, "tiny.yaml")
    rc, out, err = _run(capsys, "--config", path, "--storage", str(tmp_path / "results"))
    assert rc == 0, err[-3000:]
    assert "| e | – |" in out and "| d | – |" in out and "dataset: digits" in out, out
    assert "Table 3" not in out  # a study of one's own sets no paper figure beside its rows
    folder = tmp_path / "results" / "tiny"
    first, trials = _configs(folder)
    assert sorted(first) == [("d", 0), ("d", 1), ("e", 0), ("e", 1)]
    assert first[("d", 0)]["cov_weight"] == 0.0 and first[("e", 1)]["cov_weight"] == 1.0
    assert (trials["status"] == "completed").all() and set(trials["steps"]) == {2}

    # --resume: the finished study is restored, not re-run, and prints the same table
    rc, again, err = _run(capsys, "--config", path, "--storage", str(tmp_path / "results"), "--resume")
    assert rc == 0, err[-3000:]
    assert again.split("\n| e |")[1] == out.split("\n| e |")[1]
    assert sorted(_configs(folder)[1]["trial_id"]) == sorted(trials["trial_id"])
    # a resume with another declaration is refused
    rc, _, err = _run(capsys, "--config", path, "--storage", str(tmp_path / "results"), "--resume", "--set",
                      "seeds=[0]")
    assert rc == 2 and "seeds: [0, 1] then, [0] now" in err, err

    # the folder's study.yaml runs the same trials elsewhere, from another directory
    saved = folder / "study.yaml"
    assert "set:" in saved.read_text() and "cov_weight: 0.0" in saved.read_text()
    rc, rerun, err = _run(capsys, "--config", str(saved), "--storage", str(tmp_path / "elsewhere"))
    assert rc == 0, err[-3000:]
    assert "| e | – |" in rerun
    second, _ = _configs(tmp_path / "elsewhere" / "tiny")
    assert second == first
    # and resumes the study it was saved from, as the file that started it does
    rc, again, err = _run(capsys, "--config", str(saved), "--storage", str(tmp_path / "results"), "--resume")
    assert rc == 0 and again.split("\n| e |")[1] == out.split("\n| e |")[1], err[-3000:]
    spec = lambda p: json.loads((p / "study.json").read_text())["fixed"]  # noqa: E731
    assert spec(tmp_path / "elsewhere" / "tiny") == spec(folder)


@pytest.mark.slow
def test_a_command_line_sweep_runs_resumes_and_prints_its_table(ray_session, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = [f"--set={k}={v}" for k, v in TINY.items()]
    argv = ["--grid", "sim_weight=1,5", "--seeds", "1", "--set", "name=lam", *tiny]
    rc, out, err = _run(capsys, *argv)
    assert rc == 0, err[-3000:]
    assert "| sim_weight=1 | – |" in out and "| sim_weight=5 | – |" in out, out
    _, trials = _configs(tmp_path / "results" / "lam")
    assert sorted(trials["sim_weight"]) == [1.0, 5.0] and set(trials["seed"]) == {0} and trials["row"].isna().all()
    rc, again, err = _run(capsys, *argv, "--resume")
    assert rc == 0 and "| sim_weight=5 | – |" in again, err[-3000:]
    rc, _, err = _run(capsys, *argv[:1], "sim_weight=1,25", *argv[2:], "--resume")
    assert rc == 2 and "grid: {'sim_weight': [1.0, 5.0]} then, {'sim_weight': [1.0, 25.0]} now" in err, err
    # its study.yaml holds the grid and the command line's settings
    from sqsp.tune.study_file import read_study
    saved = read_study(tmp_path / "results" / "lam" / "study.yaml")
    assert saved.grid == {"sim_weight": [1.0, 5.0]} and saved.settings["steps"] == 2 and list(saved.seeds) == [0]


def test_a_searched_study_saved_as_run_reads_back_with_its_flags_and_settings(tmp_path, monkeypatch):
    """study.yaml keeps what the command line changed: the budget, the confirmation, early
    stopping switched off, the preset's --set (a relative path made absolute as the trials saw it)."""
    import argparse
    import dataclasses
    from sqsp.tune import apply_search_flags
    from sqsp.tune.folder import write_study
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    study = read_study(ROOT / "studies" / "loss_weights.yaml")
    args = argparse.Namespace(num_samples=5, confirm_top=2, confirm_seeds="7,8", early_stopping="off",
                              sampler="random", sampler_seed=4, pruner=None)
    chosen = dataclasses.replace(apply_search_flags(study, args), preset="smoke")
    user = {"steps": 3, "dataset": "cifar10", "data_root": "data"}
    write_study(str(tmp_path / "out"), chosen, {"overrides": user})
    saved = read_study(tmp_path / "out" / "study.yaml")
    assert saved.settings == {**user, "data_root": str(tmp_path / "data")}
    assert (saved.search.num_samples, saved.search.confirm_top, list(saved.search.confirm_seeds)) == (5, 2, [7, 8])
    assert saved.scheduler is None and saved.stopper is None and saved.figures is study.figures
    assert saved.search.searcher.sqsp_sampler == {"sampler": "random", "seed": 4}  # --sampler, --sampler-seed
    assert describe(saved) == describe(dataclasses.replace(chosen, settings=saved.settings))
    # --pruner median builds a scheduler of its own: written back too
    args = argparse.Namespace(**{**vars(args), "early_stopping": "on", "pruner": "median"})
    write_study(str(tmp_path / "pruned"), apply_search_flags(study, args), {"overrides": {}})
    pruned = read_study(tmp_path / "pruned" / "study.yaml").scheduler
    assert type(pruned).__name__ == "MedianStoppingRule" and pruned._metric == "val_knn_acc"
    assert json.loads((tmp_path / "out" / "study.json").read_text()) == {"overrides": user}
