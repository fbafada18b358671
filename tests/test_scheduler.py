"""The scheduler alone: priorities, dependencies, blocking, retries, never twice."""
from __future__ import annotations

import random

import pytest

from terapix_fw.scheduler import Scheduler, SchedulingError


def drain(sched: Scheduler) -> list[str]:
    """Hand out and complete units one at a time (one worker); the order they ran in."""
    ran = []
    while (key := sched.pop_ready()) is not None:
        ran.append(key)
        sched.complete(key)
    return ran


def test_priorities_then_submission_order():
    sched = Scheduler()
    for key, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 9), ("e", 5)]:
        sched.submit(key, priority)
    assert drain(sched) == ["d", "b", "e", "a", "c"]
    assert sched.finished


def test_a_released_dependent_takes_its_place_by_priority():
    sched = Scheduler()
    sched.submit("low1", 1)
    sched.submit("low2", 1)
    sched.submit("src", 2)
    sched.submit("urgent", 9, deps=["src"])
    # urgent waits for src; once src is done it overtakes the low-priority units already ready
    assert drain(sched) == ["src", "urgent", "low1", "low2"]


def test_dependent_released_only_when_every_dependency_is_done():
    sched = Scheduler()
    for key in ("a", "b", "c"):
        sched.submit(key)
    sched.submit("sum", deps=["a", "b", "c", "a"])  # a repeated dependency counts once
    got = [sched.pop_ready() for _ in range(3)]
    assert sorted(got) == ["a", "b", "c"] and sched.pop_ready() is None
    assert sched.complete("a") == [] and sched.state("sum") == "pending"
    assert sched.complete("b", "skipped") == []  # up to date counts as done for its dependents
    assert sched.pop_ready() is None
    assert sched.complete("c") == ["sum"]
    assert sched.pop_ready() == "sum"
    sched.complete("sum")
    assert sched.finished


def test_failure_blocks_exactly_its_dependents_transitively():
    #   a -> x -> y -> z        b -> w        (x, w) -> both
    sched = Scheduler()
    for key, deps in [("a", []), ("b", []), ("x", ["a"]), ("w", ["b"]), ("y", ["x"]), ("z", ["y"]),
                      ("both", ["x", "w"]), ("free", [])]:
        sched.submit(key, deps=deps)
    assert sched.pop_ready() == "a"
    blocked = sched.fail("a")
    # depth first, each once: x, then what x blocks (y, z, both), with the unit that blocked each
    assert blocked == [("x", "a"), ("y", "x"), ("z", "y"), ("both", "x")]
    assert [k for k in ("a", "b", "x", "w", "y", "z", "both", "free") if sched.state(k) == "blocked"] == [
        "x", "y", "z", "both"]
    # the rest runs: b, then w (submitted before free; its dependent both stays blocked), and free
    assert drain(sched) == ["b", "w", "free"]
    assert sched.state("both") == "blocked" and sched.finished
    assert sched.count("blocked") == 4 and sched.count("failed") == 1 and sched.count("done") == 3


def test_lost_worker_retries_are_bounded():
    sched = Scheduler(retries=2)
    sched.submit("u", 3)
    sched.submit("v", 0)
    sched.submit("after", deps=["u"])
    for attempt in (1, 2, 3):
        assert sched.pop_ready() == "u"  # a retry keeps its priority: before v
        assert sched.attempts("u") == attempt
        if attempt < 3:
            assert sched.lost("u") is True and sched.state("u") == "ready"
    assert sched.lost("u") is False  # third loss with 2 retries: the caller records the failure
    assert sched.fail("u") == [("after", "u")]
    assert drain(sched) == ["v"] and sched.finished


def test_no_retries():
    sched = Scheduler(retries=0)
    sched.submit("u")
    assert sched.pop_ready() == "u" and sched.lost("u") is False


def test_a_unit_recorded_done_is_never_handed_out_again():
    sched = Scheduler()
    sched.submit("u")
    sched.submit("v", deps=["u"])
    key = sched.pop_ready()
    sched.complete(key)
    # late events about a finished unit are refused: a second completion, a loss, a failure
    with pytest.raises(SchedulingError, match="unit u reported done but it is done"):
        sched.complete("u")
    with pytest.raises(SchedulingError, match="unit u reported lost but it is done"):
        sched.lost("u")
    with pytest.raises(SchedulingError, match="unit u reported failed but it is done"):
        sched.fail("u")
    assert drain(sched) == ["v"]
    assert sched.pop_ready() is None and sched.attempts("u") == 1


def test_events_for_units_not_running_are_refused():
    sched = Scheduler()
    sched.submit("u")
    sched.submit("v", deps=["u"])
    with pytest.raises(SchedulingError, match="unit v reported done but it is pending"):
        sched.complete("v")
    with pytest.raises(SchedulingError, match="unit nope reported failed but it is unknown"):
        sched.fail("nope")
    with pytest.raises(ValueError, match="use fail"):
        sched.complete("u", "failed")


def test_dependencies_must_be_submitted_first():
    sched = Scheduler()
    sched.submit("a")
    with pytest.raises(SchedulingError, match="unit b depends on later, not submitted before it"):
        sched.submit("b", deps=["a", "later"])
    with pytest.raises(SchedulingError, match="unit a submitted twice"):
        sched.submit("a")


def test_submitted_after_its_dependency_failed_is_blocked_at_once():
    sched = Scheduler()
    sched.submit("a")
    sched.fail(sched.pop_ready())
    sched.submit("late", deps=["a"])
    assert sched.state("late") == "blocked" and sched.finished


@pytest.mark.parametrize("seed", range(5))
def test_random_graphs_run_each_unit_once_after_its_dependencies(seed):
    """Random DAGs, several workers finishing in random order, random failures and lost workers:
    nothing runs twice unless lost, nothing runs before its dependencies are done, nothing downstream of
    a failure runs, and every unit ends."""
    rng = random.Random(seed)
    n = 200
    deps = {f"u{i}": {f"u{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 3)))} for i in range(n)}
    sched = Scheduler(retries=1)
    for key, d in deps.items():
        sched.submit(key, rng.randint(0, 3), d)
    handed: dict[str, int] = {}
    ended: dict[str, str] = {}
    running: list[str] = []
    lost_once: set[str] = set()
    while not sched.finished:
        while len(running) < 4 and (key := sched.pop_ready()) is not None:
            assert all(ended.get(d) in ("done", "skipped") for d in deps[key]), key
            handed[key] = handed.get(key, 0) + 1
            running.append(key)
        assert running, "stalled"
        key = running.pop(rng.randrange(len(running)))
        roll = rng.random()
        if roll < 0.05 and key not in lost_once:
            lost_once.add(key)
            assert sched.lost(key)
            continue
        if roll < 0.1:
            ended[key] = "failed"
            for blocked, upstream in sched.fail(key):
                assert blocked not in ended and upstream in deps[blocked]
                ended[blocked] = "blocked"
        else:
            ended[key] = rng.choice(["done", "skipped"])
            sched.complete(key, ended[key])
    assert len(ended) == n
    for key, count in handed.items():
        assert count == 1 + (key in lost_once)
    for key, status in ended.items():
        # blocked exactly when some dependency did not succeed
        upstream_ok = all(ended[d] in ("done", "skipped") for d in deps[key])
        assert (status == "blocked") == (not upstream_ok), key
        assert sched.state(key) == status
