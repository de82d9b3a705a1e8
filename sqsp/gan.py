"""Training the zoo's GANs: one run recipe (``GANRun``), its loop (``train_gan``), the
discriminator it trains against, and the sample grid a snapshot is shown by.

The zoo (``sqsp/zoo.py``) decides what to train, names the snapshots and records them; this
module only trains. The discriminator is kept with each snapshot because Table 1's first
baseline reads it directly (``sqsp/discriminator.py``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import fid as fidlib
from .diffaugment import diff_augment, parse_policy
from .generators import FeatureGenerator, make_network
from .generators.stylegan import EqualConv2d, EqualLinear
from .storage import atomic_output

Z_DIM = 64  # the latent size of every zoo generator


@dataclass(frozen=True)
class GANRun:
    """One GAN training run of the zoo; it yields entry ``name`` (final) and ``name@<step>``
    at each fraction of ``steps`` in ``snapshots``."""
    name: str
    arch: str
    conditional: bool
    steps: int
    description: str
    snapshots: tuple[float, ...] = ()
    batch_size: int = 16
    lr: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.05          # R1 weight (Mescheder et al. 2018); StyleGAN2-ADA uses ~0.01 at 32 px
    r1_every: int = 4               # lazy regularisation, as StyleGAN2
    ema_kimg: float = 5.0           # half-life of the generator's weight average, in thousands of images
    ema_rampup: float = 0.1         # early on the half-life is at most this share of the images seen
    d_width: int = 16               # discriminator channels at full resolution (doubling, at most 2x, below)
    decay_from: float = 0.5         # lr decays linearly to 0 from this share of the steps (1: constant lr)
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra constructor arguments of the generator
    ac_weight: float = 0.0          # weight of D's auxiliary class head on real labels (AC-GAN, Odena et al. 2017);
    # G: conditional, the class asked for; unconditional, confident and balanced classes (CatGAN, Springenberg 2016)
    rotation_weight: float = 0.0    # SS-GAN (Chen et al. 2019): D predicts the rotation of reals (G: 0.2x, on fakes)
    class_groups: bool = False      # conditional: each minibatch-stddev group of a batch holds one class
    mode_seeking: float = 0.0       # MSGAN (Mao et al. 2019): G is paid for images that differ where z does
    augment: str = ""               # DiffAugment policy on D's inputs, e.g. "color,translation" (sqsp/diffaugment.py)
    seed_offset: int = 0            # the run trains from seed * 1000 + seed_offset (see DEFAULT_RUNS)


class Discriminator(nn.Module):
    """A small StyleGAN2-style discriminator (equalised lr, minibatch-stddev), shared by all
    zoo runs so that the generators differ only in their own architecture. Conditional:
    projection discriminator (Miyato & Koyama 2018), and with ``aux`` a class head on the same
    features (AC-GAN, ``aux_classes`` outputs), which ``classify`` reads."""

    def __init__(self, *, resolution: int, img_channels: int, c_dim: int = 0, width: int = 16, max_width: int = 32,
                 mbstd_group: int = 4, aux_classes: int = 0, rotation: bool = False):
        super().__init__()
        self.resolution, self.mbstd_group = resolution, mbstd_group
        ch = width
        layers: list[nn.Module] = [EqualConv2d(img_channels, ch, 1)]
        r = resolution
        while r > 4:
            nxt = min(2 * ch, max_width)
            layers += [EqualConv2d(ch, ch, 3), EqualConv2d(ch, nxt, 3), nn.AvgPool2d(2)]
            ch, r = nxt, r // 2
        self.body = nn.Sequential(*layers)
        self.final_conv = EqualConv2d(ch + 1, ch, 3)
        self.fc = EqualLinear(ch * 16, ch, activate=True)
        self.out = EqualLinear(ch, 1)
        self.embed = EqualLinear(c_dim, ch) if c_dim > 0 else None
        self.aux = EqualLinear(ch, aux_classes) if aux_classes else None
        self.rotation = EqualLinear(ch, 4) if rotation else None

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(self.features(img), c)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        x = self.body(img)
        x = torch.cat([x, _minibatch_std(x, self.mbstd_group)], dim=1)
        return self.fc(self.final_conv(x).flatten(1))

    def score(self, h: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        out = self.out(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(c) * h).sum(1) / math.sqrt(h.shape[1])
        return out

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.aux(h)


def _minibatch_std(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """StyleGAN's minibatch-stddev feature: the std of each feature within groups of
    ``group`` samples, averaged, as one extra channel. A collapsed generator gives ~0 and
    D can tell; small groups make that signal sharp (as in the official code)."""
    n, c, h, w = x.shape
    g = group if n % group == 0 else n
    y = x.reshape(g, n // g, c, h, w)
    y = ((y - y.mean(dim=0)).square().mean(dim=0) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n // g,); not
    # Tensor.var, which is ten times slower here
    return y.reshape(1, -1, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)


def _recalibrate_batchnorm(net: nn.Module, z_dim: int, c_dim: int, labels: torch.Tensor, seed: int,
                           batches: int = 8, batch_size: int = 64) -> None:
    """Recompute BN running statistics for the averaged weights: the EMA generator never ran
    in train mode, so the live network's statistics do not match it."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    gen = torch.Generator().manual_seed(seed)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            z = torch.randn(batch_size, z_dim, generator=gen)
            c = F.one_hot(labels[torch.randint(len(labels), (batch_size,), generator=gen)], c_dim).float() \
                if c_dim else None
            net(z, c)
    for m in bns:
        m.momentum = 0.1
    net.eval()


def _clamped(images: torch.Tensor) -> torch.Tensor:
    """The discriminator sees generated images clamped to [-1, 1], as users do. Digits sit on
    an exactly black (-1) background, which an unbounded StyleGAN output can then reach by
    overshooting; without it, D tells fakes by their not-quite-black background alone."""
    return images.clamp(-1.0, 1.0)


def train_gan(run: GANRun, images: torch.Tensor, labels: torch.Tensor, num_classes: int, *, seed: int,
              steps: int | None = None, on_snapshot: Callable[[int, nn.Module, nn.Module], None] | None = None,
              snapshot_steps: Sequence[int] = (), progress: bool = True, position: int = 0) -> nn.Module:
    """Non-saturating GAN loss with lazy R1 on real images, Adam, and an exponential moving
    average of the generator's weights (the ``G_ema`` the paper distils from, as in
    StyleGAN2-ADA). ``images`` are uint8; ``on_snapshot(step, G_ema, D)`` gets frozen copies
    (the discriminator is kept for Table 1's "direct use" baseline)."""
    steps = steps or run.steps
    c_dim = num_classes if run.conditional else 0
    x_all = fidlib.to_model_range(images)
    gen = torch.Generator().manual_seed(seed)
    G = make_network(run.arch, resolution=images.shape[-1], channels=images.shape[1], z_dim=Z_DIM, c_dim=c_dim,
                     seed=seed, **run.kwargs).train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        D = Discriminator(resolution=images.shape[-1], img_channels=images.shape[1], c_dim=c_dim,
                          width=run.d_width, max_width=2 * run.d_width, aux_classes=num_classes if run.ac_weight > 0 else 0,
                          rotation=run.rotation_weight > 0).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=run.lr, betas=run.betas)
    # lazy R1: scale D's step as StyleGAN2 does so the regulariser's strength is per-step
    ratio = run.r1_every / (run.r1_every + 1)
    opt_d = torch.optim.Adam(D.parameters(), lr=run.lr * ratio, betas=tuple(b ** ratio for b in run.betas))
    bs = run.batch_size
    # a linear lr decay at the end damps the oscillation of short GAN runs, so the final
    # checkpoint does not depend on where in a mode-hopping cycle training happens to stop
    decay = lambda i: min(1.0, (1 - i / steps) / max(1e-8, 1 - run.decay_from))  # noqa: E731
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (opt_g, opt_d)]

    # A conditional G can ignore z and draw one image per class: minibatch-stddev only sees that
    # when the samples of a group share a class, so ``class_groups`` lays batches out so
    # (sample i is in group i % (bs // group), see _minibatch_std), real and fake alike.
    grouped = run.class_groups and c_dim > 0
    group = 4 if bs % 4 == 0 else bs
    by_class = [torch.nonzero(labels == k).squeeze(1) for k in range(num_classes)] if grouped else []

    def batch_classes():
        slots = labels[torch.randint(len(labels), (bs // group,), generator=gen)]
        return slots.repeat(group)

    def fake_labels():
        if not c_dim:
            return None
        y = batch_classes() if grouped else labels[torch.randint(len(labels), (bs,), generator=gen)]
        return F.one_hot(y, c_dim).float()

    def real_indices():
        if not grouped:
            return torch.randint(len(x_all), (bs,), generator=gen)
        y = batch_classes()
        return torch.stack([by_class[k][torch.randint(len(by_class[k]), (), generator=gen)] for k in y.tolist()])

    policy = parse_policy(run.augment)

    def D_in(x, c, y=None):  # DiffAugment: the same kind of random transform on real and fake, in D's and G's steps
        h = D.features(diff_augment(x, policy, gen) if policy else x)
        if D.aux is None:
            return D.score(h, c), h.new_zeros(())
        logits = D.classify(h)
        if y is not None:  # AC-GAN: D learns the class of real images, a conditional G draws the class asked for
            return D.score(h, c), F.cross_entropy(logits, y)
        # unconditional G: each image of one class (low entropy), all classes alike (high entropy of the mean)
        p = F.softmax(logits, dim=1)
        ent = -(p * F.log_softmax(logits, dim=1)).sum(1).mean()
        mean = p.mean(0)
        return D.score(h, c), ent + (mean * mean.clamp_min(1e-8).log()).sum()

    def rotation_loss(x):  # SS-GAN: which of 0/90/180/270 degrees each image was turned by
        if not run.rotation_weight:
            return x.new_zeros(())
        k = torch.randint(4, (len(x),), generator=gen)
        turned = torch.stack([torch.rot90(x, r, dims=(2, 3)) for r in range(4)])[k, torch.arange(len(x))]
        return F.cross_entropy(D.rotation(D.features(turned)), k)

    snaps = set(snapshot_steps)
    bar = tqdm(range(1, steps + 1), desc=f"train {run.name}", disable=not progress, leave=False, mininterval=1.0,
               position=position)
    for step in bar:
        # discriminator
        idx = real_indices()
        real, c_real = x_all[idx], (F.one_hot(labels[idx], c_dim).float() if c_dim else None)
        c_fake = fake_labels()
        with torch.no_grad():
            fake = _clamped(G(torch.randn(bs, Z_DIM, generator=gen), c_fake))
        r1 = step % run.r1_every == 0
        real = real.requires_grad_(r1)
        d_real, ac_real = D_in(real, c_real, labels[idx])  # R1 is taken w.r.t. the un-augmented reals, as in StyleGAN2-ADA
        d_fake, _ = D_in(fake, c_fake, None if c_fake is None else c_fake.argmax(1))
        loss_d = F.softplus(d_fake).mean() + F.softplus(-d_real).mean() + run.ac_weight * ac_real \
            + run.rotation_weight * rotation_loss(real.detach())
        if r1:
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            loss_d = loss_d + run.r1_gamma / 2 * grad.square().sum((1, 2, 3)).mean() * run.r1_every
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # generator
        c_fake = fake_labels()
        z = torch.randn(bs, Z_DIM, generator=gen)
        fake = _clamped(G(z, c_fake))
        d_fake, ac_fake = D_in(fake, c_fake, None if c_fake is None else c_fake.argmax(1))
        loss_g = F.softplus(-d_fake).mean() + run.ac_weight * ac_fake + 0.2 * run.rotation_weight * rotation_loss(fake)
        if run.mode_seeking:  # pairs i, i + bs/2 (the same class under class_groups)
            h = bs // 2
            ratio = (fake[:h] - fake[h:2 * h]).abs().mean((1, 2, 3)) / (z[:h] - z[h:2 * h]).abs().mean(1)
            loss_g = loss_g + run.mode_seeking * (1.0 / (ratio + 1e-5)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for sched in scheds:
            sched.step()
        # G_ema (StyleGAN2-ADA: half-life ema_kimg, ramped up early in training)
        ema_nimg = min(run.ema_kimg * 1000, step * bs * run.ema_rampup)
        beta = 0.5 ** (bs / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - beta)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        if step % 50 == 0:
            bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
        if on_snapshot is not None and step in snaps:
            snap = copy.deepcopy(G_ema)
            _recalibrate_batchnorm(snap, Z_DIM, c_dim, labels, seed)
            on_snapshot(step, snap.eval().requires_grad_(False), copy.deepcopy(D).eval().requires_grad_(False))
    bar.close()
    return G_ema


def save_sample_grid(generator: FeatureGenerator, path: Path, *, seed: int = 0, per_row: int = 10,
                     rows: int = 8, scale: int = 4) -> None:
    """A PNG of samples (rows = classes for a conditional generator), nearest-upscaled to be viewable."""
    from torchvision.utils import make_grid, save_image
    gen = torch.Generator().manual_seed(seed)
    if generator.conditional:
        rows = generator.c_dim
        z = torch.randn(rows * per_row, generator.z_dim, generator=gen)
        c = F.one_hot(torch.arange(rows).repeat_interleave(per_row), generator.c_dim).float()
    else:
        z, c = generator.sample_inputs(rows * per_row, "cpu", gen)
    device = next(generator.parameters()).device
    imgs = generator(z.to(device), None if c is None else c.to(device), blocks=[]).images.cpu()
    imgs = F.interpolate((imgs + 1) / 2, scale_factor=scale, mode="nearest")
    with atomic_output(path) as f:
        save_image(make_grid(imgs, nrow=per_row, padding=2, pad_value=0.5), f, format="png")

