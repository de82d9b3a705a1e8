"""Appendix Table 6: which generator blocks the squeeze module reads.

    python studies/blocks.py                              # smoke: b4-b8, b16, all x 3 seeds
    python studies/blocks.py --preset paper-cifar10 --data-root data/ --set generator_blocks=...

Blocks are named by the resolution they output (appendix B.3). The zoo's generators are
16 px, so they have b4, b8 and b16: ``b16`` stands in for the paper's ``b16-b32`` group and
there is no ``b64-b128``. On a 32-px official checkpoint use the paper's groups by editing
the rows of blocks.yaml (a group the generator lacks fails at once, listing the blocks it has). Squeeze
only (α = 1), as in the appendix.

The study itself (rows, seeds, table) is declared in studies/blocks.yaml; this file runs it
(``python -m sqsp.tune --config studies/blocks.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
