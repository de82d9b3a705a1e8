"""Every table the command line prints, in every format it offers: Markdown, LaTeX and CSV for
a study's table, a searched study's two tables and the two figures' tables (no Ray)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import plots, tables
from analysis.tables import Table, search_table
from sqsp import results
from sqsp.config import preset
from sqsp.results import TrialRecord

ROOT = Path(__file__).resolve().parents[1]
SEARCH = {"s0": (5.0, 61.0), "s1": (20.0, 70.0), "s2": (80.0, 40.0)}  # trial -> (λ, val probe)
CONFIRM = {"s1": [66.0, 68.0, 64.0], "s0": [60.0, 62.0, 58.0]}      # candidate -> val probe on seeds 1-3


def _record(tid, sim_weight, acc, seed, row=None, **kw):
    cfg = preset("smoke", {"sim_weight": sim_weight, "seed": seed, "val_fraction": 0.2}).to_dict()
    last = {"training_iteration": 1, "step": 10, "progress": 1.0, "val_probe_acc": acc, "probe_acc": acc - 1,
            "knn_acc": acc - 5, "done": True, "final": True, "collapsed": False}
    return TrialRecord(tid, cfg, row, [last], **kw)


@pytest.fixture()
def searched(tmp_path):
    recs = [_record(t, lam, acc, 0, phase="search", number=i) for i, (t, (lam, acc)) in enumerate(SEARCH.items())]
    recs += [_record(f"{t}-c{seed}", SEARCH[t][0], acc, seed, phase="confirm", confirms=t)
             for t, accs in CONFIRM.items() for seed, acc in enumerate(accs, start=1)]
    meta = {"sqsp_table": json.dumps(Table(search_table, ("sim_weight",)).spec), "sqsp_metric": "val_probe_acc",
            "sqsp_mode": "max"}
    results.write_study(str(tmp_path / "search"), "search", recs, metadata=meta)
    return tmp_path / "search"


def _print(folder, *flags, capsys):
    assert tables.main([str(folder), *flags]) == 0
    return capsys.readouterr().out


def test_a_search_prints_both_tables_in_markdown_and_latex_and_one_table_as_csv(searched, capsys):
    md = _print(searched, capsys=capsys)
    assert "Confirmation: the 2 best search trials" in md and "Search trials" in md and "| 1 | s1 |" in md
    latex = _print(searched, "--latex", capsys=capsys)
    assert latex.count(r"\begin{tabular}") == 2 and r"$\pm$" in latex and "±" not in latex and "λ" not in latex
    csv = pd.read_csv(io.StringIO(_print(searched, "--csv", capsys=capsys)))
    assert list(csv["trial_id"]) == ["s1", "s0", "s2"]  # every search trial, best first
    by = csv.set_index("trial_id")
    assert by.loc["s1", "confirm_rank"] == 1 and by.loc["s0", "confirm_rank"] == 2 and pd.isna(by.loc["s2", "confirm_rank"])
    assert by.loc["s1", "confirm_val_probe_acc_mean"] == pytest.approx(66.0)
    assert by.loc["s0", "confirm_val_probe_acc_n"] == 3 and by.loc["s1", "confirm_seeds"] == "1,2,3"


def _cka_frame():
    """Two panels of appendix Fig. 1 as layer_similarity.parquet holds them, two seeds."""
    rows = []
    for seed in (0, 1):
        for panel, a_layers, b_layers in (("generator", ["b4", "b8"], ["b4", "b8"]),
                                          ("generator-student", ["b4", "b8"], ["layer1", "layer2"])):
            for i, a in enumerate(a_layers):
                for j, b in enumerate(b_layers):
                    cka = 1.0 if (panel == "generator" and i == j) else 0.5 + 0.1 * (i + j) + 0.01 * seed
                    rows.append({"seed": seed, "panel": panel, "a": a, "b": b, "a_index": i, "b_index": j, "cka": cka})
    return pd.DataFrame(rows)


def _points_frame():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    return pd.concat([pd.DataFrame({"seed": seed, "representation": rep, "sample": np.arange(60), "label": labels,
                                    "umap_x": rng.normal(size=60), "umap_y": rng.normal(size=60), "dim": 4,
                                    "features": list(rng.normal(size=(60, 4)).astype(np.float32))})
                      for seed in (0, 1) for rep in ("latent", "generator")], ignore_index=True)


@pytest.mark.parametrize("file,frame", [("representations.parquet", _points_frame),
                                        ("layer_similarity.parquet", _cka_frame)])
def test_the_figures_tables_print_in_every_format(tmp_path, capsys, file, frame):
    results.write_table(frame(), str(tmp_path / "fig"), file, kind=file.split(".")[0], info={"generator": "g"})
    md = _print(tmp_path / "fig", capsys=capsys)
    assert md.startswith("| panel |") and "\n\n" in md  # the table, then its notes
    latex = _print(tmp_path / "fig", "--latex", capsys=capsys)
    assert latex.startswith(r"\begin{tabular}") and r"\bottomrule" in latex and "±" not in latex
    assert latex.splitlines()[2].count(" & ") == md.splitlines()[0].count(" | ")  # as many columns
    csv = pd.read_csv(io.StringIO(_print(tmp_path / "fig", "--csv", capsys=capsys)))
    assert len(csv) == 2 and "panel" in csv or "representation" in csv


def test_a_closed_pipe_ends_a_command_quietly():
    """``sqsp-tables … | head``: the reader closes the pipe early; no BrokenPipeError traceback.
    (Every command runs its main through ``cli.run``; the output is larger than a pipe's buffer,
    so the write meets the closed pipe.)"""
    code = "import sys; from sqsp import cli; sys.exit(cli.run('sqsp-tables', lambda: print('x' * 1_000_000)))"
    out = subprocess.run(f"{sys.executable} -c \"{code}\" | head -c 10; exit ${{PIPESTATUS[0]}}", shell=True,
                         executable="/bin/bash", cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout == "x" * 10 and out.stderr == "" and out.returncode == 141, out


def test_fig6_is_refused_for_a_study_of_one_generator(tmp_path, capsys):
    recs = [_record(f"{row}{s}", 25.0, 60.0 + s, s, row=row) for row in "ef" for s in range(3)]
    for r in recs:
        r.reports[-1].update(generator_fid=18.7, generator_fid_extractor="classifier-digits-m", generator_step=2000)
    results.write_study(str(tmp_path / "ablation"), "ablation", recs)
    with pytest.raises(SystemExit) as e:
        plots.main([str(tmp_path / "ablation")])
    assert e.value.code == 2 and "reads one generator (FID 18.70)" in capsys.readouterr().err
    assert not (tmp_path / "ablation" / "fig6.png").exists()


def test_the_plots_help_ends_on_a_whole_sentence(capsys):
    with pytest.raises(SystemExit):
        plots.main(["--help"])
    help_text = capsys.readouterr().out
    assert "appendix\nFig. 1, CKA between layers." in help_text
