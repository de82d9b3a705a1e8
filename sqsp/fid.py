"""Fréchet distance between image sets in the space of a pluggable feature extractor.

FID (Heusel et al. 2017) is how the paper measures GAN quality (Fig. 6, appendix
Tables 5 and 7). A FID value only means something together with the extractor and the
sample counts it was computed with, so every value here is a ``FIDResult`` that carries
them, and the zoo stores them together: FIDs from different extractors must never be
compared.

Extractors map images in [-1, 1], (N, C, H, W), to features (N, D):

- ``classifier``: a small CNN trained on the labelled train split of the embedded
  dataset (``train_classifier``), its penultimate layer as features. This is what the
  embedded zoo uses offline. Its checkpoint is tensors + JSON in the zoo directory.
- ``inception``: torchvision's Inception-v3 (ImageNet weights), pool features (2048-d),
  used only if the weights file is already in the user's torch hub cache; nothing is
  downloaded. These are torchvision's weights, not the TF-Inception graph behind
  published FIDs, so values are close to but not identical with the paper's.

Why not torchmetrics' or torch-fidelity's FID: both accept a custom extractor, but the
Fréchet distance itself is a few lines of numpy here, and what this module adds (extractor
and sample counts carried with every value, the zoo's own offline classifier, no download
ever) is what neither does.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .data import resize
from .weights import save_weights

EXTRACTORS = ("classifier", "inception")


@dataclass(frozen=True)
class FIDResult:
    """A FID value with what it was computed with; FIDs with different ``extractor`` are incomparable."""
    value: float
    extractor: str          # e.g. "classifier-digits-m", "inception-v3-torchvision"
    n_samples: int          # images of the evaluated set (generated, or the real split under test)
    n_reference: int        # images of the reference set
    reference: str          # what the reference set is, e.g. "digits/train"
    extractor_sha256: str | None = None  # weights of the extractor, when it is a file

    def to_dict(self) -> dict:
        return asdict(self)


class Extractor(Protocol):
    name: str
    sha256: str | None

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


# ---------------------------------------------------------------------------------------------
# the distance
# ---------------------------------------------------------------------------------------------
def gaussian_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features (N, D), in float64."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2 to estimate a covariance; got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) between two Gaussians."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
        raise ValueError("the features' mean or covariance is not finite (NaN or infinite features?)")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return float(max(value, 0.0))  # negative only through round-off


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr((S1 S2)^{1/2}) for covariances S1, S2: S1 S2 is similar to S1^{1/2} S2 S1^{1/2}, which is
    symmetric and positive semi-definite, so the trace is the sum of the square roots of its
    eigenvalues, two symmetric eigendecompositions. Why not ``scipy.linalg.sqrtm(S1 @ S2)`` as
    pytorch-fid and clean-fid do: a Schur decomposition of a non-symmetric matrix, about 6x slower
    at Inception's 2048 dimensions on one core, and ill-posed where a covariance is singular
    (fewer samples than dimensions, dead features), which needs an eps*I retry and leaves complex
    round-off; here singular covariances are exact."""
    e1, v1 = np.linalg.eigh((s1 + s1.T) / 2)
    root = (v1 * np.sqrt(_nonnegative(e1))) @ v1.T
    m = root @ s2 @ root
    return float(np.sqrt(_nonnegative(np.linalg.eigvalsh((m + m.T) / 2))).sum())


def _nonnegative(e: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with round-off set to zero: below numpy's rank threshold
    (``matrix_rank``: largest x size x machine epsilon) an eigenvalue is noise, and its square
    root (~1e-8 for noise of 1e-16) would add up over thousands of null directions."""
    scale = float(np.abs(e).max(initial=0.0))
    tol = scale * e.size * np.finfo(np.float64).eps
    if e.size and e.min() < -max(tol, 1e-9 * scale):
        raise ValueError(f"a covariance is not positive semi-definite (eigenvalue {e.min():.3g}); "
                         "pass covariances of features (gaussian_stats)")
    return np.where(e > tol, e, 0.0)


def fid_from_features(feats: np.ndarray | torch.Tensor, ref_feats: np.ndarray | torch.Tensor, *, extractor: str,
                      reference: str, extractor_sha256: str | None = None) -> FIDResult:
    value = frechet_distance(*gaussian_stats(feats), *gaussian_stats(ref_feats))
    return FIDResult(value, extractor, len(feats), len(ref_feats), reference, extractor_sha256)


# ---------------------------------------------------------------------------------------------
# computing features
# ---------------------------------------------------------------------------------------------
def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float [-1, 1]; float images are taken to be in [-1, 1] already."""
    return images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def image_features(extractor: Extractor, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Features of real images (uint8 0..255 or float in [-1, 1])."""
    return torch.cat([extractor(to_model_range(images[i:i + batch_size])) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def generator_features(generator, extractor: Extractor, n: int, *, seed: int = 0, batch_size: int = 500,
                       labels: torch.Tensor | None = None) -> torch.Tensor:
    """Features of ``n`` generated images, latents from ``seed``. For a conditional generator,
    ``labels`` (int, length n) fixes the classes (e.g. the real label distribution);
    otherwise they are drawn uniformly."""
    device = next(generator.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        z, c = generator.sample_inputs(m, device, gen)
        if c is not None and labels is not None:
            c = F.one_hot(labels[i:i + m].to(device), generator.c_dim).float()
        out.append(extractor(generator(z, c, blocks=[]).images))
    return torch.cat(out)


def fid_of_generator(generator, extractor: Extractor, reference_images: torch.Tensor, *, n_samples: int,
                     reference: str, seed: int = 0, labels: torch.Tensor | None = None,
                     reference_features: torch.Tensor | None = None) -> FIDResult:
    ref = image_features(extractor, reference_images) if reference_features is None else reference_features
    fake = generator_features(generator, extractor, n_samples, seed=seed, labels=labels)
    return fid_from_features(fake, ref, extractor=extractor.name, reference=reference,
                             extractor_sha256=extractor.sha256)


# ---------------------------------------------------------------------------------------------
# extractor: a small classifier trained on the dataset
# ---------------------------------------------------------------------------------------------
class SmallClassifier(nn.Module):
    """Three conv stages and global pooling; ``features`` is the ``feature_dim``-d layer
    before the classification head. Kept small so that its covariance is well estimated from the ~1k
    images of the digits splits (an Inception 2048-d covariance would be rank-deficient)."""

    def __init__(self, *, resolution: int = 16, channels: int = 3, num_classes: int = 10, width: int = 32,
                 feature_dim: int = 64):
        super().__init__()
        self.resolution, self.channels, self.num_classes = resolution, channels, num_classes

        def stage(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

        self.body = nn.Sequential(stage(channels, width), nn.MaxPool2d(2), stage(width, 2 * width), nn.MaxPool2d(2),
                                  stage(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(4 * width, feature_dim))
        # features are taken before this ReLU: dead ReLU units would make the covariance singular
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(resize(x, self.resolution))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, *, num_classes: int, seed: int = 0,
                     epochs: int = 8, batch_size: int = 64, lr: float = 2e-3,
                     progress: Callable | None = None) -> SmallClassifier:
    """Train ``SmallClassifier`` on uint8 images (N, C, H, W); deterministic from ``seed``.
    Small random shifts keep it from memorising the ~1.3k training digits."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallClassifier(resolution=images.shape[-1], channels=images.shape[1], num_classes=num_classes)
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = to_model_range(images), labels.long()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * max(1, len(x_all) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    it = range(steps) if progress is None else progress(range(steps))
    for _ in it:
        idx = torch.randint(len(x_all), (batch_size,), generator=gen)
        x = x_all[idx]
        shift = torch.randint(-1, 2, (2,), generator=gen).tolist()
        x = torch.roll(x, shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(model(x), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def accuracy(model: SmallClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((model(to_model_range(images)).argmax(1) == labels).float().mean())


class ClassifierExtractor:
    """Penultimate-layer features of a ``SmallClassifier``."""

    def __init__(self, model: SmallClassifier, name: str, sha256: str | None = None):
        self.model, self.name, self.sha256 = model.eval().requires_grad_(False), name, sha256

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        return self.model.features(images.to(device).float()).float()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_classifier(model: SmallClassifier, path: str | os.PathLike, extra: dict | None = None) -> str:
    """Weights (safetensors) + JSON sidecar, each written atomically; returns the weights' sha256."""
    meta = {"format": "sqsp-classifier/1", "resolution": model.resolution, "channels": model.channels,
            "num_classes": model.num_classes, **(extra or {})}
    return file_sha256(save_weights(model, path, sidecar=meta))


def load_classifier_extractor(path: str | os.PathLike, *, name: str, expected_sha256: str | None = None,
                              device: str | torch.device = "cpu") -> ClassifierExtractor:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier checkpoint {str(path)!r} does not exist; `python -m sqsp.zoo build` "
                                "trains it")
    sha = file_sha256(path)
    if expected_sha256 is not None and sha != expected_sha256:
        raise ValueError(f"classifier checkpoint {str(path)!r} has sha256 {sha}, expected {expected_sha256}: "
                         "the file changed after it was recorded; rebuild with `python -m sqsp.zoo build --force`")
    meta = json.loads(path.with_suffix(".json").read_text())
    model = SmallClassifier(resolution=meta["resolution"], channels=meta["channels"], num_classes=meta["num_classes"])
    model.load_state_dict(load_file(str(path)))
    return ClassifierExtractor(model.to(device), name=name, sha256=sha)


# ---------------------------------------------------------------------------------------------
# extractor: Inception-v3 from the local torch cache
# ---------------------------------------------------------------------------------------------
class InceptionExtractor:
    name = "inception-v3-torchvision"

    def __init__(self, model: nn.Module, sha256: str | None):
        self.model, self.sha256 = model.eval().requires_grad_(False), sha256

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        x = images.to(device).float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        # The ImageNet weights were trained on inputs in [-1, 1] (torchvision's
        # transform_input converts to that range), so [-1, 1] images go in as they are.
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.model(x).float()


def inception_weights_path() -> Path:
    from torchvision.models import Inception_V3_Weights
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(Inception_V3_Weights.IMAGENET1K_V1.url)


def load_inception_extractor(device: str | torch.device = "cpu") -> InceptionExtractor:
    """Inception-v3 pool features, from weights already in the torch hub cache (never downloaded)."""
    from torchvision.models import inception_v3
    path = inception_weights_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"extractor 'inception' needs torchvision's Inception-v3 weights at {str(path)!r} (the torch hub cache, "
            "torch.hub.get_dir()), and they are not there. sqsp does not download them. On a machine with internet, "
            "run `python -c \"import torchvision; torchvision.models.inception_v3(weights='IMAGENET1K_V1')\"` and "
            "copy the file there (or set TORCH_HOME); or use extractor 'classifier'.")
    model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.fc = nn.Identity()
    return InceptionExtractor(model.to(device), file_sha256(path))
