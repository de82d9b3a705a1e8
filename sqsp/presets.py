"""The presets: the scale of a run, per data set and per method, with where each value comes from.

A preset is the distillation row's config (appendix Table 2 at the paper presets) and, per
method it can run, the values in which that method's scale differs (``METHOD_SCALE``): the
authors ran their baselines with scripts of their own (``encode.py`` at batch 128, SimSiam with
a 2- or 3-layer projector, …). A study never sets scale; the method of a trial picks its line
(``config.preset`` for a single run, ``config.row_scale`` for the rows of a study).

Data only (no import of ``config``): ``config`` reads these tables. Sources name files of the
authors' code, yangyu12/squeeze-and-span; ``sqsp/authors.py`` is the independent record of what
those scripts run, which tests compare every study's trials with.
"""
from __future__ import annotations

from typing import Any

_SNS = "scripts/squeeze_and_span/<dataset>_squ_spa.sh, sns.py"


def _paper(dataset, *, aug, epochs, lr, wd, size, lam, mu, student, batch=512, data_root="data"):
    return dict(dataset=dataset, data_root=data_root, aug_preset=aug, batch_size=batch, epochs=epochs,
                base_lr=lr, weight_decay=wd, image_size=size, sim_weight=lam, var_weight=mu,
                cov_weight=1.0, syn_ratio=0.5, student=student, generator_blocks="all",
                squeeze_width=2048, teacher_dim=2048, projector_dim=0, projector_depth=5,
                squeeze_depth=3, probe="paper", eval_every=10, checkpoint_every=10, eval_mmd=True,
                # sns.py optimises the variance/covariance terms of the student's side only (its
                # loss adds var_loss_f, cov_loss_f; the teacher's are computed and logged)
                vc_side="student",
                # src/models/backbone: torchvision's ResNet with zero_init_residual=True
                student_init="torchvision")


# eval_classification.py's defaults (SGD under LARS, lr 0.1, batch 4096), the STL-10 script's
# --lars; the CIFAR scripts pass -b 256 --lr 30 instead (the preset's defaults)
_LARS_PROBE = {"probe_optimizer": "lars", "probe_batch_size": 4096, "probe_lr": 0.1}

PRESETS: dict[str, dict[str, Any]] = {
    # The embedded default: digits-m (digit scans on photo patches) at 16 px, a zoo generator,
    # one CPU core, ~25-35 s a run, so that the 18 trials of the ablation fit in 5 minutes on
    # 2 cores. Chosen once for every row and study (benchmarks/README.md, "smoke preset"):
    # - steps 200: what that budget allows; base_lr 0.2: the largest of 0.2/0.4/0.5 at which
    #   VICReg and squeeze both train (0.5 diverged in both);
    # - crop_min 1.0: at 16 px MoCo-v2's crops (0.2-1 of the area) cut the digit apart, and a
    #   student distilling a fixed teacher learned 49 % in 200 steps with them, 79 % without
    #   (colour jitter, grayscale and flip kept: the nuisance of digits-m is colour);
    # - eval_every 0: the kNN monitor only at the end (a pass over 3.6k images costs ~25 steps).
    "smoke": dict(
        dataset="digits-m", image_size=16, generator="stylegan-digits-m", batch_size=64, steps=200,
        base_lr=0.2, warmup_steps=10, weight_decay=5e-4, student_width=0.125, projector_depth=3,
        projector_dim=0, squeeze_width=128, teacher_dim=128, squeeze_depth=3, aug_preset="mocov2-noblur",
        crop_min=1.0, sim_weight=25.0, var_weight=25.0, cov_weight=1.0, syn_ratio=0.5, knn_k=20,
        eval_every=0, checkpoint_every=1, probe="fast", eval_init=True, eval_mmd=True, device="auto",
        # at width x0.125 bf16 autocast and channels_last cost more than they save (benchmarks/README.md)
        precision="fp32", channels_last=False,
        # the encoder's perceptual distance (Table 1): LPIPS's construction on the zoo classifier's
        # trunk, since LPIPS's ImageNet trunk cannot be had offline (sqsp/encode.py); only
        # method='encode' reads it, so it is the preset's, and --set lpips_net=alex gives LPIPS
        lpips_net="zoo-classifier"),
    # Appendix Table 2, exactly (generator: the paper's checkpoint file names, see README).
    "paper-cifar10": {**_paper("cifar10", aug="mocov2-noblur", epochs=800, lr=0.03, wd=5e-4, size=32, lam=25, mu=25,
                               student="resnet18-cifar"), "generator": "checkpoints/cifar10u-cifar-ada-best-fid.pkl"},
    "paper-cifar100": {**_paper("cifar100", aug="mocov2-noblur", epochs=800, lr=0.03, wd=5e-4, size=32, lam=10, mu=10,
                                student="resnet18-cifar"), "generator": "checkpoints/cifar100u-cifar-best-fid4.13.pkl"},
    "paper-stl10": {**_paper("stl10", aug="mocov2", epochs=200, lr=0.05, wd=1e-4, size=64, lam=25, mu=25,
                             student="resnet18"), "generator": "checkpoints/stl10u-my128-best-fid20.86.pkl",
                    **_LARS_PROBE},
    # no scripts of the authors at ImageNet scale: the probe is eval_classification.py's defaults
    "paper-imagenet100": {**_paper("imagenet100", aug="mocov2", epochs=100, lr=0.05, wd=1e-4, size=96, lam=25,
                                   mu=25, student="resnet50", batch=256),
                          "dataset": "imagefolder", "data_root": "data/imagenet100",
                          "generator": "checkpoints/imagenet100-projected-stylegan2.pkl", **_LARS_PROBE},
    "paper-imagenet": {**_paper("imagenet", aug="mocov2", epochs=100, lr=0.05, wd=1e-4, size=96, lam=25, mu=25,
                                student="resnet50", batch=256),
                       "dataset": "imagefolder", "data_root": "data/imagenet",
                       "generator": "checkpoints/imagenet-stylegan2.pkl", **_LARS_PROBE},
}


# ---------------------------------------------------------------------------------------------
# per-method scale: {preset: {method: {field: (value, source)}}}, what differs from the preset
# ---------------------------------------------------------------------------------------------
def _encode(where: str) -> dict[str, tuple[Any, str]]:
    return {"batch_size": (128, f"encode.py -b default 128{where}"),
            "base_lr": (0.01, f"encode.py --lr default 0.01, x128/256 = 0.005{where}"),
            "projector_depth": (2, f"encode.py --num-proj-layers default 2{where}")}


def _simsiam(layers: int, script: str) -> dict[str, tuple[Any, str]]:
    return {"projector_depth": (layers, f"{script} --num-proj-layers={layers}"),
            "fix_pred_lr": (True, f"{script} --fix-pred-lr")}


_C10_ENC = " (scripts/transfer_latent/encode_w_syn*_cifar10.sh pass neither)"
_C100_ENC = " (scripts/transfer_latent/encode_w_syn*_cifar100.sh pass neither)"
_NO_SCRIPT = " (no script at this scale: Table 1 is CIFAR only)"
_SIMSIAM_3 = _simsiam(3, "scripts/compare_ssl/*_simsiam_stl10.sh")
METHOD_SCALE: dict[str, dict[str, dict[str, tuple[Any, str]]]] = {
    # the embedded default runs every method at one scale, chosen for all of them (above)
    "smoke": {},
    "paper-cifar10": {
        "simsiam": _simsiam(2, "scripts/compare_ssl/*_simsiam_cifar10.sh"),
        "encode": _encode(_C10_ENC)},
    "paper-cifar100": {
        # mix_vicreg_cifar100.sh passes no weights: vicreg.py's defaults 25/25 (sns.py runs 10/10 there)
        "vicreg": {"sim_weight": (25.0, "vicreg.py --sim_loss_weight default 25 (*_vicreg_cifar100.sh)"),
                   "var_weight": (25.0, "vicreg.py --var_loss_weight default 25 (*_vicreg_cifar100.sh)")},
        "simsiam": _simsiam(2, "scripts/compare_ssl/*_simsiam_cifar100.sh"),
        "encode": _encode(_C100_ENC)},
    "paper-stl10": {"simsiam": _SIMSIAM_3, "encode": _encode(_NO_SCRIPT)},
    "paper-imagenet100": {"simsiam": _SIMSIAM_3, "encode": _encode(_NO_SCRIPT)},
    "paper-imagenet": {"simsiam": _SIMSIAM_3, "encode": _encode(_NO_SCRIPT)},
}
"""The values in which a method's scale differs from its preset, each with its source. A
method without a line runs at the preset's scale (distill and the discriminator everywhere;
VICReg where vicreg.py's defaults equal sns.py's)."""


def method_scale(preset: str, method: str) -> dict[str, Any]:
    """{field: value} of ``method``'s line at ``preset`` (empty: the preset's own scale)."""
    return {k: v for k, (v, _src) in METHOD_SCALE.get(preset, {}).get(method, {}).items()}
