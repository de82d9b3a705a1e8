"""A study's results as two Parquet files: the only module of sqsp that writes Parquet.

Every study writes, in its folder ``<storage>/<study>/`` (a local folder, a shared
filesystem or any URI ``pyarrow.fs.FileSystem.from_uri`` understands, e.g. ``s3://…``):

``trials.parquet`` — one row per trial, never a hole: a trial that raised, diverged or
collapsed is a row with its status and error like any other.

====================  ==============  =====================================================
column                type            meaning
====================  ==============  =====================================================
trial_id              string          Ray Tune's trial id (unique within the study)
study                 string          the study's name
row                   string, null    the row label of a study declared as named rows
<every TrainConfig    its type        the trial's resolved config, one column per field
 field>                               (``seed`` is one of them); see sqsp/config.py
status                string          completed | collapsed | failed | diverged |
                                      stopped | unfinished | skipped (sqsp/record.py)
error                 string, null    ``ExceptionType: message`` of a failed/diverged trial,
                                      or what a skipped trial needs
phase                 string, null    a searched study's ``search`` trials, and the ``confirm``
                                      trials that re-run its best configs on other seeds
confirms              string, null    of a ``confirm`` trial: the search trial it re-runs
trial_number          int64, null     the order Tune created the trial in (within its phase):
                                      for a searcher, the order it proposed them
step, epoch           int64, null     at the last report
progress              float64         step / total steps at the last report (1: ran to its end)
loss, loss_sim, …     float64         metrics of the last report; ``knn_acc`` is the last
 (every metric)                       evaluated value, ``probe_acc`` the final one (NaN if
                                      the run did not finish); any further metric that
                                      train() reports gets a column here too
probe_acc_best        float64         probe='paper': the best test accuracy over the probe's
                                      evaluations (after epoch 0, every 5th, the last), what
                                      the authors' tables report; ``probe_acc`` is the last
val_knn_acc,          float64         with ``val_fraction`` > 0: the validation split's kNN
 val_probe_acc                        monitor (last report) and probe (final); selection
                                      metrics, never computed from the test split
init_knn_acc,         float64         the untrained backbone's accuracies (step 0, same
 init_probe_acc                       seed), when the config has ``eval_init``
mmd_syn_real          float64         MMD² of synthetic vs real representations at the
                                      end (``eval_mmd``, paper Table 5; KID's kernel on
                                      pooled-standardised features: scale-free)
probe_acc@<dataset>,  float64         the final backbone probed on another dataset
 knn_acc@<dataset>                    (``transfer_datasets``, appendix Table 5)
collapsed             bool, null      the final report's collapse flag
row_index             int64, null     the row's position in the study's declaration
reports               int64           rows of this trial in history.parquet
retries               int64, null     times Ray restarted the trial after a crash (a lost worker
                                      or node), from its last checkpoint; its status is the
                                      outcome of the last attempt
stream_group          string, null    with ``--share-generator``: the Ray trial the row ran in,
                                      with the other rows of its seed that read the same
                                      generator stream (null: a trial of its own)
wall_time_s           float64         Ray's time_total_s (counts time before a restore)
hostname, node_ip     string, null    where the trial last ran
generator_sha256,     string, null    what produced the trial, recorded where it ran
 numpy_version,                       (sqsp/provenance.py): the generator file's sha256
 kornia_version,                      (null for an untrained ``random:`` generator), library
 sklearn_version,                     versions, ``torch.version.cuda`` (null: a CPU build)
 cuda_version,                        and the GPU's or CPU's name
 device_name
checkpoint            string, null    the trial's latest checkpoint, relative to the study
                                      folder (``read_trials`` resolves it against the folder it
                                      reads, so a copied or moved study reads its own files)
trial_path            string, null    the trial's folder, relative to the study folder likewise
run_id                string, null    the study run (``sqsp_run``) that last wrote the trial
started_at, ended_at  timestamp, null  UTC: the trial's start (its first report less Ray's
                                      time_total_s) and its last report
python_version,       string          versions of the driver that wrote the file
 torch_version,
 ray_version
sqsp_commit           string, null    ``git rev-parse HEAD`` of the project, if a checkout
sqsp_dirty            bool, null      uncommitted changes to tracked files at that commit
====================  ==============  =====================================================

``history.parquet`` — one row per report of every trial, in report order:
``trial_id``, ``row``, ``seed``, ``training_iteration`` (the report's 1-based number in
its trial, Ray's counter unless a resume replayed reports), ``time_total_s``, then every metric train() reported (NaN where a
report did not carry it, e.g. ``knn_acc`` between evaluations).

Both files carry ``sqsp_schema_version`` (and ``sqsp_kind``, ``sqsp_study``) in their
Parquet key-value metadata; readers check the version. ``sqsp_runs`` (JSON) lists every run of
the study that wrote the files (run id, UTC start and end, the command), so two runs merged in
duckdb or pandas are told apart by ``run_id``. Each column's unit and meaning are in its Parquet
field metadata (``unit``, ``description``; accuracies are top-1 in percent). A searched study adds
``sqsp_metric``, ``sqsp_mode`` (what it selected on) and ``sqsp_search_space`` (JSON: each
searched field's Optuna distribution, ``optuna.distributions.distribution_to_json``), so
that analysis/ can rebuild the search from the files alone; ``read_trials`` and
``read_history`` return every ``sqsp_*`` entry in ``DataFrame.attrs["sqsp"]``. Both are written atomically (a
temporary file in the same folder, fsync'd, then renamed; for a URI a temporary key then
a move) so a crash never leaves a half-written file, and both are rebuilt from the whole
experiment after a resume. Ray replays the reports made after a trial's last checkpoint
when it resumes it, so the history keeps the newest report of each (trial_id, step), in step
order, and numbers a trial's reports 1.. (``training_iteration``) in that order.

Nothing here imports Ray: sqsp/tune/experiment.py turns Ray's ResultGrid into ``TrialRecord`` s, and
analysis/ reads the files with ``read_trials`` / ``read_history`` or plain pandas. What a
report holds and how a status is read from it is sqsp/record.py's contract.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import record
from .config import TrainConfig
from .errors import UserError
from .record import FAILED, error_text, trial_status
from .columns import field_doc
from .storage import atomic_output, filesystem, join, remove_leftovers

SCHEMA_VERSION = "1"
TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# Parquet type of each config column, from the field's default (None only for optional strings).
_CONFIG_KIND = {f.name: {bool: "boolean", int: "Int64", float: "float64"}.get(type(f.default), "string")
                for f in dataclasses.fields(TrainConfig)}
METRICS = record.METRIC_NAMES
"""The metrics train() reports, in column order; others it adds follow them (sqsp/record.py)."""
PROVENANCE = ("python_version", "torch_version", "ray_version", "sqsp_commit", "sqsp_dirty")


@dataclass
class TrialRecord:
    """One trial as the study layer hands it over: plain values, no Ray objects."""
    trial_id: str
    config: dict[str, Any]                     # TrainConfig.to_dict() of the trial
    row: str | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)   # every result, in order
    error: BaseException | str | None = None   # what the trial raised, after retries
    checkpoint: str | None = None
    path: str | None = None
    row_index: int | None = None               # position of ``row`` in the study's declaration
    skipped: str | None = None                 # why the trial was never started (status 'skipped')
    phase: str | None = None                   # a searched study's "search" or "confirm" trial
    confirms: str | None = None                # the search trial a "confirm" trial re-runs
    number: int | None = None                  # creation order in its Tune experiment
    failures: int | None = None                # times Ray restarted it after a crash (a lost node…)
    group: str | None = None                   # the Ray trial it ran in, sharing its generator stream


# ---------------------------------------------------------------------------------------------
# building the tables
# ---------------------------------------------------------------------------------------------
def history_frame(records: Iterable[TrialRecord]) -> pd.DataFrame:
    """One row per report of every trial; replayed reports are dropped (keep the newest)."""
    frames = []
    for r in records:
        reports = [x for x in r.reports if not x.get(record.FAILED_MARK)]  # a failure report has no metrics
        if not reports:
            continue
        df = pd.DataFrame([_flat(x) for x in reports])
        df = df.drop(columns=[c for c in df.columns if c in record.RAY_KEYS and c not in record.HISTORY_RAY_KEYS])
        if "training_iteration" not in df:
            df["training_iteration"] = range(1, len(df) + 1)
        # A resumed trial replays the reports made after the checkpoint it resumed from: keep the
        # newest of each step. Tune counts its iterations from the checkpoint its snapshot knows,
        # which can be older than the one resumed from (sqsp/tune/resume_point.py), so a replayed
        # iteration number can name another step: reports are told apart by step, in step order,
        # the step-less ones (a divergence) after them, and numbered 1.. in that order.
        has_step = df["step"].notna() if "step" in df else pd.Series(False, index=df.index)
        stepless = df[~has_step].drop_duplicates("training_iteration", keep="last").sort_values("training_iteration",
                                                                                               kind="stable")
        if has_step.any():
            stepped = df[has_step].drop_duplicates("step", keep="last").sort_values("step", kind="stable")
            df = pd.concat([stepped, stepless]) if len(stepless) else stepped
        else:
            df = stepless
        df["training_iteration"] = range(1, len(df) + 1)
        df.insert(0, "trial_id", r.trial_id)
        df.insert(1, "row", r.row)
        df.insert(2, "seed", r.config.get("seed"))
        frames.append(df)
    if not frames:
        return _typed(pd.DataFrame(columns=["trial_id", "row", "seed", "training_iteration", "time_total_s",
                                            *METRICS]))
    df = pd.concat(frames, ignore_index=True)
    metrics = [c for c in df.columns if record.is_metric(c)]
    ordered = list(METRICS) + sorted(m for m in metrics if m not in METRICS)
    cols = ["trial_id", "row", "seed", "training_iteration", "time_total_s", *ordered]
    if "done" in df:
        cols.append("done")
    for c in cols:
        if c not in df:
            df[c] = None
    return _typed(df[cols].reset_index(drop=True))


def trials_frame(study: str, records: list[TrialRecord], provenance: dict[str, Any] | None = None,
                 directory: str | None = None, run_id: str | None = None) -> pd.DataFrame:
    """One row per trial: config, status, error, final metrics, provenance; paths relative to
    ``directory`` (the study folder), ``run_id`` for trials whose reports name no run."""
    history = history_frame(records)
    by_trial = {k: g for k, g in history.groupby("trial_id", sort=False)} if len(history) else {}
    provenance = provenance if provenance is not None else collect_provenance()
    rows = []
    for r in records:
        h = by_trial.get(r.trial_id)
        last = _flat(r.reports[-1]) if r.reports else {}
        row: dict[str, Any] = {"trial_id": r.trial_id, "study": study, "row": r.row}
        row.update({k: r.config.get(k) for k in CONFIG_FIELDS})
        row["status"] = "skipped" if r.skipped else trial_status(last, r.error)
        row["error"] = r.skipped or error_text(r.error) or (
            last.get(record.ERROR) if last.get(record.DIVERGED) or last.get(record.FAILED_MARK) else None)
        row["phase"], row["confirms"], row["trial_number"] = r.phase, r.confirms, r.number
        if h is not None:
            for m in h.columns:
                if record.is_metric(m) and m not in CONFIG_FIELDS:
                    vals = h[m].dropna()
                    row[m] = vals.iloc[-1] if len(vals) else None
        row["row_index"] = r.row_index
        row["reports"] = 0 if h is None else len(h)
        row["wall_time_s"] = last.get("time_total_s")
        row["hostname"] = last.get("hostname")
        row["node_ip"] = last.get("node_ip")
        row["checkpoint"] = _relative(r.checkpoint, directory)
        row["trial_path"] = _relative(r.path, directory)
        row["run_id"] = last.get("run_id") or run_id
        row["retries"] = r.failures
        row["stream_group"] = r.group
        row["started_at"], row["ended_at"] = _times(r.reports)
        row.update({k: provenance.get(k) for k in PROVENANCE})
        rows.append(row)
    head = ["trial_id", "study", "row", *CONFIG_FIELDS, "status", "error", "phase", "confirms", "trial_number"]
    tail = ["row_index", "reports", "retries", "stream_group", "wall_time_s", "hostname", "node_ip", "checkpoint", "trial_path",
            "run_id", "started_at", "ended_at", *PROVENANCE]
    df = pd.DataFrame(rows)
    extra = sorted(c for c in df.columns if c not in head and c not in tail and c not in METRICS)
    cols = head + list(METRICS) + extra + tail
    for c in cols:
        if c not in df:
            df[c] = None
    return _typed(df[cols])


def _relative(path: str | None, directory: str | None) -> str | None:
    """``path`` relative to the study folder when it lies inside it (a local path or a URI under
    the folder's URI); else unchanged. Stored so, a study folder copied elsewhere reads its own
    checkpoints instead of silently reading the original's."""
    if not path or not directory:
        return path
    base = str(directory).rstrip("/")
    if "://" in base or "://" in str(path):
        return str(path)[len(base) + 1:] if str(path).startswith(base + "/") else str(path)
    full, root = os.path.abspath(path), os.path.abspath(base)
    return os.path.relpath(full, root) if full == root or full.startswith(root + os.sep) else str(path)


def _resolved(df: pd.DataFrame, location: str) -> pd.DataFrame:
    """The stored relative paths joined onto the folder the file was read from."""
    folder = str(location).rstrip("/")
    folder = folder.rsplit("/", 1)[0] if folder.endswith(".parquet") else folder
    for c in PATH_COLUMNS:
        if c in df:
            df[c] = df[c].map(lambda v: v if _missing(v) or "://" in str(v) or os.path.isabs(str(v))
                              else join(folder, str(v))).astype("string")
    return df


PATH_COLUMNS = ("checkpoint", "trial_path")


def _utc(seconds) -> pd.Timestamp | None:
    return None if _missing(seconds) else pd.Timestamp(float(seconds), unit="s", tz="UTC")


def _times(reports: list[dict[str, Any]]) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """A trial's start and end in UTC from Ray's per-report ``timestamp`` and ``time_total_s``."""
    stamped = [r for r in reports if isinstance(r.get("timestamp"), (int, float))]
    if not stamped:
        return None, None
    first, last = stamped[0], stamped[-1]
    return _utc(first["timestamp"] - float(first.get("time_total_s") or 0.0)), _utc(last["timestamp"])


def failure_summary(trials: pd.DataFrame) -> list[str]:
    """One line per distinct reason trials failed or diverged, with their count and ids:
    what a study prints under its table (a "failed 3" in a table says nothing of why)."""
    if "status" not in trials:
        return []
    groups: dict[tuple[str, str], list[str]] = {}
    for _, t in trials[trials["status"].isin(FAILED)].iterrows():
        err = t.get("error")
        reason = str(err).strip().splitlines()[0] if isinstance(err, str) and err.strip() else "(no error recorded)"
        groups.setdefault((str(t["status"]), reason), []).append(str(t["trial_id"]))
    return [f"{len(ids)} trial{'s' if len(ids) > 1 else ''} {status} ({', '.join(sorted(ids))}): {reason}"
            for (status, reason), ids in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1])))]


def package_version(pkg: str) -> str | None:
    """The installed version of a distribution (``scikit-learn``, ``torch``), None if it is not installed."""
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect_provenance() -> dict[str, Any]:
    """Versions of what produced the results, and the project's git commit if it is a checkout."""
    root = Path(__file__).resolve().parents[1]
    commit = dirty = None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        if commit:
            st = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
            dirty = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"python_version": platform.python_version(), "torch_version": package_version("torch"),
            "ray_version": package_version("ray"), "sqsp_commit": commit, "sqsp_dirty": dirty}


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "config" and not k.startswith("config/")}


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Stable Parquet types: config fields by their type, metrics float64 / Int64 / boolean."""
    df = df.copy()
    for c in df.columns:
        if c in CONFIG_FIELDS:
            kind = _CONFIG_KIND[c]
        elif c in record.INT_METRICS or c in ("training_iteration", "reports", "retries", "seed", "row_index",
                                              "trial_number"):
            kind = "Int64"
        elif c in record.BOOL_METRICS or c == "sqsp_dirty":
            kind = "boolean"
        elif c in _STRING_COLUMNS:
            kind = "string"
        elif c in _TIME_COLUMNS:
            kind = "time"
        else:  # a metric train() added: bool, number or text
            vals = [v for v in df[c] if not _missing(v)]
            kind = ("boolean" if vals and all(isinstance(v, bool) for v in vals) else
                    "float64" if all(isinstance(v, (int, float)) for v in vals) else "string")
        df[c] = _cast(df[c], kind)
    return df


_STRING_COLUMNS = ("trial_id", "study", "row", "status", "error", "phase", "confirms", "hostname", "node_ip",
                   "checkpoint", "trial_path", "run_id", "python_version", "torch_version", "ray_version",
                   "sqsp_commit")
_TIME_COLUMNS = ("started_at", "ended_at")


def _cast(s: pd.Series, kind: str) -> pd.Series:
    if kind == "time":
        return pd.to_datetime(s.map(lambda v: None if _missing(v) else v), utc=True)
    if kind == "string":
        return s.map(lambda v: None if _missing(v) else str(v)).astype("string")
    if kind == "boolean":
        return s.map(lambda v: None if _missing(v) else bool(v)).astype("boolean")
    if kind == "Int64":
        return pd.to_numeric(s.map(lambda v: None if _missing(v) else v), errors="coerce").astype("Int64")
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def write_study(directory: str, study: str, records: list[TrialRecord],
                provenance: dict[str, Any] | None = None,
                metadata: dict[str, str] | None = None,
                runs: list[dict[str, Any]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build both tables from all trials of a study and write them atomically; ``metadata``
    (``sqsp_*`` keys, e.g. a searched study's ``sqsp_search_space``) goes into both files, and
    ``runs`` (every run of the study so far, the current one last: ``run_id``, ``started_at``,
    ``ended_at``, ``command``) as ``sqsp_runs``. The caller holds the study folder (its lock), so
    temporaries found there are a killed writer's and are removed first."""
    if runs:
        metadata = {**(metadata or {}), "sqsp_runs": json.dumps(runs, default=str)}
    trials = trials_frame(study, records, provenance, directory=directory,
                          run_id=runs[-1].get("run_id") if runs else None)
    history = history_frame(records)
    for name in (HISTORY_FILE, TRIALS_FILE):  # a run killed while writing them left its temporaries
        remove_leftovers(join(directory, name))
    write_parquet(history, join(directory, HISTORY_FILE), kind="history", study=study, metadata=metadata)
    write_parquet(trials, join(directory, TRIALS_FILE), kind="trials", study=study, metadata=metadata)
    meta = {"sqsp_schema_version": SCHEMA_VERSION, "sqsp_study": study, **(metadata or {})}
    trials.attrs["sqsp"], history.attrs["sqsp"] = {**meta, "sqsp_kind": "trials"}, {**meta, "sqsp_kind": "history"}
    return trials, history


def write_parquet(df: pd.DataFrame, target: str, *, kind: str, study: str, info: dict[str, Any] | None = None,
                  metadata: dict[str, str] | None = None) -> None:
    """Write ``df`` to ``target`` (a path or URI) so that readers see the old file or the new one.
    ``info`` (plain JSON values) is kept in the file's metadata as ``sqsp_info``; ``metadata``
    (``sqsp_*`` keys) as given."""
    bad = [k for k in metadata or {} if not k.startswith("sqsp_")]
    if bad:
        raise ValueError(f"metadata keys {bad} must start with 'sqsp_'")
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for f in table.schema:
        doc = field_doc(f.name)
        fields.append(f.with_metadata({b"unit": doc[0].encode(), b"description": doc[1].encode()}) if doc else f)
    table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
    meta = dict(table.schema.metadata or {})
    meta.update({k.encode(): str(v).encode() for k, v in (metadata or {}).items()})
    meta.update({b"sqsp_schema_version": SCHEMA_VERSION.encode(), b"sqsp_kind": kind.encode(),
                 b"sqsp_study": study.encode()})
    if info is not None:
        meta[b"sqsp_info"] = json.dumps(info, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_output(target) as f:
        pq.write_table(table, f)


def write_table(df: pd.DataFrame, location: str, name: str, *, kind: str, info: dict[str, Any] | None = None) -> str:
    """A table that is not a study's (e.g. Fig. 2's representations, appendix Fig. 1's CKA
    matrix) as ``<location>/<name>``, written like the study files; returns its path."""
    target = join(location, name)
    write_parquet(df, target, kind=kind, study=os.path.basename(str(location).rstrip("/")), info=info)
    return target


def read_table(location: str, name: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A table written by ``write_table`` (the folder or the file) and its ``info``; its kind
    must be the file name's stem (``representations.parquet`` holds kind ``representations``)."""
    df = _read(location, name, kind=name.rsplit("/", 1)[-1].removesuffix(".parquet"))
    meta = schema_metadata(location, name)
    return df, json.loads(meta.get("sqsp_info", "{}"))


def read_trials(location: str) -> pd.DataFrame:
    """trials.parquet of a study folder (or the file itself), path or URI; the trials' stored
    paths resolved against the folder it was read from."""
    return _resolved(_read(location, TRIALS_FILE), location)


def read_history(location: str) -> pd.DataFrame:
    return _read(location, HISTORY_FILE)


def schema_metadata(location: str, name: str = TRIALS_FILE) -> dict[str, str]:
    fs, path = filesystem(_file(location, name))
    meta = pq.read_schema(path, filesystem=fs).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"sqsp_")}


class ResultsError(UserError, ValueError):
    """A file that is not the study file asked for (another kind, another schema, not Parquet)."""


def _read(location: str, name: str, kind: str | None = None) -> pd.DataFrame:
    fs, path = filesystem(_file(location, name))
    kind = kind or ("trials" if name == TRIALS_FILE else "history")
    found = fs.get_file_info(path).type
    if found != pafs.FileType.File:
        what = "does not exist" if found == pafs.FileType.NotFound else "is a folder"
        raise FileNotFoundError(f"{path} {what}; give a study folder written by a study (e.g. results/ablation "
                                f"from python studies/ablation.py) or its {name}")
    try:
        table = pq.read_table(path, filesystem=fs)
    except pa.ArrowInvalid as e:
        raise ResultsError(f"{path} is not a Parquet file ({e})") from None
    meta = table.schema.metadata or {}
    got = meta.get(b"sqsp_kind", b"").decode()
    if got and got != kind:
        raise ResultsError(f"{path} is sqsp's {got} file, not its {kind} file; give the study folder or its {name}")
    version = meta.get(b"sqsp_schema_version", b"").decode()
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{path}: sqsp_schema_version={version or 'missing'!r}; this sqsp reads "
                           f"version {SCHEMA_VERSION} (see sqsp/results.py)")
    df = table.to_pandas()
    df.attrs["sqsp"] = {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"sqsp_")}
    return df


def _file(location: str, name: str) -> str:
    loc = str(location).rstrip("/")
    return loc if loc.endswith(".parquet") else join(loc, name)
