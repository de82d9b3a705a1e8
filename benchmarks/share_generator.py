"""What ``--share-generator`` saves: the ablation grouped vs separate, measured and at the paper presets.

    python benchmarks/share_generator.py                    # smoke ablation, seeds 0-2, both ways
    python benchmarks/share_generator.py --seeds 1          # one seed (6 rows): a third of the time

Prints:
1. the smoke ablation (rows a-f × seeds) run twice through ``run_study`` in this one process,
   rows grouped by generator stream (the default) and every row its own trial
   (``--share-generator off``): wall time, the generator's forward passes and their FLOPs
   (torch's FlopCounterMode on the zoo generator, one batch of the row's syn_batch), and
   whether each row's numbers are equal both ways;
2. the expected saving at the paper presets, from benchmarks/paper_flops.py's per-image
   generator and student FLOPs: per seed, the ablation's rows a-e (α = 1: the same stream)
   share one generator forward per step, row f (α = 0.5) has its own; an estimate of the
   compute, not a measurement.

The machine's load average and CPU are printed with the figures: numbers taken while other
work runs on the same cores are inflated.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPARED = ["status", "step", "loss", "student_std", "knn_acc", "probe_acc"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/share_generator.py", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds of the ablation (6 rows per seed; default 3)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the smoke preset, e.g. --set steps=60 (default: the preset as it is)")
    args = p.parse_args(argv)

    import ray
    import torch

    from sqsp.provenance import device_name
    from sqsp.tune import base_config, expand, prepare_generators, run_study
    from sqsp.tune.groups import plan_groups
    from studies.ablation import STUDY

    ablation = dataclasses.replace(STUDY, seeds=tuple(range(args.seeds)))
    trials = expand(ablation, base_config(ablation, args.overrides))
    print(f"# share_generator: smoke ablation, {len(trials)} trials (6 rows × {args.seeds} seeds), {' '.join(args.overrides) or 'as preset'}; "
          f"torch {torch.__version__}, ray {ray.__version__}, {os.cpu_count()} CPUs ({device_name('cpu')}), "
          f"load {_load()}")
    prepare_generators([c for _, c in trials])  # the zoo, once, untimed
    plan = plan_groups(ablation, trials, None)
    per_forward = {}
    for _, cfg in trials:
        per_forward.setdefault(cfg.syn_batch, _generator_flops(cfg))

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        frames, walls = {}, {}
        for share in (None, False):
            with tempfile.TemporaryDirectory() as storage:
                t0 = time.perf_counter()
                frames[share] = run_study(dataclasses.replace(ablation, share_generator=share), storage=storage,
                                          overrides=args.overrides, loggers=())
                walls[share] = time.perf_counter() - t0
    finally:
        ray.shutdown()

    grouped, alone = (frames[s].set_index(["row", "seed"]).sort_index() for s in (None, False))
    steps = alone["step"].fillna(0).astype(int)  # steps each row ran (= generator forwards when alone)
    syn = {(row, cfg.seed): cfg.syn_batch for row, cfg in trials}
    sep_fwd = int(steps.sum())
    sep_flops = sum(steps[k] * per_forward[syn[k]] for k in steps.index)
    grp_fwd, grp_flops = 0, 0.0
    for group in plan.values():  # a group draws once per step while any member steps
        keys = [(m["row"], group["seed"]) for m in group["members"]]
        n = int(max(steps[k] for k in keys))
        grp_fwd += n
        grp_flops += n * per_forward[syn[keys[0]]]
    equal = grouped[COMPARED].equals(alone[COMPARED])
    print(f"\n## the smoke ablation, {len(alone)} rows, 2 concurrent Ray trials of 1 CPU, load {_load()}")
    print("| | Ray trials | wall time | generator forwards | generator GFLOP |")
    print("|---|---:|---:|---:|---:|")
    print(f"| grouped (default) | {len(plan)} | {walls[None]:.0f} s | {grp_fwd:,} | {grp_flops / 1e9:,.1f} |")
    print(f"| separate (--share-generator off) | {len(alone)} | {walls[False]:.0f} s | {sep_fwd:,} | "
          f"{sep_flops / 1e9:,.1f} |")
    print(f"wall time grouped/separate {walls[None] / walls[False]:.2f}; generator FLOPs grouped/separate "
          f"{grp_flops / sep_flops:.2f}; every row's {', '.join(COMPARED)} equal both ways: {equal}")
    paper_estimate()
    return 0


def _generator_flops(cfg) -> float:
    """FLOPs of one forward of the row's generator on a batch of its syn_batch (blocks included)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sqsp.train import synthetic_source
    source = synthetic_source(cfg, torch.device("cpu"))
    with FlopCounterMode(display=False) as fc:
        source(cfg.syn_batch)
    return float(fc.get_total_flops())


def paper_estimate() -> None:
    """Per seed of the ablation at each paper preset: rows a-e share one stream, row f its own."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from paper_flops import GENERATORS, student_flops, generator_flops

    from sqsp.config import preset
    print("\n## expected saving at the paper presets (ablation per seed: rows a-e share a stream, f alone; "
          "FLOPs of training steps, paper_flops.py's counts)")
    print("| preset | generator fwd GFLOP/img | student train GFLOP/img (3× fwd) | separate: PFLOP per step of the "
          "6 rows | grouped | saving |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("paper-cifar10", "paper-cifar100", "paper-stl10", "paper-imagenet100", "paper-imagenet"):
        cfg = preset(name, validate=False)
        _, channels = GENERATORS[name.removeprefix("paper-")]
        _, full = student_flops(cfg, channels)
        gen, train = generator_flops(channels), 3 * full
        b = cfg.batch_size
        syn_f, real_f = cfg.syn_batch, cfg.real_batch  # row f: the preset's α
        row_ae = b * gen + b * train                    # α = 1: B generated images, one view each
        row_f = syn_f * gen + train * (syn_f + 2 * real_f)
        separate = 5 * row_ae + row_f
        grouped = b * gen + 5 * b * train + row_f
        print(f"| {name} | {gen / 1e9:.2f} | {train / 1e9:.2f} | {separate / 1e15:.3f} | {grouped / 1e15:.3f} | "
              f"{100 * (1 - grouped / separate):.0f}% |")
    print("(per step of all six rows of one seed; the probe and kNN evaluations, the same both ways, come on top)")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
