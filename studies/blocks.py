"""Appendix Table 6: which generator blocks the squeeze module reads.

    python studies/blocks.py                              # smoke: 4 rows x 3 seeds (b64-b128 skipped at 16 px)
    python studies/blocks.py --preset paper-stl10 --data-root data/

Blocks are named by the resolution they output (appendix B.3), and grouped as the appendix
groups them: b4-b8, b16-b32, b64-b128 and all. A group takes the blocks of it that the
generator has: at the zoo's 16 px ``b16-b32`` is b16 alone (each trial records the blocks it
read, ``generator_blocks_read``), and ``b64-b128``, which the appendix reports for STL-10's 128-px
generator only, is recorded as skipped, with the reason, wherever the generator is smaller.
Squeeze only (α = 1), as in the appendix.
"""
import sys

from analysis.tables import Table, blocks_table
from sqsp.tune import Study, study_main

ROWS = ("b4-b8", "b16-b32", "b64-b128", "all")

STUDY = Study(
    name="blocks",
    preset="smoke",
    grid=[{"row": b, "generator_blocks": b} for b in ROWS],
    overrides={"syn_ratio": 1.0},
    table=Table(blocks_table),
    description="Appendix Table 6: squeeze on low, middle, high or all generator blocks.",
)

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
