"""Which synthetic stream a run reads, and whether sharing it with other runs is exact.

Apart from sqsp/grouped.py (which steps the runs of one stream together) so that the study
driver can plan the groups without importing the training loop: torch-free, like config.py.
"""
from __future__ import annotations

from .config import TrainConfig
from .methods import METHODS

STREAM_FIELDS = ("seed", "generator", "truncation", "stylegan_repo", "syn_batch", "generator_blocks",
                 "synthetic_target", "image_size", "device")
"""What ``SyntheticSource`` returns is a function of these alone (and of nothing a row compares)."""


def stream_key(cfg: TrainConfig) -> tuple | None:
    """The synthetic stream a run reads, as a hashable value; None if it reads none."""
    if cfg.syn_batch == 0 or not METHODS[cfg.method].trains:  # Table 1's direct use draws no stream
        return None
    return tuple(getattr(cfg, f) for f in STREAM_FIELDS)


def inexact(cfg: TrainConfig) -> str | None:
    """Why sharing ``cfg``'s stream would change its numbers, or None. An official StyleGAN2
    pickle samples with ``noise_mode='random'`` (sqsp/generators/official.py): fresh noise from
    torch's global RNG in every forward pass, which a run alone draws between its own
    augmentations; the zoo's StyleGAN and DCGAN have no noise inputs."""
    spec = cfg.generator
    pickle = cfg.generator_spec.kind == "pickle"
    if cfg.generator_spec.kind == "zoo":
        from . import zoo
        pickle = zoo.entries().get(spec, {}).get("format") == "stylegan-pkl"
    if pickle:
        return (f"generator {spec!r} is an official StyleGAN pickle, whose noise_mode='random' draws from torch's "
                "global RNG in every forward pass")
    return None
