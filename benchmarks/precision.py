"""What each precision / memory-format setting costs in accuracy, and what it buys in speed.

Trains the same run (the ``smoke`` preset unless told otherwise) under each setting and
seed, interleaved so that machine noise hits all settings alike, and prints linear-probe
and kNN accuracy (mean ± std over seeds) beside images per second.

    python benchmarks/precision.py [--preset smoke] [--seeds 2] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sqsp.config import preset  # noqa: E402
from sqsp.train import train  # noqa: E402

SETTINGS = {
    "fp32 NCHW": {"precision": "fp32", "channels_last": False},
    "fp32 channels_last": {"precision": "fp32", "channels_last": True},
    "bf16 channels_last (default)": {"precision": "bf16", "channels_last": True},
}


def ms(xs):
    return f"{statistics.mean(xs):6.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:5.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smoke")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
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
    print(f"\n{'setting':<30} {'probe acc %':>16} {'kNN acc %':>16} {'img/s':>8} {'wall s':>7}")
    for name, runs in res.items():
        print(f"{name:<30} {ms([r['probe_acc'] for r in runs]):>16} {ms([r['knn_acc'] for r in runs]):>16} "
              f"{statistics.mean(r['img_per_s'] for r in runs):>8.0f} {statistics.mean(r['wall_s'] for r in runs):>7.0f}")


if __name__ == "__main__":
    main()
