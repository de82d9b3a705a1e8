"""Appendix Table 7 and Fig. 6: how the generator — its architecture, conditioning and how far
it was trained (FID) — changes what squeeze distils.

    python studies/generators.py                          # every zoo generator x 3 seeds (builds the zoo)
    python studies/generators.py --set syn_ratio=1.0      # squeeze instead of squeeze and span (Table 7)
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
Squeeze and span (α from the preset) by default, as Fig. 6 plots it (the authors'
paper_plots/acc_vs_fid.py: "Squeeze and span"); ``--set syn_ratio=1.0`` runs squeeze alone, what
appendix Table 7 reports and what its paper column is shown beside. A control row distils an untrained
generator of the main architecture (``random:stylegan@16``): what squeeze learns from the
generator's structure alone, without anything a GAN learned.

The study itself (rows, seeds, table) is declared in studies/generators.yaml; this file runs it
(``python -m sqsp.tune --config studies/generators.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
