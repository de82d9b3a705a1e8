"""README.md's own examples work as written: every ``python -c "…"`` snippet that uses sqsp
runs, and every ``python studies/<name>.py …`` command line parses and expands (``--dry-run``:
every trial's config validated, no Ray, no data read; run in a folder that has the ``data/``
the commands name, and a StyleGAN checkout where they clone one), with the shell variables the README
sets (``R=…; P="…"``) substituted. A renamed flag, a changed signature or a study that no longer
takes the arguments the README gives fails here."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

from paper_fixtures import write_stylegan_repo
from sqsp.tune import study_main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _snippets() -> list[str]:
    return [code for code in re.findall(r'`python -c "([^"`]+)"`', README) if "sqsp" in code]


def _study_commands() -> list[list[str]]:
    """Each ``python studies/<name>.py ARGS`` line of the README's bash blocks, as argv, with the
    README's shell variables expanded and comments dropped (continuation lines joined)."""
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S)).replace("\\\n", " ")
    variables: dict[str, str] = {}
    out = []
    for line in blocks.splitlines():
        for name, value in re.findall(r'\b([A-Z])=("[^"]*"|[^\s;]+)', line):  # R=/opt/…; P="--preset …"
            variables[name] = _expand(value.strip('"'), variables)
        line = _expand(line.split("#")[0], variables)
        for command in line.split("&&"):
            words = shlex.split(command)
            if len(words) >= 2 and words[0] == "python" and words[1].startswith("studies/"):
                out.append(words[1:])
    return out


def _expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$([A-Z])\b", lambda m: variables[m.group(1)], text)


def test_the_readme_has_examples_of_both_kinds():
    assert len(_snippets()) >= 1 and len(_study_commands()) >= 10


@pytest.mark.parametrize("code", _snippets())
def test_python_snippet_runs(code, capsys):
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip()  # each prints what it shows


@pytest.mark.parametrize("argv", _study_commands(), ids=" ".join)
def test_study_command_line_parses_and_expands(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the user's folder, with the data root the commands name
    (tmp_path / "data").mkdir()
    if any("/opt/stylegan2-ada-pytorch" in a for a in argv):  # the README's clone, made under tmp_path
        write_stylegan_repo(tmp_path / "opt" / "stylegan2-ada-pytorch")
        argv = [a.replace("/opt/", f"{tmp_path}/opt/") for a in argv]
    name = Path(argv[0]).stem
    study = importlib.import_module(f"studies.{name}").STUDY
    rc = study_main(study, [*argv[1:], "--dry-run"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.startswith(f"study {name!r} on preset "), captured.out
