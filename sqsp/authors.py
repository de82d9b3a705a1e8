"""What the authors' scripts run, per paper preset and method, each value with its source file;
and the settings in which sqsp deliberately differs, each with its reason.

Typed from yangyu12/squeeze-and-span (commit 91fb6ca: scripts/*/*.sh and the argparse defaults
of sns.py, vicreg.py, simsiam.py, encode.py, eval_classification.py), independently of
``sqsp/presets.py``: tests/test_studies.py expands every study at every paper preset and compares
each trial's config with this table, so a preset, a study or a default that drifts from the
authors' runs fails there unless the difference is listed in ``DIFFERENCES``. README's
"Running the paper" prints ``DIFFERENCES`` (``difference_rows``).

Fields a study declares for a row (its loss weights, α, squeeze, …) are the comparison the
study makes and are not checked against a method's line; everything else is.
The authors published no scripts at ImageNet scale, nor an encoder or discriminator run on
STL-10: those lines are absent, and nothing is checked there.
"""
from __future__ import annotations

from typing import Any

Setting = tuple[Any, str]  # (value, source)


def _probe(dataset: str) -> dict[str, Setting]:
    if dataset == "stl10":
        src = "scripts/eval_linear/stl10_eval_linear.sh --lars; eval_classification.py defaults -b 4096 --lr 0.1"
        return {"probe": ("paper", src), "probe_optimizer": ("lars", src), "probe_batch_size": (4096, src),
                "probe_lr": (0.1, src), "probe_epochs": (90, "eval_classification.py --epochs default 90")}
    src = f"scripts/eval_linear/{dataset}_eval_linear.sh -b 256 --lr 30"
    return {"probe": ("paper", src), "probe_optimizer": ("sgd", "eval_classification.py (no --lars)"),
            "probe_batch_size": (256, src), "probe_lr": (30.0, src),
            "probe_epochs": (90, "eval_classification.py --epochs default 90")}


_DATA = {  # dataset: (epochs, lr, wd, input scale, arch, aug, script stem)
    "cifar10": (800, 0.03, 5e-4, 32, "resnet18-cifar", "mocov2-noblur", "cifar10"),
    "cifar100": (800, 0.03, 5e-4, 32, "resnet18-cifar", "mocov2-noblur", "cifar100"),
    "stl10": (200, 0.05, 1e-4, 64, "resnet18", "mocov2", "stl10"),
}


def _common(dataset: str, script: str, prog: str) -> dict[str, Setting]:
    """What every training script of one data set shares (its script and program named)."""
    epochs, lr, wd, size, arch, aug, _ = _DATA[dataset]
    passed_lr = dataset == "stl10"
    return {
        "dataset": (dataset, f"{script} --dataset-name"),
        "epochs": (epochs, f"{script} --epochs={epochs}"),
        "base_lr": (lr, f"{script} --lr={lr}" if passed_lr else f"{prog} --lr default {lr}"),
        "weight_decay": (wd, f"{script} --wd={wd}" if passed_lr else f"{prog} --wd default {wd}"),
        "momentum": (0.9, f"{prog} --momentum default 0.9"),
        "image_size": (size, f"{script} -i={size}" if dataset == "stl10" else f"{prog} -i default 32"),
        "student": (arch, f"{script} -a" if arch == "resnet18-cifar" else f"{prog} -a default resnet18"),
        "student_init": ("torchvision", "src/models/backbone: torchvision ResNet, zero_init_residual=True"),
        "aug_preset": (aug, "src/engine.py get_transform: MoCo-v2, no blur on CIFAR" if aug == "mocov2-noblur"
                       else "src/engine.py get_transform: MoCo-v2 with blur"),
        "crop_min": (0.2, "src/engine.py get_transform: RandomResizedCrop scale (0.2, 1)"),
        "lr_schedule": ("cosine", "src/engine.py adjust_learning_rate (cosine per epoch)"),
        "warmup_steps": (0, "src/engine.py adjust_learning_rate (no warm-up)"),
        "knn_k": (200, f"{prog} --knn-k default 200"), "knn_t": (0.1, f"{prog} --knn-t default 0.1"),
        **_probe(dataset),
    }


def _lines(dataset: str) -> dict[str, dict[str, Setting]]:
    stem = _DATA[dataset][6]
    sns = f"scripts/squeeze_and_span/{stem}_squ_spa.sh"
    weights = 10.0 if dataset == "cifar100" else 25.0
    lines = {
        "distill": {
            **_common(dataset, sns, "sns.py"),
            "batch_size": (512, "sns.py -b default 512"),
            "projector_depth": (5, f"{sns} --num-proj-layers=5"),
            "projector_dim": (0, "src/models/extractor.py: hidden layers of the backbone's width"),
            "teacher_dim": (2048, "sns.py --dim default 2048"),
            "squeeze_depth": (3, f"{sns} --a_depth=3"), "squeeze_width": (2048, "sns.py --a_hidden default 2048"),
            "sim_weight": (weights, f"{sns} --sim_loss_weight=10" if weights == 10 else "sns.py default 25"),
            "var_weight": (weights, f"{sns} --var_loss_weight=10" if weights == 10 else "sns.py default 25"),
            "cov_weight": (1.0, "sns.py --cov_loss_weight default 1"),
            "syn_ratio": (0.5, f"{sns} --syn_ratio=0.5"),
            "syn_augment": (True, f"{sns} --augment-syn-data"),
            "generator_blocks": ("all", r"sns.py --regex default '.*synthesis\.b(\d+)$' (every block)"),
            "teacher_source": ("features", "sns.py: block features"),
            "vc_side": ("student", "sns.py: loss adds var_loss_f, cov_loss_f (the student's side) only"),
            "aug_granularity": ("batch", "sns.py: torchvision transforms on the synthetic batch tensor"),
        },
        "vicreg": {
            **_common(dataset, f"scripts/compare_ssl/mix_vicreg_{stem}.sh", "vicreg.py"),
            "batch_size": (512, "vicreg.py -b default 512"),
            "projector_depth": (5, f"scripts/compare_ssl/*_vicreg_{stem}.sh --num-proj-layers=5"),
            "projector_dim": (0, "src/models/extractor.py: hidden layers of the backbone's width"),
            "teacher_dim": (2048, "vicreg.py --dim default 2048"),
            "sim_weight": (25.0, "vicreg.py --sim_loss_weight default 25 (no script passes it)"),
            "var_weight": (25.0, "vicreg.py --var_loss_weight default 25 (no script passes it)"),
            "cov_weight": (1.0, "vicreg.py --cov_loss_weight default 1"),
            "aug_granularity": ("batch", "vicreg.py: torchvision transforms on the synthetic batch tensor"),
        },
        "simsiam": {
            **_common(dataset, f"scripts/compare_ssl/mix_simsiam_{stem}.sh", "simsiam.py"),
            "batch_size": (512, f"scripts/compare_ssl/*_simsiam_{stem}.sh -b=512"),
            "projector_depth": ((3, f"scripts/compare_ssl/*_simsiam_{stem}.sh --num-proj-layers=3") if dataset == "stl10"
                                else (2, f"scripts/compare_ssl/*_simsiam_{stem}.sh --num-proj-layers=2")),
            "projector_dim": (0, "src/models/simsiam.py: hidden layers of the backbone's width"),
            "teacher_dim": (2048, f"scripts/compare_ssl/*_simsiam_{stem}.sh --dim=2048"),
            "fix_pred_lr": (True, f"scripts/compare_ssl/*_simsiam_{stem}.sh --fix-pred-lr"),
            "aug_granularity": ("batch", "simsiam.py: torchvision transforms on the synthetic batch tensor"),
        },
    }
    if dataset in ("cifar10", "cifar100"):  # Table 1 is CIFAR only
        enc = f"scripts/transfer_latent/encode_w_syn_{stem}.sh"
        lines["encode"] = {
            **_common(dataset, enc, "encode.py"),
            "batch_size": (128, "encode.py -b default 128"), "base_lr": (0.01, "encode.py --lr default 0.01"),
            "projector_depth": (2, "encode.py --num-proj-layers default 2"),
            "projector_dim": (0, "src/models/extractor.py: hidden layers of the backbone's width"),
            "latent_weight": (1.0, "encode.py --latent_loss_weight default 1"),
            "lpips_net": ("alex", "encode.py: lpips.LPIPS(net='alex')"),
            "syn_augment": (False, "encode.py: generated images are not augmented"),
            "teacher_source": ("w", "encode.py: the mapping network's w+"),
        }
        disc = f"scripts/transfer_latent/eval_d_multi_{stem}.sh"
        lines["discriminator"] = {"probe": ("paper", disc), "probe_batch_size": (256, f"{disc} -b=256"),
                                  "probe_lr": (30.0, f"{disc} --lr=30.0"), "dataset": (dataset, disc)}
    return lines


SETTINGS: dict[str, dict[str, dict[str, Setting]]] = {
    f"paper-{ds}": _lines(ds) for ds in _DATA}
"""{preset: {method: {field: (value, source)}}}: the authors' runs."""

_PER_SAMPLE = ("the paper's augmentation is MoCo-v2's, which draws a crop, jitter and flip per image; the authors' "
               "code draws one per synthetic batch (torchvision transforms on a batch tensor). sqsp keeps per-sample "
               "as the default and offers the authors' choice: --set aug_granularity=batch")
DIFFERENCES: dict[tuple[str, str, str], tuple[Any, str]] = {
    ("*", "distill", "aug_granularity"): ("sample", _PER_SAMPLE),
    ("*", "vicreg", "aug_granularity"): ("sample", _PER_SAMPLE),
    ("*", "simsiam", "aug_granularity"): ("sample", _PER_SAMPLE),
}
"""{(preset or '*', method, field): (sqsp's value, why)}: the deliberate differences."""


def expected(preset: str, method: str) -> dict[str, tuple[Any, str, str | None]]:
    """{field: (the value a trial must hold, its source, the reason if it is a listed difference)}
    for ``method`` at ``preset``; empty where the authors ran no such line."""
    out = {}
    for name, (value, source) in SETTINGS.get(preset, {}).get(method, {}).items():
        diff = DIFFERENCES.get((preset, method, name)) or DIFFERENCES.get(("*", method, name))
        out[name] = (diff[0], source, diff[1]) if diff else (value, source, None)
    return out


def difference_rows() -> list[tuple[str, str, str, Any, Any, str]]:
    """(preset, method, field, the authors' value, sqsp's value, why) for every listed difference."""
    rows = []
    for preset, lines in SETTINGS.items():
        for method, fields_ in lines.items():
            for name, (value, _src) in fields_.items():
                diff = DIFFERENCES.get((preset, method, name)) or DIFFERENCES.get(("*", method, name))
                if diff:
                    rows.append((preset, method, name, value, diff[0], diff[1]))
    return rows
