"""The figures the docs print, read from the committed benchmark results (no Sphinx here).

``bench/results/<family>_<device>.json`` is written by ``bench/_runner.save_results``: a
header (family, device, machine, date, quick) and one row per case with ``times`` (seconds
per call, keyed by "main" and the anchors' names), ``bars`` (the goal ratio per anchor) and
``info``. A ratio is an anchor's time divided by matkern's (``bench/_runner.ratios``): above
1, matkern is faster. Keys that start with "matkern" are variants of matkern itself (another
method, one thread) and are reported apart from the anchors.
"""

from __future__ import annotations

import json
import math
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_DIR = os.path.join(REPO, "bench", "results")
PLOTS_DIR = os.path.join(REPO, "bench", "plots")


def results_path(family, device, results_dir=RESULTS_DIR):
    return os.path.join(results_dir, f"{family}_{device}.json")


def load(family, device, results_dir=RESULTS_DIR):
    with open(results_path(family, device, results_dir)) as f:
        return json.load(f)


def is_variant(key):
    return key.startswith("matkern")


def ratios(row):
    """{key: key's time / main time} over every timed key but the main one."""
    times = row.get("times", {})
    main = times.get(row.get("main"))
    if not main:
        return {}
    return {k: v / main for k, v in times.items() if k != row["main"]}


def format_seconds(t):
    if t is None or not math.isfinite(t):
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def format_ratio(name, value, goal):
    text = f"{name}: {value:.2f}x"
    if goal is not None:
        text += f" (goal {goal:g}: {'met' if value >= goal else 'missed'})"
    return text


def table_rows(doc, match=None):
    """One dict per case: name, time (text), anchors and variants (lists of text), notes."""
    pattern = re.compile(match) if match else None
    rows = []
    for r in doc["results"]:
        if pattern is not None and not pattern.search(r["name"]):
            continue
        if "error" in r:
            rows.append(
                {
                    "name": r["name"],
                    "time": "error",
                    "anchors": [str(r["error"])],
                    "variants": [],
                    "notes": "",
                }
            )
            continue
        anchors, variants = [], []
        for key, value in ratios(r).items():
            text = format_ratio(key, value, r.get("bars", {}).get(key))
            (variants if is_variant(key) else anchors).append(text)
        rows.append(
            {
                "name": r["name"],
                "time": format_seconds(r.get("times", {}).get(r.get("main"))),
                "anchors": anchors,
                "variants": variants,
                "notes": r.get("info", ""),
            }
        )
    return rows


def geometric_means(doc, match=None, min_cases=3):
    """{anchor: (geometric mean ratio, cases)} for anchors timed in at least min_cases cases."""
    pattern = re.compile(match) if match else None
    logs = {}
    for r in doc["results"]:
        if "error" in r or (pattern is not None and not pattern.search(r["name"])):
            continue
        for key, value in ratios(r).items():
            if not is_variant(key) and value > 0:
                logs.setdefault(key, []).append(math.log(value))
    return {k: (math.exp(sum(v) / len(v)), len(v)) for k, v in logs.items() if len(v) >= min_cases}


def header(doc):
    quick = " (quick mode: smaller sizes)" if doc.get("quick") else ""
    return f"Machine: {doc['machine']}. Run: {doc['date']}{quick}."
