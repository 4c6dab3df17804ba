"""The documentation's benchmark figures: read from the committed results, never typed.

The HTML build itself (``bash tools/docs.sh``: Sphinx, every warning an error) is a step of
CI (``.ci/run``, after lint), not a test here: the README's test command installs no Sphinx,
so such a test would be skipped for every user, and in CI it would build the pages a second
time. What is checked here, in well under a second and without Sphinx, is the part that
turns ``bench/results/*.json`` into the pages' tables (``docs/_ext/benchdata.py``): its ratios
are the bench runner's own (exact equality: the same division of the same floats), goals read
met/missed as BENCHMARKS.md does, matkern's variants are kept apart from the anchors, and
every ``bench-table`` / ``bench-plot`` directive in the pages names a committed file.
"""

import glob
import importlib.util
import math
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


benchdata = _load("docs_benchdata", os.path.join(ROOT, "docs", "_ext", "benchdata.py"))

needs_results = pytest.mark.skipif(
    not os.path.isdir(RESULTS), reason="no bench/results here (the sdist leaves them out)"
)


@needs_results
def test_ratios_are_the_runners():
    runner = _load("bench_runner_for_docs", os.path.join(ROOT, "bench", "_runner.py"))
    files = sorted(glob.glob(os.path.join(RESULTS, "*.json")))
    assert files
    rows = 0
    for path in files:
        family, device = os.path.basename(path)[: -len(".json")].split("_", 1)
        doc = benchdata.load(family, device)
        for row in doc["results"]:
            if "error" not in row:
                assert benchdata.ratios(row) == runner.ratios(row), (path, row["name"])
                rows += 1
    assert rows > 50


def test_table_rows_goals_variants_errors():
    doc = {
        "machine": "test box",
        "date": "2026-12-03 10:00 UTC",
        "quick": True,
        "results": [
            {
                "name": "case a",
                "times": {
                    "matkern": 0.002,
                    "fast anchor": 0.006,
                    "slow": 0.003,
                    "matkern 1 thread": 0.004,
                },
                "bars": {"fast anchor": 2.0, "slow": 2.0, "matkern 1 thread": 1.0},
                "main": "matkern",
                "info": "note a",
            },
            {"name": "case b", "error": "RuntimeError: boom"},
        ],
    }
    a, b = benchdata.table_rows(doc)
    assert a["time"] == "2.00 ms"
    assert a["anchors"] == ["fast anchor: 3.00x (goal 2: met)", "slow: 1.50x (goal 2: missed)"]
    assert a["variants"] == ["matkern 1 thread: 2.00x (goal 1: met)"]
    assert a["notes"] == "note a"
    assert b["time"] == "error" and b["anchors"] == ["RuntimeError: boom"]
    assert [r["name"] for r in benchdata.table_rows(doc, match="a$")] == ["case a"]
    header = benchdata.header(doc)
    assert "test box" in header and "2026-12-03 10:00 UTC" in header and "quick" in header
    means = benchdata.geometric_means(doc, min_cases=1)
    assert set(means) == {"fast anchor", "slow"}  # variants are no anchor
    assert math.isclose(means["fast anchor"][0], 3.0)


def test_time_format():
    assert benchdata.format_seconds(5.4e-05) == "54 µs"
    assert benchdata.format_seconds(0.64146) == "641.46 ms"
    assert benchdata.format_seconds(11.3546) == "11.35 s"
    assert benchdata.format_seconds(float("nan")) == "-"


@needs_results
def test_every_directive_names_a_committed_file():
    pages = glob.glob(os.path.join(ROOT, "docs", "**", "*.rst"), recursive=True)
    tables = plots = 0
    for page in pages:
        with open(page) as f:
            text = f.read()
        for family, device in re.findall(r"^\s*\.\. bench-table:: (\S+) (\S+)", text, re.M):
            assert os.path.exists(benchdata.results_path(family, device)), (page, family, device)
            tables += 1
        for family in re.findall(r"^\s*\.\. bench-plot:: (\S+)", text, re.M):
            assert glob.glob(os.path.join(benchdata.PLOTS_DIR, f"{family}_*.png")), (page, family)
            plots += 1
    assert tables >= 7 and plots >= 7
