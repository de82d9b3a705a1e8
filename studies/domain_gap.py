"""Table 5: the gap between synthetic and real images in the learned representation, as the
squared MMD (KID's cubic kernel) between backbone features of generated images and of real
test images, for VICReg and squeeze trained on synthetic only or on both.

    python studies/domain_gap.py                            # smoke: 4 rows x 3 seeds
    python studies/domain_gap.py --preset paper-cifar10 --data-root data/

Span is meant to shrink the gap (Sec. 4.2): the paper reports an order of magnitude less
MMD² for squeeze and span than for squeeze alone on CIFAR-10 and CIFAR-100.

The study itself (rows, seeds, table) is declared in studies/domain_gap.yaml; this file runs it
(``python -m sqsp.tune --config studies/domain_gap.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
