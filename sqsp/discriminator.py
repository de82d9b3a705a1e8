"""Table 1's first baseline: use the GAN's discriminator directly as a feature extractor.

No training: the discriminator read as a frozen backbone (``DiscriminatorBackbone``: float
images in [0, 1] in, features out), so kNN, the fast probe and the paper's probe (a linear
layer trained on augmented images through it) treat it as they treat a student. Features:

- ``single``: the penultimate vector, the output of D's fully connected layer before its
  last one (StyleGAN2-ADA's ``b4.fc``);
- ``multi``: Eq. 2, the global average of each block's output, concatenated, followed by
  that vector, as the authors' eval_discriminator.py (hooks ``b32|b16|b8|b4.fc``).

Two discriminators have that shape, read by one code path with their own layout:

- ``D`` of an official StyleGAN2-ADA pickle: the blocks ``b<res>`` for each resolution it
  reads (each returns ``(x, img)``: its output ``x`` at half that resolution), then the
  epilogue ``b4`` whose ``fc`` gives the vector. Its minibatch-stddev layer pools over the
  whole batch, as the authors set it (group size = batch size).
- the embedded zoo's ``Discriminator``: its stages end with an average pool (the block
  outputs), and its ``fc`` gives the vector.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .config import TrainConfig
from .data import resize
from .generators.base import _pick_tensor

MODES = ("single", "multi")


@dataclass(frozen=True)
class Layout:
    blocks: tuple[str, ...]   # modules whose outputs are Eq. 2's block features, in order
    vector: str               # the module whose output is the penultimate vector
    resolution: int
    c_dim: int
    call: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], Any]


def layout(disc: nn.Module) -> Layout:
    """Where the features of ``disc`` are: an official StyleGAN2-ADA ``D`` or a zoo one."""
    if hasattr(disc, "block_resolutions") and hasattr(getattr(disc, "b4", None), "fc"):
        # fp16 blocks are a CUDA speed-up; elsewhere run everything in fp32
        return Layout(tuple(f"b{r}" for r in disc.block_resolutions), "b4.fc", int(disc.img_resolution),
                      int(disc.c_dim), lambda d, x, c: d(x, c, force_fp32=x.device.type != "cuda"))
    if hasattr(disc, "body") and hasattr(disc, "fc"):
        pools = tuple(f"body.{i}" for i, m in enumerate(disc.body) if isinstance(m, nn.AvgPool2d))
        c_dim = disc.embed.weight.shape[1] if disc.embed is not None else 0
        return Layout(pools, "fc", int(disc.resolution), c_dim, lambda d, x, c: d(x, c))
    raise TypeError(f"{type(disc).__name__} is neither an official StyleGAN2-ADA discriminator (blocks b<res>, "
                    "epilogue b4 with fc) nor the zoo's (body, fc)")


class DiscriminatorBackbone(nn.Module):
    """A frozen discriminator as a backbone: float images (N, C, H, W) in [0, 1] -> (N, F).

    Images are resized to D's resolution and mapped to [-1, 1] (the authors normalise with
    mean = std = 0.5). Runs in fp32 whatever autocast is active: the official blocks assert
    their own dtypes. The projection term of a conditional D is no feature: c is zeros."""

    def __init__(self, disc: nn.Module, mode: str):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"discriminator feature mode {mode!r}; allowed: {list(MODES)}")
        self.disc = disc.eval().requires_grad_(False)
        self.mode, self.layout = mode, layout(disc)
        mbstd = getattr(getattr(disc, "b4", None), "mbstd", None)
        if mbstd is not None and hasattr(mbstd, "group_size"):
            mbstd.group_size = None  # the whole batch, as eval_discriminator.py's group_size = batch size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lay = self.layout
        with torch.autocast(x.device.type, enabled=False):
            x = x.float() * 2 - 1
            x = resize(x, lay.resolution)
            modules = dict(self.disc.named_modules())
            names = (lay.blocks if self.mode == "multi" else ()) + (lay.vector,)
            captured: dict[str, torch.Tensor] = {}
            hooks = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out))
                     for n in names]
            try:
                c = x.new_zeros(len(x), lay.c_dim) if lay.c_dim else None
                lay.call(self.disc, x, c)
            finally:
                for h in hooks:
                    h.remove()
            pooled = [_pick_tensor(captured[n]).float().mean(dim=(2, 3)) for n in names[:-1]]
            return torch.cat([*pooled, captured[lay.vector].float().flatten(1)], dim=1)


def direct_use(config: TrainConfig, report: Callable[[dict[str, Any], str | None], None] | None = None) -> dict:
    """Evaluate the discriminator of ``config.generator`` (a zoo entry or an official pickle):
    kNN and the configured linear probe on its features of the real train/test splits.
    Reported once, as a finished run."""
    from .data import load_split
    from .device import resolve_device
    from .evaluate import extract_features, probe_scores
    from .zoo import describe, load_discriminator

    cfg = config
    device = resolve_device(cfg.device)
    backbone = DiscriminatorBackbone(load_discriminator(cfg.generator, device=device,
                                                        stylegan_repo=cfg.stylegan_repo), cfg.disc_features)

    def scores(dataset: str) -> dict[str, Any]:
        train_split = load_split(dataset, cfg.data_root, "train", cfg.image_size)
        test_split = load_split(dataset, cfg.data_root, "test", cfg.image_size)
        ftr = extract_features(backbone, train_split.images, device=device)
        fte = extract_features(backbone, test_split.images, device=device)
        out = probe_scores(backbone, ftr, fte, train_split, test_split, cfg, linear=cfg.probe != "none", device=device)
        # kNN, the probe and, with probe='paper', the best of its evaluations (probe_acc_best)
        return {"feature_dim": ftr.shape[1], "probe_acc": math.nan, **out}

    metrics: dict[str, Any] = {"step": 0, "epoch": 0, **scores(cfg.dataset), "collapsed": False, "done": True,
                               **describe(cfg.generator)}
    for name in cfg.transfer_targets:  # appendix Table 5's probes on other datasets
        metrics.update({f"{k}@{name}": v for k, v in scores(name).items() if k != "feature_dim"})
    if report is not None:
        report(metrics, None)
    return metrics
