"""Table 2: SSL baselines (VICReg, SimSiam) on real, synthetic and mixed data against squeeze
(synthetic) and squeeze-and-span (mixed).

    python studies/ssl_baselines.py                                  # smoke: 8 rows x 3 seeds
    python studies/ssl_baselines.py --preset paper-cifar10 --data-root data/

"syn" rows train on generated images only (α = 1), "real" rows on real images only (α = 0),
"syn+real" rows on batches of both in the preset's proportion α (``syn_ratio``). VICReg and
SimSiam see both views of every image; squeeze distils the generator's features (Sec. 4).
"""
import sys

from analysis.tables import Table, ssl_table
from sqsp.tune import Study, study_main

# appendix Table 3: VICReg runs at λ = μ = 25 on every dataset (squeeze and span at 10 on CIFAR-100)
WEIGHTS = {"vicreg": {"sim_weight": 25.0, "var_weight": 25.0}, "simsiam": {}}
ROWS = [
    *({"row": f"{data}-{method}", "method": method, **WEIGHTS[method], **share}
      for method in ("vicreg", "simsiam")
      for data, share in (("real", {"syn_ratio": 0.0}), ("syn", {"syn_ratio": 1.0}), ("syn+real", {}))),
    {"row": "syn-squeeze", "method": "distill", "syn_ratio": 1.0},
    {"row": "syn+real-squeeze-and-span", "method": "distill"},
]

STUDY = Study(
    name="ssl_baselines",
    preset="smoke",
    grid=ROWS,
    table=Table(ssl_table),
    description="Table 2: VICReg and SimSiam on real / synthetic / mixed data against squeeze and span.",
)

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
