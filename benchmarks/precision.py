"""What each precision / memory-format setting costs in accuracy, and what it buys in speed.

Trains the same run (the ``smoke`` preset unless told otherwise) under each setting and
seed, interleaved so that machine noise hits all settings alike, and prints linear-probe
and kNN accuracy (mean ± std over seeds) beside images per second.

    python benchmarks/precision.py [--preset smoke] [--seeds 3] [--threads 1] [--set key=value ...]

Seeds spread the smoke probe by several points, far more than precision can, so besides the
mean ± std it prints each setting's paired difference from fp32 NCHW (same seed, same
initialisation and data order; the runs still drift apart numerically).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from sqsp.config import preset
from sqsp.train import train

SETTINGS = {
    "fp32 NCHW": {"precision": "fp32", "channels_last": False},
    "fp32 channels_last": {"precision": "fp32", "channels_last": True},
    "bf16 channels_last": {"precision": "bf16", "channels_last": True},
}


def ms(xs):
    return f"{statistics.mean(xs):6.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:5.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smoke")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (a study trial has 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = preset(args.preset, args.overrides)
    res: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    for seed in range(args.seeds):
        for name, over in SETTINGS.items():
            t = time.perf_counter()
            m = train(base.replace(seed=seed, **over))
            m["wall_s"] = time.perf_counter() - t
            res[name].append(m)
            print(f"  {name:<30} seed {seed}: probe {m['probe_acc']:.2f} knn {m['knn_acc']:.2f} "
                  f"{m['img_per_s']:.0f} img/s {m['wall_s']:.0f} s", flush=True)
    ref = res["fp32 NCHW"]
    print(f"\n{'setting':<22} {'probe acc %':>16} {'Δ probe (paired)':>17} {'kNN acc %':>16} {'Δ kNN (paired)':>16} "
          f"{'img/s':>7} {'wall s':>7}")
    for name, runs in res.items():
        dp = [r["probe_acc"] - f["probe_acc"] for r, f in zip(runs, ref)]
        dk = [r["knn_acc"] - f["knn_acc"] for r, f in zip(runs, ref)]
        print(f"{name:<22} {ms([r['probe_acc'] for r in runs]):>16} {ms(dp):>17} {ms([r['knn_acc'] for r in runs]):>16} "
              f"{ms(dk):>16} {statistics.mean(r['img_per_s'] for r in runs):>7.0f} "
              f"{statistics.mean(r['wall_s'] for r in runs):>7.0f}")


if __name__ == "__main__":
    main()
