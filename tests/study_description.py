"""What a study declares, as plain JSON values: what tests/test_study_file.py compares between a
study's YAML file, its former Python declaration (tests/data/paper_studies.json) and a study
re-read from the study.yaml of its folder."""
from __future__ import annotations

import json

from sqsp.config import preset
from sqsp.tune import base_config, expand, param_space
from sqsp.tune.study import RowValue
from sqsp.tune.study_file import domain_document


def _attrs(obj) -> dict | None:
    """A Ray object's plain settings (ASHA's rungs, Optuna's seed), by attribute."""
    if obj is None:
        return None
    return {"type": type(obj).__name__,
            **{k: v for k, v in sorted(vars(obj).items()) if isinstance(v, (bool, int, float, str))}}


def _space_value(v):
    if isinstance(v, dict) and "grid_search" in v:
        return {"grid_search": list(v["grid_search"])}
    func = getattr(v, "func", None)
    if isinstance(func, RowValue):
        return {"row_value": [list(p) for p in func.values]}
    return domain_document(v)


def describe(study) -> dict:
    base = base_config(study, [])
    default = preset(study.preset).to_dict()
    trials = expand(study, base)
    search = study.search
    return json.loads(json.dumps({
        "name": study.name, "preset": study.preset, "seeds": [int(s) for s in study.seeds], "metric": study.metric,
        "mode": study.mode, "description": study.description, "overrides": dict(study.overrides),
        "rows": study.rows, "grid": None if isinstance(study.grid, list) else dict(study.grid),
        "table": getattr(study.table, "spec", None), "figures": getattr(study.figures, "__name__", None),
        "checkpoint_rows": study.checkpoint_rows,
        "search": None if search is None else {
            "searcher": _attrs(search.searcher), "space": {k: domain_document(v) for k, v in search.space.items()},
            "num_samples": search.num_samples, "confirm_top": search.confirm_top,
            "confirm_seeds": [int(s) for s in search.confirm_seeds]},
        "scheduler": _attrs(study.scheduler), "stopper": _attrs(study.stopper),
        "param_space": {k: _space_value(v) for k, v in param_space(study, trials=trials).items()},
        "trials": [[row, cfg.seed, {k: v for k, v in cfg.to_dict().items() if default.get(k) != v}]
                   for row, cfg in trials],
    }))
