"""Appendix Fig. 1: linear CKA between the layers of the generator and of the student.

The paper computes pairwise CKA between the globally pooled features of the generator's
layers, and between those of a ResNet-18 trained by SimSiam, and reads that the generator's
layers are less alike than the ResNet's ("most similarity lower than 0.8" against "many
pairs greater than 0.85"): the reason to distil every block. Here, on the same ``n``
generated images G(z):

- ``generator``: CKA between generator layers (the pooled features, Eq. 4's form);
- ``student``: CKA between the student's layers, reading G(z) resized to its input size;
- ``generator-student``: each generator layer against each student layer.

Layers, at two granularities: ``blocks`` are the generator's blocks (appendix B.3: the last
output at each resolution, what squeeze reads) and the student's stem and stages (the last
residual block at each resolution); ``layers`` are every convolution of the generator (a
module holding a kernel whose output is a feature map, not the image) and the student's
stem and every residual block.

The student comes from a trained run: a checkpoint of ``train()`` (``--checkpoint``), the
trials of a study row (``--from results/<study> --row <row>``), or, with neither, a run of
``--preset``/``--set`` trained here for each seed. ``layer_similarity.parquet`` holds one row
per seed, panel and pair of layers.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import TrainConfig
from .data import resize
from .evaluate import _frozen_eval, linear_cka
from .generators.base import FeatureGenerator, _pick_tensor

FILE = "layer_similarity.parquet"
KIND = "layer_similarity"
GRANULARITIES = ("blocks", "layers")
PANELS = ("generator", "student", "generator-student")
_BATCH = 250


def generator_layers(generator: FeatureGenerator, granularity: str) -> list[tuple[str, str]]:
    """(label, module name) of the generator's layers, in execution order."""
    if granularity == "blocks":
        return [(b.name, b.module) for b in generator.blocks]
    if granularity != "layers":
        raise ValueError(f"granularity={granularity!r}; allowed: {list(GRANULARITIES)}")
    order: list[tuple[str, torch.Tensor | None]] = []
    convs = {name: m for name, m in generator.net.named_modules()
             if any(p.dim() >= 3 for p in m.parameters(recurse=False))}  # holds a convolution kernel
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: order.append((name, _pick_tensor(out))))
             for name, m in convs.items()]
    try:
        device = next(generator.parameters()).device
        z, c = generator.sample_inputs(2, device, torch.Generator(device=device).manual_seed(0))
        generator(z, c, blocks=[])
    finally:
        for h in hooks:
            h.remove()
    out, seen = [], set()
    for name, t in order:
        # a module that returns its last conv's output (a StyleGAN block with its own constant
        # input returns conv1's tensor) is that conv, not another layer
        if t is None or id(t) in seen or t.shape[1] == generator.img_channels:
            continue
        seen.add(id(t))
        out.append((f"{name} ({t.shape[-1]}px)", name))
    return out


def _is_residual_block(m: nn.Module) -> bool:
    import torchvision

    from .models import _BasicBlock
    return isinstance(m, (_BasicBlock, torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck))


@torch.no_grad()
def student_layers(backbone: nn.Module, granularity: str, image_size: int) -> list[tuple[str, str]]:
    """(label, module name) of the student's stem and residual blocks (or stages), in order."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}; allowed: {list(GRANULARITIES)}")
    modules = dict(backbone.named_modules())
    stem = next((n for n in modules if n.endswith(("stem", "maxpool")) and n.count(".") <= 1), None)
    blocks = [n for n, m in modules.items() if _is_residual_block(m)]
    if stem is None or not blocks:
        raise ValueError("the student is not a ResNet this knows (a stem and residual blocks)")
    sizes: dict[str, int] = {}
    hooks = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: sizes.__setitem__(n, out.shape[-1]))
             for n in blocks]
    try:
        with _frozen_eval(backbone):
            backbone(torch.zeros(2, 3, image_size, image_size, device=next(backbone.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    stages: list[list[str]] = []
    for n in blocks:  # consecutive blocks at one resolution form a stage (appendix B.3's rule)
        if not stages or sizes[n] != sizes[stages[-1][-1]]:
            stages.append([])
        stages[-1].append(n)
    out = [("stem", stem)]
    for i, stage in enumerate(stages, 1):
        if granularity == "blocks":
            out.append((f"stage{i} ({sizes[stage[-1]]}px)", stage[-1]))
        else:
            out += [(f"stage{i}.{j} ({sizes[n]}px)", n) for j, n in enumerate(stage)]
    return out


def _pooled(root: nn.Module, names: Sequence[str], run: Callable[[], Any]) -> dict[str, torch.Tensor]:
    """Globally pooled outputs (N, C) of the named sub-modules of ``root`` during ``run()``."""
    modules = dict(root.named_modules())
    got: dict[str, torch.Tensor] = {}
    hooks = [modules[n].register_forward_hook(
        lambda _m, _i, out, n=n: got.__setitem__(n, _pick_tensor(out).float().mean(dim=(2, 3)).cpu()))
        for n in names]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return got


@torch.no_grad()
def layer_features(generator: FeatureGenerator, backbone: nn.Module, image_size: int, n: int, *, seed: int,
                   granularity: str = "blocks") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Pooled features of every generator layer and every student layer for ``n`` images G(z)."""
    g_layers = generator_layers(generator, granularity)
    s_layers = student_layers(backbone, granularity, image_size)
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    g_parts: dict[str, list] = {label: [] for label, _ in g_layers}
    s_parts: dict[str, list] = {label: [] for label, _ in s_layers}
    with _frozen_eval(backbone):
        for i in range(0, n, _BATCH):
            z, c = generator.sample_inputs(min(_BATCH, n - i), device, rng)
            images: list[torch.Tensor] = []
            got = _pooled(generator.net, [m for _, m in g_layers],
                          lambda: images.append(generator(z, c, blocks=[]).images))
            for label, m in g_layers:
                g_parts[label].append(got[m])
            x = (images[0].float().clamp(-1, 1) + 1) / 2  # the student reads [0, 1], at its own size
            x = resize(x, image_size).to(next(backbone.parameters()).device)
            got = _pooled(backbone, [m for _, m in s_layers], lambda: backbone(x))
            for label, m in s_layers:
                s_parts[label].append(got[m])
    return ({k: torch.cat(v).numpy() for k, v in g_parts.items()},
            {k: torch.cat(v).numpy() for k, v in s_parts.items()})


def cka_rows(gen_feats: dict[str, np.ndarray], student_feats: dict[str, np.ndarray], seed: int) -> list[dict]:
    """Linear CKA of every pair in the three panels, as rows of the Parquet file."""
    rows = []
    pairs = {"generator": (gen_feats, gen_feats), "student": (student_feats, student_feats),
             "generator-student": (gen_feats, student_feats)}
    for panel, (a_feats, b_feats) in pairs.items():
        for i, (a, fa) in enumerate(a_feats.items()):
            for j, (b, fb) in enumerate(b_feats.items()):
                rows.append({"seed": seed, "panel": panel, "a": a, "b": b, "a_index": i, "b_index": j,
                             "cka": linear_cka(torch.from_numpy(fa), torch.from_numpy(fb))})
    return rows


# ---------------------------------------------------------------------------------------------
# where the student comes from
def students_from_study(folder: str, row: str, seeds: Sequence[int] | None) -> list[str]:
    """The checkpoints of a study row's finished trials (one per seed), oldest seed first."""
    from .results import read_trials
    trials = read_trials(folder)
    done = trials[(trials["row"] == row) & trials["status"].isin(("completed", "collapsed"))]
    if seeds is not None:
        done = done[done["seed"].isin(seeds)]
    if done.empty:
        rows = sorted(trials["row"].dropna().unique())
        raise LookupError(f"{folder}: no finished trial of row {row!r}" +
                          (f" with seeds {list(seeds)}" if seeds is not None else "") + f"; rows: {rows}")
    ckpts = done.sort_values("seed")["checkpoint"].tolist()
    missing = [c for c in ckpts if not (isinstance(c, str) and os.path.isdir(c))]
    if missing:
        raise FileNotFoundError(f"{folder}: checkpoint folder(s) {missing} of row {row!r} are not here (copy the "
                                "study's Ray folder with the Parquet files, or pass --checkpoint)")
    return ckpts


def train_student(config: TrainConfig, directory: str) -> str:
    """Train ``config`` here (no Ray) and keep its final checkpoint in ``directory``."""
    import shutil

    from .train import CHECKPOINT_FILE, train

    def keep(metrics, ckpt):
        if ckpt:
            os.makedirs(directory, exist_ok=True)
            shutil.copy2(os.path.join(ckpt, CHECKPOINT_FILE), os.path.join(directory, CHECKPOINT_FILE))
    print(f"[sqsp] training the student (seed {config.seed}) to compare its layers; checkpoint in {directory}",
          file=sys.stderr, flush=True)
    train(config, keep, progress=True)
    return directory


def similarity_frame(checkpoints: Sequence[str], n: int, granularity: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """CKA rows for each checkpoint's student against its own config's generator."""
    from . import zoo
    from .device import resolve_device
    from .train import load_backbone
    rows, generators = [], set()
    for ckpt in checkpoints:
        backbone, cfg = load_backbone(ckpt)
        device = resolve_device(cfg.device)
        generator = zoo.load_generator(cfg.generator, device=device, truncation=cfg.truncation,
                                       stylegan_repo=cfg.stylegan_repo)
        gen_feats, student_feats = layer_features(generator, backbone.to(device), cfg.image_size, n, seed=cfg.seed,
                                                  granularity=granularity)
        rows += cka_rows(gen_feats, student_feats, cfg.seed)
        generators.add(cfg.generator)
        info = {"student": cfg.student, "student_width": cfg.student_width, "method": cfg.method,
                "dataset": cfg.dataset}
    info.update(generator=", ".join(sorted(generators)), n_samples=n, granularity=granularity,
                checkpoints=list(checkpoints))
    return pd.DataFrame(rows), info


def main(argv: list[str] | None = None) -> str:
    """The command line of ``studies/layer_similarity.py``: compute and write; returns the folder."""
    import argparse

    from .config import ConfigError, add_run_arguments, config_from_args
    p = argparse.ArgumentParser(prog="python studies/layer_similarity.py",
                                description="Appendix Fig. 1: linear CKA between generator layers and the student's "
                                            "layers, on generated images.")
    add_run_arguments(p, seeds=1)
    p.set_defaults(seeds=None)  # with --from, every finished seed of the row unless --seeds names some
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", action="append", help="a train() checkpoint folder (repeatable)")
    src.add_argument("--from", dest="study", help="a study folder (results/<study>) whose trials give the students")
    p.add_argument("--row", help="with --from: the row whose trials to read (its seeds, filtered by --seeds if given)")
    p.add_argument("--samples", type=int, default=2000, help="generated images (default 2000)")
    p.add_argument("--granularity", choices=GRANULARITIES, default="blocks",
                   help="blocks: generator blocks and student stages (default); layers: every conv / residual block")
    args = p.parse_args(argv)
    if args.samples < 4:
        p.error(f"--samples {args.samples}: CKA needs at least 4 images")
    if args.study and not args.row:
        p.error("--from needs --row (which row's students to compare)")
    if args.row and not args.study:
        p.error("--row goes with --from")
    out = os.path.join(os.path.abspath(args.storage), "layer_similarity")
    given_seeds = args.seeds is not None
    args.seeds = args.seeds or "1"
    try:
        cfg, seeds = config_from_args(args)
        if args.checkpoint:
            ckpts = list(args.checkpoint)
        elif args.study:
            ckpts = students_from_study(args.study, args.row, seeds if given_seeds else None)
        else:
            ckpts = [os.path.join(out, "students", f"seed{s}") for s in seeds]
        from .train import CHECKPOINT_FILE
        missing = [c for c in ckpts if (args.checkpoint or args.study) and not os.path.isfile(
            os.path.join(c, CHECKPOINT_FILE) if os.path.isdir(c) else c)]
        if missing:
            raise FileNotFoundError(f"no training checkpoint at {missing} (a folder holding {CHECKPOINT_FILE})")
    except (ConfigError, LookupError, FileNotFoundError) as e:
        p.error(str(e))
    if not (args.checkpoint or args.study):  # train the students here, one per seed
        for s, ckpt in zip(seeds, ckpts):
            train_student(cfg.replace(seed=s), ckpt)
    df, info = similarity_frame(ckpts, args.samples, args.granularity)
    from .results import write_table
    print(f"[sqsp] wrote {write_table(df, out, FILE, kind=KIND, info=info)}", file=sys.stderr)
    return out
