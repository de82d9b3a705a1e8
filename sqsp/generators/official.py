"""Official StyleGAN2-ADA / StyleGAN3 network pickles (the paper's teachers, appendix Table 5).

The paper distils from ``G_ema`` of pickles such as ``cifar10u-cifar-ada-best-fid.pkl``.
Those pickles reference the authors' ``dnnlib`` and ``torch_utils`` packages, so a
checkout of https://github.com/NVlabs/stylegan2-ada-pytorch (or ``stylegan3``) must be
importable: pass its path (``stylegan_repo`` / config) or set ``SQSP_STYLEGAN_REPO``.
The path is added to ``sys.path`` and left there, because the unpickled modules import
from their packages lazily, at call time.

Unpickling runs arbitrary code. ``load_official`` therefore opens only the path it is
given, which must come from the user (a config value or a user zoo manifest, where the
sha256 is checked first); sqsp never writes pickles. Pickles from the TensorFlow era must
first be converted with the official repo's ``legacy.py``.

The blocks are found by the generic rule of ``base.py`` (appendix B.3): on StyleGAN2 these
are ``synthesis.b4``, ``synthesis.b8``, …; on StyleGAN3 the layers grouped by output size.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from pathlib import Path

import torch

from .base import FeatureGenerator

REPO_ENV = "SQSP_STYLEGAN_REPO"
_REQUIRED = ("dnnlib", "torch_utils")
_HOW_TO = (f"clone https://github.com/NVlabs/stylegan2-ada-pytorch (or NVlabs/stylegan3) and either set "
           f"{REPO_ENV}=/path/to/checkout or set the config's stylegan_repo (--set stylegan_repo=/path/to/checkout)")


def resolve_repo(repo: str | os.PathLike | None) -> Path | None:
    """The checkout that provides ``dnnlib`` and ``torch_utils`` (argument, then environment).
    None when neither is given but both packages are importable already (e.g. on PYTHONPATH)."""
    repo = repo or os.environ.get(REPO_ENV)
    if not repo:
        if all(importlib.util.find_spec(m) is not None for m in _REQUIRED):
            return None
        raise ModuleNotFoundError(
            f"loading an official StyleGAN pickle needs the authors' packages {list(_REQUIRED)}, and no checkout "
            f"is configured (stylegan_repo is None and ${REPO_ENV} is unset). To fix: {_HOW_TO}.")
    path = Path(repo).expanduser()
    missing = [m for m in _REQUIRED if not (path / m / "__init__.py").is_file()]
    if missing:
        raise ModuleNotFoundError(
            f"StyleGAN repo path {str(path)!r} does not contain {missing} (it needs {list(_REQUIRED)} as packages). "
            f"To fix: {_HOW_TO}.")
    return path


def load_official(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                  repo: str | os.PathLike | None = None, truncation: float = 1.0,
                  noise_mode: str = "random", key: str = "G_ema") -> FeatureGenerator:
    """``G_ema`` of an official pickle as a frozen ``FeatureGenerator`` on ``device``.

    ``noise_mode='random'``, the official default and what the authors sample with
    (src/models/generator.py): fresh per-pixel noise in every call, drawn from torch's global
    RNG (which ``train`` seeds), so a run is reproducible from its seed, though a resumed run
    draws other noise than an uninterrupted one. ``'const'`` makes images a function of (z, c)
    alone.
    """
    if noise_mode not in ("const", "random", "none"):
        raise ValueError(f"noise_mode={noise_mode!r} is not allowed; allowed: 'const', 'random', 'none'")
    G = _network(path, key, repo).to(device)

    def call(net, z, c):
        if c is None:
            c = z.new_zeros(z.shape[0], net.c_dim)
        # fp16 layers are a CUDA speed-up; on other devices run everything in fp32
        img = net(z, c, truncation_psi=truncation, noise_mode=noise_mode, force_fp32=z.device.type != "cuda")
        return img.float().clamp(-1, 1)  # raw outputs overshoot [-1, 1] slightly

    def synthesis(net, w):  # w+ as it is; one w is broadcast to every layer, as the mapping network outputs
        ws = w if w.dim() == 3 else w.unsqueeze(1).repeat(1, net.num_ws, 1)
        return net.synthesis(ws, noise_mode=noise_mode, force_fp32=w.device.type != "cuda").float()

    return FeatureGenerator(G, z_dim=G.z_dim, c_dim=G.c_dim, resolution=G.img_resolution, channels=G.img_channels,
                            arch=f"official:{type(G).__module__}.{type(G).__name__}", mapping="mapping", call=call,
                            synthesis=synthesis, num_ws=G.num_ws)


def load_official_discriminator(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                                repo: str | os.PathLike | None = None) -> torch.nn.Module:
    """``D`` of an official pickle (Table 1's direct use), frozen, in eval mode, on ``device``."""
    return _network(path, "D", repo).to(device).eval().requires_grad_(False)


def _network(path: str | os.PathLike, key: str, repo: str | os.PathLike | None) -> torch.nn.Module:
    """One network of an official pickle, unpickled with the checkout's packages importable."""
    path = Path(path).expanduser()
    if path.suffix != ".pkl":
        raise ValueError(f"{str(path)!r} is not a .pkl; official StyleGAN networks are pickles")
    if not path.is_file():
        raise FileNotFoundError(f"official StyleGAN pickle {str(path)!r} does not exist")
    checkout = resolve_repo(repo)
    if checkout is not None and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    with open(path, "rb") as f:
        data = pickle.load(f)  # noqa: S301 -- a path the user named; see the module docstring
    if not isinstance(data, dict) or not isinstance(data.get(key), torch.nn.Module):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{str(path)!r} has no {key!r} network (found {found}); expected an official "
                         "StyleGAN2-ADA/StyleGAN3 network pickle")
    return data[key]
