"""Table 1's first baseline: use the GAN's discriminator directly as a feature extractor.

No training: the discriminator trained alongside a zoo generator reads the real images, and
a linear probe (and kNN) is fitted on its features, either

- ``single``: the penultimate vector (the input of D's last linear layer), or
- ``multi``: Eq. 2's multi-feature form, the global average of the last feature map at each
  resolution, concatenated.

Blocks follow the rule used for generators (appendix B.3, ``generators/base.py``): the last
module output at each spatial resolution, here from D's body and its final convolution.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from .config import TrainConfig
from .generators.base import _pick_tensor

_BATCH = 256


@torch.no_grad()
def discriminator_features(disc: nn.Module, images_uint8: torch.Tensor, mode: str, *, device) -> torch.Tensor:
    """(N, F) float32 features on the CPU. ``disc`` is a zoo ``Discriminator`` on ``device``.

    Its minibatch-stddev layer mixes statistics of groups of 4 images into the later layers,
    so features depend a little on batch composition; batches are fixed (in order) here."""
    if mode not in ("single", "multi"):
        raise ValueError(f"discriminator feature mode {mode!r}; allowed: ['single', 'multi']")
    c_dim = disc.embed.weight.shape[1] if disc.embed is not None else 0
    out = []
    for i in range(0, len(images_uint8), _BATCH):
        x = images_uint8[i:i + _BATCH].to(device).float() / 127.5 - 1.0
        if x.shape[-1] != disc.resolution:  # the student's image size may differ from the GAN's
            x = nn.functional.interpolate(x, size=disc.resolution, mode="bilinear", antialias=True,
                                          align_corners=False)
        maps: list[torch.Tensor | None] = []
        hooks = [m.register_forward_hook(lambda _m, _i, o: maps.append(_pick_tensor(o)))
                 for name, m in disc.named_modules() if name.startswith(("body.", "final_conv"))]
        penultimate: list[torch.Tensor] = []
        hooks.append(disc.fc.register_forward_hook(lambda _m, _i, o: penultimate.append(o)))
        try:
            c = torch.zeros(len(x), c_dim, device=device) if c_dim else None  # the projection term is not a feature
            disc(x, c)
        finally:
            for h in hooks:
                h.remove()
        if mode == "single":
            out.append(penultimate[0].float().cpu())
            continue
        last: dict[int, torch.Tensor] = {}
        for t in maps:
            if t is not None:
                last[t.shape[-1]] = t  # later modules at the same resolution win
        out.append(torch.cat([last[r].float().mean(dim=(2, 3)) for r in sorted(last)], dim=1).cpu())
    return torch.cat(out)


def direct_use(config: TrainConfig, report: Callable[[dict[str, Any], str | None], None] | None = None) -> dict:
    """Evaluate the discriminator of zoo entry ``config.generator``: kNN and linear probe on
    its features of the real train/test splits. Reported once, as a finished run."""
    from .data import load_split
    from .evaluate import knn_accuracy, linear_probe_fast
    from .train import resolve_device
    from .zoo import describe, load_discriminator

    cfg = config
    device = resolve_device(cfg.device)
    disc = load_discriminator(cfg.generator, device=device)

    def scores(dataset: str) -> dict[str, Any]:
        train_split = load_split(dataset, cfg.data_root, "train", cfg.image_size)
        test_split = load_split(dataset, cfg.data_root, "test", cfg.image_size)
        ftr = discriminator_features(disc, train_split.images, cfg.disc_features, device=device)
        fte = discriminator_features(disc, test_split.images, cfg.disc_features, device=device)
        return {"feature_dim": ftr.shape[1],
                "knn_acc": knn_accuracy(ftr, train_split.labels, fte, test_split.labels,
                                        num_classes=train_split.num_classes, k=cfg.knn_k, t=cfg.knn_t),
                "probe_acc": (linear_probe_fast(ftr, train_split.labels, fte, test_split.labels, seed=cfg.seed)
                              if cfg.probe != "none" else math.nan)}

    metrics: dict[str, Any] = {"step": 0, "epoch": 0, **scores(cfg.dataset), "collapsed": False, "done": True,
                               **describe(cfg.generator)}
    for name in cfg.transfer_targets:  # appendix Table 5's probes on other datasets
        metrics.update({f"{k}@{name}": v for k, v in scores(name).items() if k != "feature_dim"})
    if report is not None:
        report(metrics, None)
    return metrics
