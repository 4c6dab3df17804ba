"""The one benchmark runner: timing, warm-up, ratios, the table, BENCHMARKS.md and plots.

A family's bench file (bench/<family>.py) only declares cases:

    def cases(ctx):                       # ctx.quick, ctx.device ("cpu" or "cuda")
        yield Case("hadamard", "fwht 4096x4096 f32", make, bars={"numpy.fft.rfft": 2.0})

``make()`` builds the inputs and returns {"matkern": fn, "<anchor>": fn, ...} of zero-argument
callables (keys starting with "_" carry data for ``info`` and are not timed; a callable
"_close" is called once the case is done, e.g. to stop a cluster the case started); every anchor is timed in the same process right beside matkern, and each figure is
reported as a speedup ratio anchor_time / matkern_time (> 1: matkern is faster). ``bars`` gives
the ratio each anchor must reach (the issue's goal); ``info(results)`` may add notes (accuracy,
sizes) shown beside the figures.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from typing import Callable

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@dataclasses.dataclass
class Case:
    family: str
    name: str
    make: Callable[[], dict]
    bars: dict = dataclasses.field(default_factory=dict)
    device: str = "cpu"
    info: Callable[[dict], str] | None = None
    main: str = "matkern"  # the key of the timed matkern callable in make()'s dict
    # {key: factor}: that callable's measured time is multiplied by factor before ratios are
    # taken (an anchor that times a sample of a long sequence, extrapolated to all of it; the
    # key's name must say so). Stored in the results as "time_scale".
    time_scale: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Context:
    quick: bool
    device: str

    @property
    def cupy(self):
        import cupy

        return cupy


def machine_description(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} logical cores"
    if device == "cuda":
        try:
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(0)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            desc += f"; GPU: {name}"
        except Exception as exc:  # pragma: no cover - reported, not fatal
            desc += f"; GPU: unavailable ({exc})"
    return desc


def _sync(device):
    if device == "cuda":
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def time_interleaved(
    fns, device, min_time, min_rounds=3, max_rounds=20, settle=0.15, budget=None, rounds_out=None
):
    """{key: median wall time per call} of the zero-argument callables ``fns``, timed in
    rounds: each round times every callable once over a block of calls lasting about
    min_time / min_rounds (its mean per call taken), so that matkern and its anchors share
    every stretch of the run and a machine whose speed drifts (this VM's did by 1.4x) moves
    them alike instead of whichever was timed in the slow stretch. Before each block the run
    sleeps ``settle`` seconds and makes one untimed call: the previous library's threads
    (OpenBLAS spins for about 0.1 s after a call) would otherwise take the cores from the next
    one. At least ``min_rounds`` rounds, and more until each callable has run ``min_time``
    seconds in all (at most ``max_rounds``).

    ``budget`` (seconds; ``--quick``): the timed calls one callable may take. A callable whose
    calls are long gets fewer rounds, max(1, budget // its time per call), at least
    ``min_rounds`` where they fit; one whose first (warm-up) call already took ``budget`` is
    timed by one more call (never by the warm-up call, which pays first-touch page faults
    and lazy set-up the later calls do not). Blocks are rounded up to ``block`` seconds of calls, not down;
    blocks of one call longer than ``settle`` skip the untimed call before them (the pause
    lets the previous library's threads stop; a cache warmed by one call matters little to a
    call that long). The pause lasts until the process's other threads are idle
    (:func:`wait_for_idle_threads`, at most 2 x ``settle``) instead of ``settle`` seconds.
    ``rounds_out``, a dict, receives the number of timed blocks per key."""
    block = min_time / min_rounds
    per_call, rounds, times = {}, {}, {key: [] for key in fns}
    for key, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        _sync(device)
        first = max(time.perf_counter() - t0, 1e-9)
        if budget is not None and first >= 2 * block:
            per_call[key] = first  # one call a block either way: no second estimate
        else:
            t0 = time.perf_counter()
            fn()
            _sync(device)
            per_call[key] = max(time.perf_counter() - t0, 1e-9)
        rounds[key] = max_rounds
        if budget is not None:
            rounds[key] = max(1, min(max_rounds, int(budget // per_call[key])))
    spent = dict.fromkeys(fns, 0.0)
    done = dict.fromkeys(fns, 0)
    for r in range(max_rounds):
        live = [k for k in per_call if done[k] < rounds[k]]
        if not live or (r >= min_rounds and all(spent[k] >= min_time for k in live)):
            break
        for key in live:
            fn = fns[key]
            # --quick: blocks of at least ``block`` seconds (rounded up), so that min_rounds
            # rounds reach min_time (rounded down, a 0.03 s call took 5 rounds of pauses)
            fit = block / per_call[key]
            n = max(1, min(10000, math.ceil(fit) if budget is not None else int(fit)))
            if len(fns) > 1:
                if budget is None:
                    time.sleep(settle)
                else:
                    wait_for_idle_threads(2 * settle)
                if budget is None or n > 1 or per_call[key] < settle:
                    fn()
                    _sync(device)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            _sync(device)
            dt = time.perf_counter() - t0
            times[key].append(dt / n)
            spent[key] += dt
            done[key] += 1
    if rounds_out is not None:
        rounds_out.update({k: max(1, done[k]) for k in fns})
    return {key: statistics.median(v) for key, v in times.items()}


def _other_threads_cpu_ns():
    """CPU time (ns) the threads of this process other than the caller have run, from
    /proc/self/task/*/schedstat; None where that is not readable (not Linux)."""
    me = threading.get_native_id()
    total = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        if tid == str(me):
            continue
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total


def wait_for_idle_threads(max_wait, poll=0.01, quiet_polls=2):
    """Sleep until no other thread of this process has run for ``quiet_polls`` polls in a
    row (``poll`` seconds each), at most ``max_wait`` seconds; without /proc, sleep
    max_wait / 2. What the pause before a timed block waits for: OpenBLAS's workers spin
    about 0.15 s after a call (measured here), GNU OpenMP's a few ms, matkern's helpers
    0.3 ms; a fixed pause long enough for the first wastes it after the others."""
    before = _other_threads_cpu_ns()
    if before is None:
        time.sleep(max_wait / 2)
        return
    deadline = time.perf_counter() + max_wait
    quiet = 0
    while quiet < quiet_polls and time.perf_counter() < deadline:
        time.sleep(poll)
        now = _other_threads_cpu_ns()
        quiet = quiet + 1 if now == before else 0
        before = now


def _wall(t_start, marks, t_end):
    """{"setup", "timing", "info", "total"} seconds of one case (the stages it reached)."""
    out, prev = {}, t_start
    for stage in ("setup", "timing"):
        if stage in marks:
            out[stage] = round(marks[stage] - prev, 2)
            prev = marks[stage]
    out["info"] = round(t_end - prev, 2)
    out["total"] = round(t_end - t_start, 2)
    return out


def family_walls(results):
    """{family: seconds} the run spent on each family's cases, in run order."""
    out = {}
    for r in results:
        out[r["family"]] = out.get(r["family"], 0.0) + r.get("wall_s", {}).get("total", 0.0)
    return out


def _one_thread(fn):
    import matkern

    def run():
        with matkern.threads(1):
            return fn()

    return run


ONE_THREAD = "matkern 1 thread"
QUICK_BUDGET = 2.0  # seconds of timed calls per callable and case with --quick


def run_cases(cases, quick, progress=True, neighbour=False):
    """Time every case. ``neighbour``: the run happens next to a busy process (see
    :func:`busy_neighbour`); each case then also times matkern pinned to one thread, and
    every anchor's goal becomes 1.0 (as fast as the anchor, and as fast as not
    parallelising, under the same conditions)."""
    min_time = 0.1 if quick else 0.6
    # --quick: a callable's timed calls are capped at QUICK_BUDGET seconds (fewer rounds for
    # long calls, see time_interleaved); the full run keeps its rounds
    budget = QUICK_BUDGET if quick else None
    results = []
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(cases), desc="bench", unit="case", file=sys.stderr)
        except ImportError:
            bar = None
    for i, case in enumerate(cases):
        if bar is not None:
            bar.set_postfix_str(case.name[:40])
        elif progress:
            print(f"[{i + 1}/{len(cases)}] {case.family}: {case.name}", file=sys.stderr, flush=True)
        row = {
            "family": case.family,
            "name": case.name,
            "device": case.device,
            "times": {},
            "bars": case.bars,
            "main": case.main,
        }
        fns = {}
        t_start = time.perf_counter()
        marks = {}
        try:
            fns = case.make()
            marks["setup"] = time.perf_counter()
            if neighbour:
                fns[ONE_THREAD] = _one_thread(fns[case.main])
                row["bars"] = {k: 1.0 for k in fns if k != case.main and not k.startswith("_")}
            # "_name" entries are data for info(), not timed
            rounds = {}
            row["times"] = time_interleaved(
                {k: f for k, f in fns.items() if not k.startswith("_")},
                case.device,
                min_time,
                budget=budget,
                rounds_out=rounds,
            )
            row["rounds"] = rounds
            marks["timing"] = time.perf_counter()
            for k, factor in case.time_scale.items():
                row["times"][k] *= factor
            if case.time_scale:
                row["time_scale"] = dict(case.time_scale)
            if case.info is not None:
                row["info"] = case.info(fns)
        except Exception as exc:  # a broken case is reported, not hidden
            row["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            # "_close": what the case started for itself (e.g. a Dask cluster), stopped here
            if callable(fns.get("_close")):
                fns["_close"]()
        # where the run's time went (the quick budget is kept per case: see README)
        row["wall_s"] = _wall(t_start, marks, time.perf_counter())
        results.append(row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return results


class busy_neighbour:
    """Context manager: one process spinning at normal priority (a busy loop) for the
    duration, the neighbour of issue #16's bars."""

    def __enter__(self):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def ratios(row):
    """{anchor: anchor_time / matkern_time} for one result row."""
    t = row["times"]
    main = t.get(row["main"])
    if not main:
        return {}
    return {k: v / main for k, v in t.items() if k != row["main"]}


def format_table(results):
    lines = []
    header = f"{'family':<10} {'case':<44} {'matkern':>10}  ratios vs anchors (x faster; goal)"
    lines.append(header)
    lines.append("-" * len(header))
    for r in results:
        if "error" in r:
            lines.append(f"{r['family']:<10} {r['name']:<44} ERROR {r['error']}")
            continue
        main = r["times"].get(r["main"], float("nan"))
        parts = []
        for k, v in ratios(r).items():
            goal = r["bars"].get(k)
            mark = "" if goal is None else (f"; goal {goal:g} {'ok' if v >= goal else 'MISSED'}")
            parts.append(f"{k}: {v:.2f}x{mark}")
        lines.append(f"{r['family']:<10} {r['name']:<44} {main * 1e3:>8.2f}ms  " + ", ".join(parts))
        if r.get("info"):
            lines.append(f"{'':<10} {'':<44} {'':>10}  {r['info']}")
    return "\n".join(lines)


def _merged_rows(path, rows, machine, quick):
    """The rows of a family that ran only in part (``--only`` picked some of its cases): the
    file's other rows are kept, in their places, when they come from the same machine and
    mode; a row that ran replaces its namesake."""
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return rows
    if old.get("machine") != machine or old.get("quick") != quick:
        return rows
    new = {r["name"]: r for r in rows}
    merged = [new.pop(r["name"], r) for r in old.get("results", [])]
    return merged + list(new.values())


def save_results(results, device, machine, quick, results_dir=RESULTS_DIR, partial=()):
    """One JSON file per family and device in ``results_dir``. ``partial``: the families of
    which only some cases ran; their files keep the cases that did not run."""
    os.makedirs(results_dir, exist_ok=True)
    by_family = {}
    for r in results:
        by_family.setdefault(r["family"], []).append(r)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for fam, rows in by_family.items():
        path = os.path.join(results_dir, f"{fam}_{device}.json")
        if fam in partial:
            rows = _merged_rows(path, rows, machine, quick)
        with open(path, "w") as f:
            json.dump(
                {
                    "family": fam,
                    "device": device,
                    "machine": machine,
                    "date": stamp,
                    "quick": quick,
                    "results": rows,
                },
                f,
                indent=1,
            )


def load_all_results(results_dir=RESULTS_DIR):
    out = []
    if not os.path.isdir(results_dir):
        return out
    for name in sorted(os.listdir(results_dir)):
        if name.endswith(".json"):
            with open(os.path.join(results_dir, name)) as f:
                out.append(json.load(f))
    return out


def write_markdown(path, results_dir=RESULTS_DIR):
    """BENCHMARKS.md from every stored result file (one section per family and device)."""
    docs = load_all_results(results_dir)
    lines = [
        "# matkern benchmarks",
        "",
        "Each figure is a speedup ratio: the anchor's time divided by matkern's time, both "
        "timed in the same run on the machine named: the median over alternating rounds, "
        "each of which times matkern and every anchor over a block of calls (after a pause "
        "and an untimed call, so that one library's idle threads do not slow the next). "
        "> 1 means matkern is faster. Quick runs (`--quick`) cap each callable's timed "
        "calls at "
        f"{QUICK_BUDGET:g} s a case: a long call gets fewer rounds (noted beside the case when "
        "under 3), and one whose warm-up call took that long is timed by one more call. "
        "Regenerate with `python -m bench --commit-results` (with `--only FAMILY`, one "
        "family).",
        "",
    ]
    for d in docs:
        lines.append(f"## {d['family']} ({d['device']})")
        lines.append("")
        lines.append(
            f"Machine: {d['machine']}. Run: {d['date']}{' (quick)' if d['quick'] else ''}."
        )
        lines.append("")
        lines.append("| case | matkern time | ratio vs anchors (goal) | notes |")
        lines.append("| --- | ---: | --- | --- |")
        for r in d["results"]:
            if "error" in r:
                lines.append(f"| {r['name']} | error | {r['error']} | |")
                continue
            parts = []
            for k, v in ratios(r).items():
                goal = r["bars"].get(k)
                g = "" if goal is None else f" (goal {goal:g}: {'met' if v >= goal else 'missed'})"
                parts.append(f"{k} {v:.2f}x{g}")
            t = r["times"].get(r["main"], float("nan"))
            notes = r.get("info", "")
            few = {k: n for k, n in r.get("rounds", {}).items() if n < 3}
            if few:
                notes += (
                    ("; " if notes else "")
                    + "timed in "
                    + ", ".join(f"{n} round{'s' if n > 1 else ''} ({k})" for k, n in few.items())
                )
            lines.append(f"| {r['name']} | {t * 1e3:.2f} ms | {'; '.join(parts)} | {notes} |")
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_plots(outdir, results_dir=RESULTS_DIR):
    """One PNG per family and device: speedup over each anchor, log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots written", file=sys.stderr)
        return []
    os.makedirs(outdir, exist_ok=True)
    written = []
    for d in load_all_results(results_dir):
        rows = [r for r in d["results"] if "error" not in r and ratios(r)]
        if not rows:
            continue
        labels, values, colors = [], [], []
        for r in rows:
            for k, v in ratios(r).items():
                labels.append(f"{r['name']}\nvs {k}")
                values.append(v)
                goal = r["bars"].get(k)
                colors.append("tab:green" if goal is None or v >= goal else "tab:red")
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
        ax.barh(range(len(values)), values, color=colors)
        ax.set_yticks(range(len(values)), labels, fontsize=7)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("speedup (anchor time / matkern time)")
        ax.set_title(f"{d['family']} ({d['device']}): {d['machine'][:70]}", fontsize=8)
        ax.invert_yaxis()
        fig.tight_layout()
        path = os.path.join(outdir, f"{d['family']}_{d['device']}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
