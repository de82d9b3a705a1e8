"""analysis/tables.py: Table 3 from a trials.parquet the test writes (no Ray)."""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.paper_numbers import TABLE3_CIFAR10
from analysis.tables import Table, ablation_table, format_table
from sqsp import results
from sqsp.config import preset
from sqsp.results import TrialRecord

ROOT = Path(__file__).resolve().parents[1]
ROWS = {  # the ablation's rows, as in studies/ablation.py
    "a": dict(syn_augment=False, squeeze=False, var_weight=0.0, cov_weight=0.0, syn_ratio=1.0),
    "b": dict(syn_augment=True, squeeze=False, var_weight=0.0, cov_weight=0.0, syn_ratio=1.0),
    "c": dict(syn_augment=True, squeeze=True, var_weight=0.0, cov_weight=0.0, syn_ratio=1.0),
    "e": dict(syn_augment=True, squeeze=True, syn_ratio=1.0),
    "f": dict(syn_augment=True, squeeze=True),
}
PROBE = {"a": [70.0, 72.0, 77.0], "b": [80.0, 81.0, 85.5], "c": [10.0, 11.0, 9.5], "e": [88.0, 90.0, None],
         "f": [93.0]}
UNTRAINED = [60.0, 64.0, 59.0]  # the step-0 backbone of each seed (the same for every row)


def write_study(folder: Path) -> None:
    recs = []
    for row, accs in PROBE.items():
        for seed, acc in enumerate(accs):
            cfg = preset("smoke", {**ROWS[row], "seed": seed}).to_dict()
            tid = f"{row}{seed}"
            if acc is None:  # a failed seed: no accuracy, counted apart
                recs.append(TrialRecord(tid, cfg, row, [], error="RuntimeError: worker died"))
                continue
            last = {"training_iteration": 1, "step": 10, "probe_acc": acc, "knn_acc": acc - 5, "done": True,
                    "final": True, "collapsed": row == "c", "init_probe_acc": UNTRAINED[seed],
                    "raw_probe_acc": 68.5, "raw_knn_acc": 81.25}
            recs.append(TrialRecord(tid, cfg, row, [last]))
    # as run_study writes it: the table studies/ablation.py declares, recorded in the file
    results.write_study(str(folder), "ablation", recs, metadata={"sqsp_table": json.dumps(Table(ablation_table).spec)})


@pytest.fixture()
def study(tmp_path):
    write_study(tmp_path / "ablation")
    return tmp_path / "ablation"


def test_mean_std_n_from_parquet(study):
    table = ablation_table(pd.read_parquet(study / "trials.parquet")).set_index("row")
    for row, accs in PROBE.items():
        ok = [a for a in accs if a is not None]
        assert table.loc[row, "probe_n"] == len(ok)
        assert table.loc[row, "probe_mean"] == pytest.approx(statistics.mean(ok))
        if len(ok) > 1:
            assert table.loc[row, "probe_std"] == pytest.approx(statistics.stdev(ok))  # sample std
            assert table.loc[row, "knn_std"] == pytest.approx(statistics.stdev(ok))
        else:
            assert math.isnan(table.loc[row, "probe_std"])
        assert table.loc[row, "knn_mean"] == pytest.approx(statistics.mean(ok) - 5)
        assert table.loc[row, "paper_cifar10"] == TABLE3_CIFAR10[row]
        gains = [a - UNTRAINED[seed] for seed, a in enumerate(accs) if a is not None]
        assert table.loc[row, "gain_mean"] == pytest.approx(statistics.mean(gains))  # paired by seed
        assert table.loc[row, "gain_n"] == len(gains)
    assert table.loc["a", "gain_std"] == pytest.approx(statistics.stdev([10.0, 8.0, 18.0]))
    mean, std, n = table.attrs["untrained"]
    assert (mean, n) == (pytest.approx(statistics.mean(UNTRAINED)), 3) and std == pytest.approx(statistics.stdev(UNTRAINED))
    assert table.loc["e", "failed"] == 1 and table.loc["e", "trials"] == 3
    assert table.loc["c", "collapsed"] == 3 and table.loc["a", "collapsed"] == 0


def test_component_check_marks(study):
    table = ablation_table(pd.read_parquet(study / "trials.parquet")).set_index("row")
    marks = table[["L_RD", "A", "T_phi", "L_var", "L_cov", "Span"]].astype(int).astype(str).agg("".join, axis=1)
    assert marks.to_dict() == {"a": "100000", "b": "110000", "c": "111000", "e": "111110", "f": "111111"}


def test_formats(study):
    table = ablation_table(pd.read_parquet(study / "trials.parquet"))
    md = format_table(table)
    assert "| c | ✓ | ✓ | ✓ |  |  |  | 10.17 ± 0.76 (n=3) | -50.83 ± 1.89 (n=3) |" in md
    # the three reference rows: chance, raw pixels (one value each) and the untrained backbone (per seed)
    lines = md.splitlines()
    ref = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in lines
           if line.startswith("| *")}
    assert list(ref) == ["*chance*", "*raw pixels*", "*untrained backbone*"]
    probe, knn = 7, 9  # row, 6 components, probe, vs untrained, kNN
    assert (ref["*chance*"][probe], ref["*chance*"][knn]) == ("10.00", "10.00")
    assert (ref["*raw pixels*"][probe], ref["*raw pixels*"][knn]) == ("68.50", "81.25")
    assert ref["*untrained backbone*"][probe] == "61.00 ± 2.65 (n=3)" and ref["*untrained backbone*"][8] == ""
    assert "all 3/3" in md and "74.20" in md
    assert "| f | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | 93.00 (n=1) |" in md
    latex = format_table(table, "latex")
    assert r"\begin{tabular}" in latex and r"$\pm$" in latex and r"\checkmark" in latex
    csv = format_table(table, "csv")
    assert csv.splitlines()[0].startswith("row,L_RD,A,T_phi,L_var,L_cov,Span,probe_mean,probe_std,probe_n")
    with pytest.raises(ValueError, match="format"):
        format_table(table, "html")


def test_command_line_reads_only_parquet(study):
    out = subprocess.run([sys.executable, "analysis/tables.py", str(study)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("| row | L_RD | A | T_φ |")
    csv = subprocess.run([sys.executable, "-X", "importtime", "analysis/tables.py", str(study), "--csv"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert csv.returncode == 0 and csv.stdout.count("\n") == 1 + len(PROBE)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in csv.stderr.splitlines() if "|" in line}
    assert not imported & {"ray", "torch"}  # runs on a laptop with results copied from a cluster
    bad = subprocess.run([sys.executable, "analysis/tables.py", str(study / "missing")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing" in bad.stderr


def test_diverged_apart_from_failed_and_no_collapse_verdict_without_a_finished_trial(tmp_path, capsys):
    from analysis.tables import main
    cfg = preset("smoke", ROWS["e"]).to_dict()
    done = {"training_iteration": 1, "step": 10, "probe_acc": 80.0, "knn_acc": 70.0, "done": True, "final": True,
            "collapsed": False}
    recs = [TrialRecord("e0", cfg, "e", [done]),
            TrialRecord("e1", {**cfg, "seed": 1}, "e", [{"training_iteration": 1, "diverged": True, "done": True,
                                                         "error": "TrainingDiverged: loss became nan by step 3"}]),
            TrialRecord("c0", preset("smoke", ROWS["c"]).to_dict(), "c", [], error="RuntimeError: worker died"),
            TrialRecord("c1", preset("smoke", {**ROWS["c"], "seed": 1}).to_dict(), "c",
                        [{"training_iteration": 1, "failed": True, "done": True,
                          "error": "DatasetLayoutError: cifar10: malformed batch file x\nLooked in data root: /d"}])]
    results.write_study(str(tmp_path / "ablation"), "ablation", recs)
    trials = pd.read_parquet(tmp_path / "ablation" / "trials.parquet")
    assert list(trials.sort_values("trial_id")["status"]) == ["failed", "failed", "completed", "diverged"]
    table = ablation_table(trials).set_index("row")
    assert (table.loc["c", "failed"], table.loc["c", "diverged"], table.loc["e", "failed"],
            table.loc["e", "diverged"]) == (2, 0, 0, 1)
    md = format_table(ablation_table(trials))
    assert "| collapsed | failed | diverged | paper (CIFAR-10) |" in md
    assert "| – | 2 |  | 10.00 |" in md  # row c: no trial ran to its end, so no "collapsed: no"
    assert "| no |  | 1 | 87.67 |" in md

    assert main([str(tmp_path / "ablation")]) == 0
    out = capsys.readouterr().out
    assert out.index("| row |") < out.index("Trials without a result:")
    assert "- 1 trial failed (c0): RuntimeError: worker died" in out
    assert "- 1 trial failed (c1): DatasetLayoutError: cifar10: malformed batch file x\n" in out  # its first line
    assert "- 1 trial diverged (e1): TrainingDiverged: loss became nan by step 3" in out


def test_command_line_errors_are_one_line(study, tmp_path, capsys):
    from analysis.tables import main
    for location, says in ((tmp_path / "nowhere", "nowhere/trials.parquet does not exist; give a study folder"),
                           (study / "history.parquet", "is sqsp's history file, not its trials file"),
                           (study, None)):
        capsys.readouterr()
        rc = main([str(location)])
        err = capsys.readouterr().err
        if says is None:
            assert rc == 0
            continue
        assert rc == 2 and err.startswith("python analysis/tables.py: error: ") and says in err, err
        assert len(err.strip().splitlines()) == 1
    (tmp_path / "junk.parquet").write_text("not parquet")
    assert main([str(tmp_path / "junk.parquet")]) == 2
    assert "is not a Parquet file" in capsys.readouterr().err


def test_tables_print_the_paper_column_of_the_dataset_and_say_which_probe_they_show(tmp_path):
    """Table 2 run on CIFAR-100 stands beside the paper's CIFAR-100 column, not CIFAR-10's; the
    embedded digits beside CIFAR-10's, named as such; the probe number shown is named."""
    from analysis.paper_numbers import TABLE2, paper_column
    from analysis.tables import ssl_table
    rows = {"syn+real-vicreg": "vicreg", "syn+real-squeeze-and-span": "distill"}

    def write(dataset, probe, name):
        recs = []
        for i, (row, method) in enumerate(rows.items()):
            cfg = preset("smoke", {"method": method}).to_dict() | {"dataset": dataset, "probe": probe}
            last = {"training_iteration": 1, "step": 10, "probe_acc": 60.0, "probe_acc_best": 61.0, "knn_acc": 50.0,
                    "done": True, "collapsed": False}
            recs.append(TrialRecord(f"t{i}", cfg, row, [last], row_index=i))
        results.write_study(str(tmp_path / name), "ssl_baselines", recs)
        return pd.read_parquet(tmp_path / name / "trials.parquet")

    c100 = format_table(ssl_table(write("cifar100", "paper", "c100")))
    vicreg = next(line for line in c100.splitlines() if line.startswith("| syn+real-vicreg"))
    assert vicreg.endswith(f"| {TABLE2[('syn+real', 'vicreg')]['cifar100']:.2f} |") and "65.22" in vicreg
    assert "paper: Table 2, CIFAR-100" in c100 and "probe_acc_best" in c100 and "last epoch" in c100
    digits = format_table(ssl_table(write("digits-m", "fast", "dg")))
    assert "paper: Table 2, CIFAR-10" in digits and "| 90.46 |" in digits and "the fast probe" in digits
    assert paper_column("blocks", "stl10")[0]["b64-b128"] == 73.08 and "b64-b128" not in paper_column("blocks", "")[0]
    assert paper_column("ssl", "imagefolder") == ({}, "no column for dataset 'imagefolder'")
    with pytest.raises(KeyError):
        paper_column("table9", "cifar10")
