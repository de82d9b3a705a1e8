"""Batched MoCo-v2 augmentation that runs on the training device.

Every random parameter of a batch (crop box, jitter factors and order, grayscale, blur σ, flip)
is drawn in one tensor op per kind, on the images' device, and applied with kornia's
vectorised functional ops (``kornia.enhance``, ``kornia.filters``) and one ``grid_sample``:
no Python loop per image and no host sync (airbench's way). Kornia's augmentation *modules*
do the same maths, but their per-call parameter machinery cost 15 ms for a batch of 64
16-px images on one CPU thread, against ~3 ms here: at the smoke preset, a third of the
training step (``benchmarks/train_step.py`` prints the share).

``granularity="batch"`` draws one set of parameters for the whole batch: that is what the
authors' code does to synthetic images by applying torchvision transforms to a batch tensor,
kept here so that it can be studied.

Inputs and outputs are float images in [0, 1], (N, C, H, W).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.enhance import (adjust_brightness_accumulative, adjust_contrast_with_mean_subtraction,
                            adjust_saturation_with_gray_subtraction)
from torch import nn

PRESETS = ("mocov2", "mocov2-noblur", "crop-flip", "none")
RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's aspect ratios
CROP_TRIES = 10         # torchvision's rejection sampling, vectorised: 10 candidate boxes per image
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue (MoCo-v2)


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
        return Augment(size, crop_min=0.08, jitter_p=0.0, gray_p=0.0, blur_p=0.0, same_on_batch=same)
    # MoCo-v2 uses a 23 px kernel at 224 px, i.e. ~10% of the side; keep that ratio, odd, >= 3.
    k = max(3, int(0.1 * size) // 2 * 2 + 1)
    return Augment(size, crop_min=crop_min, blur_p=0.5 if preset == "mocov2" else 0.0, blur_kernel=k,
                   same_on_batch=same)


class Augment(nn.Module):
    """Random resized crop → colour jitter → grayscale → Gaussian blur → horizontal flip, each
    with its own per-image (or, ``same_on_batch``, per-batch) parameters and probability.

    The distributions are torchvision's and kornia's: crop area share ~ U(crop_min, 1) and
    log aspect ~ U(log 3/4, log 4/3), the first of 10 candidates that fits, else the whole
    image (so ``crop_min=1`` keeps the image); jitter factors ~ U(1 ± 0.4) for brightness,
    contrast and saturation and hue ~ U(±0.1) turns, applied in a random order drawn once per
    call (as kornia's ``ColorJitter``); blur σ ~ U(0.1, 2). Crop boxes are continuous (sampled
    bilinearly), not rounded to whole pixels."""

    def __init__(self, size: int, *, crop_min: float = 0.2, jitter_p: float = 0.8, gray_p: float = 0.2,
                 blur_p: float = 0.5, blur_kernel: int = 3, flip_p: float = 0.5, same_on_batch: bool = False):
        super().__init__()
        self.size, self.crop_min, self.same = size, crop_min, same_on_batch
        self.jitter_p, self.gray_p, self.blur_p, self.flip_p, self.blur_kernel = jitter_p, gray_p, blur_p, flip_p, blur_kernel

    def _rand(self, x: torch.Tensor, *shape: int) -> torch.Tensor:
        """U(0, 1) of shape (N, *shape): one draw per image, or one for the batch, broadcast."""
        n = x.shape[0]
        r = torch.rand(1 if self.same else n, *shape, device=x.device)
        return r.expand(n, *shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop_min < 1 or x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = self._crop(x)
        if self.jitter_p > 0:
            x = self._jitter(x)
        if self.gray_p > 0:
            gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
            x = torch.where(self._rand(x, 1, 1, 1) < self.gray_p, gray, x)
        if self.blur_p > 0:
            blurred = gaussian_blur(x, 0.1 + 1.9 * self._rand(x), self.blur_kernel)
            x = torch.where(self._rand(x, 1, 1, 1) < self.blur_p, blurred, x)
        if self.flip_p > 0:
            x = torch.where(self._rand(x, 1, 1, 1) < self.flip_p, x.flip(-1), x)
        return x

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        w, h, left, top = crop_boxes(self._rand(x, CROP_TRIES, 4), self.crop_min)
        # affine_grid maps the output's [-1, 1] square onto the crop box in the input's coordinates
        theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = w, 2 * left + w - 1
        theta[:, 1, 1], theta[:, 1, 2] = h, 2 * top + h - 1
        grid = F.affine_grid(theta, [x.shape[0], x.shape[1], self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        b, c, s, h = JITTER
        u = self._rand(x, 5)
        on = u[:, 4] < self.jitter_p   # images left alone get the neutral factors
        factors = [torch.where(on, 1 - b + 2 * b * u[:, 0], 1.0), torch.where(on, 1 - c + 2 * c * u[:, 1], 1.0),
                   torch.where(on, 1 - s + 2 * s * u[:, 2], 1.0), torch.where(on, (2 * u[:, 3] - 1) * h, 0.0)]
        # kornia's ColorJitter steps (torchvision's formulas): x·f, blend with the gray mean, blend
        # with the gray image, hue shift in radians
        steps = (adjust_brightness_accumulative, adjust_contrast_with_mean_subtraction,
                 adjust_saturation_with_gray_subtraction, shift_hue)
        for i in torch.randperm(4).tolist():
            x = steps[i](x, factors[i]).clamp(0, 1)
        return x


def crop_boxes(u: torch.Tensor, crop_min: float) -> tuple[torch.Tensor, ...]:
    """RandomResizedCrop's boxes from uniforms ``u`` (N, tries, 4), as shares of the image side:
    width, height, left, top. Area share ~ U(crop_min, 1), log aspect ~ U(log 3/4, log 4/3); the
    first candidate that fits the image is taken, the whole image if none does (torchvision's
    fallback for a square image)."""
    area = crop_min + (1 - crop_min) * u[..., 0]
    ratio = torch.exp(math.log(RATIO[0]) + (math.log(RATIO[1]) - math.log(RATIO[0])) * u[..., 1])
    w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
    fits = (w <= 1) & (h <= 1)
    first = fits.float().argmax(dim=1, keepdim=True)  # the first candidate that fits (0 if none does)
    ok = fits.any(dim=1)

    def pick(t):
        return t.gather(1, first).squeeze(1)
    w, h = torch.where(ok, pick(w), 1.0), torch.where(ok, pick(h), 1.0)
    return w, h, pick(u[..., 2]) * (1 - w), pick(u[..., 3]) * (1 - h)


def shift_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by ``turns`` (N,) of a full turn, keeping saturation and value:
    torchvision's ``adjust_hue`` (RGB → HSV, shift, back) for a per-image factor. Written here
    because kornia's ``adjust_hue`` and torchvision's take the long way through a full HSV
    image (or one factor per batch) and were the costliest step of the jitter; HSV → RGB is
    the closed form f(n) = V − V·S·max(0, min(k, 4 − k, 1)), k = (n + 6H) mod 6, n = 5, 3, 1."""
    r, g, b = x.unbind(1)
    v, _ = x.max(1)
    delta = v - x.min(1).values
    s = delta / torch.where(v > 0, v, 1.0)
    d = torch.where(delta > 0, delta, 1.0)
    h = torch.where(v == r, (g - b) / d, torch.where(v == g, 2 + (b - r) / d, 4 + (r - g) / d))  # sextants
    h6 = (h + 6 * turns.view(-1, 1, 1)).remainder(6)
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = (n + h6.unsqueeze(1)).remainder(6)
    return v.unsqueeze(1) * (1 - s.unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1))


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur with a σ per image (N,), reflect-padded: one grouped convolution
    per axis for the whole batch (kornia's ``gaussian_blur2d`` builds its per-image kernels the
    long way, which cost more than the convolutions at these sizes)."""
    n, c, hgt, wid = x.shape
    offsets = torch.arange(kernel, device=x.device, dtype=x.dtype) - kernel // 2
    w = torch.exp(-offsets.pow(2) / (2 * sigma.view(-1, 1).pow(2)))
    w = (w / w.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (N·C, k)
    pad = kernel // 2
    y = F.pad(x.reshape(1, n * c, hgt, wid), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, w.view(n * c, 1, 1, kernel), groups=n * c)
    y = F.conv2d(y, w.view(n * c, 1, kernel, 1), groups=n * c)
    return y.view(n, c, hgt, wid)
