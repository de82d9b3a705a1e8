"""What produced one trial, recorded beside its metrics: the exact generator file and the
library and hardware versions the numbers depend on (results.collect_provenance records the
driver's Python, torch, Ray and git commit once per study).

Collected where the trial runs, since on a cluster that is another machine than the driver's.
"""
from __future__ import annotations

import os
import platform
from typing import Any

from .config import TrainConfig
from .results import package_version

VERSIONED = {"numpy_version": "numpy", "kornia_version": "kornia", "sklearn_version": "scikit-learn"}


def trial_provenance(cfg: TrainConfig) -> dict[str, Any]:
    """Flat string values: ``generator_sha256`` (None for an untrained ``random:`` generator or a
    run without one), the versions of numpy, kornia and scikit-learn, ``cuda_version``
    (torch.version.cuda; None for a CPU build) and ``device_name`` (the GPU's name, else the CPU's).

    The device is the one this process's torch sees. A trial that never loads torch (a stand-in
    trainable of a test or a benchmark, which sleeps instead of training) ran on the CPU and
    records it so (no CUDA version, the CPU's name) rather than import torch for it: that
    import is 2 s of CPU in every fresh trial worker."""
    import sys
    torch = sys.modules.get("torch")  # a trial that trains has imported it already (sqsp_trial)
    out: dict[str, Any] = {k: package_version(pkg) for k, pkg in VERSIONED.items()}
    out["cuda_version"] = torch.version.cuda if torch is not None else None
    out["device_name"] = device_name(cfg.device) if torch is not None else _cpu_name()
    out["generator_sha256"] = generator_sha256(cfg)
    return out


def generator_sha256(cfg: TrainConfig) -> str | None:
    """The generator file's sha256: a zoo entry's from its manifest (checked against the file
    whenever it is loaded), a checkpoint path's computed (a second read of a file the trial reads anyway)."""
    if not cfg.uses_generator or cfg.generator_spec.kind == "random":
        return None
    if cfg.generator_spec.kind == "zoo":
        from . import zoo
        entry = zoo.entries().get(cfg.generator)
        return entry.get("sha256") if entry else None
    from .fid import file_sha256
    return file_sha256(cfg.generator) if os.path.isfile(cfg.generator) else None


def device_name(device: str) -> str:
    import torch
    if device.startswith(("auto", "cuda")) and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else 0
        return torch.cuda.get_device_name(index)
    if device in ("auto", "mps") and torch.backends.mps.is_available():
        return "Apple MPS"
    return _cpu_name()


def _cpu_name() -> str:
    try:  # Linux: the model name; platform.processor() is often just the architecture there
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
