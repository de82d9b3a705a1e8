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
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file
from torch import nn

from ..weights import save_weights
from .base import Block, FeatureGenerator, GeneratorOutput
from .dcgan import DCGANGenerator
from .stylegan import StyleGANGenerator

__all__ = ["ARCHITECTURES", "Block", "FeatureGenerator", "GeneratorOutput", "build_architecture", "make_network",
           "wrap", "save_checkpoint", "load_checkpoint", "is_checkpoint_path"]

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


def is_checkpoint_path(spec: str) -> bool:
    return Path(spec).suffix in (".safetensors", ".pt", ".pth")


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                    truncation: float = 1.0) -> FeatureGenerator:
    """A ``FeatureGenerator`` from one of our checkpoints (``.safetensors`` + sidecar, or a
    ``torch.save``-d dict read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        side = sidecar_path(path)
        if not side.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} has no JSON sidecar {str(side)!r} naming its "
                                    "architecture; it is written next to the weights by save_checkpoint")
        meta = json.loads(side.read_text())
        state = load_file(str(path))
    elif path.suffix in (".pt", ".pth"):
        meta = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(meta, dict) or not {"arch", "kwargs", "state_dict"} <= set(meta):
            raise ValueError(f"{str(path)!r} is not a generator checkpoint: expected a dict with keys "
                             "'arch', 'kwargs', 'state_dict'")
        state = meta["state_dict"]
    else:
        raise ValueError(f"unknown checkpoint type {path.suffix!r} for {str(path)!r}; allowed: .safetensors "
                         "(+ .json sidecar), .pt/.pth (torch.save of a dict); official .pkl via sqsp.zoo")
    net = make_network(meta["arch"], **meta["kwargs"])
    net.load_state_dict(state)
    return wrap(net.to(device), meta["arch"], truncation=truncation)
