"""One validated config for one training run, and the presets that fill it.

A run is fully described by a flat ``TrainConfig``: flat so that it is a Ray Tune
``param_space`` as it is, one Parquet column per field, and one ``--set key=value``
per knob. Every value is checked up front by ``validate()`` so that a bad sweep
fails before any generator is loaded or any trial is scheduled.

Symbols of the paper and their names here (README keeps the same table):
λ ``sim_weight``, μ ``var_weight``, ν ``cov_weight``, α ``syn_ratio``.
"""
from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

from .datasets import DATASETS, EMBEDDED_DATASETS
from .errors import ConfigError
from .field_types import at_least as _at_least, check_type, coerce, one_of as _one_of, positive as _positive
from .methods import METHODS as _METHODS
from .presets import PRESETS, method_scale
from .specs import GeneratorSpec, is_zoo_name, parse_blocks, parse_generator, parse_seeds  # noqa: F401 (also read from config by other modules)

METHODS = tuple(_METHODS)  # their rules: sqsp/methods.py
LPIPS_NETS = ("alex", "vgg", "squeeze", "zoo-classifier")
# Appendix Table 5 pretrains on one dataset and probes on the other two; the embedded default
# pairs its dataset with the other digits variant. Only pairs whose datasets exist are kept.
_TRANSFER_PAIRS = {"cifar10": ("cifar100", "stl10"), "cifar100": ("cifar10", "stl10"),
                   "stl10": ("cifar10", "cifar100"), "digits-m": ("digits",), "digits": ("digits-m",)}
TRANSFER_PAIRS = {k: tuple(t for t in v if t in DATASETS) for k, v in _TRANSFER_PAIRS.items()
                  if k in DATASETS and any(t in DATASETS for t in v)}
STUDENTS = ("resnet18-cifar", "resnet18", "resnet50")


@dataclass
class TrainConfig:
    # --- what is learned ---------------------------------------------------------------
    method: Literal["distill", "vicreg", "simsiam", "discriminator", "encode"] = "distill"
    """distill: teacher-student from the generator (Table 3 rows a-f); vicreg/simsiam: two-view SSL (Table 2);
    discriminator: no training, the GAN's discriminator (a zoo entry's, or ``D`` of an official pickle)
    as the feature extractor (Table 1);
    encode: the student inverts the generator, E(G(z)) ≈ w under LPIPS (Eq. 3, Table 1's encoding rows)."""
    disc_features: Literal["single", "multi"] = "multi"
    """For method='discriminator': its penultimate vector (the input of its last linear layer), or
    Eq. 2's pooled output of every block, concatenated with that vector."""
    latent_weight: float = 1.0
    """For method='encode': λ of Eq. 3, the weight of ||E(G(z)) − w||² beside the LPIPS term
    (the authors' ``--latent_loss_weight``, default 1)."""
    lpips_net: Literal["alex", "vgg", "squeeze", "zoo-classifier"] = "alex"
    """For method='encode': the LPIPS trunk (the authors use AlexNet). Its ImageNet weights come
    from torchvision's cache (``$TORCH_HOME/hub/checkpoints``); sqsp never downloads them.
    ``zoo-classifier``: LPIPS's construction (unit-normalised per-channel feature differences,
    averaged) on the zoo classifier of ``dataset``, not LPIPS: what the embedded default can run
    offline (``sqsp/encode.py``)."""
    # --- data ------------------------------------------------------------------------------
    dataset: str = "digits-m"
    data_root: str | None = None
    image_size: int = 16
    transfer_datasets: str = ""
    """Appendix Table 5: datasets to also probe the final backbone on (comma separated, sharing
    ``data_root``), reported as ``probe_acc@<name>`` and ``knn_acc@<name>``. ``auto``: the paper's
    pairs (CIFAR-10 → CIFAR-100, STL-10; …) or, for an embedded dataset, the other embedded one."""
    # --- generator (teacher) ------------------------------------------------------------
    generator: str = "stylegan-digits-m"
    """A zoo name, a path to a checkpoint, or ``random:<arch>`` for an untrained generator."""
    generator_blocks: str = "all"
    """``all``, block names (``b4,b8``), or groups ``b4-b8``, ``b16-b32``, ``b64-b128``, comma separated."""
    teacher_source: Literal["features", "w"] = "features"
    truncation: float = 1.0
    stylegan_repo: str | None = None
    """A checkout of NVlabs/stylegan2-ada-pytorch or stylegan3, needed to unpickle official
    ``.pkl`` generators (else ``SQSP_STYLEGAN_REPO``). Unpickling runs code: name only
    pickles you trust."""
    # --- squeeze -----------------------------------------------------------------------------
    squeeze: bool = True
    squeeze_depth: int = 3
    squeeze_width: int = 2048
    teacher_dim: int = 2048
    # --- augmentation ----------------------------------------------------------------------
    syn_augment: bool = True
    aug_preset: Literal["mocov2", "mocov2-noblur"] = "mocov2-noblur"
    aug_granularity: Literal["sample", "batch"] = "sample"
    """How the synthetic images of a batch are augmented, for every method that augments them:
    each its own crop/jitter/flip (``sample``, the paper's MoCo-v2 pipeline, which torchvision
    applies per image), or one draw for the whole synthetic batch (``batch``, what the authors'
    code does to generated images in sns.py, vicreg.py and simsiam.py). Real images are always
    augmented per sample."""
    crop_min: float = 0.2
    """Smallest random crop, as a share of the image area (MoCo-v2's 0.2, made for 224 px)."""
    # --- loss ----------------------------------------------------------------------------------
    sim_weight: float = 25.0
    var_weight: float = 25.0
    cov_weight: float = 1.0
    vc_side: Literal["both", "student", "teacher"] = "both"
    """Which representation the variance/covariance terms regularise on the synthetic side.
    ``both`` follows Eq. 11 of the paper; ``student`` is what the authors' sns.py optimises (and
    what the paper presets run)."""
    syn_ratio: float = 0.5
    # --- student ------------------------------------------------------------------------------
    student: str = "resnet18-cifar"
    student_width: float = 1.0
    student_init: Literal["pytorch", "torchvision"] = "pytorch"
    """``torchvision``: torchvision's ResNet init with ``zero_init_residual=True`` (each residual
    branch's last BN starts at γ = 0), as the authors' backbones (their resnet18cifar is
    torchvision's resnet18 with a 3x3 stem, which keeps PyTorch's default init). ``pytorch``:
    each layer's PyTorch default (torchvision's models keep their kaiming init, without the
    zero-init)."""
    projector_depth: int = 5
    projector_dim: int = 0
    """Hidden width of the projector; 0 = the backbone's width, as the authors' extractor.py
    (512 for ResNet-18, 2048 for ResNet-50). Its output width is ``teacher_dim``."""
    # --- optimisation -----------------------------------------------------------------------
    batch_size: int = 512
    epochs: int = 800
    steps: int = 0
    """If > 0, the run length in optimiser steps, overriding ``epochs``."""
    base_lr: float = 0.03
    weight_decay: float = 5e-4
    momentum: float = 0.9
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    fix_pred_lr: bool = False
    """For method='simsiam': the predictor keeps the initial lr while the rest follows the
    schedule (SimSiam's and the authors' ``--fix-pred-lr``)."""
    warmup_steps: int = 0
    seed: int = 0
    # --- hardware ---------------------------------------------------------------------------
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast dtype. ``auto``: bf16 on CUDA (fp16 + grad scaler where bf16 is missing), bf16
    on a CPU with native bf16 (AVX512-BF16/AMX), fp32 on other CPUs, where bf16 is emulated."""
    channels_last: bool = True
    # --- evaluation and monitoring -------------------------------------------------------
    eval_every: int = 1
    """Epochs between kNN evaluations (0: only at the end)."""
    knn_k: int = 200
    knn_t: float = 0.1
    probe: Literal["fast", "paper", "none"] = "fast"
    probe_epochs: int = 90
    probe_lr: float = 30.0
    """The paper protocol's base lr (scaled by ``probe_batch_size``/256) and epochs: the authors'
    CIFAR eval_linear scripts. Their features are unnormalised and tiny, hence the large lr."""
    probe_batch_size: int = 256
    probe_optimizer: Literal["sgd", "lars"] = "sgd"
    """The paper probe's optimiser: SGD (CIFAR scripts: lr 30, batch 256), or SGD under LARS
    (STL-10 script: lr 0.1, batch 4096, ``sqsp/lars.py``)."""
    eval_init: bool = False
    """Also evaluate the untrained backbone (step 0; reported as ``init_knn_acc``,
    ``init_probe_acc`` with every report). Training must beat this floor to mean anything:
    on an easy dataset a random network's features are already linearly separable."""
    eval_mmd: bool = False
    """At the end, also report ``mmd_syn_real``: the squared MMD (KID's cubic kernel, on features
    standardised with the pooled per-dimension mean and std, so that it compares across trials:
    ``evaluate.mmd2``) between the backbone's features of generated images and of the real test
    images, paper Table 5's measure of the domain gap. Needs a generator (``syn_ratio`` > 0)."""
    val_fraction: float = 0.0
    """Share of the labelled training images held out as a validation split, to choose between
    runs without looking at the test split (0: none). Stratified by class, with a fixed seed, and
    by digit scan for ``digits-m`` (``validation.validation_split``). Every report then carries
    ``val_knn_acc`` (each epoch: the validation images' leave-one-scan-out kNN accuracy, a forward
    pass over them alone), and the final one ``val_probe_acc`` (the probe fitted on the training
    images minus the validation ones, scored on those). The test metrics are unchanged."""
    collapse_std: float = 0.1
    """A run is reported as collapsed when its student's per-dimension std falls below this
    share of the spread it is asked for (see ``methods.Method.is_collapsed``)."""
    checkpoint_every: int = 1
    """Epochs between checkpoints offered to ``report`` (0: only at the end)."""

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; allowed fields: {sorted(known)}")
        cfg = cls(**{k: _coerce(k, v) for k, v in d.items()})
        cfg.validate()
        return cfg

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    # ------------------------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """Linear scaling rule of Goyal et al. (paper Sec. 5.1): lr = base_lr * batch / 256."""
        return self.base_lr * self.batch_size / 256

    @property
    def syn_batch(self) -> int:
        """α's share of the batch, for every method (what else α means is the method's: methods.py)."""
        return round(self.batch_size * self.syn_ratio)

    @property
    def real_batch(self) -> int:
        return self.batch_size - self.syn_batch

    @property
    def uses_generator(self) -> bool:
        """A trial loads ``generator``: to draw synthetic images, or to read the discriminator
        trained with it (method='discriminator', Table 1's direct use)."""
        return self.syn_batch > 0 or _METHODS[self.method].reads_discriminator

    @property
    def generator_spec(self) -> GeneratorSpec:
        """``generator`` parsed (sqsp/specs.py): which kind of generator it names."""
        return parse_generator(self.generator)

    @property
    def draws_synthetic(self) -> bool:
        """A trial samples images (and block features or w) from ``generator``."""
        return self.syn_batch > 0 and _METHODS[self.method].trains

    @property
    def synthetic_target(self) -> str:
        """What the synthetic side hands the loss as its target: the latent w for the encoder
        (Eq. 3 regresses it; it has no teacher, whatever teacher_source says), else teacher_source."""
        return _METHODS[self.method].synthetic_target(self)

    def validate(self) -> "TrainConfig":
        for f in fields(self):
            _check_type(f, getattr(self, f.name))
        _one_of("method", self.method, METHODS)
        _one_of("dataset", self.dataset, DATASETS)
        _one_of("student", self.student, STUDENTS)
        reads_files = [d for d in (self.dataset, *self.transfer_targets) if d not in EMBEDDED_DATASETS]
        if not reads_files:
            if self.data_root is not None:
                raise ConfigError(f"data_root={self.data_root!r} is given, but dataset={self.dataset!r} is embedded "
                                  "and reads no files; drop --data-root (or set data_root=none), or choose a dataset "
                                  f"that reads it: {[d for d in DATASETS if d not in EMBEDDED_DATASETS]}")
        else:
            if not self.data_root:
                raise ConfigError(
                    f"data_root is required for dataset={reads_files[0]!r} (got {self.data_root!r}); "
                    "pass --data-root or --set data_root=PATH (see README, 'Datasets')")
            if not os.path.isdir(self.data_root):
                raise ConfigError(f"data_root={self.data_root!r} is not a directory")
        _at_least("image_size", self.image_size, 8)
        _positive("truncation", self.truncation)
        if not 0 < self.crop_min <= 1:
            raise ConfigError(f"crop_min={self.crop_min!r} is outside (0, 1]: the smallest crop's share of the image area")
        if self.stylegan_repo is not None and not os.path.isdir(os.path.expanduser(self.stylegan_repo)):
            raise ConfigError(f"stylegan_repo={self.stylegan_repo!r} is not a directory; it must be a checkout of "
                              "NVlabs/stylegan2-ada-pytorch (or stylegan3) holding dnnlib/ and torch_utils/")
        for name in ("sim_weight", "var_weight", "cov_weight", "weight_decay", "momentum"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r} is negative; it must be >= 0")
        if self.momentum >= 1:
            raise ConfigError(f"momentum={self.momentum!r} must be in [0, 1)")
        _positive("base_lr", self.base_lr)
        _METHODS[self.method].validate(self)  # syn_ratio's range, and what else the method refuses
        # a variance estimate needs at least two samples in every part of the batch
        _at_least("batch_size", self.batch_size, 4)
        for part, n in (("synthetic", self.syn_batch), ("real", self.real_batch)):
            if 0 < n < 2 or (n == 0 and self._needs(part)):
                raise ConfigError(
                    f"batch_size={self.batch_size} with syn_ratio={self.syn_ratio} gives {n} {part} image(s) "
                    "per batch; the variance term needs at least 2")
        parse_blocks(self.generator_blocks)  # names; the generator checks it has them
        parse_generator(self.generator)  # its form; whether it exists is preflight's (it may be on another node)
        for name in ("squeeze_depth", "projector_depth"):
            _at_least(name, getattr(self, name), 1)
        for name in ("squeeze_width", "teacher_dim", "knn_k", "probe_epochs", "probe_batch_size"):
            _at_least(name, getattr(self, name), 1)
        _at_least("projector_dim", self.projector_dim, 0)
        _positive("student_width", self.student_width)
        if self.student != "resnet18-cifar" and self.student_width != 1.0:
            raise ConfigError(f"student_width={self.student_width} is only available for student='resnet18-cifar'; "
                              f"{self.student!r} (torchvision) takes 1.0")
        if self.epochs < 1 and self.steps < 1:
            raise ConfigError(f"epochs={self.epochs} and steps={self.steps}: one of them must be >= 1")
        for name in ("steps", "warmup_steps", "eval_every", "checkpoint_every", "seed"):
            _at_least(name, getattr(self, name), 0)
        _positive("knn_t", self.knn_t)
        _positive("probe_lr", self.probe_lr)
        _positive("collapse_std", self.collapse_std)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction={self.val_fraction!r} is outside [0, 1): the share of the labelled "
                              "training images held out for validation (0: no validation split)")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(f"device={self.device!r}; allowed: auto, cpu, cuda, cuda:N, mps")
        if self.precision == "fp16" and self.device == "cpu":
            raise ConfigError("precision='fp16' is for CUDA; on CPU use 'bf16' or 'fp32'")
        return self

    @property
    def transfer_targets(self) -> tuple[str, ...]:
        """The datasets of ``transfer_datasets``, ``auto`` resolved; raises ConfigError."""
        spec = self.transfer_datasets.strip()
        if not spec:
            return ()
        if spec == "auto":
            targets = TRANSFER_PAIRS.get(self.dataset, ())
            if not targets:
                raise ConfigError(f"transfer_datasets='auto': no dataset is paired with dataset={self.dataset!r} "
                                  f"(pairs: {TRANSFER_PAIRS}); name the datasets to probe, --set "
                                  f"transfer_datasets=NAME[,NAME], from {[d for d in DATASETS if d != 'imagefolder']}")
            return targets
        names = tuple(dict.fromkeys(p.strip() for p in spec.split(",") if p.strip()))
        for n in names:
            if n not in DATASETS or n == "imagefolder":
                raise ConfigError(f"transfer_datasets={spec!r}: {n!r} is not allowed; allowed: 'auto' or names from "
                                  f"{[d for d in DATASETS if d != 'imagefolder']}, comma separated")
        return names

    def _needs(self, part: str) -> bool:
        if part == "synthetic":
            return _METHODS[self.method].needs_synthetic or self.syn_ratio > 0
        return self.syn_ratio < 1


STUDY_FIELDS = frozenset({
    "method", "disc_features", "latent_weight", "lpips_net", "generator", "generator_blocks", "teacher_source",
    "truncation", "squeeze", "syn_augment", "aug_granularity", "sim_weight", "var_weight", "cov_weight", "vc_side",
    "syn_ratio", "eval_mmd", "transfer_datasets", "val_fraction"})
"""What a study may declare in its overrides and rows: the settings that define what it
compares (the paper's components, loss weights, knowledge source and encoder loss, generator
and its blocks) and how it measures or selects (``eval_mmd``; which other datasets the
backbone is probed on; ``val_fraction``, a share of any data set).
Every other field sets the scale (data, image size, optimiser, schedule, widths, probe,
hardware) and belongs to the presets alone, so a setting tuned for one scale can never
reach another: a new field is scale until it is added here."""
SCALE_FIELDS = frozenset(f.name for f in fields(TrainConfig)) - STUDY_FIELDS


def ignored_settings(cfg: TrainConfig, explicit: Any) -> dict[str, str]:
    """{field: why} for the fields of ``explicit`` (set by the user or a study, not a preset)
    that ``cfg`` holds at a non-default value and that its method, or its other settings, never read."""
    default = TrainConfig()
    out = {}
    for name in explicit:
        # scale fields (widths, optimiser, augmentation strength…) come in bulk from a --set that
        # sizes a whole study, whatever its methods: only what a study compares is checked
        if name in SCALE_FIELDS or getattr(cfg, name) == getattr(default, name):
            continue
        why = _METHODS[cfg.method].ignores.get(name)
        if why:
            out[name] = f"method={cfg.method!r} ignores it: {why}"
        elif name == "eval_mmd" and cfg.probe == "none":
            out[name] = "the MMD is measured on the final probe pass's features, and probe='none' makes none"
        elif name == "eval_mmd" and cfg.syn_batch == 0:
            out[name] = "the MMD compares generated with real images, and syn_ratio=0 generates none"
    return out


def refuse_ignored(cfg: TrainConfig, explicit: Any, where: str = "") -> None:
    """ConfigError naming every explicitly set field that ``cfg`` would silently ignore, and why."""
    bad = ignored_settings(cfg, explicit)
    if bad:
        raise ConfigError(where + "; ".join(f"{name}={getattr(cfg, name)!r} would do nothing ({why})"
                                            for name, why in bad.items()) + "; drop " + ", ".join(bad))


PATH_FIELDS = ("data_root", "stylegan_repo", "generator")
"""Fields that may hold a path (``generator`` when it is neither a zoo name nor ``random:``)."""


def absolute_paths(values: dict[str, Any], base: str | os.PathLike) -> dict[str, Any]:
    """``values`` with every relative path made absolute against ``base``, the directory the
    user launched from: a trial runs in a working directory of its own (on this machine or
    on another node), where ``data`` or ``checkpoints/g.pkl`` would name nothing."""
    out = dict(values)
    for k in PATH_FIELDS:
        v = out.get(k)
        if not v or (k == "generator" and not parse_generator(v).is_file):
            continue
        out[k] = os.path.normpath(os.path.join(os.fspath(base), os.path.expanduser(v)))
    return out


# ---------------------------------------------------------------------------------------------
# presets (their values: sqsp/presets.py)
# ---------------------------------------------------------------------------------------------
def preset(name: str, overrides: dict[str, Any] | list[str] | None = None, *, validate: bool = True) -> TrainConfig:
    """A preset with overrides applied (``{"key": value}`` or ``["key=value", ...]``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed: {sorted(PRESETS)}")
    over = parse_overrides(overrides)
    method = over.get("method", PRESETS[name].get("method", TrainConfig.method))
    _one_of("method", method, METHODS)
    # the method picks its line of the preset (presets.METHOD_SCALE); what is set explicitly wins
    values = {**TrainConfig().to_dict(), **PRESETS[name], **method_scale(name, method), **over}
    if not validate:
        cfg = TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})
        for f in fields(cfg):
            _check_type(f, getattr(cfg, f.name))
        return cfg
    cfg = TrainConfig.from_dict(values)
    refuse_ignored(cfg, parse_overrides(overrides))
    return cfg


def row_scale(preset_name: str, base: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A study row's overrides with the scale of the row's method added: the fields of its line
    in ``preset_name`` (presets.METHOD_SCALE), and of the base method's line back to the preset's
    own value, wherever ``base`` still holds the value its preset gives it (what the user's
    ``--set`` or the study's overrides changed stays as they set it; a ``--set`` equal to the
    preset's own value cannot be told from it). The row's own values come last."""
    method = row.get("method", base["method"])
    plain = {**TrainConfig().to_dict(), **PRESETS[preset_name]}
    line_base = {**plain, **method_scale(preset_name, base["method"])}
    want = {**plain, **method_scale(preset_name, method)}
    fields_ = set(method_scale(preset_name, base["method"])) | set(method_scale(preset_name, method))
    scale = {k: want[k] for k in sorted(fields_) if base.get(k) == line_base[k] and want[k] != base.get(k)}
    return {**scale, **row}


def parse_overrides(overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """``["lr=0.1", "squeeze=false"]`` -> typed dict; unknown keys and unparsable values are refused."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for o in overrides:
            if "=" not in o:
                raise ConfigError(f"override {o!r} is not of the form key=value")
            k, v = o.split("=", 1)
            items.append((k.strip(), v.strip()))
    known = {f.name for f in fields(TrainConfig)}
    out = {}
    for k, v in items:
        if k not in known:
            close = [n for n in known if k.replace("-", "_") == n or k in n or n in k]
            hint = f" (did you mean {sorted(close)}?)" if close else ""
            raise ConfigError(f"unknown config field {k!r}{hint}; allowed fields: {sorted(known)}")
        out[k] = _coerce(k, v)
    return out


def add_config_arguments(p, *, default_preset: str = "smoke") -> None:
    """The flags that make one config, shared by every entry point (``python -m sqsp.train`` too):
    ``--preset``, ``--data-root``, ``--set``; ``config_of_args`` reads them."""
    p.add_argument("--preset", default=default_preset, choices=sorted(PRESETS), metavar="PRESET",
                   help=f"base preset: {', '.join(sorted(PRESETS))} (default {default_preset})")
    p.add_argument("--data-root", help="dataset folder, for presets on real data (same as --set data_root=…)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the base config (repeatable), e.g. --set steps=200")


def add_run_arguments(p, *, seeds: int | tuple[int, ...] = 3, default_preset: str = "smoke",
                      holds: str = "the output folder", uri: bool = False) -> None:
    """The flags of every entry point that runs seeds into a folder: ``add_config_arguments``'
    and ``--seeds``, ``--storage`` (a study's ``sqsp.tune.study_main``, the Fig. 2 and appendix
    Fig. 1 commands). ``seeds`` is a default count, or a study's own seeds (then the default is
    None: the study's); ``--storage`` is a folder that ``holds`` the output (or a URI, where ``uri``)."""
    add_config_arguments(p, default_preset=default_preset)
    if isinstance(seeds, int):
        p.add_argument("--seeds", default=str(seeds), help=f"number of seeds, or a comma-separated list (default {seeds})")
    else:
        p.add_argument("--seeds", default=None,
                       help=f"a comma-separated list (4,7; a single seed: 7,) or a count N (seeds 0..N-1); default: "
                            f"the study's own seeds, {','.join(str(s) for s in seeds)}")
    p.add_argument("--storage", default="results",
                   help=f"folder{' or URI (s3://, gs://, file://…)' if uri else ''} that holds {holds} "
                        "(default ./results)")


def config_of_args(args) -> TrainConfig:
    """The validated config of ``add_config_arguments``' flags; raises ConfigError."""
    overrides = list(args.overrides) + ([f"data_root={args.data_root}"] if args.data_root else [])
    return preset(args.preset, overrides)


def config_from_args(args) -> tuple[TrainConfig, list[int]]:
    """The validated config and the seeds of ``add_run_arguments``' flags; raises ConfigError."""
    seeds = parse_seeds(args.seeds)
    return config_of_args(args), seeds


_HINTS = typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any) -> Any:
    return coerce(name, _HINTS[name], value)


def _check_type(f: dataclasses.Field, value: Any) -> None:
    check_type(f.name, _HINTS[f.name], value)
