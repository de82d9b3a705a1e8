"""``--share-generator``: the rows of a seed that read one synthetic stream run as one Ray trial.

The plan (``plan_groups``, in the driver before Ray starts): a grid study's trials are grouped
by ``sqsp.streams.stream_key`` (seed, generator, truncation, syn_batch, blocks, teacher
source, image size, device); each group is one Ray trial (``param_space``: ``{"group":
grid_search(labels)}``, the members in the fixed spec) that runs ``sqsp.grouped.train_group``
(``sqsp_group_trial``). A row whose stream no other row reads is a group of one. The default,
``share_generator=None``, groups where it is exact; ``True`` asks for it and refuses what
cannot be (a search, a scheduler or stopper, which stop Ray trials, not rows; a generator that
draws from torch's global RNG); ``False`` runs every row as its own trial.

Each member stays its own record: the trial reports ``m<k>/<metric>`` for the members whose
epoch ended, and ``member_records`` turns the group's Ray result back into one TrialRecord per
row (its own reports, status, error, checkpoint folder ``<checkpoint>/m<k>``, and
``stream_group``: the Ray trial it ran in). A crash of the group (Ray retries it) resumes every
member from the group's checkpoint; a member that ended is not run again.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ray import tune

from .. import record, results
from ..config import ConfigError, TrainConfig
from ..errors import USER_ERRORS
from ..streams import inexact, stream_key
from ..provenance import trial_provenance
from .console import trial_label
from .resume_point import continue_trial
from .study import Study, trial_config

GROUP = "group"
"""The param_space key of a grouped study's trials (the group's label)."""
MEMBERS = "members"
"""The group-level report key: how many rows the trial runs (the console counts them)."""


def member_key(k: int, key: str) -> str:
    return f"m{k}/{key}"


def plan_groups(study: Study, trials: Sequence[tuple[str | None, TrainConfig]], share: bool | None, *,
                custom_train: bool = False) -> dict[str, dict[str, Any]] | None:
    """{label: {"seed": s, "members": [param_space point of each row]}} or None (every row its own
    trial). ``trials``: the runnable (row, config) pairs. Raises ConfigError where ``share`` is
    True and sharing cannot be exact."""
    if share is False:
        return None
    reason = _cannot_group(study, custom_train)
    if reason is None and share:
        bad = [(row, why) for row, cfg in trials if (why := inexact(cfg))]
        if bad:
            reason = f"row {bad[0][0]!r}: {bad[0][1]}"
    if reason is not None:
        if share:
            raise ConfigError(f"--share-generator on: {reason}; sharing the generator is exact only for grid "
                              "studies of deterministic generators; allowed here: --share-generator off (or auto)")
        return None
    by_stream: dict[tuple, list[tuple[str | None, TrainConfig]]] = {}
    alone: list[tuple[str | None, TrainConfig]] = []
    for row, cfg in trials:
        key = stream_key(cfg)
        if key is None or inexact(cfg):
            alone.append((row, cfg))
        else:
            by_stream.setdefault(key, []).append((row, cfg))
    units = list(by_stream.values()) + [[t] for t in alone]
    if all(len(u) == 1 for u in units):
        return None  # nothing shares: the study runs as it always did
    plan = {}
    for unit in sorted(units, key=lambda u: (u[0][1].seed, study_order(study, u[0]))):
        points = [_point(study, row, cfg) for row, cfg in unit]
        label = f"{'+'.join(_name(p) for p in points)} seed {unit[0][1].seed}"
        plan[label] = {"seed": unit[0][1].seed, "members": points}
    return plan


def _cannot_group(study: Study, custom_train: bool) -> str | None:
    """Why no trials of ``study`` can be grouped, whatever their streams."""
    if study.search is not None:
        return f"study {study.name!r} is a search (its trials are proposed one at a time)"
    if study.early_stopping:
        return (f"study {study.name!r} stops trials early ({' and '.join(study.early_stopping)}), which acts on Ray "
                "trials, not on the rows inside one")
    return "the study runs a stand-in for train() (train_fn)" if custom_train else None


def stored_groups(fixed: dict[str, Any], share: bool | None) -> dict[str, dict[str, Any]] | None:
    """A resumed study's groups, as it started; a --share-generator that says otherwise is refused."""
    groups = fixed.get("groups")
    if share is not None and bool(groups) != share:
        raise ConfigError(f"--share-generator {'on' if share else 'off'}: the study started "
                          f"{'with' if groups else 'without'} shared generator streams and resumes as it started; "
                          "allowed: --share-generator auto (or the original setting)")
    return groups


def study_order(study: Study, trial: tuple[str | None, TrainConfig]) -> int:
    rows = list(study.rows or {})
    return rows.index(trial[0]) if trial[0] in rows else 0


def _point(study: Study, row: str | None, cfg: TrainConfig) -> dict[str, Any]:
    """The param_space point the row would have as a trial of its own, less the seed."""
    if row is not None:
        return {"row": row}
    return {k: getattr(cfg, k) for k in study.grid}


def _name(point: dict[str, Any]) -> str:
    return str(point["row"]) if "row" in point else ",".join(f"{k}={v}" for k, v in point.items())


def group_space(plan: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {GROUP: tune.grid_search(list(plan))}


def member_configs(space: dict[str, Any], fixed: dict[str, Any]) -> list[tuple[dict[str, Any], TrainConfig]]:
    """Each member's param_space point (with its seed) and TrainConfig."""
    group = fixed["groups"][space[GROUP]]
    spaces = [{**p, "seed": group["seed"]} for p in group["members"]]
    return [(s, trial_config(s, fixed)) for s in spaces]


# -------------------------------------------------------------------------------------------------
# the trainable
# -------------------------------------------------------------------------------------------------
def sqsp_group_trial(space: dict[str, Any], *, fixed: dict[str, Any], threads: int = 1,
                     run_id: str | None = None, train_fn: Callable | None = None) -> None:
    """Ray Tune function trainable of one group: ``train_group`` over its members, resumed from
    Tune's checkpoint if any; each member's report as ``sqsp_trial`` would make it, under ``m<k>/``."""
    import torch
    torch.set_num_threads(max(1, int(threads)))
    from .trainable import decorate
    members = member_configs(space, fixed)
    if train_fn is None:
        from ..grouped import train_group as train_fn
    infos = [{**fixed.get("info", {}).get(s.get("row"), {}), **trial_provenance(cfg)} for s, cfg in members]
    run = {record.RUN_ID: run_id} if run_id else {}
    labels = [trial_label(s) for s, _ in members]
    reported: list[int] = []  # the members whose report so far ended them
    since: list[dict[str, Any]] = []  # the reports after the last checkpoint, kept in the next one's seal

    def decorated(k: int, metrics: dict[str, Any]) -> dict[str, Any]:
        if metrics.get(record.DIVERGED) or metrics.get(record.FAILED_MARK):  # as sqsp_trial reports them: unmarked
            return {**infos[k], **metrics, **run}
        return decorate(metrics, infos[k], run)

    def report(out: dict[int, dict[str, Any]], checkpoint_dir: str | None) -> None:
        # one string, not a list: Ray's TensorBoard logger warns at every report of a list it cannot plot
        flat = {MEMBERS: len(members), "member_labels": "\n".join(labels),
                "epoch": max((m.get("epoch") or 0) for m in out.values()),
                "progress": min(m.get("progress", 1.0) for m in out.values())}
        for k, m in out.items():
            flat.update({member_key(k, key): v for key, v in decorated(k, m).items()})
        reported.extend(k for k, m in out.items() if m.get(record.DONE))
        since.append(flat)
        if checkpoint_dir is None:
            tune.report(flat)
        else:  # the directory lives only during this call: Ray copies it to storage inside report()
            # the members step together: the furthest step reported is the group's
            record.seal_checkpoint(checkpoint_dir, max((m.get("step") or 0) for m in out.values()), since)
            since.clear()
            tune.report(flat, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

    configs = [cfg for _, cfg in members]
    try:
        done = continue_trial(train_fn, configs, report)
        if done.resumed and not reported and all(m.get(record.DONE) for m in done.result):
            # resumed from its final checkpoint (the driver died before recording the end): the end again
            report(dict(enumerate(done.result)), None)
    except USER_ERRORS as e:  # a bad config or file (the shared generator's): every member, no retry
        _fail_the_rest(report, len(members), reported, e)
    except Exception as e:
        oom = record.out_of_memory(e)
        if oom is None:
            raise
        _fail_the_rest(report, len(members), reported, oom)


def _fail_the_rest(report, n: int, ended: list[int], error: BaseException) -> None:
    report({k: record.failed_report(error) for k in range(n) if k not in ended}, None)


# -------------------------------------------------------------------------------------------------
# the records
# -------------------------------------------------------------------------------------------------
_GROUP_RAY_KEYS = ("training_iteration", "time_total_s", "timestamp", "hostname", "node_ip", "date", "pid")


def member_records(group: results.TrialRecord, space: dict[str, Any], fixed: dict[str, Any],
                   order: Sequence[str] = ()) -> list[results.TrialRecord]:
    """One record per member of a group trial's record (``group``: its reports as Ray keeps them)."""
    out = []
    for k, (s, cfg) in enumerate(member_configs(space, fixed)):
        prefix = member_key(k, "")
        reports = []
        for r in group.reports:
            own = {key[len(prefix):]: v for key, v in r.items() if isinstance(key, str) and key.startswith(prefix)}
            if own:
                reports.append({**{key: r[key] for key in _GROUP_RAY_KEYS if key in r}, **own})
        status = record.trial_status(reports[-1], None) if reports else "unfinished"
        kept = group.checkpoint and status not in record.FAILED  # a diverged row's state is not kept, as alone
        row = s.get("row")
        out.append(results.TrialRecord(
            trial_id=f"{group.trial_id}-m{k}", config=cfg.to_dict(), row=row, reports=reports,
            error=None if status != "unfinished" else group.error,
            checkpoint=f"{group.checkpoint.rstrip('/')}/m{k}" if kept else None, path=group.path,
            row_index=order.index(row) if row in order else None, phase=group.phase, number=group.number,
            failures=group.failures, group=group.trial_id))
    return out
