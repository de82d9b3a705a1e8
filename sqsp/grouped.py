"""Several runs of one synthetic stream stepped together: each synthetic batch drawn once.

Why: the frozen generator's output depends only on the seed (and on α and the batch, which set
how many images a step draws), not on the loss weights or the components a study compares; at
the paper presets its forward pass costs more per image than the student's training
(benchmarks/paper_flops.py). The rows of a seed that read the same stream can share it.

Exact by construction: every run here gets the numbers ``train()`` gives it alone at the same
seed. ``train()`` draws from three streams: the latents (``SyntheticSource.rng``, seed + 1),
the real batches (``run.data_rng``, seed + 2) and torch's global RNG (the student's
initialisation and every augmentation, sqsp/augment.py). The first is the one shared; the
second is each run's own already; the third is kept per run here (``_own_rng``): restored
before everything a run does (build, steps, evaluations, its checkpoint) and saved after.
That needs a generator whose forward pass draws nothing from the global RNG (``inexact``).

A run that diverges, or raises a user error, ends with its own report and the others go on;
a collapsed run goes on to its end, as it does alone. A group checkpoint is one folder holding
each run's ``train()`` checkpoint (``m<k>/``, which ``load_backbone`` reads), the sums of its
epoch in progress, its last report, and the stream's state.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from . import record
from .config import ConfigError, TrainConfig
from .device import resolve_device
from .errors import USER_ERRORS
from .streams import STREAM_FIELDS, inexact, stream_key
from .synthetic import synthetic_source
from .train import (CHECKPOINT_FILE, Epoch, Run, begin, build_run, checkpoint_due, end_epoch, epoch_ends,
                    save_checkpoint, train, train_step)

GroupReport = Callable[[dict[int, dict[str, Any]], "str | None"], None]
"""``report({member index: its report}, checkpoint_dir)``: the members whose epoch ended at this step."""

EPOCH_FILE, STREAM_FILE = "epoch.pt", "stream.pt"


@dataclass
class _Member:
    index: int
    config: TrainConfig
    run: Run | None = None
    rng: tuple[torch.Tensor, list] | None = None   # its global-RNG state (CPU, CUDA) between its turns
    epoch: Epoch = field(default_factory=Epoch)
    last: dict[str, Any] = field(default_factory=dict)  # its last report
    final_state: bytes | None = None                # an ended run's checkpoint, kept for the group's later ones

    @property
    def ended(self) -> bool:
        return bool(self.last.get(record.DONE))


@contextlib.contextmanager
def _own_rng(m: _Member, device: torch.device) -> Iterator[None]:
    cuda = device.type == "cuda"
    outer = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda else [])
    if m.rng is not None:
        torch.set_rng_state(m.rng[0])
        if cuda:
            torch.cuda.set_rng_state_all(m.rng[1])
    try:
        yield
    finally:
        m.rng = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda else [])
        torch.set_rng_state(outer[0])
        if cuda:
            torch.cuda.set_rng_state_all(outer[1])


@contextlib.contextmanager
def _ends_on_error(m: _Member) -> Iterator[None]:
    """A divergence, a user error or a failed allocation ends this member with its report, as
    sqsp/tune/trainable.py records them for a run alone; anything else crashes the group
    (Ray retries it from its last checkpoint)."""
    try:
        yield
    except record.TrainingDiverged as e:
        m.last = record.diverged_report(e)
    except USER_ERRORS as e:
        m.last = record.failed_report(e)
    except Exception as e:
        oom = record.out_of_memory(e)
        if oom is None:
            raise
        m.last = record.failed_report(oom)
    if m.ended:
        m.run = None  # its memory goes; its final checkpoint, if any, is kept as bytes


def train_group(configs: Sequence[TrainConfig], report: GroupReport | None = None, *,
                resume_from: str | None = None) -> list[dict[str, Any]]:
    """Train every config of one synthetic stream, each synthetic batch drawn once; returns each
    one's last report. ``report`` is called at every step where some member's epoch ended
    (members of unequal epochs report apart), with a checkpoint of the whole group when one
    member's is due or one ended; ``resume_from`` is such a checkpoint."""
    configs = [c.validate() for c in configs]
    keys = {stream_key(c) for c in configs}
    if keys == {None} and len(configs) == 1:
        return [_train_alone(configs[0], report, resume_from)]
    if len(keys) != 1 or None in keys:
        raise ConfigError(f"train_group: the configs read {len(keys - {None})} synthetic stream(s)"
                          f"{' and some none' if None in keys else ''}; a group shares one "
                          f"(the same {', '.join(STREAM_FIELDS)}, and syn_batch > 0)")
    why = next(filter(None, map(inexact, configs)), None)
    if why:
        raise ConfigError(f"train_group: {why}; such runs cannot share a stream exactly")
    device = resolve_device(configs[0].device)
    members = [_Member(i, c) for i, c in enumerate(configs)]
    source = synthetic_source(configs[0], device)
    out: dict[int, dict[str, Any]] = {}  # the reports of this step (at first: members that failed to build)
    for m in members:
        saved = os.path.join(resume_from, f"m{m.index}") if resume_from else None
        if saved:
            m.last = record.load_with_checkpoint(saved)
        if m.ended:
            state = os.path.join(saved, CHECKPOINT_FILE)
            m.final_state = open(state, "rb").read() if os.path.exists(state) else None
            continue
        with _own_rng(m, device), _ends_on_error(m):
            m.run = build_run(m.config, synthetic=source)
            if saved:
                m.run.load_state_dict(torch.load(os.path.join(saved, CHECKPOINT_FILE), weights_only=True))
                m.epoch = Epoch(**torch.load(os.path.join(saved, EPOCH_FILE), weights_only=True))
            begin(m.run)
        if m.ended:
            out[m.index] = m.last
    if resume_from:
        source.rng.set_state(torch.load(os.path.join(resume_from, STREAM_FILE), weights_only=True))
    if out and report is not None:
        report(out, None)

    while any(not m.ended for m in members):
        batch = source(configs[0].syn_batch)  # the one generator forward pass of this step
        out, due = {}, False
        for m in [m for m in members if not m.ended]:
            before = m.last
            with _own_rng(m, device), _ends_on_error(m):
                m.epoch.add(train_step(m.run, batch))
                if epoch_ends(m.run):
                    m.last, m.epoch = end_epoch(m.run, m.epoch), Epoch()
                    due |= checkpoint_due(m.run, m.last)
                    if m.ended:
                        m.final_state = _state_bytes(m.run)
            if m.last is not before:
                out[m.index] = m.last
                due |= m.ended  # an ended member is not run again after a crash
        if out and report is not None:
            _report(members, source, device, report, out, due)
    return [m.last for m in members]


def _train_alone(config: TrainConfig, report: GroupReport | None, resume_from: str | None) -> dict[str, Any]:
    """A unit of one row that reads no synthetic stream (Table 1's direct use of D, a real-only
    VICReg row): in a study whose other rows share streams it still runs in the group trainable,
    so it runs as ``train()`` runs it, its reports and checkpoint laid out as member 0's."""
    def as_member(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        if report is None:
            return
        if checkpoint_dir is None:
            report({0: metrics}, None)
            return
        d = tempfile.mkdtemp(prefix="sqsp-group-ckpt-")
        try:
            sub = os.path.join(d, "m0")
            shutil.copytree(checkpoint_dir, sub)
            record.save_with_checkpoint(sub, metrics)
            report({0: metrics}, d)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    return train(config, as_member, resume_from=os.path.join(resume_from, "m0") if resume_from else None)


def _state_bytes(run: Run) -> bytes:
    buf = io.BytesIO()
    torch.save(run.state_dict(), buf)
    return buf.getvalue()


def _report(members: list[_Member], source, device: torch.device, report: GroupReport,
            out: dict[int, dict[str, Any]], with_checkpoint: bool) -> None:
    if not with_checkpoint:
        report(out, None)
        return
    d = tempfile.mkdtemp(prefix="sqsp-group-ckpt-")
    try:
        for m in members:
            sub = os.path.join(d, f"m{m.index}")
            os.makedirs(sub)
            record.save_with_checkpoint(sub, m.last)
            if m.run is not None:
                with _own_rng(m, device):  # its state_dict reads the global RNG: its own
                    save_checkpoint(m.run, sub)
                torch.save({"sums": m.epoch.sums, "steps": m.epoch.steps}, os.path.join(sub, EPOCH_FILE))
            elif m.final_state is not None:
                with open(os.path.join(sub, CHECKPOINT_FILE), "wb") as f:
                    f.write(m.final_state)
        torch.save(source.rng.get_state(), os.path.join(d, STREAM_FILE))
        report(out, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
