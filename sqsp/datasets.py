"""The datasets sqsp knows, in one place: their names, which are embedded, their class counts and
native image sizes.

The config validates ``dataset`` against ``DATASETS``, the loaders (sqsp/data.py) read them, and
analysis/ takes a probe's chance level from ``NUM_CLASSES``; this module imports nothing, so
that analysis/ reads it without torch.
"""
from __future__ import annotations

DATASETS = ("digits-m", "digits", "cifar10", "cifar100", "stl10", "imagefolder")
EMBEDDED_DATASETS = ("digits-m", "digits")  # built from scikit-learn's own data: no data_root
NUM_CLASSES = {"digits-m": 10, "digits": 10, "cifar10": 10, "cifar100": 100, "stl10": 10}
"""Classes of each dataset with a fixed label set (an image folder has as many as it has folders)."""
SPLITS = ("train", "test", "pretrain")
"""``pretrain`` is what a representation learns from (STL-10: train + unlabeled); probes use the others."""
NATIVE_SIZE = {"digits-m": 32, "digits": 8, "cifar10": 32, "cifar100": 32, "stl10": 96}
