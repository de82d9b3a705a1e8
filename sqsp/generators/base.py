"""One interface over any GAN generator: images plus the feature map of each block.

Blocks follow appendix B.3 of the paper: consecutive layers are grouped by the
resolution of their output, and the output of the last layer at each resolution is that
block's feature, named ``b<resolution>``. The rule is applied once, generically, with
forward hooks over any ``torch.nn.Module``: a probe forward records, in execution
order, every sub-module whose output holds a 4-D tensor, and the last one at each
resolution becomes the block. So a new architecture needs only a loader.

Two details of that rule:
- a module returning a tuple (StyleGAN2's synthesis blocks return ``(x, img)``) counts
  with the element that has the most channels, as the authors' code does;
- modules whose output is the image itself (ToRGB at the last resolution, the final
  tanh, the synthesis network as a whole) are not features and are skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ..config import ConfigError
from ..specs import resolve_blocks


@dataclass(frozen=True)
class Block:
    name: str          # b<resolution>
    module: str        # qualified name of the module whose output is the feature
    channels: int
    resolution: int


@dataclass
class GeneratorOutput:
    images: torch.Tensor                 # (N, C, H, W) in [-1, 1]
    features: dict[str, torch.Tensor]    # block name -> (N, C_b, r, r)
    w: torch.Tensor | None               # (N, w_dim) where the architecture has a mapping network


def _pick_tensor(out) -> torch.Tensor | None:
    """The 4-D tensor that stands for a module's output (most channels within a tuple)."""
    if isinstance(out, torch.Tensor):
        return out if out.dim() == 4 else None
    if isinstance(out, (tuple, list)):
        cands = [t for t in out if isinstance(t, torch.Tensor) and t.dim() == 4]
        return max(cands, key=lambda t: t.shape[1]) if cands else None
    return None


def _pick_w(out) -> torch.Tensor | None:
    t = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(t, torch.Tensor):
        return None
    return t[:, 0] if t.dim() == 3 else t  # StyleGAN broadcasts w to (N, num_ws, w_dim)


def check_blocks(generator: str, have: Sequence[str], wanted: Sequence[str] | None, spec: str | None = None) -> None:
    """Every block a config asks for (``wanted``; None: all) must be one ``generator`` has:
    the one rule for a loaded generator and for a zoo entry checked from its manifest. With
    ``spec`` (the config's ``generator_blocks``), a group needs only one of its members
    (``config.resolve_blocks``)."""
    if spec is not None:
        try:
            resolve_blocks(spec, have)
        except ConfigError as e:
            raise ConfigError(f"{generator}: {e}") from None
        return
    missing = [b for b in wanted or () if b not in have]
    if missing:
        where = "generator_blocks" if spec is None else f"generator_blocks={spec!r}"
        raise ConfigError(f"{where}: {generator} has no block {missing}; it has {list(have)}")


class FeatureGenerator(nn.Module):
    """Wraps a generator network; ``forward(z, c)`` gives images, block features and w.

    ``call(net, z, c)`` invokes the wrapped network (default: ``net(z)`` or ``net(z, c)``
    when conditional); ``mapping`` names the sub-module whose output is the latent ``w``;
    ``synthesis(net, w)``, where the architecture has one, renders images from ``w``.
    The wrapped network is frozen: the paper distils from a pre-trained generator.
    """

    def __init__(self, net: nn.Module, *, z_dim: int, c_dim: int = 0, resolution: int, channels: int,
                 arch: str = "custom", mapping: str | None = None,
                 call: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None,
                 synthesis: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None, num_ws: int = 1):
        super().__init__()
        self.num_ws = num_ws  # w's per synthesis layer that ``synthesize`` takes (w+): 1 for the embedded ones
        self.net = net.eval().requires_grad_(False)
        self.z_dim, self.c_dim = z_dim, c_dim
        self.resolution, self.img_channels, self.arch = resolution, channels, arch
        self.mapping_name = mapping
        self._call = call or (lambda n, z, c: n(z, c) if c is not None else n(z))
        self._synthesis = synthesis
        self.blocks: list[Block] = self._discover_blocks()
        self.w_dim = self._probe_w_dim()

    @property
    def conditional(self) -> bool:
        return self.c_dim > 0

    @property
    def block_names(self) -> list[str]:
        return [b.name for b in self.blocks]

    def select(self, names: Sequence[str] | None) -> list[Block]:
        """Blocks by name (None: all). Unknown names are an error that lists the real ones."""
        if names is None:
            return list(self.blocks)
        check_blocks(f"the generator ({self.arch}, {self.resolution}px)", self.block_names, names)
        by_name = {b.name: b for b in self.blocks}
        return [by_name[n] for n in names]

    def sample_inputs(self, n: int, device, gen: torch.Generator | None = None):
        z = torch.randn(n, self.z_dim, device=device, generator=gen)
        c = None
        if self.conditional:
            labels = torch.randint(self.c_dim, (n,), device=device, generator=gen)
            c = nn.functional.one_hot(labels, self.c_dim).float()
        return z, c

    @torch.no_grad()
    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None,
                blocks: Sequence[Block] | None = None) -> GeneratorOutput:
        blocks = self.blocks if blocks is None else blocks
        captured: dict[str, torch.Tensor] = {}
        modules = dict(self.net.named_modules())
        hooks = []
        for b in blocks:
            def hook(_m, _i, out, name=b.name):
                captured[name] = _pick_tensor(out)
            hooks.append(modules[b.module].register_forward_hook(hook))
        w_box: list[torch.Tensor] = []
        if self.mapping_name:
            hooks.append(modules[self.mapping_name].register_forward_hook(
                lambda _m, _i, out: w_box.append(_pick_w(out))))
        try:
            images = self._call(self.net, z, c)
        finally:
            for h in hooks:
                h.remove()
        return GeneratorOutput(images=images, features={b.name: captured[b.name] for b in blocks},
                               w=w_box[0] if w_box else None)

    def synthesize(self, w: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W), about [-1, 1] (not clamped), from latents ``w`` (N, w_dim), or
        w+ (N, num_ws, w_dim): one w per synthesis layer, what the authors' encoder predicts.

        Not under ``no_grad``: gradients flow through the frozen network into ``w``, which is
        what the encoding baseline (Eq. 3, ``sqsp/encode.py``) trains its encoder with."""
        if self._synthesis is None:
            raise ValueError(f"generator {self.arch!r} cannot render images from w (it has no mapping/synthesis "
                             "split); method='encode' needs a StyleGAN-like generator")
        if w.dim() == 3 and w.shape[1] != self.num_ws:
            raise ValueError(f"w+ of shape {tuple(w.shape)}: generator {self.arch!r} takes {self.num_ws} w per image")
        if w.dim() == 3 and self.num_ws == 1:
            w = w[:, 0]
        return self._synthesis(self.net, w)

    # -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _discover_blocks(self) -> list[Block]:
        order: list[tuple[str, torch.Tensor]] = []
        hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: order.append((name, _pick_tensor(out))))
                 for name, m in self.net.named_modules() if name]
        try:
            device = next((p.device for p in self.net.parameters()), torch.device("cpu"))
            z, c = self.sample_inputs(2, device)
            images = self._call(self.net, z, c)
        finally:
            for h in hooks:
                h.remove()
        last: dict[int, tuple[str, int]] = {}
        res_order: list[int] = []
        for name, t in order:
            if t is None or t.shape[-1] != t.shape[-2]:
                continue
            if t is images or (t.shape[1:] == images.shape[1:] and t.shape[1] == self.img_channels):
                continue  # the image, not a feature
            r = t.shape[-1]
            if r not in last:
                res_order.append(r)
            last[r] = (name, t.shape[1])
        if not last:
            raise ValueError(f"no sub-module of {type(self.net).__name__} outputs a 4-D feature map; "
                             "cannot find generator blocks")
        return [Block(f"b{r}", last[r][0], last[r][1], r) for r in sorted(res_order)]

    def _probe_w_dim(self) -> int:
        if not self.mapping_name:
            return 0
        device = next((p.device for p in self.net.parameters()), torch.device("cpu"))
        z, c = self.sample_inputs(2, device)
        return self.forward(z, c, blocks=[]).w.shape[1]
