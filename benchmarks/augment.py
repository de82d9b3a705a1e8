"""Milliseconds per batch of sqsp's MoCo-v2 augmentation against kornia's augmentation modules
(the same pipeline, kornia 0.9's ``AugmentationSequential``), side by side in interleaved rounds,
and each one's share of a training step of the preset.

    python benchmarks/augment.py [--preset smoke] [--rounds 5] [--threads 1]

Prints per pipeline the median ms per call on the step's three augmented batches (the synthetic
half and the two real views), the step's own median ms, and the share of the step.
"""
from __future__ import annotations

import argparse
import statistics
import time

import kornia.augmentation as K
import torch

from sqsp.augment import build_augment
from sqsp.config import preset
from sqsp.train import build_run, train_step


def kornia_mocov2(size: int, crop_min: float) -> torch.nn.Module:
    """The pipeline sqsp ran before (kornia's modules, per-sample parameters)."""
    k = max(3, int(0.1 * size) // 2 * 2 + 1)
    return K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=(crop_min, 1.0)), K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2), K.RandomGaussianBlur((k, k), sigma=(0.1, 2.0), p=0.5), K.RandomHorizontalFlip())


def _ms(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="smoke")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset(args.preset, {"generator": "random:stylegan@16", "eval_init": False, "eval_mmd": False})
    run = build_run(cfg)
    n_syn = round(cfg.batch_size * cfg.syn_ratio)
    n_real = cfg.batch_size - n_syn
    batches = [torch.rand(n, 3, cfg.image_size, cfg.image_size) for n in (n_syn, n_real, n_real) if n]
    pipelines = {"sqsp (vectorised)": build_augment(cfg.aug_preset, cfg.image_size, "sample", cfg.crop_min),
                 "kornia modules": kornia_mocov2(cfg.image_size, cfg.crop_min)}
    times: dict[str, list[float]] = {k: [] for k in [*pipelines, "training step"]}
    for _ in range(2):  # warm-up
        train_step(run)
        for aug in pipelines.values():
            [aug(b) for b in batches]
    for _ in range(args.rounds):
        times["training step"].append(_ms(lambda: train_step(run), max(3, args.calls // 4)))
        for name, aug in pipelines.items():
            times[name].append(_ms(lambda: [aug(b) for b in batches], args.calls))
    step = statistics.median(times["training step"])
    print(f"preset {args.preset}: batch {cfg.batch_size} (syn {n_syn}, real {n_real} x2 views), {cfg.image_size} px, "
          f"crop_min {cfg.crop_min}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"training step (sqsp's augmentation inside): {step:.1f} ms")
    sq, ko = (statistics.median(times[k]) for k in pipelines)
    for name, ms in zip(pipelines, (sq, ko)):
        own_step = step - sq + ms  # the step as it would be with this pipeline inside
        print(f"{name:20s} {ms:6.2f} ms per step's augmentation = {100 * ms / own_step:5.1f}% of its step "
              f"(spread {min(times[name]):.2f}-{max(times[name]):.2f})")
    print(f"kornia / sqsp: {ko / sq:.1f}x")


if __name__ == "__main__":
    main()
