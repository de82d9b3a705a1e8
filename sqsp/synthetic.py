"""The synthetic side of a batch: latents -> images -> pooled block features (or w).

Kept apart from the loop on purpose: the frozen generator's output does not depend on a
trial's loss weights, so a precomputed bank shared by all trials of a study (through
Ray's object store) can later replace this object behind the same call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

from .config import ConfigError
from .generators.base import FeatureGenerator
from .specs import resolve_blocks

if TYPE_CHECKING:
    from .config import TrainConfig


@dataclass
class SynBatch:
    images: torch.Tensor               # (N, C, H, W) float in [0, 1]
    teacher_in: list[torch.Tensor]     # pooled block features (N, C_b) each, or [w]


class SyntheticSource:
    def __init__(self, generator: FeatureGenerator, blocks: Sequence[str] | None, teacher_source: str,
                 device: torch.device, seed: int):
        self.generator = generator.to(device)
        self.blocks = generator.select(blocks)
        self.teacher_source = teacher_source
        if teacher_source == "w" and not generator.mapping_name:
            raise ConfigError(f"teacher_source='w' needs a generator with a mapping network; "
                             f"{generator.arch!r} has none (use teacher_source='features')")
        self.device = device
        # Latents come from their own stream so that resuming restores them exactly.
        self.rng = torch.Generator(device=device).manual_seed(seed)

    @property
    def teacher_dims(self) -> list[int]:
        if self.teacher_source == "w":
            return [self.generator.w_dim]
        return [b.channels for b in self.blocks]

    @torch.no_grad()
    def __call__(self, n: int) -> SynBatch:
        z, c = self.generator.sample_inputs(n, self.device, self.rng)
        out = self.generator(z, c, blocks=[] if self.teacher_source == "w" else self.blocks)
        images = ((out.images.float().clamp(-1, 1) + 1) / 2)
        if self.teacher_source == "w":
            teacher_in = [out.w.float()]
        else:
            # Eq. 4: global average pooling of each block's output.
            teacher_in = [out.features[b.name].float().mean(dim=(2, 3)) for b in self.blocks]
        return SynBatch(images=images, teacher_in=teacher_in)

    @torch.no_grad()
    def sample_images(self, n: int, seed: int, batch_size: int = 256) -> torch.Tensor:
        """``n`` images as uint8 (N, C, H, W) at the generator's resolution, like real data.

        From a latent stream of their own (``seed``): an evaluation must not move the
        training latents, or a run with it would differ from one without."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        out = []
        for i in range(0, n, batch_size):
            z, c = self.generator.sample_inputs(min(batch_size, n - i), self.device, g)
            img = (self.generator(z, c, blocks=[]).images.float().clamp(-1, 1) + 1) * 127.5
            out.append(img.round().to(torch.uint8))
        return torch.cat(out)


# the run's source, as train.build_run (and sqsp/grouped.py, once for several runs) makes it
def synthetic_source(cfg: "TrainConfig", device: torch.device, generator=None) -> "SyntheticSource":
    """The run's synthetic stream: its generator (loaded by name unless given) and latents from seed + 1."""
    if generator is None:
        from . import zoo  # imported late: the zoo may build on first use
        generator = zoo.load_generator(cfg.generator, device=device, truncation=cfg.truncation,
                                       stylegan_repo=cfg.stylegan_repo)
    blocks = resolve_blocks(cfg.generator_blocks, generator.block_names)
    return SyntheticSource(generator, blocks, cfg.synthetic_target, device, cfg.seed + 1)


def generator_info_of(cfg: "TrainConfig", synthetic: SyntheticSource | None, *, described: bool) -> dict[str, Any]:
    """What the zoo records of a generator loaded by name (``described``: its FID etc.), and the
    blocks a group gave at the generator's resolution."""
    if synthetic is None:
        return {}
    from . import zoo
    from .methods import METHODS
    info = zoo.describe(cfg.generator) if described else {}
    if METHODS[cfg.method].reads_blocks and cfg.synthetic_target == "features":
        info = {**info, "generator_blocks_read": ",".join(b.name for b in synthetic.blocks)}
    return info
