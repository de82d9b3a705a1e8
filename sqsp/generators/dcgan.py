"""A plain convolutional DCGAN-like generator (Radford et al. 2016) for the embedded zoo.

It is here for its different inductive bias (appendix B.3, Table 7 compares GAN
architectures): no mapping network and no style modulation, z enters once through a
linear layer, and each resolution is a transposed convolution with batch norm and ReLU.
Its blocks are the ReLU outputs at 4, 8, … px, found by the same hook rule as StyleGAN's.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class DCGANGenerator(nn.Module):
    """``G(z, c) -> image`` in (-1, 1) (tanh). A class, if conditional, is concatenated to z."""

    def __init__(self, *, z_dim: int = 64, c_dim: int = 0, resolution: int = 16, img_channels: int = 3,
                 channel_base: int = 256, channel_max: int = 64):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution={resolution} is not allowed; the DCGAN needs a power of two >= 8")
        self.z_dim, self.c_dim, self.resolution, self.img_channels = z_dim, c_dim, resolution, img_channels
        res = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in res}
        self.resolutions = res
        # one attribute per resolution, named like StyleGAN's blocks so logs read the same;
        # the block rule of base.py does not depend on these names
        self.b4 = nn.Sequential(nn.Linear(z_dim + c_dim, ch[4] * 16, bias=False), nn.Unflatten(1, (ch[4], 4, 4)),
                                nn.BatchNorm2d(ch[4]), nn.ReLU())
        for r in res[1:]:
            setattr(self, f"b{r}", nn.Sequential(
                nn.ConvTranspose2d(ch[r // 2], ch[r], 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(ch[r]), nn.ReLU()))
        self.to_image = nn.Sequential(nn.Conv2d(ch[resolution], img_channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is class-conditional (c_dim={self.c_dim}); pass one-hot labels c")
            z = torch.cat([z, c.to(z.dtype)], dim=1)
        x = z
        for r in self.resolutions:
            x = getattr(self, f"b{r}")(x)
        return self.to_image(x)
