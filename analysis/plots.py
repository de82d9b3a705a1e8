"""Figures from a study's Parquet files (no Ray, no torch): Fig. 6, accuracy against FID.

    python analysis/plots.py results/generators                 # writes results/generators/fig6.png
    python analysis/plots.py results/generators --out fig6.pdf

One point per generator row: mean linear-probe accuracy over seeds with its sample std as
an error bar, against the FID the trials recorded for their generator; checkpoints of one
GAN run are joined in order of training step. Rows whose FIDs come from different feature
extractors are refused: FIDs are comparable only within one extractor.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.tables import fid_accuracy_correlation, generators_table  # noqa: E402


def fid_figure(trials: pd.DataFrame, path: str | Path, *, reference: float | None = None) -> Path:
    """Draw accuracy against FID to ``path``; ``reference`` draws a horizontal line (e.g. the
    untrained backbone, which is what the figure's baseline is at small scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = generators_table(trials).dropna(subset=["generator_fid", "probe_mean"])
    if table.empty:
        raise ValueError("no row has both a generator FID and a probe accuracy; is this a generators study?")
    extractors = sorted(table["generator_fid_extractor"].dropna().astype(str).unique())
    if len(extractors) > 1:
        raise ValueError(f"FIDs from different extractors {extractors} cannot share an axis")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    runs = table["row"].astype(str).str.partition("@")[0]
    for run, g in table.groupby(runs, sort=False):
        g = g.sort_values("generator_step")
        ax.errorbar(g["generator_fid"], g["probe_mean"], yerr=g["probe_std"].fillna(0), marker="o", capsize=3,
                    linestyle="-" if len(g) > 1 else "none", label=run)
        if len(g) > 1:  # FID need not fall monotonically along training: label the steps
            for x, y, step in zip(g["generator_fid"], g["probe_mean"], g["generator_step"]):
                ax.annotate(f"{int(step)}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if reference is None and table.attrs.get("untrained"):
        reference = table.attrs["untrained"][0]
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle=":", label="untrained backbone")
    rho = fid_accuracy_correlation(table)
    ax.set_xlabel(f"FID ({extractors[0] if extractors else '?'})")
    ax.set_ylabel("linear probe top-1 (%)")
    ax.set_title("accuracy vs generator FID" + (f" (Spearman ρ = {rho[0]:+.2f})" if rho else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python analysis/plots.py", description=__doc__.splitlines()[0])
    p.add_argument("results", help="a generators study folder (holding trials.parquet)")
    p.add_argument("--out", help="output file (default: <results>/fig6.png)")
    args = p.parse_args(argv)
    from sqsp.results import read_trials  # pandas + pyarrow only
    try:
        trials = read_trials(args.results)
        out = fid_figure(trials, args.out or Path(args.results) / "fig6.png")
    except (FileNotFoundError, OSError, ValueError) as e:
        p.error(str(e))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
