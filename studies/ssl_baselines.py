"""Table 2: SSL baselines (VICReg, SimSiam) on real, synthetic and mixed data against squeeze
(synthetic) and squeeze-and-span (mixed).

    python studies/ssl_baselines.py                                  # smoke: 8 rows x 3 seeds
    python studies/ssl_baselines.py --preset paper-cifar10 --data-root data/

"syn" rows train on generated images only (α = 1), "real" rows on real images only (α = 0),
"syn+real" rows on batches of both in the preset's proportion α (``syn_ratio``). VICReg and
SimSiam see both views of every image; squeeze distils the generator's features (Sec. 4).

The study itself (rows, seeds, table) is declared in studies/ssl_baselines.yaml; this file runs it
(``python -m sqsp.tune --config studies/ssl_baselines.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
