"""Batched MoCo-v2 augmentation that runs on the training device.

Kornia draws the random parameters of every transform per sample and applies them as
batched tensor ops, so generated images never leave the GPU and no Python loop runs per
image. ``granularity="batch"`` draws one set of parameters for the whole batch
(kornia's ``same_on_batch``): that is what the authors' code does to synthetic images
by applying torchvision transforms to a batch tensor, kept here so it can be studied.

Inputs and outputs are float images in [0, 1], (N, C, H, W).
"""
from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

PRESETS = ("mocov2", "mocov2-noblur", "crop-flip", "none")


def build_augment(preset: str, size: int, granularity: str = "sample", crop_min: float = 0.2) -> nn.Module:
    """MoCo-v2 (Chen et al. 2020): crop scale (``crop_min``, 1) (MoCo-v2's 0.2 by default),
    jitter 0.4/0.4/0.4/0.1 w.p. 0.8, grayscale w.p. 0.2, blur σ∈[0.1, 2] w.p. 0.5 (``mocov2``
    only), horizontal flip. ``crop-flip`` is the linear-probe augmentation (scale (0.08, 1), flip)."""
    if preset not in PRESETS:
        raise ValueError(f"augmentation preset {preset!r} is not allowed; allowed: {list(PRESETS)}")
    if granularity not in ("sample", "batch"):
        raise ValueError(f"granularity={granularity!r} is not allowed; allowed: ['sample', 'batch']")
    if not 0 < crop_min <= 1:
        raise ValueError(f"crop_min={crop_min!r} is outside (0, 1]: the smallest crop's share of the image area")
    same = granularity == "batch"
    if preset == "none":
        return nn.Identity()
    if preset == "crop-flip":
        ops = [K.RandomResizedCrop((size, size), scale=(0.08, 1.0), same_on_batch=same),
               K.RandomHorizontalFlip(same_on_batch=same)]
        return K.AugmentationSequential(*ops)
    ops = [
        K.RandomResizedCrop((size, size), scale=(crop_min, 1.0), same_on_batch=same),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8, same_on_batch=same),
        K.RandomGrayscale(p=0.2, same_on_batch=same),
    ]
    if preset == "mocov2":
        # MoCo-v2 uses a 23 px kernel at 224 px, i.e. ~10% of the side; keep that ratio, odd, >= 3.
        k = max(3, int(0.1 * size) // 2 * 2 + 1)
        ops.append(K.RandomGaussianBlur((k, k), sigma=(0.1, 2.0), p=0.5, same_on_batch=same))
    ops.append(K.RandomHorizontalFlip(same_on_batch=same))
    return K.AugmentationSequential(*ops)
