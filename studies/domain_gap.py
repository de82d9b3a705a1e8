"""Table 5: the gap between synthetic and real images in the learned representation, as the
squared MMD (KID's cubic kernel) between backbone features of generated images and of real
test images, for VICReg and squeeze trained on synthetic only or on both.

    python studies/domain_gap.py                            # smoke: 4 rows x 3 seeds
    python studies/domain_gap.py --preset paper-cifar10 --data-root data/

Span is meant to shrink the gap (Sec. 4.2): the paper reports an order of magnitude less
MMD² for squeeze and span than for squeeze alone on CIFAR-10 and CIFAR-100.
"""
import sys

from analysis.tables import Table, domain_gap_table
from sqsp.tune import Study, study_main

VICREG = {"sim_weight": 25.0, "var_weight": 25.0}  # appendix Table 3: VICReg's λ, μ on every dataset

STUDY = Study(
    name="domain_gap",
    preset="smoke",
    grid=[
        {"row": "syn-vicreg", "method": "vicreg", **VICREG, "syn_ratio": 1.0},
        {"row": "syn+real-vicreg", "method": "vicreg", **VICREG},
        {"row": "syn-squeeze", "method": "distill", "syn_ratio": 1.0},
        {"row": "syn+real-squeeze-and-span", "method": "distill"},
    ],
    overrides={"eval_mmd": True},
    metric="mmd_syn_real",
    mode="min",
    table=Table(domain_gap_table),
    description="Table 5: MMD² between synthetic and real representations, VICReg vs squeeze, with and without real data.",
)

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
