"""What Ray Tune costs a study, in one run (a few minutes on 2 CPU cores).

    python benchmarks/study_overhead.py            # default: smoke preset cut to --steps 30
    python benchmarks/study_overhead.py --steps 84 --seeds 3     # the full smoke ablation, twice

Prints:
1. one trial: ``train()`` called directly in this process, the same config as a fresh
   ``python -m sqsp.train``-like process (imports included), two such processes side by
   side (what 2 cores give two trials without Ray), and as a one-trial study
   through Ray Tune (``run_study``: actor start, imports, checkpoints copied to storage,
   Parquet written); plus the time starting Ray takes (``init_ray``, as a study starts its own);
2. the ablation (rows a-f) at ``--seeds`` and at twice as many seeds, each at 1 and at 2
   concurrent trials (1 CPU and 1 torch thread per trial). A study's fixed cost (Tune's
   set-up, each trial slot's cold worker: imports, data, generator) comes once however many
   trials it has, so the cost *per trial* is the difference between the two study sizes
   divided by the trials added, set beside ``train()`` of the same rows in this warm process.

The machine's load average is printed with the figures: numbers taken while other work
runs on the same cores are inflated.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/study_overhead.py", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="smoke")
    p.add_argument("--steps", type=int, default=30, help="optimiser steps per trial (the smoke preset, cut short)")
    p.add_argument("--seeds", type=int, default=1, help="seeds of the ablation (6 trials per seed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--row", default="e", help="the ablation row timed as one trial (default e, the full squeeze)")
    args = p.parse_args(argv)

    import ray
    import torch

    from sqsp.train import train
    from sqsp.tune import base_config, expand, init_ray, prepare_generators, run_study
    from studies.ablation import STUDY

    overrides = [f"steps={args.steps}", *args.overrides]
    # a Ray trial per row: this measures what Ray costs each trial (benchmarks/share_generator.py
    # measures the rows of a seed run as one trial)
    ablation = dataclasses.replace(STUDY, preset=args.preset, seeds=tuple(range(args.seeds)), share_generator=False)
    configs = expand(ablation, base_config(ablation, overrides))
    cfg = next(c for r, c in configs if r == args.row)
    print(f"# study_overhead: preset {args.preset} {' '.join(overrides)}; torch {torch.__version__}, "
          f"ray {ray.__version__}, {os.cpu_count()} CPUs, load {_load()}")
    prepare_generators([c for _, c in configs])  # the zoo, once, untimed

    # 1. one trial (row --row, seed 0), four ways
    torch.set_num_threads(1)
    _train(train, cfg.replace(steps=2))  # warm-up: first-call costs of this process
    t0 = time.perf_counter()
    direct = _train(train, cfg)
    t_direct = time.perf_counter() - t0
    code = ("import json, sys, torch; torch.set_num_threads(1); from sqsp.config import TrainConfig; "
            "from sqsp.train import train\ntry: train(TrainConfig.from_dict(json.loads(sys.argv[1])))\n"
            "except FloatingPointError: pass")
    cmd = [sys.executable, "-c", code, json.dumps(cfg.to_dict())]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    t_process = time.perf_counter() - t0
    t0 = time.perf_counter()  # the machine's own scaling: two such processes side by side
    for proc in [subprocess.Popen(cmd, cwd=ROOT) for _ in range(2)]:
        if proc.wait():
            raise SystemExit("a training process failed")
    t_pair = time.perf_counter() - t0

    t0 = time.perf_counter()
    init_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)  # a study's own: 127.0.0.1, with a token
    t_init = time.perf_counter() - t0
    try:
        one = dataclasses.replace(ablation, name="one", seeds=(0,), grid=[r for r in STUDY.grid if r["row"] == args.row])
        with tempfile.TemporaryDirectory() as storage:
            t0 = time.perf_counter()
            trials = run_study(one, storage=storage, overrides=overrides, verbose=0)
            t_tune = time.perf_counter() - t0
        print(f"\n## one trial (row {args.row}, {args.steps} steps, 1 thread; {direct}), load {_load()}")
        print(f"train() in this process            {t_direct:7.1f} s")
        print(f"fresh process (imports included)   {t_process:7.1f} s")
        print(f"two fresh processes side by side   {t_pair:7.1f} s   (the machine's 2-process scaling: "
              f"{2 * t_process / t_pair:.2f}x)")
        inside = trials["wall_time_s"].iloc[0]
        print(f"run_study, one trial through Tune  {t_tune:7.1f} s   (+{t_tune - t_direct:.1f} s over train(); "
              f"{inside:.1f} s of it inside the trial, by Ray's clock; status {trials['status'].iloc[0]})")
        print(f"init_ray (local, 2 CPUs)           {t_init:7.1f} s")

        # 2. the ablation at two sizes, 1 and 2 concurrent trials: the marginal cost of a trial
        rows = [(r, c) for r, c in configs if c.seed == configs[0][1].seed]  # one seed's rows, trained directly
        t0 = time.perf_counter()
        for _, c in rows:
            _train(train, c)
        per_direct = (time.perf_counter() - t0) / len(rows)
        sizes = (args.seeds, 2 * args.seeds)
        walls = {}
        for concurrent in (1, 2):
            for seeds in sizes:
                study = dataclasses.replace(ablation, seeds=tuple(range(seeds)))
                with tempfile.TemporaryDirectory() as storage:
                    t0 = time.perf_counter()
                    trials = run_study(study, storage=storage, overrides=overrides, max_concurrent=concurrent,
                                       verbose=0)
                    walls[concurrent, seeds] = time.perf_counter() - t0
                print(f"\n## ablation, {len(trials)} trials, {concurrent} concurrent, load {_load()}")
                print(f"wall time {walls[concurrent, seeds]:7.1f} s; trial time summed "
                      f"{trials['wall_time_s'].sum():.0f} s; statuses {trials['status'].value_counts().to_dict()}")
        added = len(rows) * (sizes[1] - sizes[0])
        marginal = {k: (walls[k, sizes[1]] - walls[k, sizes[0]]) / added for k in (1, 2)}
        fixed = walls[1, sizes[0]] - marginal[1] * len(rows) * sizes[0]
        print(f"\n## per trial ({added} trials added to a {len(rows) * sizes[0]}-trial study)")
        print(f"train() of the same rows in this process   {per_direct:6.2f} s per trial")
        print(f"a trial added to a study, 1 concurrent      {marginal[1]:6.2f} s   "
              f"({marginal[1] / per_direct:.2f}x train())")
        print(f"a trial added to a study, 2 concurrent      {marginal[2]:6.2f} s   "
              f"({marginal[1] / marginal[2]:.2f}x faster than 1 concurrent: "
              f"{marginal[1] / marginal[2] / (2 * t_process / t_pair):.2f} of the machine's 2-process scaling)")
        print(f"the study's fixed cost, 1 concurrent        {fixed:6.1f} s   (Tune's set-up and the cold worker)")
    finally:
        ray.shutdown()
    return 0


def _train(train, cfg) -> str:
    """Run train(); a diverged run is still a timed run (Ray's trial diverges at the same step)."""
    try:
        m = train(cfg, None)
        return f"{m.get('img_per_s', 0):.0f} img/s in the last epoch"
    except FloatingPointError as e:
        return f"diverged: {e}"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
