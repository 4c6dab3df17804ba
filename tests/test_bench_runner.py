"""The benchmark runner's timing rules (bench/_runner.time_interleaved), on fake callables.

The callables count their calls and advance a fake clock (``time.perf_counter`` and
``time.sleep`` are replaced in the runner's module), so the rounds each rule allows are
counted exactly and the test takes no real time: ``--quick``'s budget (a callable timed by
one call after its warm-up when the warm-up took the budget, fewer rounds for long calls, blocks
rounded up to the block length, a case's own pause), and the full run's
rules unchanged (at least ``min_rounds`` alternating rounds for every callable, each after
a pause and an untimed call).
"""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_runner():
    spec = importlib.util.spec_from_file_location(
        "bench_runner_timing", os.path.join(ROOT, "bench", "_runner.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Clock:
    """A fake clock: calls and sleeps advance it; ``log`` records (event, key)."""

    def __init__(self):
        self.now = 0.0
        self.log = []

    def perf_counter(self):
        return self.now

    def sleep(self, s):
        self.now += s
        self.log.append(("sleep", s))

    def callable(self, key, seconds):
        def fn():
            self.now += seconds
            self.log.append(("call", key))

        return fn

    def calls(self, key):
        return sum(1 for e in self.log if e == ("call", key))


@pytest.fixture
def timing(monkeypatch):
    runner = _load_runner()
    clock = Clock()
    monkeypatch.setattr(runner.time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(runner.time, "sleep", clock.sleep)
    # --quick's pause (wait_for_idle_threads) logged as one ("idle", max_wait) event
    monkeypatch.setattr(
        runner, "wait_for_idle_threads", lambda max_wait: clock.log.append(("idle", max_wait))
    )
    return runner, clock


def test_quick_long_warmup_is_not_the_measurement(timing):
    runner, clock = timing
    fns = {"matkern": clock.callable("matkern", 0.01), "slow anchor": clock.callable("slow", 3.0)}
    rounds = {}
    t = runner.time_interleaved(fns, "cpu", 0.15, budget=2.5, rounds_out=rounds)
    # the warm-up call pays first-touch costs: one more call is timed (no untimed call
    # before a block of one long call)
    assert clock.calls("slow") == 2
    assert t["slow anchor"] == pytest.approx(3.0)
    assert rounds["slow anchor"] == 1
    assert rounds["matkern"] >= 3  # the fast one keeps its alternating rounds
    assert t["matkern"] == pytest.approx(0.01)


def test_quick_rounds_fit_the_budget(timing):
    runner, clock = timing
    fns = {"matkern": clock.callable("matkern", 0.2), "anchor": clock.callable("anchor", 1.0)}
    rounds = {}
    runner.time_interleaved(fns, "cpu", 0.15, budget=2.5, rounds_out=rounds)
    # 1.0 s calls: 2 timed blocks in a 2.5 s budget, plus the warm-up call (no second
    # estimate, no untimed call before a block of one long call)
    assert rounds["anchor"] == 2 and clock.calls("anchor") == 3
    assert rounds["matkern"] == 3 and clock.calls("matkern") == 4


def test_quick_blocks_round_up(timing):
    runner, clock = timing
    fns = {"matkern": clock.callable("matkern", 0.03), "anchor": clock.callable("anchor", 0.03)}
    rounds = {}
    runner.time_interleaved(fns, "cpu", 0.15, budget=2.5, rounds_out=rounds)
    # blocks of 2 calls (0.06 s >= 0.05 s): 3 rounds reach 0.15 s (rounded down: 5 rounds)
    assert rounds == {"matkern": 3, "anchor": 3}
    # a pause before every block: until the other threads are idle, at most 2 x 0.15 s
    assert [e for e in clock.log if e[0] != "call"] == [("idle", 0.3)] * 6


def test_full_run_keeps_its_rounds(timing):
    runner, clock = timing
    fns = {"matkern": clock.callable("matkern", 0.5), "anchor": clock.callable("anchor", 5.0)}
    rounds = {}
    t = runner.time_interleaved(fns, "cpu", 0.6, rounds_out=rounds)
    assert rounds == {"matkern": 3, "anchor": 3}
    # 2 estimate calls, then per round an untimed call and a block of one call
    assert clock.calls("anchor") == 2 + 3 * 2
    assert sum(1 for e in clock.log if e[0] == "sleep") == 6
    assert t == {"matkern": pytest.approx(0.5), "anchor": pytest.approx(5.0)}


def test_run_cases_records_rounds_and_walls(timing):
    runner, clock = timing

    def make():
        return {
            "matkern": clock.callable("matkern", 0.2),
            "anchor": clock.callable("anchor", 0.2),
            "_data": 1,
        }

    case = runner.Case("fam", "case", make)
    (row,) = runner.run_cases([case], quick=True, progress=False)
    assert row["rounds"] == {"matkern": 3, "anchor": 3}
    assert row["wall_s"]["timing"] == pytest.approx(row["wall_s"]["total"])
    assert runner.family_walls([row]) == {"fam": row["wall_s"]["total"]}
    assert not any(e[0] == "sleep" for e in clock.log)  # quick: idle-thread pauses only
    runner.run_cases([case], quick=False, progress=False)
    assert ("sleep", 0.15) in clock.log  # full: the fixed pause


def test_wait_for_idle_threads_waits_for_quiet_polls(monkeypatch):
    runner = _load_runner()
    clock = Clock()
    monkeypatch.setattr(runner.time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(runner.time, "sleep", clock.sleep)
    readings = iter([0, 5, 9, 9, 12, 12, 12, 99])  # other threads' CPU ns at each poll
    monkeypatch.setattr(runner, "_other_threads_cpu_ns", lambda: next(readings))
    runner.wait_for_idle_threads(1.0, poll=0.01)
    assert clock.now == pytest.approx(0.06)  # ran until 12, 12, 12: two quiet polls
    readings = iter(range(0, 10**6, 7))  # never idle: the cap
    clock.now = 0.0
    runner.wait_for_idle_threads(0.1, poll=0.01)
    assert 0.1 - 1e-9 <= clock.now <= 0.11 + 1e-9  # the cap, give or take one poll
    assert isinstance(_load_runner()._other_threads_cpu_ns(), int | type(None))


def test_partial_run_keeps_the_family_cases_it_did_not_run(tmp_path):
    """``--only`` with a case-name substring runs part of a family: its committed file keeps
    the other cases in place (a run of ``--only lut`` once replaced the hadamard results by
    its rotated-LUT cases alone); a whole-family run or another machine's file is replaced."""
    runner = _load_runner()
    d = str(tmp_path)

    def row(name, t):
        return {"family": "fam", "name": name, "t": t}

    runner.save_results([row("a", 1), row("b", 1), row("c", 1)], "cpu", "m1", True, d)
    runner.save_results([row("b", 2), row("new", 2)], "cpu", "m1", True, d, partial={"fam"})

    def rows():
        return [r for f in runner.load_all_results(d) for r in f["results"]]

    assert [(r["name"], r["t"]) for r in rows()] == [("a", 1), ("b", 2), ("c", 1), ("new", 2)]
    runner.save_results([row("b", 3)], "cpu", "m2", True, d, partial={"fam"})  # other machine
    assert [(r["name"], r["t"]) for r in rows()] == [("b", 3)]
    runner.save_results([row("x", 4)], "cpu", "m2", True, d)  # the whole family ran
    assert [r["name"] for r in rows()] == ["x"]
