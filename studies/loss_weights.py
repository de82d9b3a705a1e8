"""Search the loss weights λ (sim_weight), μ (var_weight), ν (cov_weight) of squeeze and span
with Optuna's TPE sampler through Ray Tune (the paper fixes them per dataset in appendix
Table 2: λ = μ = 25, ν = 1 on CIFAR-10; this asks how much that choice matters).

    python studies/loss_weights.py                          # 16 trials on the smoke preset
    python studies/loss_weights.py --resume                 # continue: the restored search goes on
    python studies/loss_weights.py --set syn_ratio=1.0      # squeeze only
    python analysis/tables.py results/loss_weights          # the trials, best first

A searcher proposes one config per trial, so the study runs on one seed; rerun the best
weights over seeds with ``python studies/ablation.py --set sim_weight=… --set var_weight=…``
before trusting a difference smaller than the seed spread (README: 2–11 points at smoke).
"""
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ray import tune  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

from analysis.tables import search_markdown  # noqa: E402
from sqsp.tune import Study, study_main  # noqa: E402

SPACE = {
    "sim_weight": tune.loguniform(1.0, 100.0),   # λ
    "var_weight": tune.loguniform(1.0, 100.0),   # μ
    "cov_weight": tune.loguniform(0.04, 4.0),    # ν
}

STUDY = Study(
    name="loss_weights",
    preset="smoke",
    seeds=(0,),
    search_space=SPACE,
    searcher=OptunaSearch(seed=0),
    num_samples=16,
    table=search_markdown(tuple(SPACE)),
    description="Optuna (TPE) search over the loss weights λ, μ, ν of squeeze and span.",
)

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
