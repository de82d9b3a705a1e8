"""Table 3 of the paper: squeeze and span built up one component at a time, rows a-f × seeds.

    python studies/ablation.py                                   # smoke preset, 3 seeds, local Ray
    python studies/ablation.py --preset paper-cifar10 --data-root data/ --gpus-per-trial 0.5
    python studies/ablation.py --resume                          # continue an interrupted run
    python analysis/tables.py results/ablation                   # the table again, from Parquet

Each row is overrides on top of the base config (the preset plus --set): rows switch
components off, and the weights they keep (λ sim_weight, μ var_weight, ν cov_weight, α
syn_ratio) come from the base, so ``--set var_weight=10`` changes μ in rows d-f. Rows a-c,
which have no regulariser, use λ = 1 as the authors' scripts for them do.
"""
import sys

from analysis.tables import Table, ablation_table
from sqsp.tune import Study, study_main

# rows a-c regress with MSE alone, at λ = 1 as the authors' kd.sh / kd_squeeze_novar_nocov.sh
OFF = dict(sim_weight=1.0, var_weight=0.0, cov_weight=0.0)
STUDY = Study(
    name="ablation",
    preset="smoke",
    grid=[
        # row  augmentation A     squeeze T_φ     L_var, L_cov      span: α = 1 is synthetic only
        {"row": "a", "syn_augment": False, "squeeze": False, **OFF, "syn_ratio": 1.0},   # L_RD only
        {"row": "b", "syn_augment": True, "squeeze": False, **OFF, "syn_ratio": 1.0},    # + A
        {"row": "c", "syn_augment": True, "squeeze": True, **OFF, "syn_ratio": 1.0},     # + T_φ: collapses
        {"row": "d", "syn_augment": True, "squeeze": True, "cov_weight": 0.0, "syn_ratio": 1.0},  # + L_var (μ)
        {"row": "e", "syn_augment": True, "squeeze": True, "syn_ratio": 1.0},            # + L_cov (ν)
        {"row": "f", "syn_augment": True, "squeeze": True},                              # + span (α)
    ],
    table=Table(ablation_table),
    description="Table 3 of the paper (rows a-f) as a Ray Tune grid over rows × seeds.",
)

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
