"""Appendix Fig. 1: linear CKA between the generator's layers, between the student's, and
between the two, on the same generated images; per panel, the mean CKA between different
layers and the share of pairs at or above the paper's 0.85.

    python studies/layer_similarity.py                                   # trains a smoke student (seed 0) first
    python studies/layer_similarity.py --from results/ablation --row e   # the students of a study row
    python studies/layer_similarity.py --checkpoint ckpt/ --granularity layers
    python analysis/plots.py results/layer_similarity                    # the figure again, from Parquet

Writes results/layer_similarity/{layer_similarity.parquet, fig1_cka.png, fig1_cka.pdf}; a
student trained here keeps its checkpoint in results/layer_similarity/students/. The
generator is the one the student distilled from (its config). ``--granularity blocks``
compares generator blocks with the student's stages, ``layers`` every generator convolution
with every residual block.
"""
import sys

from analysis.plots import figure_and_table
from sqsp.layer_similarity import FILE, main

if __name__ == "__main__":
    paths, table = figure_and_table(main(), FILE)
    print("\n".join(str(p) for p in paths), file=sys.stderr)
    print(table)
