"""The one way sqsp writes module weights: safetensors (tensors only, nothing that runs on
load) plus an optional JSON sidecar ``<stem>.json``, each written to a temporary name and
moved into place with ``os.replace``, so a crash never leaves a half-written file under the
final name. Generators, the FID classifier and the zoo's discriminators all go through here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn


def save_weights(module: nn.Module, path: str | os.PathLike, sidecar: dict[str, Any] | None = None) -> Path:
    """Write ``module``'s state dict to ``path`` (``.safetensors``) and ``sidecar`` next to it."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights path {str(path)!r} must end in .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_w = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(tmp_w))
    if sidecar is not None:
        side = path.with_suffix(".json")
        tmp_j = side.with_name(side.name + ".tmp")
        tmp_j.write_text(json.dumps(sidecar, indent=1, sort_keys=True))
    os.replace(tmp_w, path)
    if sidecar is not None:
        os.replace(tmp_j, side)
    return path
