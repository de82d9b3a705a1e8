"""Table 3 of the paper: squeeze and span built up one component at a time, rows a-f × seeds.

    python studies/ablation.py                                   # smoke preset, 3 seeds, local Ray
    python studies/ablation.py --preset paper-cifar10 --data-root data/ --gpus-per-trial 0.5
    python studies/ablation.py --resume                          # continue an interrupted run
    python analysis/tables.py results/ablation                   # the table again, from Parquet

Each row is overrides on top of the base config (the preset plus --set): rows switch
components off, and the weights they keep (λ sim_weight, μ var_weight, ν cov_weight, α
syn_ratio) come from the base, so ``--set var_weight=10`` changes μ in rows d-f. Rows a-c,
which have no regulariser, use λ = 1 as the authors' scripts for them do.

The study itself (rows, seeds, table) is declared in studies/ablation.yaml; this file runs it
(``python -m sqsp.tune --config studies/ablation.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
