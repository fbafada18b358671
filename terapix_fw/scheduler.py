"""The runner's scheduling decisions, with no I/O: which unit runs next, which wait, which are blocked.

The runner submits every unit (with its priority and dependencies) before anything runs, then drives a
:class:`Scheduler` with events and does the work itself (preparing, executing, recording)::

    sched = Scheduler(retries=2)
    for unit in graph.order():                      # dependencies first
        sched.submit(unit.key, unit.priority, unit.deps)
    while not sched.finished:
        key = sched.pop_ready()                     # highest priority first, then submission order
        ...                                         # run it, or find it up to date
        sched.complete(key, "done")                 # or "skipped": its dependents may now be ready
        sched.fail(key)                             # a tool error: returns the dependents it blocks
        sched.lost(key)                             # worker lost: True if queued again for a retry

A dependent becomes ready only when every one of its dependencies is done or skipped; a failed unit
blocks exactly its dependents, transitively; a unit is handed out again only after :meth:`lost`, at most
``retries`` more times; a unit that completed is never handed out again.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable

__all__ = ["Scheduler", "SchedulingError"]

#: states of a unit; done/skipped/failed/blocked are final
PENDING, READY, RUNNING = "pending", "ready", "running"
SUCCESS = ("done", "skipped")
FINAL = ("done", "skipped", "failed", "blocked")


class SchedulingError(RuntimeError):
    """An event that contradicts the scheduler's state (a bug of the caller, never of the input)."""


class Scheduler:
    """Ready heap by priority, dependents, bounded retries and blocking, for units named by string keys."""

    def __init__(self, retries: int = 2):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.retries = retries
        self._state: dict[str, str] = {}
        self._priority: dict[str, int] = {}
        self._rank: dict[str, int] = {}  # submission order: ties of priority run in graph order
        self._waiting: dict[str, int] = {}  # dependencies not yet done
        self._dependents: dict[str, list[str]] = {}
        self._attempts: dict[str, int] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._unfinished = 0

    # -- building ---------------------------------------------------------------------------------------
    def submit(self, key: str, priority: int = 0, deps: Iterable[str] = ()) -> None:
        """Add a unit.

        Its dependencies must have been submitted before it (a topological order), so that a cycle or a
        dependency on a unit that does not exist is refused here instead of stalling a run.

        Parameters
        ----------
        key : str
            The unit's key (``step/unit``).
        priority : int
            Higher is handed out first among ready units.
        deps : iterable of str
            Keys of the units it waits for.

        Raises
        ------
        SchedulingError
            If the key was submitted before or a dependency was not.
        """
        if key in self._state:
            raise SchedulingError(f"unit {key} submitted twice")
        deps = list(dict.fromkeys(deps))
        unknown = [d for d in deps if d not in self._state]
        if unknown:
            raise SchedulingError(f"unit {key} depends on {', '.join(unknown)}, not submitted before it")
        self._rank[key] = len(self._rank)
        self._priority[key] = priority
        self._attempts[key] = 0
        self._unfinished += 1
        waiting = 0
        blocked_by = None
        for d in deps:
            self._dependents.setdefault(d, []).append(key)
            state = self._state[d]
            if state in ("failed", "blocked"):
                blocked_by = blocked_by or d
            elif state not in SUCCESS:
                waiting += 1
        self._waiting[key] = waiting
        self._state[key] = PENDING
        if blocked_by is not None:  # submitted after its dependency failed: blocked at once
            self._block_from(blocked_by, only=key)
        elif not waiting:
            self._push(key)

    # -- events -----------------------------------------------------------------------------------------
    def pop_ready(self) -> str | None:
        """The ready unit to run next (highest priority, then first submitted), now running; None if no
        unit is ready.  Counts one attempt."""
        while self._heap:
            _, _, key = heapq.heappop(self._heap)
            if self._state[key] == READY:
                self._state[key] = RUNNING
                self._attempts[key] += 1
                return key
        return None

    def complete(self, key: str, status: str = "done") -> list[str]:
        """A running unit ended ``done`` or ``skipped`` (up to date, nothing to do).

        Parameters
        ----------
        key : str
            The unit.
        status : str
            ``done`` or ``skipped``.

        Returns
        -------
        list of str
            The dependents that became ready (every dependency done or skipped).

        Raises
        ------
        ValueError
            For another status (use :meth:`fail`).
        """
        if status not in SUCCESS:
            raise ValueError(f"complete() takes done or skipped, not {status!r}: use fail()")
        self._finish(key, status)
        ready = []
        for dep in self._dependents.get(key, ()):
            if self._state[dep] != PENDING:
                continue
            self._waiting[dep] -= 1
            if not self._waiting[dep]:
                self._push(dep)
                ready.append(dep)
        return ready

    def fail(self, key: str) -> list[tuple[str, str]]:
        """A running unit failed (tool error, bad configuration, retries exhausted): block every unit downstream.

        Parameters
        ----------
        key : str
            The unit.

        Returns
        -------
        list of (str, str)
            ``(blocked unit, the unit that blocked it)`` pairs, depth first (each blocked unit followed by what
            it blocks in turn), each unit once.
        """
        self._finish(key, "failed")
        return self._block_from(key)

    def lost(self, key: str) -> bool:
        """The worker running ``key`` was lost.

        Parameters
        ----------
        key : str
            The unit.

        Returns
        -------
        bool
            True: queued again (attempts left, retried with its priority); False: ``retries`` retries used
            up, the caller records it failed with :meth:`fail`.

        Raises
        ------
        SchedulingError
            If the unit is not running.
        """
        if self._state.get(key) != RUNNING:
            raise SchedulingError(f"unit {key} reported lost but it is {self._state.get(key, 'unknown')}")
        if self._attempts[key] > self.retries:
            return False
        self._push(key)
        return True

    # -- queries ----------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Every submitted unit reached a final state."""
        return self._unfinished == 0

    @property
    def has_ready(self) -> bool:
        """Whether a unit is ready to be handed out."""
        return bool(self._heap)  # only ready units are in the heap

    def state(self, key: str) -> str:
        """The state of a unit.

        Parameters
        ----------
        key : str

        Returns
        -------
        str
            pending, ready, running, done, skipped, failed or blocked.
        """
        return self._state[key]

    def attempts(self, key: str) -> int:
        """How many times the unit was handed out by :meth:`pop_ready`.

        Parameters
        ----------
        key : str

        Returns
        -------
        int
        """
        return self._attempts[key]

    def count(self, *states: str) -> int:
        """Number of units in any of ``states``.

        Parameters
        ----------
        *states : str
            States such as ``done``, ``failed``.

        Returns
        -------
        int
        """
        return sum(1 for s in self._state.values() if s in states)

    # -- internals --------------------------------------------------------------------------------------
    def _push(self, key: str) -> None:
        self._state[key] = READY
        heapq.heappush(self._heap, (-self._priority[key], self._rank[key], key))

    def _finish(self, key: str, status: str) -> None:
        state = self._state.get(key)
        if state != RUNNING:  # never twice, never a unit that was not handed out
            raise SchedulingError(f"unit {key} reported {status} but it is {state or 'unknown'}")
        self._state[key] = status
        self._unfinished -= 1

    def _block_from(self, key: str, only: str | None = None) -> list[tuple[str, str]]:
        blocked: list[tuple[str, str]] = []
        # explicit stack instead of recursion: chains of thousands of units must not hit the recursion limit
        stack = [(key, iter([only] if only else self._dependents.get(key, ())))]
        while stack:
            upstream, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                continue
            if self._state[child] != PENDING:  # already blocked through another failed dependency
                continue
            self._state[child] = "blocked"
            self._unfinished -= 1
            blocked.append((child, upstream))
            stack.append((child, iter(self._dependents.get(child, ()))))
        return blocked
