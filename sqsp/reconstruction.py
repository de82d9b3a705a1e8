"""The image term of the encoder's loss (Eq. 3): how far re-rendered images are from their
targets, L1 + a perceptual distance (LPIPS, or ``encode.TrunkDistance``) at one size. Apart from
``encode.py``, which loads the distance, so that the method's loss (``methods.py``) stays below
the zoo that one of the distances is read from.
"""
from __future__ import annotations

import torch
from torch import nn

from .data import resize

# AlexNet's stride-4 stem and three 3x3/2 max-pools leave nothing of an image under ~31 px
# (at 16 px the second pool fails); the authors ran LPIPS at CIFAR's 32 px, so smaller images
# are upsampled to that.
LPIPS_MIN_SIZE = 32


def perceptual_distance(lpips_fn: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean LPIPS between image batches in [-1, 1], both brought to one size of at least
    ``LPIPS_MIN_SIZE`` (antialiased bilinear; a ``TrunkDistance`` resizes to its own trunk's)."""
    size = max(getattr(lpips_fn, "min_size", LPIPS_MIN_SIZE), a.shape[-1], b.shape[-1])
    a, b = resize(a, size), resize(b, size)
    return lpips_fn(a, b).mean()


def image_loss(perceptual: nn.Module, rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The authors' image term (encode.py): L1 + the perceptual distance between the re-rendered
    images (in [-1, 1], at the generator's size) and the target images (in [0, 1])."""
    target = target * 2 - 1
    return (rendered - resize(target, rendered.shape[-1])).abs().mean() + perceptual_distance(perceptual, rendered, target)
