"""Run matkern's benchmarks: ``python -m bench [--quick] [--only NAME] [--device cpu|cuda]
[--neighbour] [--out DIR | --commit-results]``.

``--neighbour`` runs the CPU cases next to one busy process (a spinning loop at normal
priority) and also times matkern pinned to one thread; results are stored as
<family>_cpu-neighbour.json.

Discovers every bench/<family>.py, runs its cases with the anchors timed in the same run and
prints a table. By default the results, a BENCHMARKS.md of this run and its PNG plots go to a
scratch folder (bench/scratch/, not tracked; ``--out DIR`` picks another): a run never
overwrites the committed figures by accident. ``--commit-results`` stores
bench/results/<family>_<device>.json and rewrites BENCHMARKS.md and bench/plots/ from all
committed results: the figures the README quotes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # `python bench/run.py` as well as `python -m bench`
    sys.path.insert(0, ROOT)

from bench import _runner  # noqa: E402


def family_modules():
    names = [
        m.name
        for m in pkgutil.iter_modules([HERE])
        if not m.name.startswith("_") and m.name not in ("run",)
    ]
    return sorted(names)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes, fewer cases, each callable's timed calls capped at "
        f"{_runner.QUICK_BUDGET:g} s a case (see README)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        help="family name, or a substring of case names (repeatable)",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--out",
        default=os.path.join(HERE, "scratch"),
        help="folder for this run's results, BENCHMARKS.md and plots (default bench/scratch)",
    )
    p.add_argument(
        "--commit-results",
        action="store_true",
        help="store into bench/results/ and rewrite BENCHMARKS.md and bench/plots/ "
        "(the committed figures) instead of --out",
    )
    p.add_argument("--no-save", action="store_true", help="print only; store nothing")
    p.add_argument(
        "--neighbour",
        action="store_true",
        help="CPU: run next to one busy process, and time matkern on one thread too",
    )
    args = p.parse_args(argv)

    ctx = _runner.Context(quick=args.quick, device=args.device)
    cases, partial = [], set()
    for name in family_modules():
        mod = importlib.import_module(f"bench.{name}")
        if not hasattr(mod, "cases"):
            continue
        for case in mod.cases(ctx):
            if case.device != args.device:
                continue
            if args.only and not any(o == case.family or o in case.name for o in args.only):
                partial.add(case.family)  # its file keeps the cases left out
                continue
            cases.append(case)
    if not cases:
        print("no benchmark case matched", file=sys.stderr)
        return 1
    machine = _runner.machine_description(args.device)
    if args.neighbour:
        if args.device != "cpu":
            print("--neighbour is for the CPU cases", file=sys.stderr)
            return 1
        machine += "; next to one busy process (a spinning loop at normal priority)"
    print(f"machine: {machine}")
    try:
        import matkern

        b = matkern.backends()
        print(
            f"matkern {b['version']}: simd={b['simd']}, omp_threads={b['omp_threads']}, "
            f"gpu={b['gpu_reason']}"
        )
    except Exception as exc:
        print(f"matkern import failed: {exc}")
        return 1
    if args.neighbour:
        with _runner.busy_neighbour():
            results = _runner.run_cases(cases, args.quick, neighbour=True)
    else:
        results = _runner.run_cases(cases, args.quick)
    print(_runner.format_table(results))
    walls = _runner.family_walls(results)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"wall time {sum(walls.values()):.0f} s (load average {load:.1f} at the end): "
        + ", ".join(f"{fam} {t:.0f} s" for fam, t in walls.items())
    )
    if not args.no_save:
        device = args.device + ("-neighbour" if args.neighbour else "")
        if args.commit_results:
            results_dir = _runner.RESULTS_DIR
            markdown = os.path.join(ROOT, "BENCHMARKS.md")
            plots_dir = os.path.join(HERE, "plots")
        else:
            results_dir = os.path.join(args.out, "results")
            markdown = os.path.join(args.out, "BENCHMARKS.md")
            plots_dir = os.path.join(args.out, "plots")
        _runner.save_results(results, device, machine, args.quick, results_dir, partial=partial)
        _runner.write_markdown(markdown, results_dir)
        plots = _runner.write_plots(plots_dir, results_dir)
        print(f"wrote {results_dir}, {markdown} and {len(plots)} plot(s) in {plots_dir}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
