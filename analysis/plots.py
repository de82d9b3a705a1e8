"""Figures from Parquet files (no Ray, no torch): Fig. 6, accuracy against FID; a searched
study's importances and history; Fig. 2, UMAP of the GAN's three representations; appendix
Fig. 1, CKA between layers.

    python analysis/plots.py results/generators                 # writes results/generators/fig6.png
    python analysis/plots.py results/generators --out fig6.pdf
    python analysis/plots.py results/loss_weights               # importances.png, history.png there
    python analysis/plots.py results/representations            # fig2.png and fig2.pdf
    python analysis/plots.py results/layer_similarity           # fig1_cka.png and fig1_cka.pdf

Fig. 6, accuracy against FID: one point per generator row, mean linear-probe accuracy over
seeds with its sample std as an error bar, against the FID the trials recorded for their
generator; checkpoints of one GAN run are joined in order of training step. Rows whose FIDs
come from different feature extractors are refused: FIDs are comparable only within one
extractor.

A searched study (``studies/loss_weights.py``): the search is rebuilt as an Optuna study from
trials.parquet alone (``search_study``: each search trial's values in the order the searcher
proposed them, the metric it was selected on and the distributions recorded in the file's
metadata), then Optuna draws its parameter
importances (fANOVA, fixed seed, over the trials that ran to their end) and its optimisation
history, on which the confirmed candidates are marked with their mean ± std over seeds.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tables import (REPRESENTATION_TITLES, cka_matrices, fid_accuracy_correlation,
                             generators_table, layer_similarity_table, representations_table)
from sqsp.optuna_study import optuna_study as search_study


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, stem: str | Path) -> list[Path]:
    """The figure as PNG (to look at) and PDF (for a paper), side by side."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150)
    return paths


def representations_figure(df: pd.DataFrame, info: dict, stem: str | Path, *, seed: int | None = None) -> list[Path]:
    """Fig. 2: one UMAP panel per representation of the same generated images, coloured by
    class, each titled with how class-clustered it is (kNN accuracy and silhouette in 2-D)."""
    plt = _pyplot()
    table = representations_table(df, info).set_index("representation")
    seed = int(df["seed"].min()) if seed is None else seed
    reps = list(table.index)
    classes = sorted(df["label"].unique())
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "hsv", max(len(classes), 2))
    fig, axes = plt.subplots(1, len(reps), figsize=(4.2 * len(reps), 4.6), squeeze=False)
    for letter, rep, ax in zip("abc", reps, axes[0]):
        g = df[(df["representation"] == rep) & (df["seed"] == seed)]
        for i, c in enumerate(classes):
            pts = g[g["label"] == c]
            ax.scatter(pts["umap_x"], pts["umap_y"], s=3, alpha=0.5, color=cmap(i), label=str(c), rasterized=True)
        r = table.loc[rep]
        ax.set_title(f"({letter}) {REPRESENTATION_TITLES[rep]}\nkNN {r['knn2d_mean']:.1f}%, "
                     f"silhouette {r['silhouette_mean']:.2f}", fontsize=10)
        ax.set_xticks([]), ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=cmap(i), label=str(c)) for i, c in enumerate(classes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(classes), 10), fontsize=8, frameon=False,
               title="class (by the classifier)", title_fontsize=8)
    fig.suptitle(f"{info.get('generator', '')}: {len(g)} generated images (seed {seed}), UMAP", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    paths = _save(fig, stem)
    plt.close(fig)
    return paths


def layer_similarity_figure(df: pd.DataFrame, info: dict, stem: str | Path) -> list[Path]:
    """Appendix Fig. 1: the CKA matrices (generator layers, student layers, and the two
    against each other), averaged over seeds, with the values written in small matrices."""
    plt = _pyplot()
    mats = cka_matrices(df)
    table = layer_similarity_table(df, info).set_index("panel")
    widths = [m.shape[1] for m in mats.values()]
    fig, axes = plt.subplots(1, len(mats), figsize=(2.5 + 0.55 * sum(widths) + 1.2 * len(mats), 4.6), squeeze=False,
                             layout="constrained", gridspec_kw={"width_ratios": widths})
    for ax, (panel, m) in zip(axes[0], mats.items()):
        im = ax.imshow(m.to_numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(m.shape[1]), m.columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(m.shape[0]), m.index, fontsize=7)
        if m.size <= 150:
            for (i, j), v in np.ndenumerate(m.to_numpy()):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
        ax.set_title(f"{panel}: mean {table.loc[panel, 'mean_mean']:.2f}", fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.7, label="linear CKA")
    fig.suptitle(f"linear CKA of pooled layer features, {info.get('n_samples', '?')} images of "
                 f"{info.get('generator', '?')}", fontsize=10)
    paths = _save(fig, stem)
    plt.close(fig)
    return paths


def fid_figure(trials: pd.DataFrame, path: str | Path, *, reference: float | None = None) -> Path:
    """Draw accuracy against FID to ``path``; ``reference`` draws a horizontal line (e.g. the
    untrained backbone, which is what the figure's baseline is at small scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = generators_table(trials).dropna(subset=["generator_fid", "probe_mean"])
    if table.empty:
        raise ValueError("no row has both a generator FID and a probe accuracy; is this a generators study?")
    if table["generator_fid"].nunique() < 2:  # every row read one generator: there is no trend to draw
        raise ValueError(f"every row of this study reads one generator (FID {table['generator_fid'].iloc[0]:.2f}); "
                         "Fig. 6 needs rows with different generators: run studies/generators.py")
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


FIGURES = {"representations.parquet": (representations_figure, "fig2"),
           "layer_similarity.parquet": (layer_similarity_figure, "fig1_cka")}
"""File in a folder -> the function that draws it and the stem of its PNG/PDF."""


def figure_and_table(folder: str | Path, file: str) -> tuple[list[Path], str]:
    """Fig. 2 or appendix Fig. 1 from ``folder/file``: the figure drawn beside it (PNG, PDF)
    and its table as Markdown."""
    from analysis.tables import FIGURE_TABLES
    from sqsp.results import read_table
    df, info = read_table(str(folder), file)
    draw, stem = FIGURES[file]
    build, fmt = FIGURE_TABLES[file]
    return draw(df, info, Path(folder) / stem), fmt(build(df, info))


def search_figures(trials: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Draw ``history.png`` (the optimisation history, with the confirmed candidates' mean ±
    std over seeds) and ``importances.png`` (Optuna's fANOVA importances, seed 0) into
    ``folder``; returns the files drawn. Raises ValueError when fewer than 2 trials ran to
    their end. Where their values do not vary there is no importance to draw: a note on
    stderr says so and only the history is drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.exceptions import ExperimentalWarning
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    from analysis.tables import METRIC_LABELS, SYMBOLS

    study = search_study(trials)
    metric = study.user_attrs["metric"]
    label = METRIC_LABELS.get(metric, metric)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        raise ValueError(f"{len(complete)} search trial(s) reported {metric!r}; importances need at least 2")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        ax = plot_optimization_history(study, target_name=f"{label} (%)")
        order = {t.user_attrs["trial_id"]: t.number for t in study.trials}
        confirm = trials[trials["phase"] == "confirm"] if "phase" in trials else trials.iloc[:0]
        for source, g in confirm.groupby("confirms"):
            vals = pd.to_numeric(g[metric], errors="coerce").dropna()
            if source in order and len(vals):
                ax.errorbar(order[source] + 0.15, vals.mean(), yerr=vals.std(ddof=1) if len(vals) > 1 else 0,
                            fmt="s", color="black", capsize=3, markersize=4,
                            label="confirmed: mean ± std over seeds" if not ax.get_legend_handles_labels()[1].count(
                                "confirmed: mean ± std over seeds") else None)
        ax.legend(fontsize=8)
        ax.set_title("", loc="left")
        ax.set_title(f"optimisation history ({len(complete)} of {len(study.trials)} trials ran to their end)",
                     fontsize=9)
        out.append(_save_one(ax.figure, folder / "history.png", plt))
        try:
            ax = plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0), target_name=label)
        except RuntimeError as e:  # fANOVA: "zero total variance" when every trial scored the same
            print(f"[sqsp] no importances.png: {e} (the {len(complete)} trials that ran to their end all scored "
                  f"{complete[0].value:g})", file=sys.stderr)
            return out
        ax.set_yticklabels([f"{SYMBOLS.get(t.get_text(), '')} {t.get_text()}".strip() for t in ax.get_yticklabels()])
        ax.set_title("", loc="left")  # Optuna's own title, which ours replaces
        ax.set_title(f"importance for {label} (fANOVA over the {len(complete)} of {len(study.trials)} trials that "
                     "ran to their end)", fontsize=9)
        out.append(_save_one(ax.figure, folder / "importances.png", plt))
    return out


def _save_one(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    from sqsp import cli  # pandas + pyarrow only
    p = argparse.ArgumentParser(prog=cli.prog("python analysis/plots.py"), description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="a generators or searched study folder (holding trials.parquet), or a folder "
                                   "holding " + " or ".join(FIGURES))
    p.add_argument("--out", help="output file of Fig. 6 (default: <results>/fig6.png), the folder of a searched "
                                 "study's figures (default: <results>), or for Fig. 2 and appendix Fig. 1 a stem, "
                                 "written as .png and .pdf")
    args = p.parse_args(argv)
    from sqsp.results import read_table, read_trials  # pandas + pyarrow only
    for file, (draw, stem) in FIGURES.items():
        if (Path(args.results) / file).is_file():
            try:
                paths = draw(*read_table(args.results, file), args.out or Path(args.results) / stem)
            except (OSError, ValueError) as e:
                p.error(str(e))
            print("\n".join(str(x) for x in paths))
            return 0
    try:
        trials = read_trials(args.results)
        if "sqsp_search_space" in trials.attrs.get("sqsp", {}):
            out = search_figures(trials, args.out or args.results)
        else:
            out = [fid_figure(trials, args.out or Path(args.results) / "fig6.png")]
    except (FileNotFoundError, OSError, ValueError) as e:
        p.error(str(e))
    print("\n".join(str(o) for o in out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
