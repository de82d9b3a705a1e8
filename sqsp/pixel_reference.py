"""The raw-pixel floor a representation must clear, computed once per machine, not once per trial.

The kNN monitor and the fast linear probe on raw pixels (``raw_knn_acc``, ``raw_probe_acc``)
are the same for every trial on a dataset, yet every fresh trial worker computed them again:
3.5 s of scikit-learn's L-BFGS on the 16-px ``digits-m`` default (the ablation's smoke trials
train for about as long), 9 s at 32 px, far more on CIFAR-sized data, and a study of many
trials has many workers. So the result is kept on disk, in ``$SQSP_CACHE_DIR`` (default
``~/.cache/sqsp``) under ``pixel-reference/``, one small JSON file per key.

The key is what the numbers depend on, so a cached value is the one the trial would have
computed: the images and labels themselves (their sha256, not the dataset's name or folder:
new files at the same root are other data), the kNN's k and temperature, the probe on or off,
the code that computes them (this file's and sqsp/evaluate.py's bytes), the versions of
torch, numpy and scikit-learn, the CPU kernels torch picks (AVX2 or AVX-512 round
differently) and the thread count. A missing, unreadable or corrupt file is computed again
and written over; a cache folder that cannot be written (a read-only home on a cluster) is
skipped, and the numbers are computed as before. Nothing here is needed for correctness: delete
the folder at any time.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import torch

from . import evaluate
from .storage import atomic_output

CACHE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("SQSP_CACHE_DIR") or Path.home() / ".cache" / "sqsp").expanduser()


@functools.lru_cache(maxsize=4)
def pixel_reference(dataset: str, data_root: str | None, image_size: int, *, knn_k: int, knn_t: float,
                    probe: bool = True) -> dict[str, float]:
    """``raw_knn_acc`` (and ``raw_probe_acc`` with ``probe``) of the dataset's raw pixels at
    ``image_size``: from the cache when it holds them for these very images, else computed and
    stored. On plain 16-px digits this is 97 %, above every learned representation, which is
    why the embedded default is ``digits-m``."""
    from .data import load_split
    train, test = (load_split(dataset, data_root, split, image_size) for split in ("train", "test"))
    path = cache_dir() / "pixel-reference" / f"{_key(train, test, knn_k, knn_t, probe)}.json"
    cached = _read(path, probe)
    if cached is not None:
        return cached
    x_train, x_test = train.images.flatten(1).float(), test.images.flatten(1).float()
    out = {"raw_knn_acc": evaluate.knn_accuracy(x_train, train.labels, x_test, test.labels,
                                                num_classes=train.num_classes, k=knn_k, t=knn_t)}
    if probe:
        out["raw_probe_acc"] = evaluate.linear_probe_fast(x_train, train.labels, x_test, test.labels)
    _write(path, {"dataset": dataset, "image_size": image_size, **out})
    return out


def _key(train, test, knn_k: int, knn_t: float, probe: bool) -> str:
    import numpy
    import sklearn
    h = hashlib.sha256()
    for t in (train.images, train.labels, test.images, test.labels):
        h.update(repr((t.dtype, tuple(t.shape))).encode())
        h.update(t.contiguous().numpy().tobytes())
    for source in (__file__, evaluate.__file__):
        h.update(Path(source).read_bytes())
    h.update(repr((CACHE_VERSION, train.num_classes, int(knn_k), float(knn_t), bool(probe), torch.__version__,
                   numpy.__version__, sklearn.__version__, torch.backends.cpu.get_cpu_capability(),
                   torch.get_num_threads())).encode())
    return h.hexdigest()


def _read(path: Path, probe: bool) -> dict[str, float] | None:
    try:
        stored = json.loads(path.read_text())
        return {k: float(stored[k]) for k in ("raw_knn_acc", "raw_probe_acc")[:2 if probe else 1]}
    except (OSError, ValueError, TypeError, KeyError):
        return None  # absent, half-read or corrupt: computed again and written over


def _write(path: Path, record: dict) -> None:
    try:
        with atomic_output(path) as f:  # a reader never sees half a file; concurrent writers write the same
            f.write(json.dumps(record).encode())
    except OSError:
        pass  # a cache that cannot be written is only a slower run
