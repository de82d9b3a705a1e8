"""Appendix Table 6: which generator blocks the squeeze module reads.

    python studies/blocks.py                              # smoke: b4-b8, b16, all x 3 seeds
    python studies/blocks.py --preset paper-cifar10 --data-root data/ --set generator_blocks=...

Blocks are named by the resolution they output (appendix B.3). The zoo's generators are
16 px, so they have b4, b8 and b16: ``b16`` stands in for the paper's ``b16-b32`` group and
there is no ``b64-b128``. On a 32-px official checkpoint use the paper's groups by editing
``ROWS`` (a group the generator lacks fails at once, listing the blocks it has). Squeeze
only (α = 1), as in the appendix.
"""
import sys

from analysis.tables import Table, blocks_table
from sqsp.tune import Study, study_main

ROWS = ("b4-b8", "b16", "all")

STUDY = Study(
    name="blocks",
    preset="smoke",
    grid=[{"row": b, "generator_blocks": b} for b in ROWS],
    overrides={"syn_ratio": 1.0},
    table=Table(blocks_table),
    description="Appendix Table 6: squeeze on low, high or all generator blocks.",
)

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
