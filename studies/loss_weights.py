"""Search the loss weights λ (sim_weight), μ (var_weight), ν (cov_weight) and the synthetic
share α (syn_ratio) of squeeze and span with Optuna's TPE sampler through Ray Tune (the paper
fixes them per dataset in appendix Table 2: λ = μ = 25, ν = 1, α = 0.5 on CIFAR-10; this asks
how much that choice matters), as a researcher would run it:

- selected on a validation split (20 % of the labelled training images, by digit scan), never
  on the test split, whose accuracy is reported beside it;
- trials stopped early: ASHA on the per-epoch validation kNN, and a trial whose student stays
  collapsed for two epochs is stopped and recorded ``collapsed``;
- the 3 best trials re-run on seeds 1, 2, 3 (the search ran on seed 0), ranked by the mean;
- the parameter importances and the optimisation history drawn from the Parquet results.

    python studies/loss_weights.py                          # 16 trials + 3×3 confirmation, smoke preset
    python studies/loss_weights.py --resume                 # continue: the restored search goes on
    python studies/loss_weights.py --early-stopping off     # every trial runs to its end
    python studies/loss_weights.py --num-samples 32 --confirm-top 5
    python analysis/tables.py results/loss_weights          # the tables again, from Parquet
    python analysis/plots.py results/loss_weights           # importances.png, history.png

The study itself (rows, seeds, table) is declared in studies/loss_weights.yaml; this file runs it
(``python -m sqsp.tune --config studies/loss_weights.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
