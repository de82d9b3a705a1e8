"""The two embedded datasets, built from scikit-learn's own data (offline, deterministic):
``digits``, its 8x8 handwritten digit scans in a fixed stratified train/test split, and
``digits-m``, those scans blended into patches of its two photographs (the MNIST-M recipe).
``data.load_split`` serves them like any other dataset.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import NATIVE_SIZE, SPLITS

# ---------------------------------------------------------------------------------------------
# digits (embedded)

DIGITS_TEST_SIZE = 450


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # Values are counts 0..16 of set pixels in 4x4 cells of the 32x32 bitmaps; map to 0..255.
    gray = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)             # (1797, 8, 8)
    images = torch.from_numpy(gray)[:, None].expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(d.target.astype(np.int64))
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=DIGITS_TEST_SIZE,
                                           stratify=d.target, random_state=0)
    return images, labels, train_idx, test_idx


def _load_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels, train_idx, test_idx = _digits_arrays()
    idx = torch.from_numpy(test_idx if split == "test" else train_idx)
    # Advanced indexing copies, so the cached tensors never leave this module.
    return images[idx], labels[idx]


# ---------------------------------------------------------------------------------------------
# digits-m (embedded default): the MNIST-M recipe on scikit-learn's own data
#
# Plain 16-px digits are too easy to show anything about representation learning: a linear
# classifier on raw pixels scores 97 % and an untrained ResNet's features ~89 %. MNIST-M
# (Ganin & Lempitsky 2015) makes a digit set hard by blending each digit into a random patch of
# a natural photograph, output = |patch - digit|: colour and texture now vary with the patch, so
# the class lives in the stroke shape alone. Everything it needs ships inside scikit-learn
# (1,797 digit scans, two 427x640 photographs), so it stays offline and deterministic.

DIGITS_M_VERSION = 1          # bump when the construction changes (recorded by the zoo)
DIGITS_M_PATCHES = 2          # backgrounds per scan: 2,694 train and 900 test images
DIGITS_M_CROP = (1, 4)        # patch side, in multiples of the image side, before downsampling
_DIGITS_M_SEEDS = {"train": 1, "test": 2}  # separate streams: the test set never depends on train


@functools.lru_cache(maxsize=2)
def _digits_m_arrays(split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images (N, 3, 32, 32), labels and the scan index each image was made from.

    Train and test images come from the disjoint train/test scans of ``digits``; each scan
    appears ``DIGITS_M_PATCHES`` times on different patches. Patches are cut at a random size
    of 1-4x the image side at a random place of a random photograph and area-downsampled, so
    they range from texture close-ups to small scenes."""
    from sklearn.datasets import load_sample_images

    size = NATIVE_SIZE["digits-m"]
    _, labels, train_idx, test_idx = _digits_arrays()
    scans = torch.from_numpy(train_idx if split != "test" else test_idx).repeat(DIGITS_M_PATCHES)
    digits = F.interpolate(_digit_scans()[scans][:, None], size=size, mode="bilinear",
                           align_corners=False).clamp_(0, 1)                     # (N, 1, s, s) in [0, 1]
    photos = [torch.from_numpy(np.array(p)).permute(2, 0, 1).float().div_(255) for p in load_sample_images().images]
    rng = np.random.default_rng(_DIGITS_M_SEEDS["test" if split == "test" else "train"])
    n = len(scans)
    which = rng.integers(len(photos), size=n)
    side = torch.from_numpy(rng.integers(DIGITS_M_CROP[0] * size, DIGITS_M_CROP[1] * size + 1, size=n))
    heights = torch.tensor([photos[i].shape[1] for i in which])
    widths = torch.tensor([photos[i].shape[2] for i in which])
    top = (torch.from_numpy(rng.random(n)) * (heights - side + 1)).long()
    left = (torch.from_numpy(rng.random(n)) * (widths - side + 1)).long()
    patches = torch.empty(n, 3, size, size)
    for p, photo in enumerate(photos):
        sel = torch.from_numpy(np.flatnonzero(which == p))
        patches[sel] = _area_crops(photo, top[sel], left[sel], side[sel], size)
    images = (patches - digits).abs_().mul_(255).round_().to(torch.uint8)
    return images, labels[scans], scans


def _area_crops(photo: torch.Tensor, top: torch.Tensor, left: torch.Tensor, side: torch.Tensor,
                size: int) -> torch.Tensor:
    """Square crops ``photo[:, top:top+side, left:left+side]`` area-downsampled to ``size``, all at
    once: ``adaptive_avg_pool2d``'s bins (floor/ceil edges) read off a summed-area table. Written
    by hand because no library pools thousands of crops of different sizes in one call, and
    cropping and pooling them one size at a time took several times longer."""
    sat = F.pad(photo.double().cumsum(1).cumsum(2), (1, 0, 1, 0))          # (3, H+1, W+1)
    i = torch.arange(size)
    start = i * side[:, None] // size                                        # (n, size)
    end = -(-(i + 1) * side[:, None] // size)
    y0, y1, x0, x1 = top[:, None] + start, top[:, None] + end, left[:, None] + start, left[:, None] + end

    def at(y, x):
        return sat[:, y[:, :, None], x[:, None, :]]                          # (3, n, size, size)

    total = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    area = (end - start)[:, :, None] * (end - start)[:, None, :]
    return (total / area).float().permute(1, 0, 2, 3)


def _digit_scans() -> torch.Tensor:
    """The 1,797 scans as float (N, 8, 8) in [0, 1] (set-pixel counts 0..16 of 4x4 cells)."""
    from sklearn.datasets import load_digits
    return torch.from_numpy(load_digits().images / 16.0).float()


def _load_digits_m(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels, _ = _digits_m_arrays("test" if split == "test" else "train")
    return images.clone(), labels.clone()


def digits_m_scans(split: str) -> torch.Tensor:
    """Which digit scan each image of a ``digits-m`` split shows (train and test share none)."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not allowed; allowed: {list(SPLITS)}")
    return _digits_m_arrays("test" if split == "test" else "train")[2].clone()
