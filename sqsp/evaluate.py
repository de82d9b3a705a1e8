"""Evaluation of a learned representation: kNN monitor, linear probes, MMD, CKA.

Accuracies are in percent, as in the paper's tables. Every backbone here takes float
images in [0, 1] (input normalisation lives inside the model) and returns (N, F) features.

* ``knn_accuracy`` -- the weighted kNN monitor of the authors' ``src/models/knn.py``
  (InstDisc, Wu et al. 2018): cheap, run during training.
* ``linear_probe_fast`` -- logistic regression on frozen, standardised features: seconds,
  for sweeps and smoke runs.
* ``linear_probe_paper`` -- the authors' protocol (``eval_classification.py``): a linear
  layer trained by SGD on augmented images through the frozen backbone. This is the one
  the paper's tables report.
* ``mmd2`` -- squared MMD between two sets of representations (paper Table 5, synthetic vs
  real domain gap); ``linear_cka`` -- representation similarity (appendix Fig. 1).
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sqsp.augment import build_augment
from sqsp.config import TrainConfig
from sqsp.device import autocast
from sqsp.lars import lars_scale_

# Authors' eval_classification.py: SGD with momentum 0.9 on the linear layer only, the layer
# initialised N(0, 0.01²) with zero bias, lr scaled by batch/256, cosine decay stepped per epoch.
# Their scripts: CIFAR-10/100 lr 30, batch 256, 90 epochs (the argparse default), wd 0;
# STL-10 lr 0.1 at batch 4096 (the argparse defaults) with LARS (sqsp/lars.py).
PAPER_PROBE_MOMENTUM = 0.9
PAPER_PROBE_INIT_STD = 0.01
FAST_PROBE_MAX_ITER = 300
_SIM_ELEMENTS = 1 << 24   # kNN: test rows per chunk x bank size (64 MB of float32 similarities)
_KERNEL_ELEMENTS = 1 << 22  # MMD: kernel entries per block (32 MB of float64)


# ---------------------------------------------------------------------------------------------
# helpers

@contextmanager
def _frozen_eval(module: nn.Module):
    """Put every submodule in eval mode (BN uses, and does not update, its running stats),
    then restore each submodule's own previous mode, not just the root's."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def _to_input(x_uint8: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = x_uint8.float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _check_uint8(name: str, images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(f"{name} must be uint8 (N, C, H, W); got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")


# ---------------------------------------------------------------------------------------------
# features

@torch.no_grad()
def extract_features(backbone: nn.Module, images_uint8: torch.Tensor, *, device, batch_size: int = 512,
                     channels_last: bool = False, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Features of ``images_uint8`` (N, C, H, W) as float32 (N, F) on ``device``.

    The backbone must already live on ``device``; it runs in eval mode and each of its
    submodules gets its previous mode back. The features stay on the device, where kNN,
    MMD and the probes use them: only the fast probe (scikit-learn) copies them to the host."""
    _check_uint8("images_uint8", images_uint8)
    device = torch.device(device)
    out = []
    with _frozen_eval(backbone):
        for i in range(0, images_uint8.shape[0], batch_size):
            x = _to_input(images_uint8[i:i + batch_size].to(device, non_blocking=True), channels_last)
            with autocast(device, amp_dtype):
                f = backbone(x)
            out.append(f.float().flatten(1))
    return torch.cat(out)


def probe_scores(backbone: nn.Module, train_feats: torch.Tensor, test_feats: torch.Tensor, train, test,
                 cfg: TrainConfig, *, linear: bool, **kw) -> dict[str, float]:
    """How a frozen backbone's features of a train/test pair score, as a config asks: the kNN
    monitor always, and with ``linear`` the configured linear probe (``cfg.probe``). The one
    path for a trained student and for the discriminator read directly (Table 1). ``kw``:
    ``device`` and the precision settings of ``extract_features``."""
    out = {"knn_acc": knn_accuracy(train_feats, train.labels, test_feats, test.labels, num_classes=train.num_classes,
                                   k=cfg.knn_k, t=cfg.knn_t)}
    if linear and cfg.probe == "fast":
        out["probe_acc"] = linear_probe_fast(train_feats, train.labels, test_feats, test.labels, seed=cfg.seed)
    elif linear and cfg.probe == "paper":
        evaluations: list[tuple[int, float]] = []
        out["probe_acc"] = linear_probe_paper(backbone, train, test, epochs=cfg.probe_epochs, lr=cfg.probe_lr,
                                              batch_size=cfg.probe_batch_size, optimizer=cfg.probe_optimizer,
                                              seed=cfg.seed, evaluations=evaluations, **kw)
        # what the authors' tables report: the best of the evaluations every 5 probe epochs
        out["probe_acc_best"] = max(acc for _, acc in evaluations)
    return out


# ---------------------------------------------------------------------------------------------
# kNN monitor

@torch.no_grad()
def knn_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, *, num_classes: int, k: int = 200, t: float = 0.1,
                 train_groups: torch.Tensor | None = None, test_groups: torch.Tensor | None = None) -> float:
    """Weighted kNN top-1 accuracy (%), the monitor of the authors' knn.py after InstDisc
    (Wu et al. 2018): cosine similarity to the labelled bank, the k most similar vote for
    their class with weight exp(sim / t). Defaults k=200, t=0.1 are the authors'.

    ``k`` is clipped to the bank size; bank entries labelled -1 (unlabelled) are dropped.
    Computed in float32 on the device the features are on, in chunks of test rows.

    With ``train_groups`` and ``test_groups`` (one id per row), a bank entry of the query's own
    group never votes. Given one split as both bank and queries, that is its leave-one-group-out
    accuracy: the validation monitor, which costs a forward pass over the validation images only."""
    if t <= 0:
        raise ValueError(f"t={t!r} must be > 0")
    if k < 1:
        raise ValueError(f"k={k!r} must be >= 1")
    if (train_groups is None) != (test_groups is None):
        raise ValueError("give both train_groups and test_groups, or neither")
    keep = train_labels >= 0
    bank = F.normalize(train_feats[keep].float(), dim=1)
    bank_labels = train_labels[keep].to(bank.device)
    if bank.shape[0] == 0:
        raise ValueError("no labelled training features for the kNN bank")
    if (test_labels < 0).any():
        raise ValueError("test_labels contain -1 (unlabelled); kNN accuracy needs labelled test data")
    queries = F.normalize(test_feats.float(), dim=1).to(bank.device)
    test_labels = test_labels.to(bank.device)
    if train_groups is not None:
        bank_groups = train_groups[keep.to(train_groups.device)].to(bank.device)
        test_groups = test_groups.to(bank.device)
    k = min(k, bank.shape[0])
    chunk = max(1, _SIM_ELEMENTS // bank.shape[0])
    correct = torch.zeros((), dtype=torch.int64, device=bank.device)
    for i in range(0, queries.shape[0], chunk):
        sim = queries[i:i + chunk] @ bank.T
        if train_groups is not None:
            sim.masked_fill_(test_groups[i:i + chunk, None] == bank_groups[None, :], float("-inf"))
        sim, idx = sim.topk(k, dim=1)
        # Subtracting each row's maximum rescales a row's votes by one constant: the
        # predicted class is the authors' exp(sim/t), and nothing overflows for small t.
        # Entries of the query's own group (-inf) get no vote.
        weight = ((sim - sim[:, :1]) / t).exp().nan_to_num_(0.0)
        scores = torch.zeros(sim.shape[0], num_classes, device=bank.device, dtype=weight.dtype)
        scores.scatter_add_(1, bank_labels[idx], weight)
        correct += (scores.argmax(dim=1) == test_labels[i:i + chunk]).sum()
    return 100.0 * correct.item() / queries.shape[0]


# ---------------------------------------------------------------------------------------------
# linear probes

def linear_probe_fast(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                      test_labels: torch.Tensor, *, seed: int = 0) -> float:
    """Top-1 accuracy (%) of a multinomial logistic regression on frozen features.

    A stand-in for the paper's probe when many runs must be compared: no augmentation,
    features standardised on the train split, scikit-learn's L-BFGS (deterministic), C=1,
    at most FAST_PROBE_MAX_ITER iterations (stopping early is accepted and not warned
    about: the ranking of runs settles well before full convergence)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    keep = (train_labels >= 0).cpu().numpy()
    x_train = train_feats.detach().cpu().double().numpy()[keep]
    y_train = train_labels.cpu().numpy()[keep]
    x_test = test_feats.detach().cpu().double().numpy()
    y_test = test_labels.cpu().numpy()
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(solver="lbfgs", C=1.0, max_iter=FAST_PROBE_MAX_ITER, random_state=seed)
    # BLAS gets the threads torch was given (one per trial under Ray): left alone, OpenBLAS
    # spins a thread per core and a loaded machine turns a 0.1 s fit into 30 s (measured).
    with warnings.catch_warnings(), threadpool_limits(torch.get_num_threads()):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_train), y_train)
        pred = clf.predict(scaler.transform(x_test))
    return 100.0 * float(np.mean(pred == y_test))


def linear_probe_paper(backbone: nn.Module, train, test, *, device, epochs: int, lr: float,
                       batch_size: int = 256, weight_decay: float = 0.0, optimizer: str = "sgd", seed: int = 0,
                       channels_last: bool = False, amp_dtype: torch.dtype | None = None,
                       evaluations: list[tuple[int, float]] | None = None) -> float:
    """Top-1 test accuracy (%) of the authors' linear evaluation (eval_classification.py), after
    the last epoch. With ``evaluations`` (a list), the (epoch, accuracy) of every evaluation the
    authors' script makes is appended to it: after epoch 0, every 5th and the last, of which
    their tables report the best (``best_acc1``). The test features are computed once (the
    backbone is frozen), so these cost a matrix product each.

    The backbone is frozen in eval mode (no gradients, BN running stats untouched) and
    must already live on ``device``. A linear layer on its features, initialised N(0, 0.01²)
    with zero bias, is trained with SGD (momentum 0.9, ``weight_decay``) at
    ``lr * batch_size / 256``, decayed by a cosine stepped once per epoch, for ``epochs``
    passes over the labelled ``train`` images (``ImageData``; -1 labels are skipped).
    ``optimizer="lars"`` puts SGD under LARS (``sqsp/lars.py``), as the authors' STL-10 script.
    Every sample gets its own random-resized crop (scale 0.08-1, torchvision's default that
    the authors use) and horizontal flip, on the device. Test images are used as they are:
    the authors' Resize + CenterCrop to the input size is the identity on data already at
    that size. The authors' CIFAR setting is ``lr=30, batch_size=256, epochs=90``.

    Deterministic given ``seed``: the caller's global RNG state is saved and restored."""
    if epochs < 1:
        raise ValueError(f"epochs={epochs!r} must be >= 1")
    if optimizer not in ("sgd", "lars"):
        raise ValueError(f"optimizer={optimizer!r} is not allowed; allowed: ['sgd', 'lars']")
    _check_uint8("train.images", train.images)
    _check_uint8("test.images", test.images)
    if (test.labels < 0).any():
        raise ValueError("test split has unlabelled (-1) images")
    device = torch.device(device)
    keep = train.labels >= 0
    images = train.images[keep].to(device)          # uint8 on the device: 4x smaller than float
    labels = train.labels[keep].to(device)
    n = images.shape[0]
    augment = build_augment("crop-flip", images.shape[-1], "sample")
    init_lr = lr * batch_size / 256

    @torch.no_grad()
    def features(x_uint8, train_mode):
        x = x_uint8.float().div_(255.0)
        if train_mode:
            x = augment(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            return backbone(x).float().flatten(1)

    fork_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with _frozen_eval(backbone), torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        dim = features(images[:1], False).shape[1]
        head = nn.Linear(dim, train.num_classes).to(device)
        nn.init.normal_(head.weight, std=PAPER_PROBE_INIT_STD)
        nn.init.zeros_(head.bias)
        lars = optimizer == "lars"  # LARS absorbs the weight decay into the gradient it rescales
        opt = torch.optim.SGD(head.parameters(), lr=init_lr, momentum=PAPER_PROBE_MOMENTUM,
                              weight_decay=0.0 if lars else weight_decay)
        shuffle = torch.Generator().manual_seed(seed)
        test_feats = extract_features(backbone, test.images, device=device, batch_size=max(batch_size, 512),
                                      channels_last=channels_last, amp_dtype=amp_dtype).to(device)
        test_labels = test.labels.cpu()

        def accuracy() -> float:
            with torch.no_grad():
                pred = head(test_feats).argmax(dim=1).cpu()
            return 100.0 * (pred == test_labels).float().mean().item()

        for epoch in range(epochs):
            for group in opt.param_groups:
                group["lr"] = init_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
            order = torch.randperm(n, generator=shuffle).to(device)
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                loss = F.cross_entropy(head(features(images[idx], True)), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if lars:
                    lars_scale_(head.parameters(), weight_decay=weight_decay)
                opt.step()
            if evaluations is not None and (epoch == 0 or (epoch + 1) % 5 == 0 or epoch == epochs - 1):
                evaluations.append((epoch, accuracy()))
        last = evaluations[-1][1] if evaluations else accuracy()
    return last


# ---------------------------------------------------------------------------------------------
# representation statistics

def _poly_kernel_sum(a: torch.Tensor, b: torch.Tensor, d: int) -> torch.Tensor:
    """Σ_ij (a_i·b_j / d + 1)³ in row blocks, so a 10k x 10k comparison needs 32 MB, not 800."""
    rows = max(1, _KERNEL_ELEMENTS // b.shape[0])
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i in range(0, a.shape[0], rows):
        total += (a[i:i + rows] @ b.T / d + 1.0).pow_(3).sum()
    return total


def mmd2(x: torch.Tensor, y: torch.Tensor, *, kernel: str = "poly", standardise: bool = True) -> float:
    """Unbiased estimate of the squared MMD between samples x (m, d) and y (n, d), with the
    cubic polynomial kernel k(a, b) = (a·b / d + 1)³ of KID (Bińkowski et al. 2018, the
    paper's ref. [4]); paper Table 5 measures the syn-real gap of representations with it.

        MMD² = Σ_{i≠j} k(x_i,x_j) / m(m-1) + Σ_{i≠j} k(y_i,y_j) / n(n-1) - 2 Σ_ij k(x_i,y_j) / mn

    ``standardise`` (the default) first maps every dimension to zero mean and unit variance
    with the pooled statistics of x and y together. KID's kernel is not scale-free: on raw
    backbone features, whose scale differs between trials and models by orders of magnitude,
    the same gap gave -62.5 in one trial and 1,453 in another. The paper does not say how it
    scaled its features; pooled standardisation makes MMD² invariant to any per-dimension
    affine change of the representation applied to both samples, so values compare across
    trials and methods. Constant dimensions carry no gap and become 0.

    Unbiased, so it scatters around 0 (and can be slightly negative) for two samples of
    one distribution. Computed in float64, blockwise."""
    if kernel != "poly":
        raise ValueError(f"kernel={kernel!r} is not allowed; allowed: ['poly']")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (m, d) and (n, d); got {tuple(x.shape)} and {tuple(y.shape)}")
    m, n, d = x.shape[0], y.shape[0], x.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 samples on each side; got m={m}, n={n}")
    x, y = x.detach().double(), y.detach().double().to(x.device)
    if standardise:
        pooled = torch.cat([x, y])
        mean, std = pooled.mean(0), pooled.std(0)
        scale = torch.where(std > 0, std, torch.ones_like(std))
        x, y = (x - mean) / scale, (y - mean) / scale

    def offdiag(a):
        diag = (a.pow(2).sum(dim=1) / d + 1.0).pow(3).sum()
        return _poly_kernel_sum(a, a, d) - diag

    value = offdiag(x) / (m * (m - 1)) + offdiag(y) / (n * (n - 1)) - 2.0 * _poly_kernel_sum(x, y, d) / (m * n)
    return float(value)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019, Eq. 5; appendix Fig. 1 of the paper) between two
    representations of the same n inputs, x (n, p) and y (n, q):

        CKA = ||Yᶜᵀ Xᶜ||²_F / (||Xᶜᵀ Xᶜ||_F ||Yᶜᵀ Yᶜ||_F),   ᶜ: columns centred.

    1 for identical representations, invariant to orthogonal transforms and isotropic
    scaling of either side. Uses the n x n Gram form when that is cheaper (p·q > n²);
    both forms are exact. Float64."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be (n, p) and (n, q); got {tuple(x.shape)} and {tuple(y.shape)}")
    x = x.detach().double()
    y = y.detach().double().to(x.device)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    n = x.shape[0]
    if x.shape[1] * y.shape[1] > n * n:
        gx, gy = x @ x.T, y @ y.T
        cross, norm_x, norm_y = (gx * gy).sum(), gx.norm(), gy.norm()
    else:
        cross = (y.T @ x).pow(2).sum()
        norm_x, norm_y = (x.T @ x).norm(), (y.T @ y).norm()
    return float(cross / (norm_x * norm_y))
