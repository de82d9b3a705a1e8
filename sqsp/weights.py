"""The one way sqsp writes module weights: safetensors (tensors only, nothing that runs on
load) plus an optional JSON sidecar ``<stem>.json``, each written atomically
(``storage.atomic_output``), so a crash never leaves a half-written file under the final
name. Generators, the FID classifier and the zoo's discriminators all go through here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save
from torch import nn

from .storage import atomic_output


def save_weights(module: nn.Module, path: str | os.PathLike, sidecar: dict[str, Any] | None = None) -> Path:
    """Write ``module``'s state dict to ``path`` (``.safetensors``) and ``sidecar`` next to it."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights path {str(path)!r} must end in .safetensors")
    with atomic_output(path) as f:
        f.write(save({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}))
    if sidecar is not None:
        with atomic_output(path.with_suffix(".json")) as f:
            f.write(json.dumps(sidecar, indent=1, sort_keys=True).encode())
    return path
