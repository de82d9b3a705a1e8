"""Appendix Table 7 and Fig. 6: how the generator — its architecture, conditioning and how far
it was trained (FID) — changes what squeeze distils.

    python studies/generators.py                          # every zoo generator x 3 seeds (builds the zoo)
    python studies/generators.py --set syn_ratio=0.5      # squeeze and span instead of squeeze
    python studies/generators.py --preset paper-cifar10 --data-root data --generators 'runs/00000/*.pkl'
    python analysis/plots.py results/generators           # Fig. 6: accuracy against FID

With ``--generators`` each file the pattern matches (a folder of StyleGAN2-ADA snapshots,
``network-snapshot-<kimg>.pkl``) is a row, named ``<run folder>@<kimg>``, and its FID is
computed against the real train split with Inception-v3 (one Ray task per file, on a GPU
where the cluster has them; ``--fid-samples``, default 50k) or read from a manifest that
records it (``--manifest``). Without it, on a paper preset, the zoo's digits GANs are refused.

Rows are zoo names: the main StyleGAN2-like run at five points along training (FID ~90 to
~12), the DCGAN-like generator and the class-conditional StyleGAN2-like one. Every trial
reports the FID its generator had (``generator_fid`` with its extractor), so the table and
the plot read it from the results, not from a zoo that may have been rebuilt since.
Squeeze only (α = 1), as appendix Table 7 reports. A control row distils an untrained
generator of the main architecture (``random:stylegan@16``): what squeeze learns from the
generator's structure alone, without anything a GAN learned.
"""
import sys

from analysis.tables import Table, generators_table
from sqsp import zoo
from sqsp.tune import Study, study_main

# every entry a default build yields, once (``stylegan-digits-m@3000`` is ``stylegan-digits-m``)
GENERATORS = [n for n in zoo.zoo_names() if not any(n == f"{r.name}@{r.steps}" for r in zoo.DEFAULT_RUNS)]

STUDY = Study(
    name="generators",
    preset="smoke",
    grid=[*({"row": g, "generator": g} for g in GENERATORS),
          {"row": "untrained stylegan (control)", "generator": "random:stylegan@16"}],
    overrides={"syn_ratio": 1.0},
    checkpoint_rows=True,
    table=Table(generators_table),
    description="Appendix Table 7 / Fig. 6: squeeze with each generator of the zoo (architectures, "
                "conditioning, checkpoints along training).",
)

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
