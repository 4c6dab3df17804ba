"""The README's measured figures are the committed results' (tools/readme_figures.py)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_figures_match_the_committed_results():
    tool = ROOT / "tools" / "readme_figures.py"
    r = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
