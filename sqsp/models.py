"""Students, projector and the two teachers (squeeze module and its no-squeeze ablation).

Every student takes float images in [0, 1]; normalisation is its first layer, so
evaluation and training feed the same tensors and nothing outside needs dataset stats.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torchvision
from torch import nn


class Normalize(nn.Module):
    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18, CIFAR variant (3×3 stem, stride 1, no max-pool), with a width multiplier.

    Written here rather than taken from torchvision because torchvision's ResNet fixes the
    stage widths of BasicBlock networks (64…512), and the embedded default needs a narrow one.
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        w = [max(4, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        layers, cin = [], w[0]
        for i, c in enumerate(w):
            stride = 1 if i == 0 else 2
            layers += [_BasicBlock(cin, c, stride), _BasicBlock(c, c, 1)]
            cin = c
        self.layers = nn.Sequential(*layers)
        self.out_dim = w[-1]

    def forward(self, x):
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)


def torchvision_init_(net: CifarResNet18) -> CifarResNet18:
    """torchvision's ResNet init with ``zero_init_residual=True`` on the CIFAR ResNet: kaiming-normal
    (fan-out) convs, BN γ = 1 and β = 0, then γ = 0 in each residual branch's last BN, so that
    every block starts as the identity. The 3x3 stem keeps PyTorch's default init, as in the
    authors' resnet18cifar, which replaces torchvision's stem after torchvision initialised it."""
    stem = net.stem[0]
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m is not stem:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in net.modules():
        if isinstance(m, _BasicBlock):
            nn.init.zeros_(m.bn2.weight)
    return net


def build_backbone(name: str, width: float, mean, std, *, init: str = "pytorch") -> nn.Module:
    """Backbone with an ``out_dim`` attribute: images in [0, 1] -> (N, out_dim) features.
    ``init``: ``pytorch`` or ``torchvision`` (its ResNet init, zero-init residual BNs)."""
    if init not in ("pytorch", "torchvision"):
        raise ValueError(f"init={init!r} is not allowed; allowed: ['pytorch', 'torchvision']")
    if name == "resnet18-cifar":
        net = CifarResNet18(width)
        if init == "torchvision":
            torchvision_init_(net)
        out_dim = net.out_dim
    elif name in ("resnet18", "resnet50"):
        net = getattr(torchvision.models, name)(weights=None, zero_init_residual=init == "torchvision")
        out_dim = net.fc.in_features
        net.fc = nn.Identity()
    else:
        raise ValueError(f"student={name!r}; allowed: resnet18-cifar, resnet18, resnet50")
    backbone = nn.Sequential(Normalize(mean, std), net)
    backbone.out_dim = out_dim
    return backbone


def mlp(in_dim: int, hidden: int, out_dim: int, depth: int, *, last_bias: bool = True) -> nn.Sequential:
    """``depth`` linear layers, Linear-BN-ReLU between them, a plain Linear last (VICReg's expander)."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth - 1):
        layers += [nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        d = hidden
    layers.append(nn.Linear(d, out_dim, bias=last_bias))
    return nn.Sequential(*layers)


def projector(in_dim: int, hidden: int, out_dim: int, depth: int) -> nn.Sequential:
    """The student's projector as the authors' extractor.py builds it: hidden layers of the
    backbone's width (``hidden`` = 0) and a last Linear without bias."""
    return mlp(in_dim, hidden or in_dim, out_dim, depth, last_bias=False)


def simsiam_projector(in_dim: int, hidden: int, out_dim: int, depth: int) -> nn.Sequential:
    """SimSiam's projector as the authors' src/models/simsiam.py (after Chen & He 2021) builds it:
    ``depth - 1`` Linear-BN-ReLU layers of the backbone's width, then the output Linear (its bias
    frozen: the BN after it cancels it) and BatchNorm1d(affine=False)."""
    head = mlp(in_dim, hidden or in_dim, out_dim, depth)
    head[-1].bias.requires_grad_(False)
    head.append(nn.BatchNorm1d(out_dim, affine=False))
    return head


class Student(nn.Module):
    """Backbone + projector (+ SimSiam predictor). The backbone is what evaluation probes."""

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module | None = None):
        super().__init__()
        self.backbone, self.projector, self.predictor = backbone, projector, predictor

    def forward(self, x):
        return self.projector(self.backbone(x))


class Squeeze(nn.Module):
    """T_φ of Sec. 4.1 / 5.1: a linear layer per generator block to a common width, summed,
    then an MLP with BatchNorm to the teacher dimension. Inputs are pooled block features."""

    def __init__(self, in_dims: Sequence[int], width: int, out_dim: int, depth: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Linear(c, width) for c in in_dims)
        self.head = mlp(width, width, out_dim, depth)

    def forward(self, pooled: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.head(sum(lat(f) for lat, f in zip(self.lateral, pooled)))


class ConcatTeacher(nn.Module):
    """The no-squeeze teacher of Table 3 rows a-b (Eq. 4): pooled block features concatenated."""

    def __init__(self, in_dims: Sequence[int]):
        super().__init__()
        self.out_dim = sum(in_dims)

    def forward(self, pooled: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(pooled), dim=1)
