"""Images per second of the full squeeze-and-span step, side by side in one run.

What it compares (each variant timed in interleaved rounds, since these machines are noisy):
- per-sample augmentation (ours, default) vs the authors' batch-level augmentation;
- fp32 NCHW, fp32 channels_last and bf16-autocast channels_last (the default on CPU);
and it prints the share of the step spent in augmentation and the step's FLOP rate as a
share of this machine's ceiling measured by shared/tools/cpu_peak.py in the same run.

    python benchmarks/train_step.py [--preset smoke] [--steps 10] [--rounds 3] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sqsp.config import preset  # noqa: E402
from sqsp.train import build_run, compute_loss, train_step  # noqa: E402

VARIANTS = {
    "bf16 + channels_last, per-sample aug (default)": {"precision": "bf16", "channels_last": True},
    "bf16 + channels_last, batch aug (authors')": {"precision": "bf16", "channels_last": True,
                                                   "aug_granularity": "batch"},
    "fp32 + channels_last, per-sample aug": {"precision": "fp32", "channels_last": True},
    "fp32 NCHW, per-sample aug": {"precision": "fp32", "channels_last": False},
}


def cpu_peak() -> dict:
    for cand in (Path(__file__).resolve().parents[2] / "shared/tools/cpu_peak.py",
                 Path(__file__).resolve().parents[1] / "../shared/tools/cpu_peak.py"):
        if cand.exists():
            spec = importlib.util.spec_from_file_location("cpu_peak", cand)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return mod.measure(reps=3)
    return {}


def step_flops(run) -> int:
    with FlopCounterMode(display=False) as fc:
        terms = compute_loss(run)
        terms["loss"].backward()
    run.optimizer.zero_grad(set_to_none=True)
    return fc.get_total_flops()


def time_steps(run, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        train_step(run)
    torch.cuda.synchronize() if run.device.type == "cuda" else None
    return (time.perf_counter() - t) / steps


def aug_share(run, steps: int) -> float:
    """Seconds of augmentation per step: the synthetic batch once, the real batch twice (span)."""
    cfg = run.config
    syn = run.synthetic(cfg.syn_batch).images
    real = run.real[: cfg.real_batch].float() / 255 if cfg.real_batch else None
    t = time.perf_counter()
    for _ in range(steps):
        run.aug_syn(syn)
        if real is not None:
            run.aug_real(real), run.aug_real(real)
    return (time.perf_counter() - t) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smoke")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    base = preset(args.preset, args.overrides)
    print(f"# {args.preset}: batch {base.batch_size} (α={base.syn_ratio}), {base.image_size}px, "
          f"student {base.student} x{base.student_width}, generator {base.generator}, "
          f"threads {torch.get_num_threads()}", flush=True)
    peak = cpu_peak()
    runs = {name: build_run(base.replace(**over)) for name, over in VARIANTS.items()}
    for run in runs.values():  # warm-up (oneDNN primitive creation, kornia caches)
        time_steps(run, 2)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            times[name].append(time_steps(run, args.steps))
    default = next(iter(runs))
    ref = statistics.median(times[default])
    rows = []
    for name, run in runs.items():
        sec = statistics.median(times[name])
        flops = step_flops(run)
        peak_key = "conv_bf16_gflops" if run.dtype == torch.bfloat16 else "conv_fp32_gflops"
        share = flops / sec / 1e9 / peak[peak_key] if peak.get(peak_key) else float("nan")
        rows.append({"variant": name, "img_per_s": round(base.batch_size / sec, 1),
                     "step_ms": round(sec * 1e3, 1), "vs_default": round(ref / sec, 2),
                     "gflop_per_step": round(flops / 1e9, 2), "share_of_peak": round(share, 3)})
    aug = aug_share(runs[default], args.steps)
    print(f"{'variant':<50} {'img/s':>8} {'ms/step':>9} {'x default':>10} {'GFLOP/step':>11} {'of peak':>8}")
    for r in rows:
        print(f"{r['variant']:<50} {r['img_per_s']:>8} {r['step_ms']:>9} {r['vs_default']:>10} "
              f"{r['gflop_per_step']:>11} {r['share_of_peak']:>8.1%}")
    print(f"augmentation share of the default step: {aug / ref:.1%} ({aug * 1e3:.1f} ms of {ref * 1e3:.1f} ms)")
    print(json.dumps({"cpu_peak": peak, "rows": rows, "aug_ms": round(aug * 1e3, 2)}))


if __name__ == "__main__":
    main()
