"""A study as a YAML file: read with OmegaConf, checked key by key, turned into the ``Study``
that a ``studies/<name>.py`` would declare, and written back (``study.yaml`` in the study
folder: the study as it ran, re-runnable with ``--config``).

    name: lr_sweep                     # the folder under --storage (default: the file's stem)
    preset: smoke
    seeds: [0, 1]                      # or a count: 3 runs seeds 0, 1, 2
    overrides: {syn_ratio: 1.0}        # what the study compares (config.STUDY_FIELDS only)
    set: {steps: 50}                   # any field, as --set (the command line's --set goes on top)
    rows:                              # named rows: overrides on the base ...
      e: {}
      d: {cov_weight: 0.0}
    grid: {sim_weight: [1, 5, 25]}     # ... or a grid (the Cartesian product), or a search:
    search:
      searcher: {type: optuna, seed: 0}
      space: {sim_weight: {loguniform: [1, 100]}, syn_ratio: {quniform: [0.25, 1.0, 0.125]}}
      num_samples: 16
      confirm_top: 3
      confirm_seeds: [1, 2, 3]
    metric: val_probe_acc
    mode: max
    scheduler: {type: asha, time_attr: progress, metric: val_knn_acc, max_t: 1.0, grace_period: 0.25}
    stopper: {type: collapse, patience: 2}
    table: {build: search_table, columns: [sim_weight, syn_ratio]}   # or a name: ablation_table
    figures: search_figures
    share_generator: true              # rows of a seed on one generator stream: one Ray trial (default: where exact)

Every problem is one ConfigError naming the key, the value and what is allowed, before Ray
starts. The searcher, schedulers and stoppers a file may name are the few below (a name, not
an import path: a study file runs nothing it does not list). A table or figure is named by
its function in analysis/tables.py or analysis/plots.py, imported when a study is read
(analysis/ imports nothing of sqsp above ``record``, so this is no circle). Dotted settings
of the file's own keys (``--set rows.e.sim_weight=10``, ``--set seeds=[0,1]``) are
OmegaConf's dot-list, merged over the document before it is checked.
"""
from __future__ import annotations

import difflib
import inspect
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from ray import tune

from ..config import PRESETS, ConfigError, parse_overrides
from .search import SAMPLERS, STUDY_FILE_FORM, CollapseStopper, Search, optuna_searcher, sampler_spec
from .study import FIELDS, Study

KEYS = ("name", "description", "preset", "seeds", "metric", "mode", "overrides", "set", "rows", "grid", "search",
        "scheduler", "stopper", "table", "figures", "checkpoint_rows", "share_generator")
SEARCH_KEYS = ("searcher", "space", "num_samples", "confirm_top", "confirm_seeds")
# Ray Tune's sampling functions a search space may name, with the arguments each takes
DISTRIBUTIONS = {"uniform": ("lower", "upper"), "quniform": ("lower", "upper", "q"), "loguniform": ("lower", "upper"),
                 "randint": ("lower", "upper"), "choice": ("categories",)}
# arguments a file does not give: a searcher's space (and metric) are the study's
NOT_FROM_FILES = ("self", "kwargs", "space")
SPEC = STUDY_FILE_FORM  # the study-file form of a searcher, scheduler or stopper, kept on the object


def _optuna(seed: int | None = None, sampler: str | None = None):
    """``{type: optuna, seed: 0}`` (TPE, as ``OptunaSearch(seed=0)``) or with one of Optuna's samplers by name."""
    if sampler is None:
        from ray.tune.search.optuna import OptunaSearch
        return OptunaSearch(seed=seed)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r}; allowed: {list(SAMPLERS)}")
    return optuna_searcher(sampler, 0 if seed is None else seed)


def _searchers() -> dict[str, Callable]:
    return {"optuna": _optuna}


def _schedulers() -> dict[str, Callable]:
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule
    return {"asha": ASHAScheduler, "median_stopping": MedianStoppingRule}


def _stoppers() -> dict[str, Callable]:
    from ray.tune.stopper import MaximumIterationStopper
    return {"collapse": CollapseStopper, "maximum_iteration": MaximumIterationStopper}


# -------------------------------------------------------------------------------------------------
# reading
# -------------------------------------------------------------------------------------------------
def read_study(path: str | os.PathLike, dotlist: Sequence[str] = ()) -> Study:
    """The study a YAML file declares, with ``dotlist`` (``rows.e.sim_weight=10``) on top."""
    doc = merge_dotlist(load_document(path), dotlist, str(path))
    return study_from_document(doc, where=str(path), default_name=Path(path).stem)


def load_document(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML file as plain values (OmegaConf's interpolations resolved)."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path}: no such file (relative to {os.getcwd()})")
    try:
        doc = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"study file {path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"study file {path}: {_one_line(e)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"study file {path}: holds a {type(doc).__name__}, not a mapping of the keys {list(KEYS)}")
    return doc


def merge_dotlist(doc: dict[str, Any], dotlist: Sequence[str], where: str = "the study") -> dict[str, Any]:
    """``doc`` with OmegaConf dot-list settings (``seeds=[0,1]``, ``rows.e.sim_weight=10``) merged in."""
    if not dotlist:
        return doc
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    for item in dotlist:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not of the form key=value")
    try:
        merged = OmegaConf.merge(OmegaConf.create(doc), OmegaConf.from_dotlist(list(dotlist)))
        return OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"--set {' '.join(dotlist)} on {where}: {_one_line(e)}") from None


def is_study_key(key: str) -> bool:
    """A ``--set`` key that names the study file's own keys (dotted, or a top-level key), not a config field."""
    return "." in key or (key in KEYS and key not in FIELDS)


def command_line_study(study: Study | None, config: str | None, grid: Sequence[str] = (),
                       dotlist: Sequence[str] = ()) -> Study | None:
    """The study a command line names: ``--config FILE`` (else the study of the file that runs
    it, ``study``), its own keys set by ``dotlist`` (dotted ``--set``) and ``--grid`` items
    (``sim_weight=1,5,25``, values parsed with the field's type): their Cartesian product
    replaces the study's grid, on the study's seeds. ``None``: no study named at all."""
    if config is None and not grid and not dotlist:
        return study
    if config is not None:
        where, name, doc = str(config), Path(config).stem, load_document(config)
    elif study is not None:
        where, name, doc = f"study {study.name!r}", study.name, study_document(study)
    elif grid:
        where, name, doc = "the command line", "sweep", {}
    else:
        return None
    doc = merge_dotlist(doc, dotlist, where)
    if grid:
        doc = with_grid(doc, grid, str(doc.get("name") or name))
    return study_from_document(doc, where=where, default_name=name)


def with_grid(doc: dict[str, Any], items: Sequence[str], name: str) -> dict[str, Any]:
    """``doc`` with the grid the ``--grid`` items give (and the grid's table, unless it names another)."""
    axes: dict[str, list[str]] = {}
    allowed = sorted(FIELDS - {"seed"})
    for item in items:
        key, sep, values = (x.strip() for x in item.partition("="))
        if not sep or not key or not values:
            raise ConfigError(f"--grid {item!r} is not of the form FIELD=V1,V2,... (e.g. --grid sim_weight=1,5,25)")
        if key not in allowed:
            raise ConfigError(f"--grid {item!r}: {key!r} is not a config field a grid sweeps (seeds: --seeds); "
                              f"allowed: {allowed}")
        if key in axes:
            raise ConfigError(f"--grid {item!r}: {key} is given twice; give all its values in one --grid")
        axes[key] = [v.strip() for v in values.split(",")]
        for v in axes[key]:
            try:
                parse_overrides({key: v})
            except ConfigError as e:
                raise ConfigError(f"--grid {item!r}: {e}") from None
    for part, what in (("rows", "named rows"), ("search", "a search")):
        if part in doc:
            raise ConfigError(f"--grid: study {name!r} declares {what}; --grid sweeps a study without them (a "
                              "study file with a grid:, or none: python -m sqsp.tune --grid ...); set a row's "
                              "field with --set rows.<label>.<field>=<value>")
    table = doc.get("table")
    doc = {**doc, "grid": axes}
    if table is None or (table.get("build") if isinstance(table, dict) else table) == "grid_table":
        doc["table"] = {"build": "grid_table", "columns": list(axes)}
    return doc


def study_from_document(doc: dict[str, Any], *, where: str = "the study", default_name: str = "study") -> Study:
    """The ``Study`` of a study-file document; raises ConfigError naming the key at fault."""
    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(f"study file {where}: {key}: {message}")

    unknown = [k for k in doc if k not in KEYS]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), KEYS, n=1)
        raise bad(str(k), f"unknown key{f' (did you mean {close[0]!r}?)' if close else ''}; allowed: {list(KEYS)}")
    name = str(doc.get("name") or default_name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise bad("name", f"{name!r} names the study's folder; allowed: letters, digits, '_', '-', '.'")
    preset = doc.get("preset", "smoke")
    if preset not in PRESETS:
        raise bad("preset", f"{preset!r} is not a preset; allowed: {sorted(PRESETS)}")
    mode = doc.get("mode", "max")
    if mode not in ("max", "min"):
        raise bad("mode", f"{mode!r}; allowed: max, min")
    metric = doc.get("metric", "probe_acc")
    if not isinstance(metric, str) or not metric:
        raise bad("metric", f"{metric!r} is not a metric name (e.g. probe_acc)")
    if "rows" in doc and "grid" in doc:
        raise bad("rows", "a study has named rows or a grid, not both")
    if "search" in doc and ("rows" in doc or "grid" in doc):
        raise bad("search", "a searched study has a search space, not rows or a grid")
    grid: dict[str, list] | list[dict[str, Any]]
    if "rows" in doc:
        grid = _rows(doc["rows"], bad)
    else:
        grid = _grid(doc.get("grid") or {}, bad)
    search = _search(doc["search"], bad) if "search" in doc else None
    default = (["search_table", list(search.space)] if search is not None else
               ["study_table", []] if isinstance(grid, list) else ["grid_table", list(grid)])
    spec = doc.get("table", {"build": default[0], "columns": default[1]})
    checkpoint_rows = doc.get("checkpoint_rows", False)
    if not isinstance(checkpoint_rows, bool):
        raise bad("checkpoint_rows", f"{checkpoint_rows!r}; allowed: true, false")
    share = doc.get("share_generator")
    if share is not None and not isinstance(share, bool):
        raise bad("share_generator", f"{share!r}; allowed: true, false (absent: share where it is exact)")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise bad("description", f"{description!r} is not a text")
    try:
        return Study(name=name, preset=preset, seeds=_seeds(doc.get("seeds", [0, 1, 2]), bad), metric=metric,
                     mode=mode, overrides=_fields(doc.get("overrides"), "overrides", bad), grid=grid, search=search,
                     scheduler=_made(doc.get("scheduler"), "scheduler", _schedulers(), bad),
                     stopper=_made(doc.get("stopper"), "stopper", _stoppers(), bad), table=_table(spec, bad),
                     figures=_figures(doc["figures"], bad) if doc.get("figures") else None, description=description,
                     checkpoint_rows=checkpoint_rows, share_generator=share,
                     settings=_fields(doc.get("set"), "set", bad))
    except ConfigError as e:
        raise ConfigError(f"study file {where}: {e}") from None


def _fields(values: Any, key: str, bad) -> dict[str, Any]:
    """A mapping of config fields to values, each parsed with its field's type."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise bad(key, f"{values!r} is not a mapping of config fields to values")
    try:
        return parse_overrides({str(k): v for k, v in values.items()})
    except ConfigError as e:
        raise bad(key, str(e)) from None


def _rows(rows: Any, bad) -> list[dict[str, Any]]:
    if not isinstance(rows, dict) or not rows:
        raise bad("rows", f"{rows!r} is not a mapping of row labels to their overrides (e.g. e: {{}})")
    return [{"row": str(label), **_fields(over, f"rows.{label}", bad)} for label, over in rows.items()]


def _grid(grid: Any, bad) -> dict[str, list]:
    if not isinstance(grid, dict):
        raise bad("grid", f"{grid!r} is not a mapping of config fields to lists of values")
    out = {}
    for k, values in grid.items():
        if not isinstance(values, list) or not values:
            raise bad(f"grid.{k}", f"{values!r} is not a non-empty list of values")
        out[str(k)] = [_fields({k: v}, f"grid.{k}", bad)[str(k)] for v in values]
    return out


def _seeds(seeds: Any, bad, key: str = "seeds") -> list[int]:
    usage = "allowed: a count N (seeds 0..N-1) or a list of distinct integers >= 0"
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise bad(key, f"{seeds!r}: a count of seeds must be >= 1; {usage}")
        return list(range(seeds))
    if (not isinstance(seeds, list) or not seeds or
            any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds)):
        raise bad(key, f"{seeds!r}; {usage}")
    return seeds


def _search(search: Any, bad) -> Search:
    if not isinstance(search, dict):
        raise bad("search", f"{search!r} is not a mapping of {list(SEARCH_KEYS)}")
    for k in search:
        if k not in SEARCH_KEYS:
            raise bad(f"search.{k}", f"unknown key; allowed: {list(SEARCH_KEYS)}")
    space = search.get("space")
    if not isinstance(space, dict) or not space:
        raise bad("search.space", f"{space!r} is not a mapping of config fields to distributions "
                                  "(e.g. sim_weight: {loguniform: [1, 100]})")
    for k in ("num_samples", "confirm_top"):
        v = search.get(k, 1 if k == "num_samples" else 0)
        if not isinstance(v, int) or isinstance(v, bool):
            raise bad(f"search.{k}", f"{v!r} is not an integer")
    confirm = _seeds(search.get("confirm_seeds", [1, 2, 3]), bad, "search.confirm_seeds")
    return Search(_made(search.get("searcher", "optuna"), "search.searcher", _searchers(), bad),
                  {str(k): domain(str(k), v, bad) for k, v in space.items()},
                  num_samples=search.get("num_samples", 1), confirm_top=search.get("confirm_top", 0),
                  confirm_seeds=confirm)


def domain(key: str, spec: Any, bad=None) -> Any:
    """``{loguniform: [1, 100]}`` -> ``tune.loguniform(1, 100)``, its bounds checked."""
    bad = bad or (lambda k, m: ConfigError(f"{k}: {m}"))
    where = f"search.space.{key}"
    if key not in FIELDS:
        raise bad(where, f"{key!r} is not a config field; allowed: {sorted(FIELDS - {'seed'})}")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise bad(where, f"{spec!r} is not a distribution; allowed: one of {list(DISTRIBUTIONS)} with its arguments, "
                         "e.g. {loguniform: [1, 100]}, {quniform: [0.25, 1.0, 0.125]}, {choice: [a, b]}")
    kind, args = next(iter(spec.items()))
    wanted = DISTRIBUTIONS[kind]
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise bad(where, f"choice {args!r}: give the non-empty list of values to choose from")
        return tune.choice([_fields({key: v}, where, bad)[key] for v in args])
    if not isinstance(args, list) or len(args) != len(wanted) or \
            any(not isinstance(a, (int, float)) or isinstance(a, bool) for a in args):
        raise bad(where, f"{kind} {args!r}: give the numbers [{', '.join(wanted)}]")
    lower, upper = args[0], args[1]
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise bad(where, f"randint {args!r}: its bounds are integers (upper excluded)")
    if not lower < upper:
        raise bad(where, f"{kind} {args!r}: lower must be below upper")
    if kind == "loguniform" and lower <= 0:
        raise bad(where, f"loguniform {args!r}: a log scale needs lower > 0")
    if kind == "quniform" and not args[2] > 0:
        raise bad(where, f"quniform {args!r}: the step q must be > 0")
    return getattr(tune, kind)(*args)


def domain_document(value: Any) -> dict[str, list]:
    """The inverse of ``domain``: a Ray Tune domain as its study-file form."""
    from ray.tune.search import sample
    if isinstance(value, sample.Categorical):
        return {"choice": list(value.categories)}
    inner, q = value.sampler, None
    if isinstance(inner, sample.Quantized):
        inner, q = inner.sampler, inner.q
    if isinstance(value, sample.Float) and isinstance(inner, sample.LogUniform) and q is None:
        return {"loguniform": [value.lower, value.upper]}
    if isinstance(value, sample.Float) and isinstance(inner, sample.Uniform):
        return {"quniform": [value.lower, value.upper, q]} if q is not None else {"uniform": [value.lower, value.upper]}
    if isinstance(value, sample.Integer) and isinstance(inner, sample.Uniform) and q is None:
        return {"randint": [value.lower, value.upper]}
    raise ConfigError(f"{value!r} has no study-file form; allowed: {list(DISTRIBUTIONS)}")


def _made(spec: Any, key: str, kinds: dict[str, Callable], bad) -> Any:
    """A searcher, scheduler or stopper from ``{type: name, argument: value, ...}`` (or just a name)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict) or spec.get("type") not in kinds:
        kind = spec.get("type") if isinstance(spec, dict) else spec
        raise bad(key, f"{kind!r} is not one this study file may name; allowed: {sorted(kinds)} "
                       "(as {type: <name>, <argument>: <value>, ...})")
    make = kinds[spec["type"]]
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    own = ("metric", "mode") if key.endswith("searcher") else ()  # a searcher optimises the study's metric
    allowed = [n for n in inspect.signature(make).parameters if n not in NOT_FROM_FILES + own]
    for k in kwargs:
        if k not in allowed:
            raise bad(f"{key}.{k}", f"{spec['type']} takes no argument {k!r}; allowed: {allowed}")
    try:
        obj = make(**kwargs)
    except (TypeError, ValueError, AssertionError) as e:
        raise bad(key, f"{spec['type']}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {_one_line(e)}") \
            from None
    setattr(obj, SPEC, dict(spec))
    return obj


def _table(spec: Any, bad) -> Any:
    import analysis.tables as tables
    if isinstance(spec, str):
        spec = {"build": spec}
    if not isinstance(spec, dict) or set(spec) - {"build", "columns"} or not isinstance(spec.get("build"), str):
        raise bad("table", f"{spec!r}; allowed: a table of analysis/tables.py by name (ablation_table) or "
                           "{build: <name>, columns: [<field>, ...]}")
    columns = spec.get("columns") or []
    if not isinstance(columns, list) or any(not isinstance(c, str) for c in columns):
        raise bad("table.columns", f"{columns!r} is not a list of column names")
    try:
        return tables.Table(tables._builder(spec["build"]), tuple(columns))
    except ValueError as e:
        raise bad("table", str(e)) from None


def _figures(name: Any, bad) -> Callable:
    import analysis.plots as plots
    allowed = sorted(n for n, f in vars(plots).items()
                     if n.endswith("_figures") and callable(f) and f.__module__ == plots.__name__)
    if name not in allowed:
        raise bad("figures", f"{name!r} is not a figure set of analysis/plots.py; allowed: {allowed}")
    return getattr(plots, name)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# -------------------------------------------------------------------------------------------------
# writing
# -------------------------------------------------------------------------------------------------
def study_document(study: Study) -> dict[str, Any]:
    """The study-file form of ``study`` (what ``study_from_document`` reads back to the same
    Study); raises ConfigError for a part that has none (a lambda table, a searcher or
    scheduler built in Python rather than read from a file)."""
    doc: dict[str, Any] = {"name": study.name}
    if study.description:
        doc["description"] = study.description
    doc.update(preset=study.preset, seeds=[int(s) for s in study.seeds], metric=study.metric, mode=study.mode)
    if study.overrides:
        doc["overrides"] = _plain(parse_overrides(study.overrides))
    if study.settings:
        doc["set"] = _plain(study.settings)
    rows = study.rows
    if rows is not None:
        doc["rows"] = {label: _plain(over) for label, over in rows.items()}
    elif study.grid:
        doc["grid"] = {k: [_plain(parse_overrides({k: v})[k]) for v in vals] for k, vals in study.grid.items()}
    if study.search is not None:
        s = study.search
        doc["search"] = {"searcher": _spec_of(s.searcher, "searcher"),
                         "space": {k: domain_document(v) for k, v in s.space.items()},
                         "num_samples": int(s.num_samples), "confirm_top": int(s.confirm_top),
                         "confirm_seeds": [int(x) for x in s.confirm_seeds]}
    for key in ("scheduler", "stopper"):
        if getattr(study, key) is not None:
            doc[key] = _spec_of(getattr(study, key), key)
    if study.table is not None:
        spec = getattr(study.table, "spec", None)
        if spec is None:
            raise ConfigError(f"study {study.name!r}: its table {study.table!r} is not a Table of analysis/tables.py")
        doc["table"] = spec
    if study.figures is not None:
        if not getattr(study.figures, "__module__", "").endswith("analysis.plots"):
            raise ConfigError(f"study {study.name!r}: its figures {study.figures!r} are not of analysis/plots.py")
        doc["figures"] = study.figures.__name__
    if study.checkpoint_rows:
        doc["checkpoint_rows"] = True
    if study.share_generator is not None:
        doc["share_generator"] = study.share_generator
    return doc


def study_yaml(doc: dict[str, Any]) -> str:
    from omegaconf import OmegaConf
    return OmegaConf.to_yaml(OmegaConf.create(doc), sort_keys=False)


def _spec_of(obj: Any, key: str) -> dict[str, Any]:
    spec = getattr(obj, SPEC, None)
    if spec is None and key == "searcher" and "sampler" in sampler_spec(obj):  # --sampler, --sampler-seed
        spec = {"type": "optuna", **sampler_spec(obj)}
    if spec is None:
        raise ConfigError(f"the {key} {type(obj).__name__} was built in Python, not read from a study file")
    return dict(spec)


def _plain(values: dict[str, Any] | Any) -> Any:
    """Config values as YAML writes them (tuples as lists)."""
    if isinstance(values, dict):
        return {k: _plain(v) for k, v in values.items()}
    return list(values) if isinstance(values, tuple) else values
