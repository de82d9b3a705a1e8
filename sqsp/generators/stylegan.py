"""A small StyleGAN2-like generator for the embedded zoo.

It keeps the parts of StyleGAN2 (Karras et al. 2020) that shape its features, so that what
the student distils from it resembles what the paper distils from StyleGAN2-ADA:
a mapping network z -> w, modulated 3x3 convolutions with weight demodulation, one
synthesis block per resolution with a skip ToRGB, and equalised learning rate. The module
tree mimics the official one (``mapping``, ``synthesis.b4``, ``synthesis.b8``, … with each
block returning ``(x, img)``), so the generic block rule of ``base.py`` (appendix B.3)
finds the same blocks as on an official pickle.

Left out, on purpose: per-pixel noise inputs (they would make the output a random function
of z; the embedded zoo wants ``G(z)`` deterministic), style mixing and path-length
regularisation (costly, and they matter for editing, not for sample quality at 16 px),
and the FIR up-sampling filter (bilinear is enough at 16 px).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_ACT_GAIN = math.sqrt(2.0)  # keeps the variance of leaky-ReLU outputs at 1, as in StyleGAN


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored at N(0, 1/lr_mul) and
    scaled at run time, so Adam's per-parameter step is the same for every layer."""

    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * _ACT_GAIN if self.activate else x


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate (used by the zoo's discriminator)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.stride, self.padding, self.activate = stride, kernel // 2, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, stride=self.stride, padding=self.padding)
        return F.leaky_relu(x, 0.2) * _ACT_GAIN if self.activate else x


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (and the class, if conditional) -> w. Truncation happens here, as in the official
    code, so a hook on ``mapping`` sees the w that the synthesis network receives."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int = 2, lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.w_avg_beta = z_dim, c_dim, w_dim, w_avg_beta
        self.embed = EqualLinear(c_dim, w_dim) if c_dim > 0 else None
        dims = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activate=True)
                                      for a, b in zip(dims[:-1], dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0) -> torch.Tensor:
        x = _normalize_2nd_moment(z)
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is class-conditional (c_dim={self.c_dim}); pass one-hot labels c")
            x = torch.cat([x, _normalize_2nd_moment(self.embed(c.to(x.dtype)))], dim=1)
        w = self.layers(x)
        if self.training:  # the average w is what truncation pulls towards
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1.0:
            w = self.w_avg.lerp(w, truncation_psi)
        return w


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution (Karras et al. 2020, Eq. 1-3).

    Implemented as "scale the input, convolve with the shared weight, scale the output"
    (the official ``fused_modconv=False`` path): mathematically the same as modulating and
    demodulating the weight per sample, but a plain conv2d, which is fast on CPU.
    """

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, kernel: int = 3, *, demodulate: bool = True,
                 up: bool = False, activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.up, self.activate, self.padding = demodulate, up, activate, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        weight = self.weight * self.weight_gain
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            dcoefs = (weight.square().sum(dim=(2, 3))[None] * styles.square()[:, None, :]).sum(2)
            x = x * (dcoefs + 1e-8).rsqrt()[:, :, None, None]
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * _ACT_GAIN if self.activate else x


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, img_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, img_channels, w_dim, kernel=1, demodulate=False, activate=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w)


class SynthesisBlock(nn.Module):
    """One resolution: (up-sampling) conv, conv, ToRGB added to the up-sampled image of the
    previous block (the skip architecture). Returns ``(x, img)`` like the official block."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, img_channels: int):
        super().__init__()
        self.resolution = resolution
        if in_ch == 0:
            self.const = nn.Parameter(torch.randn(out_ch, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = ModulatedConv2d(in_ch, out_ch, w_dim, up=True)
        self.conv1 = ModulatedConv2d(out_ch, out_ch, w_dim)
        self.torgb = ToRGB(out_ch, img_channels, w_dim)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, w: torch.Tensor):
        if self.conv0 is None:
            x = self.const[None].expand(w.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, w)
        x = self.conv1(x, w)
        y = self.torgb(x, w)
        img = y if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, resolution: int, img_channels: int, channels: dict[int, int]):
        super().__init__()
        self.resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        in_ch = 0
        for r in self.resolutions:
            setattr(self, f"b{r}", SynthesisBlock(in_ch, channels[r], w_dim, r, img_channels))
            in_ch = channels[r]

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        x = img = None
        for r in self.resolutions:
            x, img = getattr(self, f"b{r}")(x, img, w)
        return img


class StyleGANGenerator(nn.Module):
    """``G(z, c) -> image`` (not clamped: the GAN loss sees the raw output, as in StyleGAN)."""

    def __init__(self, *, z_dim: int = 64, c_dim: int = 0, w_dim: int = 128, resolution: int = 16,
                 img_channels: int = 3, channel_base: int = 256, channel_max: int = 64, mapping_layers: int = 2,
                 mapping_lr_mul: float = 0.01):
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution={resolution} is not allowed; StyleGAN needs a power of two >= 4")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.resolution, self.img_channels = resolution, img_channels
        channels = {2 ** i: min(channel_base // 2 ** i, channel_max) for i in range(2, int(math.log2(resolution)) + 1)}
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_layers=mapping_layers, lr_mul=mapping_lr_mul)
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channels)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0) -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi=truncation_psi))
