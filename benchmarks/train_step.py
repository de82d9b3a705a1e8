"""Images per second of the full squeeze-and-span step, side by side in one run.

For two students — the smoke preset's (ResNet-18 CIFAR ×0.125 at 16 px) and the paper's
(full-width ResNet-18 at 32 px, same batch) — it times fp32 NCHW, fp32 channels_last,
bf16-autocast channels_last and bf16-autocast NCHW, plus the authors' batch-level
augmentation on the preset's own setting; each variant in interleaved rounds, since these
machines are noisy. It prints the step's FLOP rate as a share of this machine's ceiling
(shared/tools/cpu_peak.py, measured in the same run at the same thread count) and the
share of the step spent in augmentation.

    python benchmarks/train_step.py [--preset smoke] [--steps 5] [--rounds 3] [--threads 1] [--set key=value ...]

``--threads 1`` by default: a study gives each trial one CPU (and one torch thread).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from sqsp.config import preset
from sqsp.device import cpu_has_native_bf16
from sqsp.train import build_run, compute_loss, train_step

SETTINGS = {
    "fp32 NCHW": {"precision": "fp32", "channels_last": False},
    "fp32 channels_last": {"precision": "fp32", "channels_last": True},
    "bf16 channels_last": {"precision": "bf16", "channels_last": True},
    "bf16 NCHW": {"precision": "bf16", "channels_last": False},
}
STUDENTS = {  # name -> overrides of the preset
    "preset student": {},
    "ResNet-18 x1 @32px": {"student_width": 1.0, "image_size": 32},
}


def _peak_tool():
    for cand in (Path(__file__).resolve().parents[2] / "shared/tools/cpu_peak.py",
                 Path(__file__).resolve().parents[1] / "../shared/tools/cpu_peak.py"):
        if cand.exists():
            spec = importlib.util.spec_from_file_location("cpu_peak", cand)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return mod
    return None


def cpu_peak(native_bf16: bool) -> dict:
    """shared/tools/cpu_peak.py's ceiling. Without native bf16 its bf16 half would take ~20
    minutes of emulated 4096² matmuls (0.6 GFLOP/s here) and bf16 has no ceiling worth the
    name, so only the fp32 half is measured, with the tool's own timer and shapes."""
    mod = _peak_tool()
    if mod is None:
        return {}
    if native_bf16:
        return mod.measure(reps=3)
    out = {"threads": torch.get_num_threads(), "bf16": "not native on this CPU; not measured"}
    with torch.no_grad():
        best = 0.0
        for n in (1024, 2048, 4096):
            a, b = torch.randn(n, n), torch.randn(n, n)
            best = max(best, mod._rate(lambda: a @ b, 2 * n**3, 3))
        out["matmul_fp32_gflops"] = round(best, 1)
        x = torch.randn(64, 256, 16, 16).contiguous(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
        out["conv_fp32_gflops"] = round(mod._rate(lambda: conv(x), 2 * 64 * 256 * 256 * 9 * 16 * 16, 3), 1)
    return out


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


def variants(base, native_bf16: bool) -> dict[str, dict]:
    out = {}
    for student, sover in STUDENTS.items():
        for setting, over in SETTINGS.items():
            if sover and over["precision"] == "bf16" and not native_bf16:
                continue  # emulated bf16 at full width: minutes per step; the small student shows its cost
            own = base.precision == over["precision"] and base.channels_last == over["channels_last"]
            out[f"{student}, {setting}" + (" (preset)" if own and not sover else "")] = {**sover, **over}
    out["preset student, preset setting, batch aug (authors')"] = {"aug_granularity": "batch"}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smoke")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = preset(args.preset, args.overrides)
    print(f"# {args.preset}: batch {base.batch_size} (α={base.syn_ratio}), {base.image_size}px, "
          f"student {base.student} x{base.student_width}, generator {base.generator}, "
          f"threads {torch.get_num_threads()}", flush=True)
    native = cpu_has_native_bf16()
    peak = cpu_peak(native)
    print(f"# native bf16: {native}; cpu_peak: {peak}", flush=True)
    runs = {name: build_run(base.replace(**over)) for name, over in variants(base, native).items()}
    for run in runs.values():  # warm-up (oneDNN primitive creation, kornia caches)
        time_steps(run, 2)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            times[name].append(time_steps(run, args.steps))
    rows = []
    for name, run in runs.items():
        sec = statistics.median(times[name])
        flops = step_flops(run)
        peak_key = "conv_bf16_gflops" if run.dtype == torch.bfloat16 else "conv_fp32_gflops"
        share = flops / sec / 1e9 / peak[peak_key] if isinstance(peak.get(peak_key), float) else float("nan")
        rows.append({"variant": name, "img_per_s": round(base.batch_size / sec, 1),
                     "step_ms": round(sec * 1e3, 1), "gflop_per_step": round(flops / 1e9, 2),
                     "share_of_peak": round(share, 3)})
    for student in STUDENTS:  # speed relative to fp32 NCHW of the same student
        ref = next(r["step_ms"] for r in rows if r["variant"].startswith(f"{student}, fp32 NCHW"))
        for r in rows:
            if r["variant"].startswith(f"{student}, "):
                r["vs_fp32_nchw"] = round(ref / r["step_ms"], 2)
    preset_name = next(n for n in runs if n.endswith("(preset)"))
    aug = aug_share(runs[preset_name], args.steps)
    ref = statistics.median(times[preset_name])
    print(f"{'variant':<58} {'img/s':>8} {'ms/step':>9} {'x fp32 NCHW':>12} {'GFLOP/step':>11} {'of peak':>8}")
    for r in rows:
        print(f"{r['variant']:<58} {r['img_per_s']:>8} {r['step_ms']:>9} {r['vs_fp32_nchw']:>12} "
              f"{r['gflop_per_step']:>11} {r['share_of_peak']:>8.1%}")
    print(f"augmentation share of the preset's step: {aug / ref:.1%} ({aug * 1e3:.1f} ms of {ref * 1e3:.1f} ms)")
    print(json.dumps({"cpu_peak": peak, "rows": rows, "aug_ms": round(aug * 1e3, 2)}))


if __name__ == "__main__":
    main()
