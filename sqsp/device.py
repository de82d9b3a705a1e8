"""Device and precision choices, made in one place below everything that runs a network.

Training, evaluation, the discriminator baseline and the figure scripts all ask here which
device a config names and which autocast dtype its ``precision`` means on it, so a choice
(e.g. fp32 on a CPU whose bf16 is emulated) holds everywhere at once.
"""
from __future__ import annotations

import contextlib
import warnings

import torch

from .config import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available here; use 'cpu' or 'auto'")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 / AMX, which oneDNN uses for bf16 kernels. Without them bf16 is emulated:
    on the AVX2-only EPYC development VM a bf16 matmul ran at 0.6 GFLOP/s against 28 in fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private query; without it, assume the safe answer
        return False


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None means fp32. ``auto``: bf16 autocast on CUDA where supported, else fp16 (with a
    grad scaler); on CPU bf16 only where the CPU has native bf16 (about 2x over fp32 there),
    else fp32 — emulated bf16 is several times slower (benchmarks/README.md)."""
    if precision == "fp32" or device.type == "mps":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn("precision='bf16' on a CPU without native bf16 (AVX512-BF16/AMX): it is emulated and "
                      "several times slower than fp32; precision='auto' picks fp32 here", RuntimeWarning, stacklevel=2)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device``; None (fp32) enters no autocast context at all."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
