"""Where the repository's real data (data/) lives, for tests, benchmarks and evaluations."""

import os
import pathlib


def data_dir() -> pathlib.Path:
    """The repository's data/ folder: $MATKERN_DATA, else beside the source tree (in-tree
    use), else ./data (an installed package run from a checkout, as CI does)."""
    env = os.environ.get("MATKERN_DATA")
    candidates = [pathlib.Path(env)] if env else []
    candidates += [pathlib.Path(__file__).resolve().parents[2] / "data", pathlib.Path.cwd() / "data"]
    for c in candidates:
        if (c / "graphs").is_dir():
            return c
    raise FileNotFoundError(
        "matkern's data/ folder was not found (set MATKERN_DATA, or run from a checkout)")
