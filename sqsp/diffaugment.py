"""DiffAugment (Zhao et al. 2020): differentiable augmentation of what the discriminator sees.

A GAN on a few thousand images lets D memorise the real set and tell fakes by colour and
texture; applying the same random colour, translation and cutout to real and fake images
in D's input, for D's and G's steps alike, takes those cues away and leaves the shapes.
The policies follow the authors' ``DiffAugment_pytorch.py`` (mit-han-lab/data-efficient-gans)
on images in [-1, 1]; the random draws come from an explicit ``torch.Generator`` so that a
zoo build stays deterministic from its seed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; unknown names are an error."""
    parts = tuple(p for p in policy.split(",") if p)
    bad = [p for p in parts if p not in POLICIES]
    if bad:
        raise ValueError(f"DiffAugment policy {policy!r}: unknown part(s) {bad}; allowed: {list(POLICIES)}")
    return parts


def _rand(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, generator=gen, device=x.device, dtype=x.dtype)


def _color(x: torch.Tensor, gen) -> torch.Tensor:
    x = x + (_rand(x, gen) - 0.5)                                          # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, gen) * 2) + mean                           # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, gen) + 0.5) + mean                      # contrast


def _translation(x: torch.Tensor, gen, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (n, 1, 1), generator=gen, device=x.device)
    ty = torch.randint(-sw, sw + 1, (n, 1, 1), generator=gen, device=x.device)
    gi, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    pad = F.pad(x, [1, 1, 1, 1])  # the authors pad with zeros: mid-grey in [-1, 1]
    return pad.permute(0, 2, 3, 1)[gi, gx, gy].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, gen, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen, device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen, device=x.device)
    gi, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gi, gx, gy] = 0
    return x * mask.unsqueeze(1)


_FUNCS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (N, C, H, W) with each policy applied per sample, differentiably (gradients reach G)."""
    for p in policy:
        x = _FUNCS[p](x, gen)
    return x.contiguous()
