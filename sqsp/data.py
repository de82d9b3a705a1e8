"""Image data sets as whole uint8 tensors in memory.

Every split is returned as one ``ImageData``: all images as a uint8 ``(N, 3, S, S)``
tensor and int64 labels (-1 for STL-10's unlabelled images). Holding the data as one
tensor is what lets the training loop move it to the device once and augment whole
batches there (airbench style) instead of decoding and transforming per image.

Data sets and splits:

* ``digits-m`` -- the embedded default: scikit-learn's 8x8 handwritten digit scans blended into
  patches of the two photographs scikit-learn ships (``load_sample_images``), the MNIST-M recipe
  of Ganin & Lempitsky (2015). Offline, deterministic, and hard enough that a representation
  matters: a linear classifier on its raw pixels scores ~65-70 %, against 97 % on plain digits.
* ``digits`` -- the plain scans (the fastest tests; a cross-dataset probe target). A fixed
  stratified 1347/450 split of the scans, which ``digits-m`` shares.
* ``cifar10`` / ``cifar100`` / ``stl10`` -- through torchvision's data set classes, from a
  data root laid out as in the authors' README (see ``LAYOUTS`` or any error message).
* ``imagefolder`` -- ``root/train/<class>/*`` and ``root/val/<class>/*`` (ImageNet-100).

``split="pretrain"`` is the data the representation is learned from: ``train`` for all
data sets but STL-10, where it is train + unlabeled as in the paper (Sec. 5.1) and the
authors' ``src/data/dataset.py``. Linear probes and kNN use ``train`` and ``test``.
``validation.validation_split`` carves a validation split out of ``train`` for choosing between
runs (stratified, fixed seed, by source image where a data set has several versions of one:
``validation.split_groups``); the representation still learns from all of ``train``, without
labels. The two embedded data sets are built in ``digits.py``.
"""
from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import DATASETS, EMBEDDED_DATASETS, NUM_CLASSES, SPLITS  # noqa: F401 (SPLITS: read here too)
from .digits import _load_digits, _load_digits_m
from .errors import UserError

_RESIZE_CHUNK = 2048  # images per interpolation call: bounds the float32 copy (~300 MB at 96 px)


class DatasetLayoutError(UserError, RuntimeError):
    """The data root is missing, laid out differently, or holds malformed files."""


@dataclass(frozen=True)
class ImageData:
    """One split held in memory. ``images`` uint8 (N, 3, S, S), ``labels`` int64 (N,), -1
    where unlabelled. ``name`` is the ``dataset`` argument of ``load_split`` (e.g. "cifar10").

    Tensors are not shared with any cache: every ``load_split`` call returns fresh ones,
    so a caller may modify them in place without affecting other callers."""
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    name: str

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W); got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 (N,) with N={self.images.shape[0]}; "
                             f"got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def take(self, index: torch.Tensor) -> "ImageData":
        """The images at ``index`` (a copy), e.g. one side of ``validation_split``."""
        return ImageData(self.images[index], self.labels[index], self.num_classes, self.name)


# ---------------------------------------------------------------------------------------------
# Expected on-disk layouts, shown in every error about a root (the tree of the authors' README).

LAYOUTS = {
    "cifar10": """\
{root}/
└── CIFAR10/
    └── cifar-10-batches-py/      (extracted cifar-10-python.tar.gz)
        ├── data_batch_1 ... data_batch_5
        ├── test_batch
        └── batches.meta
Download: https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz""",
    "cifar100": """\
{root}/
└── CIFAR100/
    └── cifar-100-python/         (extracted cifar-100-python.tar.gz)
        ├── train
        ├── test
        └── meta
Download: https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz""",
    "stl10": """\
{root}/
└── STL10/
    └── stl10_binary/             (extracted stl10_binary.tar.gz)
        ├── train_X.bin, train_y.bin
        ├── test_X.bin, test_y.bin
        └── unlabeled_X.bin       (needed for split='pretrain')
Download: http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz""",
    "imagefolder": """\
{root}/
├── train/
│   ├── <class_a>/*.jpg|*.png ...
│   └── <class_b>/...
└── val/                          (split='test'; same class folders as train/)
    ├── <class_a>/...
    └── <class_b>/...""",
}

_DATASET_DIR = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "stl10": "STL10"}
_BASE_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "stl10": "stl10_binary"}


def _layout_error(dataset: str, root, problem: str) -> DatasetLayoutError:
    shown = "<root>" if root is None else str(Path(root).expanduser().resolve())
    msg = f"{dataset}: {problem}\nLooked in data root: {shown}\nExpected layout:\n{LAYOUTS[dataset].format(root=shown)}"
    if root is not None and dataset in _BASE_FOLDER:
        r = Path(root)
        if (r / _BASE_FOLDER[dataset]).is_dir() or r.name == _DATASET_DIR[dataset]:
            msg += (f"\nHint: {shown} looks like the {_DATASET_DIR[dataset]} folder itself; "
                    f"pass its parent directory as the root.")
    return DatasetLayoutError(msg)


def _check_split_args(dataset: str, split: str, image_size: int) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is not allowed; allowed: {list(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not allowed; allowed: {list(SPLITS)}")
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size={image_size!r} must be a positive int")


def load_split(dataset: str, root: str | None, split: str, image_size: int) -> ImageData:
    """Load one split as uint8 tensors resized to ``image_size`` (antialiased bilinear).

    ``root`` is not used for the embedded data sets; for CIFAR/STL it is the data root that holds
    ``CIFAR10/``, ``CIFAR100/`` or ``STL10/``; for ``imagefolder`` the folder holding
    ``train/`` and ``val/``. The layout is checked before anything large is read.
    """
    _check_split_args(dataset, split, image_size)
    if dataset == "digits":
        images, labels = _load_digits(split)
    elif dataset == "digits-m":
        images, labels = _load_digits_m(split)
    else:
        if root is None or not Path(root).expanduser().is_dir():
            raise _layout_error(dataset, root, f"data root {root!r} is not a directory")
        root = Path(root).expanduser()
        if dataset in ("cifar10", "cifar100"):
            images, labels = _load_cifar(dataset, root, split)
        elif dataset == "stl10":
            images, labels = _load_stl10(root, split, image_size)
        else:
            images, labels, num_classes = _load_imagefolder(root, split, image_size)
            return ImageData(images, labels, num_classes, dataset)
    if images.shape[-1] != image_size or images.shape[-2] != image_size:
        images = resize_uint8(images, image_size)
    return ImageData(images, labels, NUM_CLASSES[dataset], dataset)


def check_layout(dataset: str, root: str | None, splits: tuple[str, ...] | list[str] = SPLITS) -> None:
    """Raise DatasetLayoutError unless ``root`` holds ``splits`` of ``dataset`` laid out as
    expected. Cheap (folder listings, file sizes, STL-10's label files): a study checks
    every data root once in the driver, before any trial starts. Whether the files parse
    is found out by ``load_split``."""
    for split in splits:
        _check_split_args(dataset, split, 1)
    if dataset in EMBEDDED_DATASETS:  # nothing on disk
        return
    if root is None or not Path(root).expanduser().is_dir():
        raise _layout_error(dataset, root, f"data root {root!r} is not a directory")
    path = Path(root).expanduser()
    for split in splits:
        if dataset in ("cifar10", "cifar100"):
            _check_cifar_layout(dataset, path, split != "test")
        elif dataset == "stl10":
            _check_stl_layout(path, split)
        else:
            _check_imagefolder_layout(path, split)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float images (N, C, H, W) at (size, size) by antialiased bilinear interpolation, as
    every resize in sqsp (a 32 px generator's images for a 16 px student, a dataset at the
    preset's size): without antialiasing a downsized image aliases. Unchanged at that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def resize_uint8(images: torch.Tensor, size: int, chunk: int = _RESIZE_CHUNK) -> torch.Tensor:
    """Antialiased bilinear resize of a uint8 (N, C, H, W) tensor to (N, C, size, size),
    chunk by chunk so the float copy stays bounded; rounds back to uint8."""
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, images.shape[0], chunk):
        x = resize(images[i:i + chunk].float(), size)
        out[i:i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100

def _cifar_files(dataset: str):
    """torchvision's description of the official archive: folder, batch file names, meta file."""
    from torchvision.datasets import CIFAR10, CIFAR100
    return {"cifar10": CIFAR10, "cifar100": CIFAR100}[dataset]


def _check_cifar_layout(dataset: str, root: Path, train: bool) -> Path:
    cls = _cifar_files(dataset)
    folder = root / _DATASET_DIR[dataset] / cls.base_folder
    if not folder.is_dir():
        raise _layout_error(dataset, root, f"folder {folder} does not exist")
    needed = [name for name, _ in (cls.train_list if train else cls.test_list)] + [cls.meta["filename"]]
    missing = [n for n in needed if not (folder / n).is_file() or (folder / n).stat().st_size == 0]
    if missing:
        raise _layout_error(dataset, root, f"missing or empty file(s) {missing} in {folder}")
    return folder


class CifarUnpickler(pickle.Unpickler):
    """Unpickles only what the official CIFAR batches hold: dicts, lists, strings, numbers
    and numpy arrays. Any other global (``os.system``, a class with a ``__reduce__``) is
    refused before it is looked up, so a tampered batch runs no code.

    torchvision's CIFAR classes call ``pickle.load`` inline in ``__init__`` (and check md5s
    that only the official archive passes, so tests and re-packed copies need them off), and
    cannot be given another unpickler without patching the pickle module for the whole
    process; so the batches are read here, with torchvision's file lists and its parsing
    (``data`` rows of 3072 bytes, ``labels`` or ``fine_labels``)."""

    # The official files were pickled by Python 2 with numpy 1 (numpy.core...); numpy 2
    # pickles name numpy._core; Python 3 at protocol 2 writes bytes via _codecs.encode, and
    # protocol 5 writes arrays via _frombuffer.
    _ALLOWED = {("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype",
                **{(f"numpy.{core}.multiarray", name): name for core in ("core", "_core")
                   for name in ("_reconstruct", "scalar")},
                **{(f"numpy.{core}.numeric", "_frombuffer"): "_frombuffer" for core in ("core", "_core")},
                ("_codecs", "encode"): "encode"}

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")  # as torchvision: Python 2 str -> str
        self.path = path

    def find_class(self, module: str, name: str):
        what = self._ALLOWED.get((module, name))
        if what is None:
            raise pickle.UnpicklingError(
                f"{self.path} refers to the global {module}.{name}, which a CIFAR batch never holds (only dicts, "
                "lists, strings, numbers and numpy arrays); refusing to unpickle it, since that could run code. "
                "Replace the file with the one from the official archive")
        if what == "encode":
            return _latin1_encode
        if what in ("ndarray", "dtype"):
            return getattr(np, what)
        try:
            from numpy._core import multiarray, numeric  # numpy >= 2
        except ImportError:  # pragma: no cover - numpy 1
            from numpy.core import multiarray, numeric
        return getattr(numeric if what == "_frombuffer" else multiarray, what)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2, and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not how a pickle "
                                     "stores bytes; refusing it")
    return text.encode("latin1")


def read_cifar_pickle(path: Path) -> Any:
    """One CIFAR pickle (a batch or the meta file) through ``CifarUnpickler``."""
    with open(path, "rb") as f:
        return CifarUnpickler(f, path).load()


def _load_cifar(dataset: str, root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    train = split != "test"
    folder = _check_cifar_layout(dataset, root, train)
    cls = _cifar_files(dataset)
    xs, ys = [], []
    for name, _md5 in (cls.train_list if train else cls.test_list):
        path = folder / name
        try:
            entry = read_cifar_pickle(path)
            x = entry["data"]
            y = entry["labels"] if "labels" in entry else entry["fine_labels"]
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
                raise ValueError(f"'data' is {type(x).__name__} {getattr(x, 'dtype', '')} "
                                 f"{getattr(x, 'shape', '')}, not uint8 rows of 3072 bytes")
            y = np.asarray(y, dtype=np.int64)
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise _layout_error(dataset, root, f"malformed batch file {path} ({type(e).__name__}: {e})") from None
        xs.append(x)
        ys.append(y)
    # rows hold the 1024 red values (row-major 32x32), then green, then blue: NCHW as it is
    images = torch.from_numpy(np.ascontiguousarray(np.concatenate(xs).reshape(-1, 3, 32, 32)))
    labels = torch.from_numpy(np.concatenate(ys))
    if labels.shape[0] != images.shape[0] or (labels.numel() and (labels.min() < 0 or labels.max() >= NUM_CLASSES[dataset])):
        raise _layout_error(dataset, root, f"labels do not match the images ({labels.shape[0]} labels, "
                                           f"{images.shape[0]} images, range {labels.min()}..{labels.max()})")
    return images, labels


# ---------------------------------------------------------------------------------------------
# STL-10

_STL_BYTES = 3 * 96 * 96


def _check_stl_layout(root: Path, split: str) -> None:
    folder = root / "STL10" / "stl10_binary"
    if not folder.is_dir():
        raise _layout_error("stl10", root, f"folder {folder} does not exist")
    prefixes = {"train": ["train"], "test": ["test"], "pretrain": ["train", "unlabeled"]}[split]
    for p in prefixes:
        x = folder / f"{p}_X.bin"
        if not x.is_file():
            raise _layout_error("stl10", root, f"missing file {x}")
        size = x.stat().st_size
        if size == 0 or size % _STL_BYTES:
            raise _layout_error("stl10", root, f"{x} has {size} bytes, not a multiple of one 3x96x96 image "
                                               f"({_STL_BYTES} bytes)")
        if p == "unlabeled":
            continue
        y = folder / f"{p}_y.bin"
        if not y.is_file():
            raise _layout_error("stl10", root, f"missing file {y}")
        labels = np.fromfile(y, dtype=np.uint8)
        if labels.size != size // _STL_BYTES or labels.min() < 1 or labels.max() > 10:
            found = f"{labels.size} labels" + (f" in {labels.min()}..{labels.max()}" if labels.size else "")
            raise _layout_error("stl10", root, f"{y} holds {found}; expected {size // _STL_BYTES} labels in 1..10")


def _load_stl10(root: Path, split: str, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import STL10

    class UnverifiedSTL10(STL10):
        # Same reason as for CIFAR: torchvision's md5 check rejects anything but the official
        # files; the layout and the file sizes were checked by _check_stl_layout.
        def _check_integrity(self) -> bool:
            return True

    _check_stl_layout(root, split)
    # For 'pretrain' we load 'train' and 'unlabeled' separately and resize each before joining,
    # rather than torchvision's 'train+unlabeled' which concatenates 2.8 GB of 96 px arrays.
    parts = ["train", "unlabeled"] if split == "pretrain" else [split]
    images, labels = [], []
    for part in parts:
        ds = UnverifiedSTL10(str(root / "STL10"), split=part, download=False)
        x = torch.from_numpy(ds.data)  # (N, 3, 96, 96), a transposed view of the column-major file
        images.append(resize_uint8(x, image_size) if image_size != 96 else x.contiguous())
        # torchvision maps the file's 1..10 to 0..9 and gives -1 to unlabeled images.
        labels.append(torch.from_numpy(ds.labels.astype(np.int64)))
        del ds, x
    if len(parts) == 1:
        return images[0], labels[0]
    return torch.cat(images), torch.cat(labels)


# ---------------------------------------------------------------------------------------------
# Image folders (ImageNet-100)
#
# Every image is decoded once, resized (shorter side) and center-cropped to image_size, and
# kept in memory as uint8: ImageNet-100 at 96 px is 127k x 27.6 kB = 3.5 GB, which fits.
# Full ImageNet (1.28M images, 35 GB at 96 px) does not; it would need a streaming loader.

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm", ".tif", ".tiff")


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _check_imagefolder_layout(root: Path, split: str) -> tuple[Path, list[str]]:
    train_dir, val_dir = root / "train", root / "val"
    for d in (train_dir, val_dir) if split == "test" else (train_dir,):
        if not d.is_dir():
            raise _layout_error("imagefolder", root, f"folder {d} does not exist")
    classes = _class_dirs(train_dir)
    if not classes:
        raise _layout_error("imagefolder", root, f"{train_dir} has no class folders")
    folder = val_dir if split == "test" else train_dir
    if split == "test":
        # Labels are indices into the sorted class folders; val/ must have the same set or
        # its indices would silently mean different classes than train/'s.
        val_classes = _class_dirs(val_dir)
        if val_classes != classes:
            diff = sorted(set(classes) ^ set(val_classes))
            raise _layout_error("imagefolder", root, f"class folders of {val_dir} differ from {train_dir}: "
                                                     f"{diff[:10]}{' ...' if len(diff) > 10 else ''}")
    empty = [c for c in classes if not any(f.suffix.lower() in _IMAGE_EXTENSIONS for f in (folder / c).iterdir())]
    if empty:
        raise _layout_error("imagefolder", root, f"class folder(s) without images in {folder}: {empty[:10]}")
    return folder, classes


def _open_rgb(path: str):
    """One image file as RGB; a file PIL cannot read (truncated, not an image despite its
    extension) is a data error naming the file: the same trial would fail on it again."""
    from PIL import Image
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
        raise DatasetLayoutError(f"imagefolder: cannot read image {path} ({type(e).__name__}: {e}); "
                                 "remove or replace the file") from None


def _load_imagefolder(root: Path, split: str, image_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    folder, classes = _check_imagefolder_layout(root, split)
    transform = T.Compose([T.Resize(image_size, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                           T.CenterCrop(image_size), T.PILToTensor()])
    ds = ImageFolder(str(folder), transform=transform, loader=_open_rgb,
                     is_valid_file=lambda p: Path(p).suffix.lower() in _IMAGE_EXTENSIONS)
    assert ds.classes == classes, (ds.classes, classes)
    n = len(ds)
    images = torch.empty((n, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    # Decoding is the cost here; worker processes only pay off beyond a few thousand files.
    workers = min(8, os.cpu_count() or 1) if n >= 4096 else 0
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=False, num_workers=workers)
    i = 0
    for x, _ in loader:
        images[i:i + len(x)] = x
        i += len(x)
    return images, labels, len(classes)


# ---------------------------------------------------------------------------------------------
# Normalisation statistics

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_PUBLISHED_STATS = {
    # Per-pixel mean/std of the training sets in [0, 1]. The authors' code normalises both
    # CIFARs with (0.4914, 0.4822, 0.4465)/(0.2023, 0.1994, 0.2010) and STL-10 with ImageNet
    # statistics; with batch norm after the first conv the difference does not matter.
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "imagefolder": IMAGENET_STATS,
}


def channel_stats(dataset: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) per channel for images in [0, 1], used by the model's input normalisation.
    Published values for the real data sets, ImageNet's for image folders, and computed
    from the train split (at native size) for the embedded ones."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is not allowed; allowed: {list(DATASETS)}")
    if dataset in EMBEDDED_DATASETS:
        return _embedded_stats(dataset)
    return _PUBLISHED_STATS[dataset]


@functools.lru_cache(maxsize=2)
def _embedded_stats(dataset: str):
    x = (_load_digits("train") if dataset == "digits" else _load_digits_m("train"))[0].double() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
