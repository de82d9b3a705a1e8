"""The study declaration (``Study``) and its expansion into trials and Ray Tune's param_space.

A study is declared once in a short file under ``studies/``: a name, a base preset, a grid
of fields or a list of named rows (or a ``Search``), seeds, metric and mode, optional early
stopping. It declares only what it compares (``check_declaration``): its overrides and rows
may set the fields of ``config.STUDY_FIELDS`` and nothing of the scale, which comes from the
preset and ``--set`` alone.

Order of precedence of a trial's config: preset < study overrides < ``--set`` < the row's
overrides < the grid's or searcher's value < seed. Rows are written relative to the base
(row d of the ablation sets ``cov_weight=0`` and inherits μ from the preset), so ``--set``
changes the base that the rows are built on; a ``--set`` that no trial would see (a field
that every row or the grid sets, or ``seed``) is refused instead of silently ignored. Every
trial's ``TrainConfig`` is resolved and validated here, in the driver, before Ray starts,
and re-resolved in the trainable from the same two parts: the shared ``fixed_spec`` and the
trial's point of the ``param_space``.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ray import tune

from ..config import (SCALE_FIELDS, STUDY_FIELDS, ConfigError, TrainConfig, absolute_paths, ignored_settings,
                      parse_overrides, preset, refuse_ignored, row_scale)
from .search import Search, check_search, domain_probe

FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


@dataclass
class Study:
    """A study declared once; ``studies/<name>.py`` holds one of these and calls ``study_main``.

    ``grid`` is either ``{field: [values]}`` (the Cartesian product) or a list of named rows,
    each ``{"row": label, field: value, ...}``: overrides on top of the base config. A searched
    study has a ``search`` instead (``Search``: searcher, space, budget, confirmation).
    ``scheduler`` / ``stopper`` are Ray Tune objects that stop trials early, of a grid or a
    search (copied per run; a scheduler may carry its own metric, e.g. ASHA on a per-epoch
    signal while the searcher optimises the study's final ``metric``). ``table`` turns the
    trials DataFrame into the text printed at the end; ``figures(trials, folder)`` draws into
    the study folder.
    """
    name: str
    grid: dict[str, list] | list[dict[str, Any]] = field(default_factory=dict)
    preset: str = "smoke"
    seeds: Sequence[int] = (0, 1, 2)
    metric: str = "probe_acc"
    mode: str = "max"
    overrides: dict[str, Any] = field(default_factory=dict)
    search: Search | None = None
    scheduler: Any = None
    stopper: Any = None
    table: Callable[[Any], str] | None = None
    figures: Callable[[Any, str], list] | None = None
    description: str = ""
    checkpoint_rows: bool = False
    """The rows compare generators: ``--generators GLOB`` replaces them by one row per file it
    matches, each trial reporting its generator's FID (``sqsp/checkpoints.py``)."""
    share_generator: bool | None = None
    """The rows of a seed that read the same synthetic stream run as one Ray trial that draws each
    batch once (sqsp/tune/groups.py): None groups where that is exact, True asks for it (and
    refuses what cannot be), False gives every row a trial of its own."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Settings of any field, as ``--set`` gives them (the scale included; the command line's
    ``--set`` goes on top): a study file's ``set:``, e.g. a tiny study or one saved with the
    settings it ran with (study_file.py). A study of the paper declares none."""

    def __post_init__(self):
        self.settings = parse_overrides(self.settings)
        check_declaration(self)

    @property
    def rows(self) -> dict[str, dict[str, Any]] | None:
        if not isinstance(self.grid, list):
            return None
        out: dict[str, dict[str, Any]] = {}
        for r in self.grid:
            if "row" not in r:
                raise ConfigError(f"study {self.name!r}: every row of the grid needs a 'row' label (got {r})")
            label = str(r["row"])
            if label in out:
                raise ConfigError(f"study {self.name!r}: row label {label!r} appears twice")
            out[label] = parse_overrides({k: v for k, v in r.items() if k != "row"})
        return out

    @property
    def search_space(self) -> dict[str, Any]:
        """The fields a searcher chooses ({} for a grid)."""
        return dict(self.search.space) if self.search is not None else {}

    @property
    def trial_seeds(self) -> list[int]:
        """The seeds each point runs on: every seed of a grid; a searcher's trials run on the first."""
        return [int(s) for s in self.seeds][:1 if self.search is not None else None]

    @property
    def phase(self) -> str | None:
        """The ``phase`` of this study's trials in trials.parquet (confirm.py adds ``confirm``)."""
        return "search" if self.search is not None else None

    @property
    def early_stopping(self) -> list[str]:
        return [type(x).__name__ for x in (self.scheduler, self.stopper) if x is not None]


def check_declaration(study: Study) -> None:
    """Refuse, when a study is declared, any setting of its own that sets the scale.

    A study's overrides and rows may only say what it compares (``config.STUDY_FIELDS``); the
    scale (data, image size, optimiser, schedule, widths, probe) comes from the preset it
    runs on, so a setting tuned for the embedded scale cannot follow it onto a paper preset.
    A dict grid or a search space may sweep any field: the swept field is the comparison.
    """
    where = {"overrides": [dict(study.overrides)]}
    if isinstance(study.grid, list):
        where["rows"] = [{k: v for k, v in r.items() if k != "row"} for r in study.grid]
    else:
        single = sorted(k for k, v in study.grid.items() if k in SCALE_FIELDS and len(list(v)) < 2)
        if single:
            raise ConfigError(f"study {study.name!r}: grid sets scale field(s) {single} to one value; a one-value "
                              "axis is not a comparison: the scale comes from the preset (or --set)")
    for part, dicts in where.items():
        for d in dicts:
            unknown = sorted(set(d) - FIELDS)
            if unknown:
                raise ConfigError(f"study {study.name!r}: {part} name unknown config field(s) {unknown}")
            scale = sorted(set(d) & SCALE_FIELDS)
            if part == "overrides" and "generator" in d:
                scale.append("generator")
            if scale:
                raise ConfigError(
                    f"study {study.name!r}: its {part} set {', '.join(f'{k}={d[k]!r}' for k in scale)}, which "
                    f"{'set' if len(scale) > 1 else 'sets'} the scale, not what the study compares; the scale comes "
                    "from the preset (--preset) and the user (--set). A study may declare only "
                    f"{sorted(STUDY_FIELDS - ({'generator'} if part == 'overrides' else set()))}")


def base_config(study: Study, overrides: dict[str, Any] | list[str] | None = None) -> dict[str, Any]:
    """The study's base: its preset, the study's overrides, then the user's ``--set``, with
    relative paths resolved against the directory the driver runs in (``absolute_paths``).

    Names and types are checked here; whole configs are validated per trial in ``expand``,
    since the base alone may be a config no trial runs (rows override parts of it).
    """
    user = {**study.settings, **parse_overrides(overrides)}
    _refuse_shadowed(study, user)
    cfg = preset(study.preset, {**parse_overrides(study.overrides), **user}, validate=False)
    return absolute_paths(cfg.to_dict(), os.getcwd())


def _refuse_shadowed(study: Study, user: dict[str, Any]) -> None:
    rows = study.rows
    shadowed = {"seed"} | set(study.search_space)
    if rows is not None:
        shadowed |= set.intersection(*(set(o) for o in rows.values())) if rows else set()
    else:
        shadowed |= set(study.grid)
    hit = sorted(set(user) & shadowed)
    if hit:
        what = "every row" if rows is not None else "the grid or search space"
        raise ConfigError(
            f"--set {', '.join(f'{k}={user[k]!r}' for k in hit)} would have no effect: {what} of study "
            f"{study.name!r} sets {hit}" + ("; choose seeds with --seeds" if "seed" in hit else ""))


def fixed_spec(study: Study, base: dict[str, Any]) -> dict[str, Any]:
    """What every trial shares: the base config and the rows' overrides (plain JSON values)."""
    if study.search is not None:  # a searcher's trials run on the study's one seed
        base = {**base, "seed": study.trial_seeds[0]}
    rows = {label: absolute_paths(row_scale(study.preset, base, o), os.getcwd())  # the row's method picks its scale
            for label, o in (study.rows or {}).items()}
    return json.loads(json.dumps({"base": base, "rows": rows}))


def param_space(study: Study, skip: Sequence[str] = (),
                trials: Sequence[tuple[str | None, TrainConfig]] = ()) -> dict[str, Any]:
    """Ray Tune's param_space: what varies between trials, and only that.

    The row, grid and search space, the seed, and for named rows every field whose value
    differs between them (``varying``: ablation row d's ``cov_weight=0``), so that Ray's own
    tools (``ResultGrid.get_dataframe``, TensorBoard's HParams through ``TensorBoardLogger``,
    MLflow, W&B) show the hyperparameters. The shared part goes to the trainable through
    ``tune.with_parameters`` and into ``study.json``: Ray would print all of it with every
    trial otherwise. Rows in ``skip`` (see ``preflight.skipped_rows``) are left out. ``trials``
    is ``expand``'s list.
    """
    rows = study.rows
    space: dict[str, Any] = {}
    if rows is not None:
        labels = [r for r in rows if r not in skip]
        space["row"] = tune.grid_search(labels)
        space.update(row_domains({row: cfg.to_dict() for row, cfg in trials if row in labels}))
    else:
        for k in study.grid:
            space[k] = tune.grid_search(_grid_values(study, k))
    space.update(study.search_space)
    if study.search is None:  # a searcher's one seed is in the fixed spec
        space["seed"] = tune.grid_search(study.trial_seeds)
    return space


def varying(configs: dict[str, dict[str, Any]]) -> list[str]:
    """The config fields whose value differs between rows (seed aside), in TrainConfig's order."""
    values = list(configs.values())
    return [f for f in (x.name for x in dataclasses.fields(TrainConfig))
            if f != "seed" and values and any(v.get(f) != values[0].get(f) for v in values[1:])]


@dataclass(frozen=True)
class RowValue:
    """A field's value as a function of the trial's row: a ``tune.sample_from`` beside the rows'
    grid_search, so that the field is a hyperparameter of its own in Ray's tools (a class, not
    a lambda: Tune stores the param_space with the experiment, for ``--resume``)."""
    values: tuple[tuple[str, Any], ...]

    def __call__(self, spec: dict[str, Any]) -> Any:
        # Tune passes the whole spec ({"config": …}) while it generates the trials' variants
        config = spec["config"] if "config" in spec else spec
        return dict(self.values)[config["row"]]


def row_domains(per_row: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{field: tune.sample_from(the row's value)} for every field that differs between rows."""
    return {f: tune.sample_from(RowValue(tuple((row, cfg.get(f)) for row, cfg in per_row.items())))
            for f in varying(per_row)}


def _grid_values(study: Study, key: str) -> list[Any]:
    """The values of a dict grid's axis, paths resolved as in ``base_config``."""
    return [absolute_paths({key: v}, os.getcwd())[key] for v in study.grid[key]]


def trial_config(space: dict[str, Any], fixed: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of one trial from its param_space point and the study's fixed spec."""
    values = dict(fixed["base"])
    if space.get("row") is not None:
        values.update(fixed["rows"][space["row"]])
    values.update({k: v for k, v in space.items() if k in FIELDS})
    return TrainConfig.from_dict(values)


def expand(study: Study, base: dict[str, Any], user_keys: Sequence[str] = ()) -> list[tuple[str | None, TrainConfig]]:
    """Every trial of the study as (row label, validated TrainConfig); raises ConfigError.

    A searched study's "trials" are the ends of each search range, on its one seed.
    ``user_keys``: the fields the user set (``--set``). A field set explicitly (by the user, the
    study or a row) that a trial's method never reads is refused (``config.ignored_settings``)."""
    rows = study.rows
    fixed = fixed_spec(study, base)
    if study.search is not None:
        if len(study.seeds) != 1:
            raise ConfigError(f"study {study.name!r}: a searcher suggests one config per trial, so seeds must be "
                              f"a single seed (got {list(study.seeds)}); use --seeds 1")
        if rows or study.grid:
            raise ConfigError(f"study {study.name!r}: a searcher takes a search_space, not a grid")
    points: list[dict[str, Any]]
    if rows is not None:
        points = [{"row": r} for r in rows]
    else:
        keys = list(study.grid)
        points = [dict(zip(keys, vals)) for vals in itertools.product(*(_grid_values(study, k) for k in keys))]
    for k, domain in study.search_space.items():  # validate the ends of each search range
        if k not in FIELDS:
            raise ConfigError(f"study {study.name!r}: search_space key {k!r} is not a config field")
        points = [{**p, k: v} for p in points for v in domain_probe(domain)]
    seeds = study.trial_seeds
    if not seeds:
        raise ConfigError(f"study {study.name!r}: seeds is empty; at least one seed is needed")
    twice = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if twice:
        raise ConfigError(f"study {study.name!r}: seed(s) {twice} appear more than once in seeds; each seed runs once")
    out = []
    for p in points:
        where = f"row {p['row']!r}" if "row" in p else ", ".join(f"{k}={v!r}" for k, v in p.items())
        own = set(rows[p["row"]]) if rows is not None else set(p)  # what the row, grid or searcher sets
        for s in seeds:
            space = {**p, "seed": int(s)}
            try:
                cfg = trial_config(space, fixed)
                refuse_ignored(cfg, own)
            except ConfigError as e:
                raise ConfigError(f"study {study.name!r}, trial {where or 'base'} seed {s}: {e}") from None
            out.append((p.get("row"), cfg))
    _refuse_ignored_everywhere(study, [cfg for _, cfg in out], set(study.overrides) | set(user_keys))
    return out


def _refuse_ignored_everywhere(study: Study, configs: list[TrainConfig], keys: set[str]) -> None:
    """A study-wide setting (``--set`` or the study's overrides) that every trial ignores is
    refused; one that some trials read (``--set vc_side=student`` on a study with distill and
    VICReg rows) applies to those."""
    for key in sorted(keys):
        whys = [ignored_settings(c, [key]).get(key) for c in configs]
        if whys and all(whys):
            raise ConfigError(f"{key}={getattr(configs[0], key)!r} would do nothing in any trial of study "
                              f"{study.name!r} ({whys[0]}); drop it")


def resolve(study: Study, overrides: dict[str, Any] | list[str] | None = None):
    """The study's base config and every trial, checked as ``run_study`` and ``--dry-run`` do:
    (user overrides, base, [(row, TrainConfig)])."""
    user = parse_overrides(overrides)
    base = base_config(study, user)
    trials = expand(study, base, list(study.settings) + list(user))
    check_search(study, [cfg for _, cfg in trials])
    return user, base, trials


def study_metadata(study: Study) -> dict[str, str]:
    """What the Parquet files keep of the study's declaration for analysis/: its table's
    ``spec`` (``sqsp_table``: analysis/tables.py's ``Table``) and, for a search, its
    ``Search.metadata``."""
    meta = study.search.metadata(study.metric, study.mode) if study.search is not None else {}
    spec = getattr(study.table, "spec", None)
    if spec is not None:
        meta["sqsp_table"] = json.dumps(spec)
    return meta
