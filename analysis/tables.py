"""Paper tables from a study's Parquet files (no Ray, no GPU: runs on copied results).

    python analysis/tables.py results/ablation            # Markdown (default)
    python analysis/tables.py results/ablation --latex
    python analysis/tables.py results/ablation --csv
    python analysis/tables.py results/representations      # Fig. 2's numbers per panel
    python analysis/tables.py results/layer_similarity     # appendix Fig. 1's CKA summary

In a notebook: ``ablation_table(pd.read_parquet("results/ablation/trials.parquet"))`` gives
the numbers as a DataFrame; ``format_table(table, "markdown" | "latex" | "csv")`` prints it.

Table 3 of the paper, per row label: the components the row's config switches on
(L_RD: sim_weight > 0, A: syn_augment, T_φ: squeeze, L_var: var_weight > 0, L_cov:
cov_weight > 0, Span: syn_ratio < 1), the linear-probe accuracy as mean ± std over seeds
(sample std, ddof=1) with n, the kNN accuracy likewise, how many of the row's trials
collapsed, failed or diverged, and the paper's CIFAR-10 figure for that row. A collapsed
trial counts in the mean (its accuracy is the point of row c); a failed or diverged one has
no accuracy and is counted apart.

Every table ends with three reference rows, the floors a representation must clear: chance
(100 / classes), raw pixels (the same kNN and fast linear probe on the flattened pixels,
``raw_*_acc``) and the untrained backbone (the student's own initialisation, evaluated at step
0 by every trial with ``eval_init``, on in ``smoke``; mean ± std over seeds). Each row's
"vs untrained" column is its gain over that initialisation, paired by seed.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from analysis.paper_numbers import (PAPER_CROSS_DATASET, PAPER_CROSS_DATASET_TARGETS, PAPER_DATASET_NAMES,
                                    PAPER_GENERATORS, TABLE3_CIFAR10, TABLE3_COMPONENTS, paper_column)
from sqsp.datasets import NUM_CLASSES
from sqsp.record import FAILED

COMPONENT_LABELS = {"L_RD": "L_RD", "A": "A", "T_phi": "T_φ", "L_var": "L_var", "L_cov": "L_cov", "Span": "Span"}
LATEX_LABELS = {"L_RD": r"$\mathcal{L}_{\text{RD}}$", "A": r"$\mathcal{A}$", "T_phi": r"$T_\phi$",
                "L_var": r"$\mathcal{L}_{\text{var}}$", "L_cov": r"$\mathcal{L}_{\text{cov}}$", "Span": "Span"}


def components(cfg: pd.Series) -> dict[str, bool]:
    """Which of Table 3's components a trial's config switches on."""
    return {"L_RD": bool(cfg["sim_weight"] > 0), "A": bool(cfg["syn_augment"]), "T_phi": bool(cfg["squeeze"]),
            "L_var": bool(cfg["var_weight"] > 0), "L_cov": bool(cfg["cov_weight"] > 0),
            "Span": bool(cfg["syn_ratio"] < 1)}


def ablation_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One line per row label: components, probe and kNN mean/std/n, collapse and failure counts."""
    _need_rows(trials, "ablation_table")
    out = []
    for label, g in trials.groupby("row", sort=True):
        out.append({"row": label, **components(g.iloc[0]), **row_stats(g),
                    "paper_cifar10": TABLE3_CIFAR10.get(str(label), float("nan"))})
    return _with_notes(pd.DataFrame(out), trials)


def study_table(trials: pd.DataFrame, *, columns: Sequence[str] = (), paper: dict[str, float] | None = None,
                paper_label: str = "paper") -> pd.DataFrame:
    """The table of any study declared as named rows, rows in the study's order: the given
    config/metric ``columns`` (taken from the row's first trial that has them), then the
    same statistics as the ablation table, and ``paper[row]`` for reference when given."""
    _need_rows(trials, "study_table")
    # the study's declared order (row_index), else the order Ray created the trials in
    keys = [c for c in ("row_index", "trial_id") if c in trials and trials[c].notna().any()]
    ordered = trials.sort_values(keys, kind="stable") if keys else trials
    out = []
    for label, g in ordered.groupby("row", sort=False):
        line: dict = {"row": label}
        for c in columns:
            vals = g[c].dropna() if c in g else pd.Series(dtype=object)
            line[c] = vals.iloc[0] if len(vals) else None
        line.update(row_stats(g))
        if paper is not None:
            line[paper_label] = paper.get(str(label), float("nan"))
        out.append(line)
    table = _with_notes(pd.DataFrame(out), trials)
    table.attrs["columns"], table.attrs["paper_label"] = list(columns), paper_label if paper is not None else None
    if paper is None:  # a study of one's own: no paper figure to set beside it
        table.attrs["paper_note"] = ""
    return table


def grid_table(trials: pd.DataFrame, *, columns: Sequence[str] = ()) -> pd.DataFrame:
    """The table of a study declared as a grid (``--grid sim_weight=1,5,25``, a study file's
    ``grid:``): one line per point of the grid, named by the ``columns`` (its fields) and their
    values, in the order Ray ran them, with the statistics of ``study_table``."""
    def label(line) -> str:
        return ", ".join(f"{c}={line[c] if isinstance(line[c], str) else _value(line[c])}" for c in columns) or "base"
    labelled = trials.assign(row=[label(line) for _, line in trials.iterrows()], row_index=None)
    return study_table(labelled)


def row_stats(g: pd.DataFrame) -> dict:
    """Probe and kNN mean/std/n over a row's trials, the paired gain over the untrained
    backbone, and how many trials collapsed, failed or did not finish."""
    line: dict = {}
    for metric, name in (("probe_acc", "probe"), ("knn_acc", "knn")):
        vals = pd.to_numeric(g[metric], errors="coerce").dropna() if metric in g else pd.Series(dtype=float)
        line[f"{name}_mean"] = vals.mean() if len(vals) else float("nan")
        line[f"{name}_std"] = vals.std(ddof=1) if len(vals) > 1 else float("nan")
        line[f"{name}_n"] = int(len(vals))
    mmd = pd.to_numeric(g["mmd_syn_real"], errors="coerce").dropna() if "mmd_syn_real" in g else pd.Series(dtype=float)
    line["mmd_mean"] = mmd.mean() if len(mmd) else float("nan")
    line["mmd_std"] = mmd.std(ddof=1) if len(mmd) > 1 else float("nan")
    line["mmd_n"] = int(len(mmd))
    gain = _gain(g)
    line["gain_mean"] = gain.mean() if len(gain) else float("nan")
    line["gain_std"] = gain.std(ddof=1) if len(gain) > 1 else float("nan")
    line["gain_n"] = int(len(gain))
    status = g["status"].astype(str)
    line["trials"] = len(g)
    line["collapsed"] = int((status == "collapsed").sum())
    line["failed"] = int((status == "failed").sum())
    line["diverged"] = int((status == "diverged").sum())
    line["skipped"] = int((status == "skipped").sum())
    line["unfinished"] = int((~status.isin(("completed", "collapsed", "skipped", *FAILED))).sum())
    needs = g.loc[status == "skipped", "error"].dropna() if "error" in g else pd.Series(dtype=object)
    line["needs"] = str(needs.iloc[0]) if len(needs) else None  # what a skipped row lacks
    return line


def _need_rows(trials: pd.DataFrame, who: str) -> None:
    if "row" not in trials or trials["row"].isna().all():
        raise ValueError(f"{who} needs a study declared as named rows (a 'row' column)")


def _with_notes(table: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    table.attrs["chance"] = _chance(trials)
    table.attrs["untrained"] = _untrained(trials)
    table.attrs["references"] = reference_rows(trials)
    table.attrs["dataset"] = ", ".join(sorted(trials["dataset"].dropna().astype(str).unique())) if "dataset" in trials else ""
    table.attrs["probe"] = sorted(trials["probe"].dropna().astype(str).unique()) if "probe" in trials else []
    return table


PROBE_NOTES = {
    "paper": "linear probe: the paper protocol's last epoch (probe_acc); the authors' tables report the best of its "
             "evaluations every 5 epochs, recorded as probe_acc_best",
    "fast": "linear probe: the fast probe (logistic regression on frozen features, one fit)",
}
"""Which probe number a table shows, said under every table."""


def _gain(g: pd.DataFrame) -> pd.Series:
    """Probe accuracy minus the same trial's untrained-backbone accuracy (paired by seed)."""
    if "init_probe_acc" not in g or "probe_acc" not in g:
        return pd.Series(dtype=float)
    return (pd.to_numeric(g["probe_acc"], errors="coerce") - pd.to_numeric(g["init_probe_acc"], errors="coerce")).dropna()


def _untrained(trials: pd.DataFrame) -> tuple[float, float, int] | None:
    """Mean, std and n of the untrained backbone's probe accuracy, one value per seed."""
    if "init_probe_acc" not in trials:
        return None
    per_seed = trials.dropna(subset=["init_probe_acc"]).groupby("seed")["init_probe_acc"].first()
    if per_seed.empty:
        return None
    return float(per_seed.mean()), float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"), len(per_seed)


def reference_rows(trials: pd.DataFrame) -> list[dict]:
    """Chance, raw pixels and the untrained backbone as rows with the tables' probe/kNN
    statistics. Raw pixels and chance do not depend on the seed: one value each."""
    def one(value) -> tuple[float, float, int]:
        return (float(value), float("nan"), 1) if value is not None and not pd.isna(value) else (float("nan"), float("nan"), 0)

    def per_seed(col: str) -> tuple[float, float, int]:
        if col not in trials:
            return float("nan"), float("nan"), 0
        v = pd.to_numeric(trials.dropna(subset=[col]).groupby("seed")[col].first(), errors="coerce").dropna()
        return (float(v.mean()) if len(v) else float("nan"), float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                len(v))

    rows = []
    chance = _chance(trials)
    if chance is not None:
        rows.append({"row": "chance", "probe": one(chance), "knn": one(chance)})
    if "raw_probe_acc" in trials or "raw_knn_acc" in trials:
        first = lambda c: trials[c].dropna().iloc[0] if c in trials and trials[c].notna().any() else None  # noqa: E731
        rows.append({"row": "raw pixels", "probe": one(first("raw_probe_acc")), "knn": one(first("raw_knn_acc"))})
    if "init_probe_acc" in trials or "init_knn_acc" in trials:
        rows.append({"row": "untrained backbone", "probe": per_seed("init_probe_acc"), "knn": per_seed("init_knn_acc")})
    return rows


def _chance(trials: pd.DataFrame) -> float | None:
    ds = trials["dataset"].dropna().unique() if "dataset" in trials else []
    return 100.0 / NUM_CLASSES[ds[0]] if len(ds) == 1 and ds[0] in NUM_CLASSES else None


def _mean_std(mean, std, n, *, pm: str = "±", signed: bool = False, digits: int = 2) -> str:
    if not n:
        return "–"
    s = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    s += f" {pm} {std:.{digits}f}" if n > 1 else ""
    return f"{s} (n={n})"


def _collapse(line) -> str:
    done = line["trials"] - line["failed"] - line.get("diverged", 0) - line["unfinished"] - line.get("skipped", 0)
    if done <= 0:  # no trial ran to its end: nothing to say either way
        return "–"
    if not line["collapsed"]:
        return "no"
    return f"{'all' if line['collapsed'] == done else 'some'} {line['collapsed']}/{done}"


COLUMN_LABELS = {"generator": "generator", "generator_arch": "architecture", "generator_conditional": "cond.",
                 "generator_step": "GAN step", "generator_fid": "FID", "generator_fid_extractor": "FID extractor",
                 "generator_confidence": "conf.", "generator_largest_class": "top class",
                 "generator_precision": "P", "generator_recall": "R", "generator_class_match": "cls match",
                 "generator_probe": "G probe",
                 "generator_blocks": "blocks", "method": "method", "syn_ratio": "α (syn. share)",
                 "teacher_source": "knowledge", "squeeze": "T_φ", "generator_blocks_read": "blocks read",
                 "lpips_net": "perceptual"}


INTEGER_COLUMNS = ("generator_step",)  # Parquet keeps metrics train() adds as float64


def _cell(v, check: str, *, integer: bool = False) -> str:
    if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)):  # None, NaN and pandas' NA
        return ""
    if integer:
        return str(int(v))
    if isinstance(v, (bool, np.bool_)):
        return check if v else ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.2f}"
    return str(v)


def _display(table: pd.DataFrame, *, check: str, pm: str, labels: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    ablation = all(c in table for c in TABLE3_COMPONENTS)
    cols = list(TABLE3_COMPONENTS) if ablation else list(table.attrs.get("columns", []))
    paper_col = "paper_cifar10" if ablation else table.attrs.get("paper_label")
    gains = "gain_n" in table and table["gain_n"].sum() > 0
    mmd = "mmd_n" in table and table["mmd_n"].sum() > 0 and table.attrs.get("show_mmd", False)
    diverged = "diverged" in table and table["diverged"].sum() > 0
    transfer = list(table.attrs.get("transfer", []))            # appendix Table 5: probes on other datasets
    papers = list(table.attrs.get("paper_columns", []))
    source = table.attrs.get("dataset") or "pretraining data"
    head = ["row", *(labels[c] if ablation else COLUMN_LABELS.get(c, c) for c in cols),
            "linear probe" if not transfer else f"linear probe ({source})",
            *(["vs untrained"] if gains else []), "kNN", *(["MMD² syn-real"] if mmd else []),
            *(f"linear probe → {t}" for t in transfer), "collapsed", "failed", *(["diverged"] if diverged else []),
            *(["paper (CIFAR-10)" if ablation else paper_col] if paper_col else []), *papers]
    body = []
    for _, line in table.iterrows():
        gain = [_mean_std(line["gain_mean"], line["gain_std"], line["gain_n"], pm=pm, signed=True)] if gains else []
        body.append([str(line["row"]), *(_cell(line[c], check, integer=c in INTEGER_COLUMNS) for c in cols),
                     _probe_cell(line, pm), *gain,
                     _mean_std(line["knn_mean"], line["knn_std"], line["knn_n"], pm=pm),
                     *([_mean_std(line["mmd_mean"], line["mmd_std"], line["mmd_n"], pm=pm, digits=4)] if mmd else []),
                     *(_mean_std(line[f"probe@{t}_mean"], line[f"probe@{t}_std"], line[f"probe@{t}_n"], pm=pm)
                       for t in transfer),
                     _collapse(line), str(line["failed"]) if line["failed"] else "",
                     *([str(line["diverged"]) if line["diverged"] else ""] if diverged else []),
                     *([_cell(line[paper_col], check)] if paper_col else []), *(_cell(line[c], check) for c in papers)])
    for ref in table.attrs.get("references", []):
        cell = lambda v: (f"{v[0]:.2f}" if v[2] == 1 and ref["row"] != "untrained backbone"  # noqa: E731
                          else _mean_std(*v, pm=pm))
        line = [f"*{ref['row']}*", *("" for _ in cols), cell(ref["probe"]), *([""] if gains else []), cell(ref["knn"])]
        body.append(line + [""] * (len(head) - len(line)))
    return head, body


def _probe_cell(line, pm: str) -> str:
    """The probe's mean ± std, or, for a row that never ran, what it needs."""
    if not line["probe_n"] and isinstance(line.get("needs"), str):
        return line["needs"]
    return _mean_std(line["probe_mean"], line["probe_std"], line["probe_n"], pm=pm)


def format_table(table: pd.DataFrame, fmt: str = "markdown") -> str:
    """A study table (``ablation_table``, ``study_table``) as ``markdown``, ``latex`` or ``csv`` text."""
    if fmt == "csv":
        return table.to_csv(index=False, float_format="%.4f")
    note = []
    if table.attrs.get("dataset"):
        note.append(f"dataset: {table.attrs['dataset']}")
    note.append("accuracy: top-1 %, mean ± sample std over seeds (n)")
    if table.attrs.get("references"):
        note.append("reference rows in italics: chance, the same probes on raw pixels, and the untrained "
                    "backbone (each trial's step 0)")
    note += [PROBE_NOTES[p] for p in table.attrs.get("probe", []) if p in PROBE_NOTES]
    paper_note = table.attrs.get("paper_note", "paper: Table 3, CIFAR-10")
    if paper_note:
        note.append(paper_note)
    note += table.attrs.get("extra_notes", [])
    if fmt == "markdown":
        head, body = _display(table, check="✓", pm="±", labels=COMPONENT_LABELS)
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(":--" if i == 0 else ":-:" for i in range(len(head))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines + ["", "; ".join(note)])
    if fmt == "latex":
        head, body = _display(table, check=r"\checkmark", pm=r"$\pm$", labels=LATEX_LABELS)
        lines = [r"\begin{tabular}{l" + "c" * (len(head) - 1) + "}", r"\toprule",
                 " & ".join(head) + r" \\", r"\midrule"]
        lines += [" & ".join(c.replace("_", r"\_") for c in r) + r" \\" for r in body]
        lines += [r"\bottomrule", r"\end{tabular}", "% " + "; ".join(note)]
        return "\n".join(lines)
    raise ValueError(f"format {fmt!r}; allowed: markdown, latex, csv")


_TEX = {"±": r"$\pm$", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$", "²": r"$^2$", "→": r"$\rightarrow$",
        "↔": r"$\leftrightarrow$", "−": "$-$", "✓": r"\checkmark", "λ": r"$\lambda$", "μ": r"$\mu$", "ν": r"$\nu$",
        "α": r"$\alpha$", "ρ": r"$\rho$", "φ": r"$\phi$", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#"}


def _tex(text: str) -> str:
    """Plain table text (the Markdown cells, unicode included) as LaTeX."""
    return "".join(_TEX.get(ch, ch) for ch in str(text)).replace("*", "")


def render_grid(head: Sequence[str], body: Sequence[Sequence[str]], fmt: str, *, align: Sequence[str] = (),
                notes: Sequence[str] = (), title: str = "") -> str:
    """One table of plain-text cells as Markdown or LaTeX (booktabs). The tables that are not
    Table 3's layout (a search's, the figures') build their cells once and print through here,
    so each prints in every format the command line offers."""
    if fmt == "markdown":
        align = list(align) or [":--"] + [":-:"] * (len(head) - 1)
        lines = ([title, ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines + (["", "; ".join(notes)] if notes else []))
    if fmt == "latex":
        lines = ([f"% {title}"] if title else []) + [r"\begin{tabular}{l" + "c" * (len(head) - 1) + "}", r"\toprule",
                                                    " & ".join(_tex(c) for c in head) + r" \\", r"\midrule"]
        lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in body]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"] + (["% " + "; ".join(notes)] if notes else []))
    raise ValueError(f"format {fmt!r}; allowed: markdown, latex, csv")


# ---------------------------------------------------------------------------------------------
# the other studies' tables (each studies/<name>.py declares its own: ``Table`` below)
# ---------------------------------------------------------------------------------------------
GENERATOR_COLUMNS = ("generator_arch", "generator_conditional", "generator_step", "generator_fid",
                     "generator_fid_extractor", "generator_confidence", "generator_largest_class",
                     "generator_precision", "generator_recall", "generator_class_match", "generator_probe")


def generators_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Appendix Table 7 and Fig. 6: accuracy by generator, with the FID each trial's generator
    had (recorded at run time), and Spearman's ρ between FID and accuracy over the rows."""
    squeeze = "syn_ratio" in trials and bool((pd.to_numeric(trials["syn_ratio"], errors="coerce") == 1.0).all())
    table = study_table(trials, columns=GENERATOR_COLUMNS, paper=PAPER_GENERATORS if squeeze else {},
                        paper_label="paper (Table 7)")
    table.attrs["paper_note"] = ("paper: appendix Table 7 (CIFAR-10, squeeze), for the architecture that matches"
                                 if squeeze else "paper: appendix Table 7 reports squeeze (α = 1), these rows ran "
                                 "squeeze and span (Fig. 6's curve); --set syn_ratio=1.0 for Table 7's")
    # sqsp.quality's measures where the trials recorded them (older results and official pickles have none)
    table.attrs["columns"] = [c for c in GENERATOR_COLUMNS if c in GENERATOR_COLUMNS[:5] or table[c].notna().any()]
    rho = fid_accuracy_correlation(table)
    if rho is not None:
        table.attrs["extra_notes"] = [f"Spearman ρ(FID, probe) over {rho[1]} generators = {rho[0]:+.2f} "
                                      "(Fig. 6: lower FID, higher accuracy, means ρ < 0)"]
    return table


def fid_accuracy_correlation(table: pd.DataFrame) -> tuple[float, int] | None:
    """Spearman's ρ between generator FID and mean probe accuracy over the table's rows (None
    with fewer than 3 rows that have both, or FIDs from more than one extractor)."""
    from scipy.stats import spearmanr
    ok = table.dropna(subset=["generator_fid", "probe_mean"])
    if len(ok) < 3 or ok["generator_fid_extractor"].nunique() > 1 or ok["generator_fid"].nunique() < 2:
        return None  # a rank correlation with a constant is undefined (NaN), not zero
    return float(spearmanr(ok["generator_fid"], ok["probe_mean"]).statistic), len(ok)


def blocks_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Appendix Table 6: accuracy by the generator blocks the teacher squeezes."""
    paper, column = paper_column("blocks", _dataset(trials))
    cols = ("generator_blocks", "generator_blocks_read") if "generator_blocks_read" in trials else ("generator_blocks",)
    table = study_table(trials, columns=cols, paper=paper, paper_label="paper (Table 6)")
    table.attrs["paper_note"] = (f"paper: appendix Table 6 ({column}, squeeze); a group takes the blocks of it the "
                                 "generator has ('blocks read': b16-b32 is b16 at 16 px)")
    return table


def _dataset(trials: pd.DataFrame) -> str:
    """The one data set a study's trials pretrained on ('' if none or several)."""
    ds = trials["dataset"].dropna().astype(str).unique() if "dataset" in trials else []
    return str(ds[0]) if len(ds) == 1 else ""


def ssl_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 2: SSL on real, synthetic and mixed data against squeeze and squeeze-and-span."""
    paper, column = paper_column("ssl", _dataset(trials))
    table = study_table(trials, columns=("method", "syn_ratio"), paper=paper, paper_label="paper (Table 2)")
    table.attrs["paper_note"] = f"paper: Table 2, {column}"
    return table


SYMBOLS = {"sim_weight": "λ", "var_weight": "μ", "cov_weight": "ν", "syn_ratio": "α"}
METRIC_LABELS = {"val_probe_acc": "val probe", "val_knn_acc": "val kNN", "probe_acc": "test probe",
                 "knn_acc": "test kNN"}


def _selection(trials: pd.DataFrame) -> tuple[str, str]:
    """The metric a searched study selected on and its direction, as its files record them."""
    meta = trials.attrs.get("sqsp", {})
    return meta.get("sqsp_metric", "probe_acc"), meta.get("sqsp_mode", "max")


def search_table(trials: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The search trials of a searched study, best first by the metric it selected on (see
    ``_selection``; trials without it last): the searched ``columns``, the validation and test
    accuracies, how far each trial ran (``progress``: 1 = to its end), status and error."""
    metric, mode = _selection(trials)
    search = trials[trials["phase"].fillna("search") == "search"] if "phase" in trials else trials
    keep = ["trial_id", *[c for c in columns if c in search], metric, "val_probe_acc", "val_knn_acc", "probe_acc",
            "knn_acc", "progress", "status", "error"]
    keep = [c for i, c in enumerate(keep) if c in search and c not in keep[:i]]
    table = search[keep].sort_values([metric, "trial_id"], ascending=[mode == "min", True], na_position="last")
    table = table.reset_index(drop=True)
    table.attrs.update(metric=metric, mode=mode, columns=[c for c in columns if c in search])
    return table


def confirm_table(trials: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame | None:
    """The confirmation of a searched study, one line per candidate (the search trial it
    re-runs), ranked by the mean of the selection metric over the confirmation seeds: the
    searched values, that mean ± sample std (n), the test accuracies likewise (reported, never
    used to rank), the candidate's own search value, and the outcomes of its seeds. None
    when the study has no confirmation trials."""
    if "phase" not in trials or not (trials["phase"] == "confirm").any():
        return None
    metric, mode = _selection(trials)
    search = trials[trials["phase"] == "search"].set_index("trial_id")
    out = []
    for source, g in trials[trials["phase"] == "confirm"].groupby("confirms", sort=False):
        line: dict = {"confirms": source, **{c: g[c].iloc[0] for c in columns if c in g}}
        for m in dict.fromkeys([metric, "val_probe_acc", "probe_acc", "knn_acc"]):
            vals = pd.to_numeric(g[m], errors="coerce").dropna() if m in g else pd.Series(dtype=float)
            line[f"{m}_mean"] = vals.mean() if len(vals) else float("nan")
            line[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else float("nan")
            line[f"{m}_n"] = int(len(vals))
        line["search_value"] = search[metric].get(source, float("nan")) if metric in search else float("nan")
        line["seeds"] = ",".join(str(s) for s in sorted(g["seed"].dropna().astype(int)))
        status = g["status"].astype(str)
        line.update(trials=len(g), collapsed=int((status == "collapsed").sum()),
                    failed=int(status.isin(FAILED).sum()),
                    unfinished=int((~status.isin(("completed", "collapsed", *FAILED))).sum()))
        out.append(line)
    table = pd.DataFrame(out).sort_values([f"{metric}_mean", "confirms"], ascending=[mode == "min", True],
                                          na_position="last").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    table.attrs.update(metric=metric, mode=mode, columns=[c for c in columns if c in trials])
    return table


def _label(c: str) -> str:
    return f"{SYMBOLS[c]} {c}" if c in SYMBOLS else METRIC_LABELS.get(c, c)


def _split_note(trials: pd.DataFrame, metric: str) -> str:
    fraction = trials["val_fraction"].dropna().unique() if "val_fraction" in trials else []
    val = (f"val = the validation split ({float(fraction[0]):.0%} of the training images, stratified, by digit scan "
           "for digits-m), probe fitted on the rest of the training images" if len(fraction) == 1 and fraction[0] > 0
           else "val = a validation split carved from the training images")
    return (f"selected and ranked on {METRIC_LABELS.get(metric, metric)}; {val}; test = the test split, probe "
            "fitted on all training images, reported only, never used for selection")


def format_search(table: pd.DataFrame, fmt: str = "markdown", confirm: pd.DataFrame | None = None) -> str:
    """A searched study's tables: the confirmation (when there is one), then every search trial.
    As CSV, one machine-readable table: every search trial, with its confirmation's rank and
    means over the confirmation seeds beside it (empty for the trials not confirmed)."""
    if fmt == "csv":
        return search_csv(table, confirm).to_csv(index=False, float_format="%.4f")
    metric = table.attrs.get("metric", "probe_acc")
    parts = []
    if confirm is not None:
        cols = confirm.attrs.get("columns", [])
        seeds = confirm["seeds"].iloc[0] if len(confirm) else ""
        head = ["rank", "search trial", *(_label(c) for c in cols), f"{_label(metric)} (selection)",
                *(["val probe"] if metric != "val_probe_acc" and "val_probe_acc_n" in confirm else []),
                "test probe (reported)", "test kNN", f"search {_label(metric)} (seed {_search_seed(table)})",
                "collapsed", "failed"]
        body = []
        for _, r in confirm.iterrows():
            cells = [str(r["rank"]), str(r["confirms"]), *(_value(r[c]) for c in cols),
                     _mean_std(r[f"{metric}_mean"], r[f"{metric}_std"], r[f"{metric}_n"])]
            if metric != "val_probe_acc" and "val_probe_acc_n" in confirm:
                cells.append(_mean_std(r["val_probe_acc_mean"], r["val_probe_acc_std"], r["val_probe_acc_n"]))
            cells += [_mean_std(r["probe_acc_mean"], r["probe_acc_std"], r["probe_acc_n"]),
                      _mean_std(r["knn_acc_mean"], r["knn_acc_std"], r["knn_acc_n"]), _cell(r["search_value"], "✓"),
                      f"{r['collapsed']}/{r['trials']}" if r["collapsed"] else "",
                      str(r["failed"]) if r["failed"] else ""]
            body.append(cells)
        parts.append(render_grid(head, body, fmt, align=[":-:"] * len(head),
                                 title=f"Confirmation: the {len(confirm)} best search trials re-run on seeds {seeds}, "
                                       f"ranked by the mean {_label(metric)}"))
    cols = [c for c in table.columns if c != "error"]
    head = [("share run" if c == "progress" else "trial" if c == "trial_id" else
             f"{_label(c)} (selection)" if c == metric else _label(c)) for c in cols]
    searched = table.attrs.get("columns", [])
    body = [[str(r[c]) if c == "status" else _value(r[c]) if c in searched else _cell(r[c], "✓") for c in cols]
            for _, r in table.iterrows()]
    failed = table[table["status"].isin(FAILED)] if "status" in table else table.iloc[:0]
    stopped = int((pd.to_numeric(table["progress"], errors="coerce") < 1).sum()) if "progress" in table else 0
    notes = [f"{len(table)} trials, best first, one seed each (seed {_search_seed(table)}); top-1 %"]
    if stopped:
        notes.append(f"{stopped} stopped early (share run < 1: no final probe)")
    notes += [f"{r['trial_id']}: {r['error']}" for _, r in failed.iterrows() if isinstance(r.get("error"), str)]
    parts.append(render_grid(head, body, fmt, align=[":-:"] * len(head), notes=notes,
                             title="Search trials" if confirm is not None else ""))
    if "split_note" in table.attrs:
        parts.append(table.attrs["split_note"] if fmt == "markdown" else "% " + table.attrs["split_note"])
    return "\n\n".join(parts)


def search_csv(table: pd.DataFrame, confirm: pd.DataFrame | None) -> pd.DataFrame:
    """Every search trial, best first, with its confirmation beside it: ``confirm_rank`` and each
    ``confirm_<metric>_{mean,std,n}`` over the confirmation seeds (empty where not confirmed)."""
    out = table.copy()
    if confirm is None or confirm.empty:
        return out
    stats = [c for c in confirm.columns if c.endswith(("_mean", "_std", "_n")) or c in ("rank", "seeds")]
    extra = confirm[["confirms", *stats]].rename(columns={c: f"confirm_{c}" for c in stats})
    return out.merge(extra, how="left", left_on="trial_id", right_on="confirms").drop(columns="confirms")


def _value(v) -> str:
    """A searched value: 3 significant digits (α steps by 0.125, λ spans 1-100)."""
    return _cell(v, "✓") if isinstance(v, (bool, np.bool_)) or pd.isna(v) else f"{float(v):.3g}"


def _search_seed(table: pd.DataFrame) -> str:
    return str(table.attrs.get("seed", "?"))


def search_report(trials: pd.DataFrame, columns: Sequence[str], fmt: str = "markdown") -> str:
    """Both tables of a searched study, as its files hold it."""
    table = search_table(trials, columns)
    seeds = trials.loc[trials["phase"].fillna("search") == "search", "seed"].dropna().unique() \
        if "phase" in trials else trials["seed"].dropna().unique()
    table.attrs["seed"] = int(seeds[0]) if len(seeds) == 1 else "?"
    table.attrs["split_note"] = _split_note(trials, table.attrs["metric"])
    return format_search(table, fmt, confirm_table(trials, columns))


def domain_gap_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 5: MMD² between synthetic and real representations, by method and data."""
    paper, column = paper_column("domain_gap", _dataset(trials))
    table = study_table(trials, columns=("method", "syn_ratio"), paper=paper, paper_label="paper MMD² (Table 5)")
    table.attrs["paper_note"] = ("MMD²: KID's cubic kernel on backbone features standardised per dimension with "
                                 "the pooled mean and std of both samples (scale-free; the paper does not say how it "
                                 f"scaled them); paper: Table 5, {column} (its scale factor was lost in extraction: "
                                 "compare ratios between rows)")
    table.attrs["show_mmd"] = True
    return table


def knowledge_source_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 1: the generator's latent or its features, distilled three ways."""
    paper, column = paper_column("knowledge_source", _dataset(trials))
    cols = ("method", "teacher_source", "squeeze", "syn_ratio") + (("lpips_net",) if "lpips_net" in trials else ())
    table = study_table(trials, columns=cols, paper=paper, paper_label="paper (Table 1)")
    table.attrs["paper_note"] = f"paper: Table 1, {column}"
    if "lpips_net" in table:  # the encoder's perceptual distance; the other rows have none
        table["lpips_net"] = [v if m == "encode" else None for v, m in zip(table["lpips_net"], table["method"])]
        if (table["lpips_net"] == "zoo-classifier").any():
            table.attrs["extra_notes"] = ["encoding rows with perceptual 'zoo-classifier': LPIPS's construction on the "
                                          "zoo classifier's features, not LPIPS (its ImageNet trunk is not available "
                                          "offline)"]
    direct = table["method"] == "discriminator"  # trains nothing: the distillation settings do not apply
    table[["teacher_source", "squeeze", "syn_ratio"]] = table[["teacher_source", "squeeze", "syn_ratio"]].astype(object)
    table.loc[direct, ["teacher_source", "squeeze", "syn_ratio"]] = None
    table.loc[table["method"] == "encode", "squeeze"] = None  # the encoder regresses w itself: no T_φ
    return table


def cross_dataset_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Appendix Table 5: each row's backbone probed on its own data and on the transfer datasets
    (``probe_acc@<dataset>``), with the paper's numbers for the same pairs; for a dataset the
    paper did not pretrain on (the embedded default), its CIFAR-10 pairs, labelled so."""
    table = study_table(trials, columns=("method", "syn_ratio"))
    targets = sorted(c.partition("@")[2] for c in trials.columns if c.startswith("probe_acc@"))
    for t in targets:
        stats = {row: pd.to_numeric(g[f"probe_acc@{t}"], errors="coerce").dropna()
                 for row, g in trials.groupby("row", sort=False)}
        table[f"probe@{t}_mean"] = [stats[r].mean() if len(stats[r]) else float("nan") for r in table["row"]]
        table[f"probe@{t}_std"] = [stats[r].std(ddof=1) if len(stats[r]) > 1 else float("nan") for r in table["row"]]
        table[f"probe@{t}_n"] = [int(len(stats[r])) for r in table["row"]]
    sources = trials["dataset"].dropna().unique() if "dataset" in trials else []
    source = str(sources[0]) if len(sources) == 1 else ""
    paper_source = source if source in PAPER_CROSS_DATASET_TARGETS else "cifar10"
    papers = []
    for t in PAPER_CROSS_DATASET_TARGETS[paper_source]:
        col = f"paper {PAPER_DATASET_NAMES[paper_source]} → {PAPER_DATASET_NAMES[t]}"
        table[col] = [PAPER_CROSS_DATASET.get(str(r), {}).get((paper_source, t), float("nan")) for r in table["row"]]
        papers.append(col)
    table.attrs.update(transfer=targets, paper_columns=papers, paper_note="paper: appendix Table 5 (Real & Syn)")
    if not targets:
        table.attrs["extra_notes"] = ["no transfer dataset was probed: set transfer_datasets (e.g. auto)"]
    return table


# ---------------------------------------------------------------------------------------------
# a study's table, declared once: in its study file
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """A study's table as its study file declares it (``Study(table=Table(blocks_table))``): the
    function of this module that builds it from the trials and, for a searched study
    (``search_table``), the searched fields it shows. Called with the trials it gives the
    Markdown the study prints. The study records ``spec`` in its Parquet files
    (``sqsp_table``), and ``Table.of(trials)`` reads it back: the command line and the notebook
    print the table the study declared from its files alone, with no list of studies here
    and without importing the study file (which imports Ray)."""
    build: Callable[..., pd.DataFrame]
    columns: tuple[str, ...] = ()

    def __post_init__(self):
        _builder(getattr(self.build, "__name__", repr(self.build)))  # only this module's *_table functions
        object.__setattr__(self, "columns", tuple(self.columns))

    def frame(self, trials: pd.DataFrame) -> pd.DataFrame:
        return self.build(trials, columns=self.columns) if self.columns else self.build(trials)

    def render(self, trials: pd.DataFrame, fmt: str = "markdown") -> str:
        if self.build is search_table:  # the search and its confirmation: two tables
            return search_report(trials, self.columns, fmt)
        return format_table(self.frame(trials), fmt)

    def __call__(self, trials: pd.DataFrame) -> str:
        return self.render(trials)

    @property
    def spec(self) -> dict:
        return {"build": self.build.__name__, "columns": list(self.columns)}

    @classmethod
    def of(cls, trials: pd.DataFrame) -> "Table":
        """The table the study that wrote ``trials`` declared (``sqsp_table`` in the file's
        metadata). A file without one: a searched study's table over the fields its recorded
        search space holds, else the generic table of a study declared as rows."""
        meta = trials.attrs.get("sqsp", {})
        if meta.get("sqsp_table"):
            spec = json.loads(meta["sqsp_table"])
            return cls(_builder(spec["build"]), tuple(spec.get("columns", ())))
        if meta.get("sqsp_search_space"):
            return cls(search_table, tuple(json.loads(meta["sqsp_search_space"])))
        return cls(study_table)


def _builder(name: str) -> Callable[..., pd.DataFrame]:
    f = globals().get(name)
    if not (callable(f) and getattr(f, "__module__", None) == __name__ and name.endswith("_table")):
        builders = sorted(n for n, g in globals().items()
                          if n.endswith("_table") and getattr(g, "__module__", None) == __name__)
        raise ValueError(f"table {name!r} is not a table of analysis/tables.py; allowed: {builders}")
    return f


# ---------------------------------------------------------------------------------------------
# Fig. 2: how class-clustered each representation of generated images is
# ---------------------------------------------------------------------------------------------
REPRESENTATION_TITLES = {"discriminator": "discriminator features (Eq. 2)", "latent": "latent w",
                         "generator": "generator features (Eq. 4)"}
KNN_K = 10


def cluster_scores(points: np.ndarray, labels: np.ndarray, *, k: int = KNN_K) -> tuple[float, float]:
    """kNN accuracy (%, 5-fold cross-validated, k neighbours, standardised coordinates) and the
    silhouette of the class labels: two measures of how well ``points`` group by class.
    Chance for the first is about the majority class's share; the second is ~0 without
    class structure and 1 for tight, separate clusters."""
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=min(k, len(points) // 2)))
    acc = 100.0 * float(cross_val_score(knn, points, labels, cv=KFold(5, shuffle=True, random_state=0)).mean())
    sil = float(silhouette_score(points, labels)) if len(np.unique(labels)) > 1 else float("nan")
    return acc, sil


def representations_table(df: pd.DataFrame, info: dict | None = None) -> pd.DataFrame:
    """One line per representation of Fig. 2: kNN accuracy and silhouette of the class labels in
    the UMAP plane (what the figure shows) and kNN accuracy in the full representation (what
    UMAP cannot distort), each mean ± std over seeds, beside the paper's reading."""
    from analysis.paper_numbers import FIG2_READING
    out = []
    for rep in [r for r in REPRESENTATION_TITLES if r in set(df["representation"])]:
        scores = []
        for _, g in df[df["representation"] == rep].groupby("seed"):
            g = g.sort_values("sample")
            labels = g["label"].to_numpy()
            knn2d, sil = cluster_scores(g[["umap_x", "umap_y"]].to_numpy(), labels)
            knn_full, _ = cluster_scores(np.stack(g["features"].to_numpy()), labels)
            scores.append((knn2d, sil, knn_full))
        s = pd.DataFrame(scores, columns=["knn2d", "silhouette", "knn_full"])
        line = {"representation": rep, "title": REPRESENTATION_TITLES[rep],
                "dim": int(df.loc[df["representation"] == rep, "dim"].iloc[0]), "n": len(s)}
        for c in s:
            line[f"{c}_mean"], line[f"{c}_std"] = s[c].mean(), s[c].std(ddof=1) if len(s) > 1 else float("nan")
        line["paper"] = FIG2_READING.get(rep, "")
        out.append(line)
    table = pd.DataFrame(out)
    first = df[(df["seed"] == df["seed"].min()) & (df["representation"] == df["representation"].iloc[0])]
    shares = first["label"].value_counts(normalize=True)
    table.attrs.update(info=dict(info or {}), classes=int(len(shares)), majority=100.0 * float(shares.max()),
                       samples=int(len(first)), seeds=sorted(int(x) for x in df["seed"].unique()))
    return table


def _figure_csv(table: pd.DataFrame, fmt: str) -> str | None:
    """A figure's table as CSV, or None for the formats ``render_grid`` prints."""
    return table.to_csv(index=False, float_format="%.4f") if fmt == "csv" else None


def format_representations(table: pd.DataFrame, fmt: str = "markdown") -> str:
    if (csv := _figure_csv(table, fmt)) is not None:
        return csv
    head = ["panel", "representation", "dim", "kNN acc. in 2-D (UMAP)", "silhouette in 2-D", "kNN acc. in all dims",
            "paper (Fig. 2)"]
    body = [[f"({'abc'[i] if i < 3 else i})", str(r["title"]), str(r["dim"]),
             _mean_std(r["knn2d_mean"], r["knn2d_std"], r["n"]),
             _mean_std(r["silhouette_mean"], r["silhouette_std"], r["n"], digits=3),
             _mean_std(r["knn_full_mean"], r["knn_full_std"], r["n"]), str(r["paper"])] for i, r in table.iterrows()]
    info, a = table.attrs.get("info", {}), table.attrs
    labelled = f"labels from {info.get('classifier', '?')}"
    if info.get("classifier_dataset"):
        labelled += f" (trained on {info['classifier_dataset']}"
        acc = info.get("classifier_test_accuracy")
        labelled += f", test accuracy {100 * acc:.1f}%)" if isinstance(acc, (int, float)) else ")"
    notes = [f"{a.get('samples')} images of {info.get('generator', '?')} per seed, seeds {a.get('seeds')}", labelled,
             f"{a.get('classes')} classes, the largest {a.get('majority', float('nan')):.1f}% of the images "
             "(kNN's floor)", f"kNN: {KNN_K} neighbours, 5-fold cross-validated; silhouette of the class labels"]
    notes += [f"{k} panel missing: {v}" for k, v in (info.get("missing") or {}).items()]
    return render_grid(head, body, fmt, align=[":--", ":--", "--:", ":-:", ":-:", ":-:", ":--"], notes=notes)


# ---------------------------------------------------------------------------------------------
# appendix Fig. 1: CKA between layers
# ---------------------------------------------------------------------------------------------
def cka_matrices(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each panel's CKA matrix (rows a, columns b, layers in order), averaged over seeds."""
    out = {}
    for panel, g in df.groupby("panel", sort=False):
        m = g.groupby(["a_index", "b_index", "a", "b"])["cka"].mean().reset_index()
        mat = m.pivot(index=["a_index", "a"], columns=["b_index", "b"], values="cka").sort_index().sort_index(axis=1)
        mat.index, mat.columns = mat.index.get_level_values(1), mat.columns.get_level_values(1)
        out[str(panel)] = mat
    return out


def layer_similarity_table(df: pd.DataFrame, info: dict | None = None) -> pd.DataFrame:
    """One line per panel: its layers, the mean CKA between different layers and the share of
    pairs at or above the paper's 0.85 (each mean ± std over seeds), and its largest value."""
    from analysis.paper_numbers import FIG1_CKA_READING, FIG1_CKA_THRESHOLD
    out = []
    for panel, g in df.groupby("panel", sort=False):
        square = panel != "generator-student"
        per_seed = []
        for _, s in g.groupby("seed"):
            off = s[s["a_index"] != s["b_index"]] if square else s
            off = off[off["a_index"] < off["b_index"]] if square else off  # each pair once
            per_seed.append((off["cka"].mean(), 100.0 * (off["cka"] >= FIG1_CKA_THRESHOLD).mean(), off["cka"].max()))
        p = pd.DataFrame(per_seed, columns=["mean", "share", "max"])
        a_layers = list(dict.fromkeys(g.sort_values("a_index")["a"]))
        b_layers = list(dict.fromkeys(g.sort_values("b_index")["b"]))
        out.append({"panel": panel, "layers": f"{len(a_layers)}" if square else f"{len(a_layers)} × {len(b_layers)}",
                    "n": len(p), "mean_mean": p["mean"].mean(), "mean_std": p["mean"].std(ddof=1) if len(p) > 1 else float("nan"),
                    "share_mean": p["share"].mean(), "share_std": p["share"].std(ddof=1) if len(p) > 1 else float("nan"),
                    "max": p["max"].max(), "paper": FIG1_CKA_READING.get(str(panel), "")})
    table = pd.DataFrame(out)
    cross = cka_matrices(df).get("generator-student")
    best = [] if cross is None else [f"{b} ↔ {cross[b].idxmax()} ({cross[b].max():.2f})" for b in cross.columns]
    table.attrs.update(info=dict(info or {}), best=best, seeds=sorted(int(x) for x in df["seed"].unique()))
    return table


def format_layer_similarity(table: pd.DataFrame, fmt: str = "markdown") -> str:
    from analysis.paper_numbers import FIG1_CKA_THRESHOLD
    if (csv := _figure_csv(table, fmt)) is not None:
        return csv
    head = ["panel", "layers", "mean CKA between layers", f"pairs ≥ {FIG1_CKA_THRESHOLD} (%)", "max",
            "paper (appendix Fig. 1)"]
    body = [[str(r["panel"]), str(r["layers"]), _mean_std(r["mean_mean"], r["mean_std"], r["n"], digits=3),
             _mean_std(r["share_mean"], r["share_std"], r["n"], digits=1), f"{r['max']:.3f}", str(r["paper"])]
            for _, r in table.iterrows()]
    info = table.attrs.get("info", {})
    notes = [f"{info.get('n_samples', '?')} images of {info.get('generator', '?')}; student {info.get('student', '?')} "
             f"(×{info.get('student_width', '?')}, method {info.get('method', '?')}), seeds {table.attrs.get('seeds')}",
             f"layers: {info.get('granularity', '?')}; linear CKA of globally pooled features"]
    if table.attrs.get("best"):
        notes.append("most similar generator layer per student layer: " + ", ".join(table.attrs["best"]))
    return render_grid(head, body, fmt, align=[":--", ":-:", ":-:", ":-:", ":-:", ":--"], notes=notes)


FIGURE_TABLES = {"representations.parquet": (representations_table, format_representations),
                 "layer_similarity.parquet": (layer_similarity_table, format_layer_similarity)}
"""File of a figure's folder -> its table function and formatter."""


def main(argv: list[str] | None = None) -> int:
    from sqsp import cli  # pandas + pyarrow only
    p = argparse.ArgumentParser(prog=cli.prog("python analysis/tables.py"), description=__doc__.splitlines()[0])
    p.add_argument("results", help="a study folder (holding trials.parquet), the file itself, or a URI")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--latex", dest="fmt", action="store_const", const="latex")
    g.add_argument("--csv", dest="fmt", action="store_const", const="csv")
    args = p.parse_args(argv)
    return cli.run(p.prog, lambda: _print_table(args.results, args.fmt or "markdown"))


def _print_table(location: str, fmt: str) -> int:
    from sqsp.results import ResultsError, failure_summary, read_table, read_trials
    for file, (build, form) in FIGURE_TABLES.items():  # Fig. 2's and appendix Fig. 1's folders
        if Path(location).name == file or (Path(location) / file).is_file():
            try:
                print(form(build(*read_table(location, file)), fmt))
            except ValueError as e:
                raise ResultsError(str(e)) from None
            return 0
    trials = read_trials(location)
    name = str(trials["study"].dropna().iloc[0]) if "study" in trials and trials["study"].notna().any() else "?"
    try:  # the study's own table; a format it has no form for, or a study without rows, is refused
        text = Table.of(trials).render(trials, fmt)
    except ValueError as e:
        raise ResultsError(f"study {name!r}: {e}") from None
    print(text.rstrip("\n"))
    reasons = failure_summary(trials)
    if reasons:  # under a Markdown table; beside CSV or LaTeX, which must stay machine-readable
        out = sys.stdout if fmt == "markdown" else sys.stderr
        print("\nTrials without a result:\n" + "\n".join(f"- {r}" for r in reasons), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
