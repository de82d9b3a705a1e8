"""One object per method (distill, vicreg, simsiam, encode, discriminator): what it builds,
what it optimises, what collapse means for it, which fields it never reads, and what
``syn_ratio`` (α) means for it. The loop (train.py) and the rules on a config (config.py)
ask ``METHODS[cfg.method]``; nothing else branches on a method's name.

α is a batch share for every method: ``syn_batch = round(α · batch_size)`` images of a batch
are generated, the rest are real. For distill and encode it is also a loss weight, since
their synthetic and real parts have losses of their own: L = α·L_syn + (1−α)·L_real (span,
Sec. 4.2; Eq. 3 for the encoder). VICReg and SimSiam have one loss over the mixed batch.

config.py reads these objects, and analysis/ reads configs on machines without torch: this
module imports nothing heavy at its top. What trains (heads, losses) imports torch and the
modules built on it where it runs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # annotations only (a config is a TrainConfig, a run a train.Run, syn a synthetic.SynBatch)
    import torch

_ENCODE_ONLY = "it belongs to method='encode'"
_DISCRIMINATOR_ONLY = {"disc_features": "it belongs to method='discriminator'"}
_NO_TEACHER = "it has no teacher: its targets are its own second view"
_TWO_VIEW_IGNORES = {
    "syn_augment": "it augments every image, synthetic or real, with aug_preset (two views each); syn_augment is "
                   "distill's switch for the synthetic side",
    "vc_side": "its variance/covariance terms regularise its two views; vc_side chooses distill's student or teacher "
               "side",
    "squeeze": _NO_TEACHER, "squeeze_depth": _NO_TEACHER, "squeeze_width": _NO_TEACHER,
    "teacher_source": _NO_TEACHER, "generator_blocks": _NO_TEACHER + " (it sees the generator's images only)",
    "latent_weight": _ENCODE_ONLY, "lpips_net": _ENCODE_ONLY, **_DISCRIMINATOR_ONLY,
}
_TRAINS_NOTHING = "it trains nothing: the discriminator's features are probed as they are"


def student_input(run, x: "torch.Tensor") -> "torch.Tensor":
    """To the student's size (a generator may be trained at another resolution) and memory format."""
    import torch

    from .data import resize
    x = resize(x, run.config.image_size)
    return x.contiguous(memory_format=torch.channels_last) if run.config.channels_last else x


def real_images(run) -> "torch.Tensor":
    """The real part of a batch, drawn on the device by the device's own generator: no
    host-to-device copy, no sync per step."""
    import torch
    idx = torch.randint(len(run.real), (run.config.real_batch,), generator=run.data_rng, device=run.device)
    return run.real[idx].float().div_(255)


class Method:
    """The base: a trained method whose α is a batch share only and whose student's spread is
    held against γ = 1 of Eq. 9. Subclasses say where they differ."""
    name = ""
    ignores: dict[str, str] = {}
    """Fields the method never reads, and why: a run that sets one of them explicitly (to anything
    but its default) is refused rather than run as if the setting mattered (config.ignored_settings).
    ``crop_min`` is not here for VICReg/SimSiam: their views are cropped with it."""
    trains = True
    syn_ratio_weights_loss = False
    """α also weights the synthetic part's loss against the real part's (distill, encode)."""
    needs_synthetic = False
    """α must be > 0: the method has nothing to learn from real images alone."""
    reads_blocks = False
    """Its target is the pooled features of ``generator_blocks`` (the squeeze module's input)."""
    reads_discriminator = False
    """It loads the discriminator trained with ``generator``, not the generator (preflight, provenance)."""
    perceptual_loss = False
    """Its loss compares images under the perceptual distance ``lpips_net``: the loop loads it
    (``encode.load_lpips``), and a machine without its weights cannot run the method."""

    def synthetic_target(self, cfg) -> str:
        """What the synthetic side hands the loss as its target (``SyntheticSource``)."""
        return cfg.teacher_source

    def validate(self, cfg) -> None:
        """ConfigError for a setting the method cannot run with (config.validate asks it)."""
        if not 0 <= cfg.syn_ratio <= 1:
            raise ConfigError(f"syn_ratio={cfg.syn_ratio!r} is outside [0, 1] (0: real only, 1: synthetic only)")

    def heads(self, cfg, backbone_dim: int, synthetic):
        """(teacher, projector, predictor), built in this order: the order the seed's stream is drawn in."""
        from .models import projector
        return None, projector(backbone_dim, cfg.projector_dim, cfg.teacher_dim, cfg.projector_depth), None

    def loss(self, run, syn) -> dict[str, "torch.Tensor"]:
        """All loss terms of one batch as tensors (no host sync), ``loss`` (what is optimised) last."""
        raise NotImplementedError

    def is_collapsed(self, run, m: dict[str, Any]) -> bool:
        """The student's spread fell below ``collapse_std`` times the spread it is asked for."""
        return m["student_std"] < run.config.collapse_std * self.asked_spread(run.config, m)

    def asked_spread(self, cfg, m: dict[str, Any]) -> float:
        """γ = 1 of Eq. 9: a learned target (the squeeze module, VICReg's second view) is held to it."""
        return 1.0

    @staticmethod
    def span(cfg, syn_loss: "torch.Tensor", real_loss: "torch.Tensor") -> "torch.Tensor":
        """α·L_syn + (1−α)·L_real (Sec. 4.2), for the methods whose α weights the loss."""
        return cfg.syn_ratio * syn_loss + (1 - cfg.syn_ratio) * real_loss


class Distill(Method):
    """Table 3 rows a-f: the student matches the teacher (the squeeze module T_φ on pooled block
    features, or without squeeze the concatenated features) on augmented generated images;
    with α < 1, real images add the two-view VICReg loss (span)."""
    name = "distill"
    ignores = {"latent_weight": _ENCODE_ONLY, "lpips_net": _ENCODE_ONLY, **_DISCRIMINATOR_ONLY}
    syn_ratio_weights_loss = needs_synthetic = reads_blocks = True

    def validate(self, cfg):
        if not 0 < cfg.syn_ratio <= 1:
            raise ConfigError(f"syn_ratio={cfg.syn_ratio!r} is outside (0, 1]: the share α of synthetic images "
                              "must be > 0 for method='distill' (1 means no span)")
        if cfg.sim_weight == 0:
            raise ConfigError("sim_weight=0 leaves method='distill' with nothing to distil; it must be > 0")

    def heads(self, cfg, backbone_dim, synthetic):
        from .models import ConcatTeacher, Squeeze, projector
        if cfg.squeeze:
            teacher, out_dim = Squeeze(synthetic.teacher_dims, cfg.squeeze_width, cfg.teacher_dim,
                                       cfg.squeeze_depth), cfg.teacher_dim
        else:
            teacher = ConcatTeacher(synthetic.teacher_dims)
            out_dim = teacher.out_dim
        return teacher, projector(backbone_dim, cfg.projector_dim, out_dim, cfg.projector_depth), None

    def loss(self, run, syn):
        from . import losses
        cfg = run.config
        zs = run.student(student_input(run, run.aug_syn(syn.images)))
        zt = run.teacher(syn.teacher_in)
        terms = losses.vicreg_terms(zs, zt, cfg.vc_side)
        loss = losses.weighted(terms, cfg.sim_weight, cfg.var_weight, cfg.cov_weight)
        out = dict(loss_sim=terms["sim"], loss_var=terms["var"], loss_cov=terms["cov"], loss_syn=loss)
        out["student_std"], out["teacher_std"] = losses.feature_std(zs), losses.feature_std(zt)
        out["student_nstd"] = losses.normalized_std(zs)
        if cfg.real_batch:
            x = real_images(run)
            z1, z2 = run.student(student_input(run, run.aug_real(x))), run.student(student_input(run, run.aug_real(x)))
            real = losses.weighted(losses.vicreg_terms(z1, z2), cfg.sim_weight, cfg.var_weight, cfg.cov_weight)
            out["loss_real"] = real
            loss = self.span(cfg, loss, real)
        out["loss"] = loss
        return out

    def asked_spread(self, cfg, m):
        # without squeeze (rows a-b) the target is the fixed teacher: its own spread is asked for
        return 1.0 if cfg.squeeze else m["teacher_std"]


class TwoView(Method):
    """Table 2's SSL baselines: two augmented views of a batch of α generated and 1−α real images."""
    ignores = _TWO_VIEW_IGNORES

    def loss(self, run, syn):
        import torch
        cfg = run.config
        syn_x = student_input(run, syn.images) if syn is not None else None
        real_x = student_input(run, real_images(run)) if cfg.real_batch else None
        if syn_x is not None and cfg.aug_granularity == "batch":  # one draw per synthetic batch and view
            def view():
                parts = [run.aug_syn(syn_x)] + ([run.aug_real(real_x)] if real_x is not None else [])
                return student_input(run, torch.cat(parts))
        else:  # every image its own draw, synthetic or real
            parts = [p for p in (syn_x, real_x) if p is not None]
            x = torch.cat(parts) if len(parts) > 1 else parts[0]

            def view():
                return student_input(run, run.aug_real(x))
        z1, z2 = run.student(view()), run.student(view())
        return self.objective(run, z1, z2)

    def objective(self, run, z1: "torch.Tensor", z2: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        raise NotImplementedError

    @staticmethod
    def _spread(out: dict, z1: "torch.Tensor", loss: "torch.Tensor") -> dict:
        from . import losses
        out["student_std"], out["student_nstd"] = losses.feature_std(z1), losses.normalized_std(z1)
        out["loss"] = loss
        return out


class VICReg(TwoView):
    name = "vicreg"

    def objective(self, run, z1, z2):
        from . import losses
        cfg = run.config
        terms = losses.vicreg_terms(z1, z2)
        loss = losses.weighted(terms, cfg.sim_weight, cfg.var_weight, cfg.cov_weight)
        return self._spread(dict(loss_sim=terms["sim"], loss_var=terms["var"], loss_cov=terms["cov"]), z1, loss)


class SimSiam(TwoView):
    name = "simsiam"
    ignores = {**_TWO_VIEW_IGNORES, **{k: "SimSiam's loss (negative cosine, stop-gradient) has no weights"
                                       for k in ("sim_weight", "var_weight", "cov_weight")}}

    def heads(self, cfg, backbone_dim, synthetic):
        from .models import mlp, simsiam_projector
        d = cfg.teacher_dim
        return None, simsiam_projector(backbone_dim, cfg.projector_dim, d, cfg.projector_depth), \
            mlp(d, max(d // 4, 8), d, 2)

    def objective(self, run, z1, z2):
        from . import losses
        p1, p2 = run.student.predictor(z1), run.student.predictor(z2)
        loss = losses.simsiam_loss(p1, z2, p2, z1)
        return self._spread({"loss_sim": loss}, z1, loss)

    def is_collapsed(self, run, m):
        # its cosine loss ignores the features' scale: the scale-free spread tells
        return m["student_nstd"] < run.config.collapse_std


class Encode(Method):
    """Table 1's encoding baseline (Eq. 3, ``sqsp/encode.py``): the student inverts the frozen
    generator, E(G(z)) ≈ w+, under L1 + LPIPS on the re-rendered image; real images (α < 1) add
    that image term alone."""
    name = "encode"
    ignores = {"aug_granularity": "its synthetic images are not augmented (it reconstructs them)",
               "vc_side": "its loss is Eq. 3 (latent + LPIPS), without variance/covariance terms",
               **{k: "its loss is Eq. 3 (latent_weight · latent + LPIPS)" for k in ("sim_weight", "var_weight",
                                                                                    "cov_weight")},
               **{k: "its target is w itself, without a squeeze module" for k in ("squeeze", "squeeze_depth",
                                                                                  "squeeze_width", "teacher_dim")},
               "generator_blocks": "its target is w, not block features", **_DISCRIMINATOR_ONLY}
    syn_ratio_weights_loss = needs_synthetic = perceptual_loss = True

    def synthetic_target(self, cfg):
        return "w"  # Eq. 3 regresses it; it has no teacher, whatever teacher_source says

    def validate(self, cfg):
        if cfg.syn_augment:
            raise ConfigError("method='encode' reconstructs the very image it is given (Eq. 3), so its synthetic "
                              "images are not augmented; set syn_augment=false")
        if not 0 < cfg.syn_ratio <= 1:
            raise ConfigError(f"syn_ratio={cfg.syn_ratio!r} is outside (0, 1]: method='encode' needs generated "
                              "images for its latent term (1: synthetic only, as Table 1's 'Syn.' row)")
        if cfg.latent_weight < 0:
            raise ConfigError(f"latent_weight={cfg.latent_weight!r} is negative; it must be >= 0")

    def heads(self, cfg, backbone_dim, synthetic):
        from .models import projector
        out_dim = synthetic.generator.num_ws * synthetic.teacher_dims[0]  # w+: one w per synthesis layer
        return None, projector(backbone_dim, cfg.projector_dim, out_dim, cfg.projector_depth), None

    def loss(self, run, syn):
        """Eq. 3 as the authors' encode.py: latent + image term (L1 + LPIPS) on the synthetic part,
        the image term alone on the real part."""
        from . import losses
        from .reconstruction import image_loss
        cfg, G = run.config, run.synthetic.generator

        def encode(x):  # E(x) as w+: one w per synthesis layer
            return run.student(student_input(run, x)).reshape(len(x), G.num_ws, -1)

        pred = encode(syn.images)                          # E(G(z)), no augmentation: it must reconstruct
        w = syn.teacher_in[0][:, None].expand_as(pred)     # the mapping's w, the same for every layer
        latent = losses.invariance_loss(pred, w)
        image = image_loss(run.perceptual, G.synthesize(pred), syn.images)
        loss = cfg.latent_weight * latent + image
        out = dict(loss_latent=latent, loss_image_syn=image, loss_syn=loss)
        flat = pred.flatten(1)
        out["student_std"], out["teacher_std"] = losses.feature_std(flat), losses.feature_std(w.flatten(1))
        out["student_nstd"] = losses.normalized_std(flat)
        if cfg.real_batch:
            x = real_images(run)
            real = image_loss(run.perceptual, G.synthesize(encode(x)), x)
            out["loss_image_real"] = out["loss_real"] = real
            loss = self.span(cfg, loss, real)
        out["loss"] = loss
        return out

    def asked_spread(self, cfg, m):
        return m["teacher_std"]  # w's own spread: the target is fixed


class Discriminator(Method):
    """Table 1's direct use: no training; the GAN's discriminator (a zoo entry's, or ``D`` of an
    official pickle) is the feature extractor (``sqsp/discriminator.py``)."""
    name = "discriminator"
    ignores = {k: _TRAINS_NOTHING for k in (
        "syn_augment", "aug_granularity", "aug_preset", "crop_min", "vc_side", "squeeze", "squeeze_depth",
        "squeeze_width", "teacher_source", "teacher_dim", "generator_blocks", "truncation", "sim_weight",
        "var_weight", "cov_weight", "syn_ratio", "latent_weight", "lpips_net", "student", "student_width",
        "projector_depth", "projector_dim", "epochs", "steps", "base_lr", "weight_decay", "momentum",
        "lr_schedule", "warmup_steps")}
    trains = False
    reads_discriminator = True

    def synthetic_target(self, cfg):
        return "features"  # it reads the discriminator's blocks, not the generator's or w

    def validate(self, cfg):
        if not cfg.generator_spec.may_have_discriminator:
            raise ConfigError(f"method='discriminator' reads the discriminator of a zoo entry or of an official "
                              f"StyleGAN2-ADA pickle (its 'D'); generator={cfg.generator!r} is neither "
                              "(see python -m sqsp.zoo list)")
        super().validate(cfg)
        if cfg.val_fraction > 0:
            raise ConfigError(f"val_fraction={cfg.val_fraction!r} selects between trained runs; "
                              "method='discriminator' trains nothing (use val_fraction=0 with it)")


METHODS: dict[str, Method] = {m.name: m for m in (Distill(), VICReg(), SimSiam(), Discriminator(), Encode())}
"""Every method by its name, in the order the config's help lists them."""
