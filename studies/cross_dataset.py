"""Appendix Table 5: cross-dataset linear classification. Each row pretrains on the preset's
dataset (real and synthetic images) and its backbone is then probed, frozen, on the other
datasets as well as on its own.

    python studies/cross_dataset.py                          # smoke: 3 rows x 3 seeds
    python studies/cross_dataset.py --preset paper-cifar10 --data-root data/    # → CIFAR-100, STL-10
    python studies/cross_dataset.py --set transfer_datasets=cifar100            # choose the targets

``transfer_datasets=auto`` probes the paper's pairs (CIFAR-10 → CIFAR-100 and STL-10, CIFAR-100 →
CIFAR-10 and STL-10, STL-10 → CIFAR-10 and CIFAR-100) and, at embedded scale, the other embedded
digits dataset. The probed datasets share ``data_root`` with the pretraining one and are resized
to the preset's image size. One pretraining run per row and seed serves every target.

The study itself (rows, seeds, table) is declared in studies/cross_dataset.yaml; this file runs it
(``python -m sqsp.tune --config studies/cross_dataset.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
