"""What a user of the paper presets has on disk, tiny: a checkout of NVlabs/stylegan2-ada-pytorch
(``dnnlib``, ``torch_utils``, ``training/networks.py``) and a network pickle in its format.

The networks have the official structure sqsp relies on, at a few channels: ``G`` and ``G_ema``
with ``mapping`` (z, c -> ws of shape (N, num_ws, w_dim)) and ``synthesis.b4 … b<res>`` blocks
returning ``(x, img)``; ``D`` with blocks ``b<res> … b8`` returning ``(x, img)`` and the epilogue
``b4`` (minibatch-stddev, conv, ``fc``, ``out``), called ``D(img, c, force_fp32=…)``. The pickle
references ``training.networks``, so it loads only with the checkout on ``sys.path``; it is
written by a separate Python process so the test process never imports those modules itself.
(CIFAR-10 and STL-10 trees in their official formats: ``test_data.write_cifar10`` / ``write_stl10``.)
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

NETWORKS = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F


    class MappingNetwork(nn.Module):
        def __init__(self, z_dim, c_dim, w_dim, num_ws):
            super().__init__()
            self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
            self.fc0 = nn.Linear(z_dim + c_dim, w_dim)
            self.fc1 = nn.Linear(w_dim, w_dim)
            self.register_buffer("w_avg", torch.zeros(w_dim))

        def forward(self, z, c, truncation_psi=1, truncation_cutoff=None):
            x = F.normalize(z, dim=1) if self.c_dim == 0 else torch.cat([F.normalize(z, dim=1), c], 1)
            w = self.fc1(F.leaky_relu(self.fc0(x), 0.2))
            w = self.w_avg.lerp(w, truncation_psi)
            return w.unsqueeze(1).repeat(1, self.num_ws, 1)


    class SynthesisBlock(nn.Module):
        def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels):
            super().__init__()
            self.in_channels, self.resolution = in_channels, resolution
            if in_channels == 0:
                self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            else:
                self.conv0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            self.affine = nn.Linear(w_dim, out_channels)
            self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
            self.torgb = nn.Conv2d(out_channels, img_channels, 1)

        def forward(self, x, img, ws, force_fp32=False, noise_mode="random", **kw):
            if self.in_channels == 0:
                x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            else:
                x = F.leaky_relu(self.conv0(F.interpolate(x, scale_factor=2, mode="bilinear")), 0.2)
            style = self.affine(ws[:, 0])[:, :, None, None]
            x = F.leaky_relu(self.conv1(x * (1 + style)), 0.2)
            if noise_mode == "random":
                x = x + 0.1 * torch.randn_like(x)
            y = self.torgb(x)
            img = y if img is None else F.interpolate(img, scale_factor=2, mode="bilinear") + y
            return x, img


    class SynthesisNetwork(nn.Module):
        def __init__(self, w_dim, img_resolution, img_channels, channels):
            super().__init__()
            self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
            self.block_resolutions = [2 ** i for i in range(2, int(np.log2(img_resolution)) + 1)]
            for res in self.block_resolutions:
                cin = 0 if res == 4 else channels[res // 2]
                setattr(self, f"b{res}", SynthesisBlock(cin, channels[res], w_dim, res, img_channels))
            self.num_ws = len(self.block_resolutions)

        def forward(self, ws, **block_kwargs):
            x = img = None
            for res in self.block_resolutions:
                x, img = getattr(self, f"b{res}")(x, img, ws, **block_kwargs)
            return img


    class Generator(nn.Module):
        def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, channels):
            super().__init__()
            self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
            self.img_resolution, self.img_channels = img_resolution, img_channels
            self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channels)
            self.num_ws = self.synthesis.num_ws
            self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws)

        def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
            ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
            return self.synthesis(ws, **synthesis_kwargs)


    class DiscriminatorBlock(nn.Module):
        def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels):
            super().__init__()
            self.in_channels, self.resolution = in_channels, resolution
            if in_channels == 0:
                self.fromrgb = nn.Conv2d(img_channels, tmp_channels, 1)
            self.conv0 = nn.Conv2d(tmp_channels, tmp_channels, 3, padding=1)
            self.conv1 = nn.Conv2d(tmp_channels, out_channels, 3, padding=1)
            self.skip = nn.Conv2d(tmp_channels, out_channels, 1, bias=False)

        def forward(self, x, img, force_fp32=False):
            if self.in_channels == 0:
                x = F.leaky_relu(self.fromrgb(img), 0.2)
                img = None
            y = F.avg_pool2d(self.skip(x), 2) * np.sqrt(0.5)
            x = F.avg_pool2d(F.leaky_relu(self.conv1(F.leaky_relu(self.conv0(x), 0.2)), 0.2), 2) * np.sqrt(0.5)
            return y.add_(x), img


    class MinibatchStdLayer(nn.Module):
        def __init__(self, group_size, num_channels=1):
            super().__init__()
            self.group_size, self.num_channels = group_size, num_channels

        def forward(self, x):
            N, C, H, W = x.shape
            G = min(self.group_size, N) if self.group_size is not None else N
            y = x.reshape(G, -1, self.num_channels, C // self.num_channels, H, W)
            y = ((y - y.mean(dim=0)).square().mean(dim=0) + 1e-8).sqrt().mean(dim=[2, 3, 4])
            y = y.reshape(-1, self.num_channels, 1, 1).repeat(G, 1, H, W)
            return torch.cat([x, y], dim=1)


    class DiscriminatorEpilogue(nn.Module):
        def __init__(self, in_channels, cmap_dim, resolution, img_channels):
            super().__init__()
            self.cmap_dim = cmap_dim
            self.mbstd = MinibatchStdLayer(group_size=4)
            self.conv = nn.Conv2d(in_channels + 1, in_channels, 3, padding=1)
            self.fc = nn.Linear(in_channels * resolution ** 2, in_channels)
            self.out = nn.Linear(in_channels, 1 if cmap_dim == 0 else cmap_dim)

        def forward(self, x, img, cmap, force_fp32=False):
            x = F.leaky_relu(self.conv(self.mbstd(x)), 0.2)
            x = self.out(F.leaky_relu(self.fc(x.flatten(1)), 0.2))
            if self.cmap_dim > 0:
                x = (x * cmap).sum(dim=1, keepdim=True) / np.sqrt(self.cmap_dim)
            return x


    class Discriminator(nn.Module):
        def __init__(self, c_dim, img_resolution, img_channels, channels):
            super().__init__()
            self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
            self.block_resolutions = [2 ** i for i in range(int(np.log2(img_resolution)), 2, -1)]
            for res in self.block_resolutions:
                cin = channels[res] if res < img_resolution else 0
                setattr(self, f"b{res}", DiscriminatorBlock(cin, channels[res], channels[res // 2], res,
                                                            img_channels))
            cmap_dim = channels[4] if c_dim else 0
            if c_dim:
                self.mapping = MappingNetwork(0, c_dim, cmap_dim, None)
            self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim, 4, img_channels)

        def forward(self, img, c, **block_kwargs):
            x = None
            for res in self.block_resolutions:
                x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
            cmap = self.mapping.fc1(F.leaky_relu(self.mapping.fc0(c), 0.2)) if self.c_dim else None
            return self.b4(x, img, cmap)
''')

WRITE_PICKLE = textwrap.dedent('''
    import pickle, sys, torch
    from training.networks import Discriminator, Generator
    channels = {r: max(4, 64 // r) for r in (2, 4, 8, 16, 32, 64, 128, 256)}
    for spec in sys.argv[2:]:
        res, c_dim, seed, out = spec.split(",", 3)
        res, c_dim = int(res), int(c_dim)
        torch.manual_seed(int(seed))
        G = Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=res, img_channels=3, channels=channels).eval()
        D = Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, channels=channels).eval()
        with open(out, "wb") as f:  # the keys of an official network-snapshot-*.pkl
            pickle.dump({"G": G, "D": D, "G_ema": G, "augment_pipe": None,
                         "training_set_kwargs": {"resolution": res, "use_labels": bool(c_dim)}}, f)
''')


def write_stylegan_repo(folder: Path) -> Path:
    """A checkout with the packages an official pickle imports (``training`` holds the networks)."""
    for pkg in ("dnnlib", "torch_utils", "training"):
        (folder / pkg).mkdir(parents=True, exist_ok=True)
        (folder / pkg / "__init__.py").write_text("")
    (folder / "training" / "networks.py").write_text(NETWORKS)
    return folder


def write_network_pickle(path: Path, repo: Path, *, resolution: int = 32, c_dim: int = 0, seed: int = 0) -> Path:
    return write_network_pickles(repo, [(path, seed)], resolution=resolution, c_dim=c_dim)[0]


def write_network_pickles(repo: Path, files: list[tuple[Path, int]], *, resolution: int = 32,
                          c_dim: int = 0) -> list[Path]:
    """One pickle per (path, seed), all written by one Python process."""
    for path, _ in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    specs = [f"{resolution},{c_dim},{seed},{path}" for path, seed in files]
    # run inside the checkout: its training/ package imports like the official scripts run there
    subprocess.run([sys.executable, "-c", WRITE_PICKLE, str(repo), *specs], cwd=repo, check=True, timeout=300)
    return [path for path, _ in files]
