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

from sqsp.config import ConfigError
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
