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
"""
import sys

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from analysis.plots import search_figures
from analysis.tables import Table, search_table
from sqsp.tune import CollapseStopper, Search, Study, study_main

SPACE = {
    "sim_weight": tune.loguniform(1.0, 100.0),     # λ
    "var_weight": tune.loguniform(1.0, 100.0),     # μ
    "cov_weight": tune.loguniform(0.04, 4.0),      # ν
    "syn_ratio": tune.quniform(0.25, 1.0, 0.125),  # α: 1 is squeeze alone; steps keep ≥ 2 real images a batch
}

STUDY = Study(
    name="loss_weights",
    preset="smoke",
    seeds=(0,),
    overrides={"val_fraction": 0.2},
    # 16 trials proposed by TPE; the 3 best re-run on seeds 1, 2, 3
    search=Search(OptunaSearch(seed=0), SPACE, num_samples=16, confirm_top=3, confirm_seeds=(1, 2, 3)),
    metric="val_probe_acc",
    mode="max",
    # progress = step / total steps, so the rungs (a quarter and three quarters of the run) are the
    # same on every preset; a third of the trials go on at each
    scheduler=ASHAScheduler(time_attr="progress", metric="val_knn_acc", mode="max", max_t=1.0, grace_period=0.25,
                            reduction_factor=3),
    stopper=CollapseStopper(patience=2),
    table=Table(search_table, columns=tuple(SPACE)),
    figures=search_figures,
    description="Optuna (TPE) search over λ, μ, ν, α of squeeze and span, selected on a validation split, "
                "stopped early, the best re-run on more seeds.",
)

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
