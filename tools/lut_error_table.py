"""Print the LUT quantization error table on the real MiniLM-L6 layers (tests/datasets.py):
mean and max relative Frobenius error over the 12 layers per table and bit width, for
groups of 128 and 32.

    PYTHONPATH=python python tools/lut_error_table.py [data_dir]
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

from datasets import error_table, format_table  # noqa: E402


def main(argv):
    data = argv[1] if len(argv) > 1 else None
    for gs in (128, 32):
        print(format_table(error_table(data, group_size=gs), gs))
        print()


if __name__ == "__main__":
    main(sys.argv)
