"""``python -m sqsp.tune --config my.yaml`` (or ``sqsp-study``): run a study defined in a YAML
file alone, or a sweep given on the command line (``--grid sim_weight=1,5,25``), with the
flags every study shares (sqsp/tune/cli.py)."""
import sys

from .cli import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main(None, argv)


if __name__ == "__main__":
    sys.exit(main())
