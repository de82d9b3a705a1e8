"""Generators: the embedded architectures, our checkpoint format, and the common interface.

Every generator the platform uses, embedded or official, reaches the training loop as a
``FeatureGenerator`` (``base.py``): images in [-1, 1], the feature map of each block
(appendix B.3) and ``w`` where there is one. This module builds the embedded ones and
reads and writes the project's own checkpoints.

Our checkpoints are tensors plus JSON, never pickles, so loading one runs no code:
``<stem>.safetensors`` holds the weights and ``<stem>.json`` (the sidecar) names the
architecture and its constructor arguments. ``torch.save``-d files are read with
``torch.load(weights_only=True)`` and must hold ``{"arch", "kwargs", "state_dict"}``.
Official StyleGAN pickles are read by ``official.py`` only.
"""
from __future__ import annotations

import inspect
import json
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import UserError
from ..weights import save_weights
from .base import Block, FeatureGenerator, GeneratorOutput
from .dcgan import DCGANGenerator
from .stylegan import StyleGANGenerator

__all__ = ["ARCHITECTURES", "Block", "CheckpointError", "FeatureGenerator", "GeneratorOutput", "build_architecture",
           "make_network", "wrap", "save_checkpoint", "load_checkpoint"]

# name -> (network class, name of its mapping sub-module or None)
ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], str | None]] = {
    "stylegan": (StyleGANGenerator, "mapping"),
    "dcgan": (DCGANGenerator, None),
}
CHECKPOINT_FORMAT = "sqsp-generator/1"


def make_network(arch: str, *, resolution: int, channels: int = 3, z_dim: int = 64, c_dim: int = 0,
                 seed: int = 0, **kw: Any) -> nn.Module:
    """The bare, trainable network of an embedded architecture, initialised from ``seed``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown generator architecture {arch!r}; allowed: {sorted(ARCHITECTURES)}")
    cls, _ = ARCHITECTURES[arch]
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        return cls(resolution=resolution, img_channels=channels, z_dim=z_dim, c_dim=c_dim, **kw)


def wrap(net: nn.Module, arch: str, *, truncation: float = 1.0) -> FeatureGenerator:
    """A frozen ``FeatureGenerator`` around an embedded network. The wrapper freezes ``net``
    itself, so pass a copy if you keep training it."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown generator architecture {arch!r}; allowed: {sorted(ARCHITECTURES)}")
    mapping = ARCHITECTURES[arch][1]
    if truncation != 1.0 and mapping is None:
        raise ValueError(f"truncation={truncation} needs a mapping network; architecture {arch!r} has none")

    def call(n, z, c):
        img = n(z, c, truncation_psi=truncation) if mapping else n(z, c)
        return img.clamp(-1, 1)  # the interface promises [-1, 1]; StyleGAN's raw output overshoots

    return FeatureGenerator(net, z_dim=net.z_dim, c_dim=net.c_dim, resolution=net.resolution,
                            channels=net.img_channels, arch=arch, mapping=mapping, call=call,
                            synthesis=(lambda n, w: n.synthesis(w)) if mapping else None)


def build_architecture(arch: str, *, resolution: int, channels: int = 3, z_dim: int = 64, c_dim: int = 0,
                       seed: int = 0, truncation: float = 1.0, **kw: Any) -> FeatureGenerator:
    """A randomly initialised embedded generator (``stylegan`` or ``dcgan``), deterministic from ``seed``."""
    net = make_network(arch, resolution=resolution, channels=channels, z_dim=z_dim, c_dim=c_dim, seed=seed, **kw)
    return wrap(net, arch, truncation=truncation)


# ---------------------------------------------------------------------------------------------
# checkpoints: tensors + JSON
# ---------------------------------------------------------------------------------------------
def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(net: nn.Module, arch: str, kwargs: dict[str, Any], path: str | os.PathLike,
                    extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` + ``<stem>.json``, each via a temp file and ``os.replace``
    so a crash never leaves a half-written file under the final name. ``kwargs`` are the
    constructor arguments of ``make_network`` (everything but ``arch`` and ``seed``); the
    sidecar records them completed with the constructor's defaults, so that a later change of
    a default does not change what an old checkpoint loads as."""
    meta = {"format": CHECKPOINT_FORMAT, "arch": arch, "kwargs": full_kwargs(arch, kwargs), **(extra or {})}
    path = save_weights(net, path, sidecar=meta)
    return path, sidecar_path(path)


def full_kwargs(arch: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``make_network`` arguments with every constructor default filled in."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown generator architecture {arch!r}; allowed: {sorted(ARCHITECTURES)}")
    renamed = {("img_channels" if k == "channels" else k): v for k, v in kwargs.items()}
    bound = inspect.signature(ARCHITECTURES[arch][0]).bind(**renamed)
    bound.apply_defaults()
    return {("channels" if k == "img_channels" else k): v for k, v in bound.arguments.items()}


class CheckpointError(UserError, ValueError):
    """A generator checkpoint that exists but does not load: not one of ours (a misleading
    extension, a pickle with objects in it), or a sidecar whose architecture or constructor
    arguments the network refuses. The file is data the user gave, so this is their error to
    fix, told in one line, never a traceback."""


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                    truncation: float = 1.0) -> FeatureGenerator:
    """A ``FeatureGenerator`` from one of our checkpoints (``.safetensors`` + sidecar, or a
    ``torch.save``-d dict read with ``weights_only=True``). A file that does not load raises
    ``CheckpointError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator checkpoint {str(path)!r} does not exist")
    if path.suffix not in (".safetensors", ".pt", ".pth"):
        raise CheckpointError(f"unknown checkpoint type {path.suffix!r} for {str(path)!r}; allowed: .safetensors "
                              "(+ .json sidecar), .pt/.pth (torch.save of a dict); official .pkl via sqsp.zoo")
    if path.suffix == ".safetensors" and not sidecar_path(path).is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} has no JSON sidecar {str(sidecar_path(path))!r} naming its "
                                "architecture; it is written next to the weights by save_checkpoint")
    try:
        meta, state = _read_checkpoint(path)
        net = make_network(meta["arch"], **meta["kwargs"])
        net.load_state_dict(state)
    except UserError:
        raise
    except pickle.UnpicklingError as e:  # weights_only held: nothing in the file ran
        raise CheckpointError(f"generator checkpoint {str(path)!r} is not a torch.save of tensors and plain values "
                              f"(torch.load(weights_only=True) refused it: {_unpickling_reason(e)}); nothing in it "
                              "was run") from e
    except Exception as e:  # noqa: BLE001 -- whatever the file's bytes or its sidecar's kwargs make fail
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise CheckpointError(f"generator checkpoint {str(path)!r} does not load ({type(e).__name__}: {first}); "
                              "write it with sqsp.generators.save_checkpoint") from e
    return wrap(net.to(device), meta["arch"], truncation=truncation)


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(meta, state_dict)`` of a checkpoint file; raises whatever its bytes make fail."""
    if path.suffix == ".safetensors":
        meta = json.loads(sidecar_path(path).read_text())
        if not isinstance(meta, dict) or not {"arch", "kwargs"} <= set(meta) or not isinstance(meta["kwargs"], dict):
            raise ValueError(f"sidecar {str(sidecar_path(path))!r} must be a JSON object with 'arch' and a 'kwargs' "
                             "object")
        return meta, load_file(str(path))
    meta = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(meta, dict) or not {"arch", "kwargs", "state_dict"} <= set(meta):
        raise ValueError("expected a dict with keys 'arch', 'kwargs', 'state_dict'")
    return meta, meta["state_dict"]


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's long weights_only message that says what it refused."""
    skip = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [x.strip() for x in str(error).splitlines() if x.strip() and not x.strip().startswith(skip)]
    return (lines or ["not a pickle of tensors"])[0][:200]
