"""train(config, report): the one training loop of sqsp.

One code path covers Table 3 rows a-f and the SSL baselines of Table 2, by config alone:
- ``method="distill"``: the student sees (augmented) generated images and matches the
  teacher — the squeeze module T_φ on pooled block features (or, without squeeze, the
  concatenated pooled features). With ``syn_ratio`` α < 1 the rest of the batch is real
  images under the two-view VICReg loss, and the total is α·L_syn + (1−α)·L_real (span, Sec. 4.2).
- ``method="vicreg" | "simsiam"``: two views of a batch made of α synthetic and 1−α real images.
- ``method="encode"``: Table 1's encoding baseline (Eq. 3, ``sqsp/encode.py``): the student
  inverts the frozen generator, E(G(z)) ≈ w+, under L1 + LPIPS on the re-rendered image; real
  images (α < 1) add that image term alone.

What differs between the methods (heads, loss, collapse) is each method's object in
``sqsp/methods.py``; the loop asks it and never branches on the method's name.

The step stays on the device: no ``.item()`` or other host sync happens inside it; loss
sums accumulate as tensors and are read once per report.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from . import cli, losses
from .augment import build_augment
from .config import ConfigError, TrainConfig, add_config_arguments, config_of_args
from .device import amp_dtype, autocast, resolve_device
from .data import channel_stats, load_split, resize
from .encode import load_lpips, missing_lpips_weights
from .evaluate import (extract_features, knn_accuracy, linear_probe_fast, linear_probe_paper, mmd2,
                       probe_scores)
from .methods import METHODS, Method
from .models import Student, build_backbone
from .pixel_reference import pixel_reference
from .record import TrainingDiverged
from .specs import missing_block_group, parse_generator
from .storage import atomic_output
from .synthetic import SynBatch, SyntheticSource, generator_info_of, synthetic_source
from .validation import split_groups, validation_split

Report = Callable[[dict[str, Any], "str | None"], None]
CHECKPOINT_FILE = "state.pt"


# ---------------------------------------------------------------------------------------------
# everything a run holds
# ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    config: TrainConfig
    method: Method
    device: torch.device
    dtype: torch.dtype | None
    student: Student
    teacher: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    synthetic: SyntheticSource | None
    real: torch.Tensor | None           # uint8 pretraining images on the device
    eval_train: Any
    eval_test: Any
    aug_syn: nn.Module
    aug_real: nn.Module
    data_rng: torch.Generator
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    val_split: tuple[torch.Tensor, torch.Tensor] | None = None     # (fit, val) indices into eval_train
    val_groups: torch.Tensor | None = None                          # the source (scan) of each val image
    init_metrics: dict[str, float] = field(default_factory=dict)   # the untrained backbone's (eval_init)
    generator_info: dict[str, Any] = field(default_factory=dict)   # the zoo entry's FID etc. (zoo.describe)
    perceptual: nn.Module | None = None  # the frozen LPIPS distance of method='encode'
    transfer: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (train, test) probe splits

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(), "step": self.step, "init_metrics": dict(self.init_metrics),
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict() if self.teacher is not None else {},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(), "rng_data": self.data_rng.get_state(),
            "rng_latent": self.synthetic.rng.get_state() if self.synthetic else torch.empty(0, dtype=torch.uint8),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        if s["config"] != self.config.to_dict():
            diff = {k: (s["config"].get(k), v) for k, v in self.config.to_dict().items() if s["config"].get(k) != v}
            raise ConfigError(f"checkpoint was written by a different config; differing fields (saved, now): {diff}")
        self.step = s["step"]
        self.init_metrics = dict(s.get("init_metrics", {}))
        self.student.load_state_dict(s["student"])
        if self.teacher is not None:
            self.teacher.load_state_dict(s["teacher"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        self.scaler.load_state_dict(s["scaler"])
        torch.set_rng_state(s["rng_cpu"])
        self.data_rng.set_state(s["rng_data"])
        if self.synthetic:
            self.synthetic.rng.set_state(s["rng_latent"])
        if s["rng_cuda"]:
            torch.cuda.set_rng_state_all(s["rng_cuda"])


def build_run(config: TrainConfig, generator=None, synthetic: SyntheticSource | None = None) -> Run:
    """Everything a run holds, its student initialised from the seed alone. ``synthetic``: a
    source shared with other runs of the same stream (sqsp/grouped.py), else one of its own."""
    cfg = config
    method = METHODS[cfg.method]
    device = resolve_device(cfg.device)
    dtype = amp_dtype(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    mean, std = channel_stats(cfg.dataset)
    pretrain = load_split(cfg.dataset, cfg.data_root, "pretrain", cfg.image_size)
    eval_train = load_split(cfg.dataset, cfg.data_root, "train", cfg.image_size)
    eval_test = load_split(cfg.dataset, cfg.data_root, "test", cfg.image_size)
    val_split = val_groups = None
    if cfg.val_fraction > 0:
        groups = split_groups(cfg.dataset, "train")
        val_split = validation_split(eval_train.labels, cfg.val_fraction, groups)
        val_groups = (groups if groups is not None else torch.arange(len(eval_train)))[val_split[1]]

    if synthetic is None and cfg.syn_batch > 0:
        synthetic = synthetic_source(cfg, device, generator)
    generator_info = generator_info_of(cfg, synthetic, described=generator is None)
    # Table 5 of the appendix: probe splits of other datasets, loaded now so a missing one fails
    # before training, not after it
    transfer = {ds: (load_split(ds, cfg.data_root, "train", cfg.image_size),
                     load_split(ds, cfg.data_root, "test", cfg.image_size)) for ds in cfg.transfer_targets}
    perceptual = load_lpips(cfg.lpips_net, device=device, dataset=cfg.dataset) if method.perceptual_loss else None

    # the student's (and squeeze module's) initialisation depends on the seed alone, not on what
    # loading the generator drew before: rows that differ in generator, or have none, start alike
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(cfg.student, cfg.student_width, mean, std, init=cfg.student_init)
    teacher, head, predictor = method.heads(cfg, backbone.out_dim, synthetic)
    student = Student(backbone, head, predictor).to(device)
    if cfg.channels_last:
        student = student.to(memory_format=torch.channels_last)
    if teacher is not None:
        teacher = teacher.to(device)

    params = [p for p in student.parameters() if p.requires_grad] + \
        (list(teacher.parameters()) if teacher is not None else [])
    fixed = {id(p) for p in predictor.parameters()} if predictor is not None and cfg.fix_pred_lr else set()
    groups = [{"params": [p for p in params if id(p) not in fixed]}] + \
        ([{"params": [p for p in params if id(p) in fixed]}] if fixed else [])
    optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    n_real = len(pretrain.images)
    steps_per_epoch = max(1, n_real // cfg.batch_size)
    total = cfg.steps or cfg.epochs * steps_per_epoch
    # SimSiam's --fix-pred-lr: the predictor's group keeps the initial lr (the warm-up still applies)
    lambdas = [_lr_lambda(cfg, total)] + ([_lr_lambda(cfg.replace(lr_schedule="constant"), total)] if fixed else [])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")
    syn_preset = cfg.aug_preset if cfg.syn_augment else "none"
    return Run(
        config=cfg, method=method, device=device, dtype=dtype, student=student, teacher=teacher, optimizer=optimizer,
        scheduler=scheduler, scaler=scaler, synthetic=synthetic,
        real=pretrain.images.to(device) if cfg.real_batch > 0 else None,
        eval_train=eval_train, eval_test=eval_test, val_split=val_split, val_groups=val_groups,
        aug_syn=build_augment(syn_preset, cfg.image_size, cfg.aug_granularity, cfg.crop_min),
        aug_real=build_augment(cfg.aug_preset, cfg.image_size, "sample", cfg.crop_min),
        data_rng=torch.Generator(device=device).manual_seed(cfg.seed + 2),
        steps_per_epoch=steps_per_epoch, total_steps=total, generator_info=generator_info,
        perceptual=perceptual, transfer=transfer)


def _lr_lambda(cfg: TrainConfig, total: int):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


# ---------------------------------------------------------------------------------------------
# one step
# ---------------------------------------------------------------------------------------------
def compute_loss(run: Run, syn: SynBatch | None = None) -> dict[str, torch.Tensor]:
    """All loss terms of one batch, as tensors (no host sync); ``loss`` is what is optimised.
    ``syn``: a synthetic batch drawn elsewhere (one draw may serve several students); by default
    the run's own source draws ``syn_batch`` images."""
    cfg = run.config
    if syn is None and cfg.syn_batch:
        syn = run.synthetic(cfg.syn_batch)
    with autocast(run.device, run.dtype):
        return run.method.loss(run, syn)


def train_step(run: Run, syn: SynBatch | None = None) -> dict[str, torch.Tensor]:
    run.student.train()
    if run.teacher is not None:
        run.teacher.train()
    terms = compute_loss(run, syn)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(terms["loss"]).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.step += 1
    return {k: v.detach() for k, v in terms.items()}


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def evaluate(run: Run, *, probe: bool) -> dict[str, float]:
    """kNN always; with ``probe``, the configured linear probe, the syn-real MMD² and the probes
    on the transfer datasets (keys ``<metric>@<dataset>``)."""
    cfg = run.config
    kw = dict(device=run.device, channels_last=cfg.channels_last, amp_dtype=run.dtype)
    ftr, fte, out = _probe_split(run, run.eval_train, run.eval_test, kw, probe=probe)
    out["backbone_nstd"] = float(losses.normalized_std(fte))
    if run.val_split is not None:
        out.update(_validation(run, ftr, probe, kw))
    if probe and cfg.eval_mmd and run.synthetic is not None:
        out["mmd_syn_real"] = _syn_real_mmd(run, fte, kw)
    if probe:
        for name, (tr, te) in run.transfer.items():
            out.update({f"{k}@{name}": v for k, v in _probe_split(run, tr, te, kw, probe=True)[2].items()})
    return out


def _probe_split(run: Run, train_split, test_split, kw: dict, *, probe: bool):
    """The backbone's features of a train/test pair, and kNN (plus, with ``probe``, the
    configured linear probe) on them: (train features, test features, metrics)."""
    cfg, bb = run.config, run.student.backbone
    ftr, fte = extract_features(bb, train_split.images, **kw), extract_features(bb, test_split.images, **kw)
    _check_finite(run, ftr, fte)
    return ftr, fte, probe_scores(bb, ftr, fte, train_split, test_split, cfg, linear=probe, **kw)


def _validation(run: Run, ftr: torch.Tensor, probe: bool, kw: dict) -> dict[str, float]:
    """The selection metrics, from the validation split alone (features of the whole train
    split are at hand): its kNN monitor, and with ``probe`` the probe fitted on the rest."""
    cfg, (fit, val) = run.config, run.val_split
    labels = run.eval_train.labels
    out = {"val_knn_acc": _val_knn(run, ftr[val])}
    if probe and cfg.probe == "fast":
        out["val_probe_acc"] = linear_probe_fast(ftr[fit], labels[fit], ftr[val], labels[val], seed=cfg.seed)
    elif probe and cfg.probe == "paper":
        out["val_probe_acc"] = linear_probe_paper(run.student.backbone, run.eval_train.take(fit),
                                                  run.eval_train.take(val), epochs=cfg.probe_epochs,
                                                  lr=cfg.probe_lr, batch_size=cfg.probe_batch_size,
                                                  optimizer=cfg.probe_optimizer, seed=cfg.seed, **kw)
    return out


def monitor_validation(run: Run) -> dict[str, float]:
    """The per-epoch signal a scheduler acts on, between full evaluations: the validation
    images' kNN accuracy among themselves, one forward pass over them and nothing else."""
    cfg = run.config
    feats = extract_features(run.student.backbone, run.eval_train.images[run.val_split[1]], device=run.device,
                             channels_last=cfg.channels_last, amp_dtype=run.dtype)
    _check_finite(run, feats)
    return {"val_knn_acc": _val_knn(run, feats)}


def _check_finite(run: Run, *features: torch.Tensor) -> None:
    """The last update can blow the weights up after the last loss was read: features tell."""
    if not all(torch.isfinite(f).all() for f in features):
        raise TrainingDiverged(f"the backbone's features became non-finite by step {run.step}; "
                               f"lower base_lr={run.config.base_lr} or check the loss weights")


def _val_knn(run: Run, feats: torch.Tensor) -> float:
    """Leave-one-scan-out: an image's neighbours never include another version of its own source."""
    labels = run.eval_train.labels[run.val_split[1]]
    return knn_accuracy(feats, labels, feats, labels, num_classes=run.eval_train.num_classes, k=run.config.knn_k,
                        t=run.config.knn_t, train_groups=run.val_groups, test_groups=run.val_groups)


def _syn_real_mmd(run: Run, real_feats: torch.Tensor, kw: dict) -> float:
    """Table 5: MMD² between features of as many generated images as there are real test images."""
    cfg = run.config
    devices = [run.device.index or 0] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # a generator with noise inputs draws from it
        syn = run.synthetic.sample_images(len(real_feats), seed=cfg.seed + 3)
    if syn.shape[-1] != cfg.image_size:
        syn = resize(syn.float(), cfg.image_size).round().clamp(0, 255).to(torch.uint8)
    return mmd2(extract_features(run.student.backbone, syn, **kw), real_feats)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
def unavailable(config: TrainConfig) -> str | None:
    """Why this machine cannot run ``config`` at all, or None: a resource that sqsp does not
    download and that is not there (LPIPS's ImageNet trunk for method='encode'). Studies ask
    this in the driver and record such trials as skipped instead of starting them."""
    method = METHODS[config.method]
    if method.perceptual_loss:
        return missing_lpips_weights(config.lpips_net)
    if not method.reads_blocks:
        return None
    res = _known_resolution(config.generator)
    group = missing_block_group(config.generator_blocks, res) if res else None
    if group is not None:  # appendix Table 6's b64-b128 row exists at STL-10's 128 px only
        return f"generator {config.generator!r} ({res} px) has no block of group {group}"
    return None


def _known_resolution(spec: str) -> int | None:
    """A generator's resolution where its name tells it without loading it (the zoo's, random:)."""
    from . import zoo
    g = parse_generator(spec)
    if g.kind == "random":
        return g.resolution or zoo.RESOLUTION
    return zoo.RESOLUTION if g.kind == "zoo" else None


def train(config: TrainConfig, report: Report | None = None, *, resume_from: str | None = None,
          generator=None, progress: bool = False) -> dict[str, Any]:
    """Run one training run and return its final metrics.

    ``report(metrics, checkpoint_dir)`` is called at every epoch end; ``checkpoint_dir`` is
    a directory holding a complete checkpoint (valid only during the call) when one is due,
    and always on the last report. Passing it back as ``resume_from`` resumes bit-for-bit.
    """
    config.validate()
    if not METHODS[config.method].trains:  # Table 1's direct use of the discriminator: nothing to train
        from .discriminator import direct_use
        return direct_use(config, report)
    run = build_run(config, generator)
    if resume_from:
        run.load_state_dict(torch.load(os.path.join(resume_from, CHECKPOINT_FILE), weights_only=True))
    begin(run)
    bar = _progress(run, progress)
    epoch, metrics = Epoch(), {}
    while run.step < run.total_steps:
        epoch.add(train_step(run))
        bar.update(1)
        if not epoch_ends(run):
            continue
        metrics = end_epoch(run, epoch)
        bar.set_postfix({k: round(metrics[k], 3) for k in ("loss", "student_std", "knn_acc") if k in metrics})
        if report is not None:
            _report(run, report, metrics, checkpoint_due(run, metrics))
        epoch = Epoch()
    bar.close()
    return metrics


# the loop's pieces, shared with the runs of one synthetic stream stepped together (sqsp/grouped.py)
def begin(run: Run) -> None:
    """The untrained backbone's metrics (``eval_init``), at step 0 only; no RNG is drawn, so the
    trajectory is the same without it."""
    cfg = run.config
    if cfg.eval_init and run.step == 0:
        run.init_metrics = {f"init_{k}": v for k, v in evaluate(run, probe=cfg.probe != "none").items()}
        run.init_metrics.update(pixel_reference(cfg.dataset, cfg.data_root, cfg.image_size, knn_k=cfg.knn_k,
                                                knn_t=cfg.knn_t, probe=cfg.probe != "none"))


@dataclass
class Epoch:
    """The loss terms of the steps since the last report, summed as tensors (no host sync per step)."""
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0
    t0: float = field(default_factory=time.perf_counter)

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums[k] + v.float() if k in self.sums else v.float()
        self.steps += 1


def epoch_ends(run: Run) -> bool:
    return run.step % run.steps_per_epoch == 0 or run.step == run.total_steps


def end_epoch(run: Run, acc: Epoch) -> dict[str, Any]:
    """The epoch's report: the one place the host reads the device. Raises TrainingDiverged."""
    cfg, last = run.config, run.step == run.total_steps
    epoch = math.ceil(run.step / run.steps_per_epoch)
    metrics = {k: float(v) / acc.steps for k, v in acc.sums.items()}
    metrics.update(step=run.step, epoch=epoch, lr=run.scheduler.get_last_lr()[0],
                   progress=run.step / run.total_steps,  # a scale-free clock for schedulers (ASHA)
                   img_per_s=acc.steps * cfg.batch_size / (time.perf_counter() - acc.t0), **run.init_metrics,
                   **run.generator_info)
    if not math.isfinite(metrics["loss"]):
        raise TrainingDiverged(f"loss became {metrics['loss']} by step {run.step} (epoch {epoch}); "
                               f"lower base_lr={cfg.base_lr} or check the loss weights")
    if last or (cfg.eval_every and epoch % cfg.eval_every == 0):
        metrics.update(evaluate(run, probe=last and cfg.probe != "none"))
    elif run.val_split is not None:  # the cheap per-epoch signal a scheduler acts on
        metrics.update(monitor_validation(run))
    metrics["collapsed"] = run.method.is_collapsed(run, metrics)
    if last:
        metrics["done"] = True
    return metrics


def checkpoint_due(run: Run, metrics: dict[str, Any]) -> bool:
    every = run.config.checkpoint_every
    return bool(metrics.get("done") or (every and metrics["epoch"] % every == 0))


def _report(run: Run, report: Report, metrics: dict[str, Any], with_checkpoint: bool) -> None:
    if not with_checkpoint:
        report(metrics, None)
        return
    d = tempfile.mkdtemp(prefix="sqsp-ckpt-")
    try:
        save_checkpoint(run, d)
        report(metrics, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def save_checkpoint(run: Run, directory: str) -> str:
    """Tensors and plain values only (loadable with ``weights_only=True``), written atomically."""
    path = os.path.join(directory, CHECKPOINT_FILE)
    with atomic_output(path) as f:
        torch.save(run.state_dict(), f)
    return path


def load_backbone(checkpoint: str, *, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """The student's backbone from a checkpoint of ``train()`` (its folder or the file), frozen in
    eval mode, with the config that trained it (kept in the checkpoint)."""
    path = os.path.join(checkpoint, CHECKPOINT_FILE) if os.path.isdir(checkpoint) else checkpoint
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no training checkpoint at {checkpoint!r} (expected a folder holding "
                                f"{CHECKPOINT_FILE}, as train() and the studies write, or the file itself)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = TrainConfig.from_dict(state["config"])
    backbone = build_backbone(cfg.student, cfg.student_width, *channel_stats(cfg.dataset))
    prefix = "backbone."
    backbone.load_state_dict({k[len(prefix):]: v for k, v in state["student"].items() if k.startswith(prefix)})
    return backbone.to(device).eval().requires_grad_(False), cfg


class _NoBar:
    def update(self, n): ...
    def set_postfix(self, d): ...
    def close(self): ...


def _progress(run: Run, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=run.total_steps, initial=run.step, unit="step", dynamic_ncols=True, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=cli.prog("python -m sqsp.train"), description="One squeeze-and-span run.")
    add_config_arguments(p)
    p.add_argument("--checkpoint-dir", help="keep the last checkpoint here")
    p.add_argument("--resume-from", help="a checkpoint directory to resume from")
    args = p.parse_args(argv)

    def keep(metrics, ckpt):
        if ckpt and args.checkpoint_dir:
            os.makedirs(args.checkpoint_dir, exist_ok=True)
            shutil.copy2(os.path.join(ckpt, CHECKPOINT_FILE), os.path.join(args.checkpoint_dir, CHECKPOINT_FILE))

    def run() -> int:
        cfg = config_of_args(args)
        if args.resume_from and not os.path.isfile(os.path.join(args.resume_from, CHECKPOINT_FILE)):
            raise FileNotFoundError(f"--resume-from {args.resume_from}: no {CHECKPOINT_FILE} there (a folder given "
                                    "to --checkpoint-dir by an earlier run)")
        final = train(cfg, keep, resume_from=args.resume_from, progress=True)
        print(json.dumps(final, indent=2, sort_keys=True))
        return 0

    return cli.run(p.prog, run)


if __name__ == "__main__":
    sys.exit(main())
