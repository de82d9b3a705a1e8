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
