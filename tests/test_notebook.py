"""analysis/results.ipynb runs top to bottom on a study's Parquet files (no Jupyter needed:
its code cells are executed in order, as a kernel would)."""
import json
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(results: Path, monkeypatch) -> dict:
    matplotlib.use("Agg")
    monkeypatch.setenv("SQSP_RESULTS", str(results))
    monkeypatch.chdir(ROOT / "analysis")  # where Jupyter starts when the notebook is opened
    nb = json.loads((ROOT / "analysis" / "results.ipynb").read_text())
    assert nb["nbformat"] == 4
    env: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "results.ipynb", "exec"), env)
    return env


@pytest.mark.parametrize("kind", ["ablation", "generators"])
def test_notebook_runs_on_a_study(kind, tmp_path, monkeypatch, capsys):
    if kind == "ablation":
        from test_tables import write_study
        write_study(tmp_path / "ablation")
    else:
        from test_studies import write_generators
        write_generators(tmp_path / "generators")
    env = run_notebook(tmp_path / kind, monkeypatch)
    out = capsys.readouterr().out
    assert env["study"] == kind and "linear probe" in out
    if kind == "generators":
        assert (tmp_path / "generators" / "fig6.png").is_file()


def test_notebook_shows_fig2_and_the_cka_figure_from_their_folders(tmp_path, monkeypatch, capsys):
    import pandas as pd
    from test_representations import fake_frame
    from sqsp.results import write_table
    from test_tables import write_study
    write_study(tmp_path / "ablation")
    write_table(fake_frame(seeds=(0,)), str(tmp_path / "representations"), "representations.parquet",
                kind="representations", info={"generator": "g", "classifier": "c"})
    cka = pd.DataFrame([{"seed": 0, "panel": p, "a": a, "b": b, "a_index": i, "b_index": j, "cka": 1.0 if a == b else 0.5}
                        for p in ("generator", "student", "generator-student")
                        for i, a in enumerate(("b4", "b8")) for j, b in enumerate(("b4", "b8"))])
    write_table(cka, str(tmp_path / "layer_similarity"), "layer_similarity.parquet", kind="layer_similarity",
                info={"generator": "g", "granularity": "blocks"})
    monkeypatch.setenv("SQSP_FIG2", str(tmp_path / "representations"))
    monkeypatch.setenv("SQSP_CKA", str(tmp_path / "layer_similarity"))
    run_notebook(tmp_path / "ablation", monkeypatch)
    out = capsys.readouterr().out
    assert "kNN acc. in 2-D (UMAP)" in out and "mean CKA between layers" in out
    for f in ("representations/fig2.png", "representations/fig2.pdf", "layer_similarity/fig1_cka.png"):
        assert (tmp_path / f).is_file(), f
