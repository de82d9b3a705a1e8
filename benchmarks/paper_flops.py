"""Estimated cost of one trial on each paper preset, from FLOPs (no GPU needed, nothing is run).

    python benchmarks/paper_flops.py                  # at 40 TFLOP/s sustained
    python benchmarks/paper_flops.py --tflops 100     # another sustained rate

The student (backbone, projector, squeeze module) is counted exactly by torch's FlopCounterMode
on meta tensors, at the preset's sizes. The generator is counted from the official StyleGAN2
channel layout of each checkpoint in appendix Table 1 (two 3×3 modulated convs per resolution,
one at 4 px, plus ToRGB; the mapping network is negligible): CIFAR ``--cfg=cifar`` (512 channels
at every resolution), STL-10 ``fmaps=0.5`` (512 up to 32 px, then 256, 128), the 128-px ImageNet
GANs assumed at StyleGAN2's default widths (512 up to 64 px, 256 at 128 px). One step of
squeeze and span with batch B and α = 0.5: the generator's forward on αB images, the student's
forward and backward (3× a forward) on αB synthetic images and 2 × (1-α)B real views. The paper
probe: 90 epochs of forwards over the labelled train split; the kNN monitor: a forward over
train + test every ``eval_every`` epochs. Hours = FLOPs / the sustained rate you give: an
estimate of the compute, not a measurement (data loading, augmentation and Python overhead
come on top).
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from sqsp.config import preset
from sqsp.models import Squeeze, build_backbone, projector

# images: pretraining set (STL-10: train + unlabeled), labelled train split, test split
SIZES = {"cifar10": (50_000, 50_000, 10_000), "cifar100": (50_000, 50_000, 10_000),
         "stl10": (105_000, 5_000, 8_000), "imagenet100": (126_689, 126_689, 5_000),
         "imagenet": (1_281_167, 1_281_167, 50_000)}
# generator: resolution and channels per resolution (appendix Table 1's checkpoints)
GENERATORS = {"cifar10": (32, {r: 512 for r in (4, 8, 16, 32)}),
              "cifar100": (32, {r: 512 for r in (4, 8, 16, 32)}),
              "stl10": (128, {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128}),
              "imagenet100": (128, {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256}),
              "imagenet": (128, {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256})}


def generator_flops(channels: dict[int, int]) -> float:
    macs, prev = 0, None
    for r, c in sorted(channels.items()):
        convs = c * c * 9 * r * r + (prev * c * 9 * r * r if prev else 0)
        macs += convs + c * 3 * r * r  # ToRGB
        prev = c
    return 2.0 * macs


def student_flops(cfg, channels: dict[int, int]) -> tuple[float, float]:
    """Forward FLOPs per image of the backbone alone and of backbone + projector + squeeze."""
    with torch.device("meta"):
        bb = build_backbone(cfg.student, cfg.student_width, (0.5,) * 3, (0.25,) * 3)
        proj = projector(bb.out_dim, cfg.projector_dim, cfg.teacher_dim, cfg.projector_depth)  # as train()
        sq = Squeeze(list(channels.values()), cfg.squeeze_width, cfg.teacher_dim, cfg.squeeze_depth)
        x = torch.empty(2, 3, cfg.image_size, cfg.image_size)
        with FlopCounterMode(display=False) as fc:
            f = bb(x)
        backbone = fc.get_total_flops() / 2
        with FlopCounterMode(display=False) as fc:
            proj(f)
            sq([torch.empty(2, c) for c in channels.values()])
        return backbone, backbone + fc.get_total_flops() / 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tflops", type=float, default=40.0, help="sustained TFLOP/s of the GPU (default 40)")
    args = p.parse_args(argv)
    print(f"| preset | student fwd GFLOP/img | generator fwd GFLOP/img | steps | PFLOP per trial "
          f"(train + probe + kNN) | hours at {args.tflops:g} TFLOP/s (estimate) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("paper-cifar10", "paper-cifar100", "paper-stl10", "paper-imagenet100", "paper-imagenet"):
        cfg = preset(name, validate=False)
        key = name.removeprefix("paper-")
        n_pre, n_train, n_test = SIZES[key]
        res, channels = GENERATORS[key]
        bb, full = student_flops(cfg, channels)
        gen = generator_flops(channels)
        syn, real = cfg.syn_batch, cfg.real_batch
        steps = cfg.epochs * (n_pre // cfg.batch_size)
        step = syn * gen + 3 * full * (syn + 2 * real)
        probe = cfg.probe_epochs * n_train * bb + n_test * bb
        knn = (cfg.epochs // max(1, cfg.eval_every)) * (n_train + n_test) * bb
        total = steps * step + probe + knn
        print(f"| {name} | {bb / 1e9:.2f} | {gen / 1e9:.2f} | {steps:,} | {total / 1e15:,.0f} | "
              f"{total / (args.tflops * 1e12) / 3600:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
