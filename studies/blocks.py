"""Appendix Table 6: which generator blocks the squeeze module reads.

    python studies/blocks.py                              # smoke: 4 rows x 3 seeds (b64-b128 skipped at 16 px)
    python studies/blocks.py --preset paper-stl10 --data-root data/

Blocks are named by the resolution they output (appendix B.3), and grouped as the appendix
groups them: b4-b8, b16-b32, b64-b128 and all. A group takes the blocks of it that the
generator has: at the zoo's 16 px ``b16-b32`` is b16 alone (each trial records the blocks it
read, ``generator_blocks_read``), and ``b64-b128``, which the appendix reports for STL-10's 128-px
generator only, is recorded as skipped, with the reason, wherever the generator is smaller.
Squeeze only (α = 1), as in the appendix.

The study itself (rows, seeds, table) is declared in studies/blocks.yaml; this file runs it
(``python -m sqsp.tune --config studies/blocks.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
