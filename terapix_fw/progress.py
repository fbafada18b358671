"""What a run shows on stderr while it works: the running steps, warm-up phases and unit counts.

On a terminal: a progress bar (tqdm) whose label names the running step(s), with step and warm-up events
printed above it.  Anywhere else (a pipe, a log file, a batch system's output): no bar and no carriage
returns, one plain line per event, so that a log says what ran when.

A warm-up is the first unit(s) of a tool whose code is compiled by numba at first use (two minutes for the
SExtractor-like extraction on a fresh install): shown as a phase of its own instead of a silent bar, and
its duration reported when the first unit ends.  Whether a tool compiles is read from its package's
source and numba's cache files, without importing numba (:func:`warmup_reason`).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import TextIO

__all__ = ["Progress", "warmup_reason"]

log = logging.getLogger("terapix.run")

_USES_NUMBA = re.compile(rb"^\s*(?:from\s+numba\b|import\s+numba\b)", re.MULTILINE)
_IMPORTS = re.compile(rb"^\s*(?:from|import)\s+(terapix_(?!fw\b)\w+)", re.MULTILINE)


@lru_cache(maxsize=None)
def _scan(directory: str) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    """Source files under ``directory`` that import numba, and the other terapix plugin packages they
    import (qualityfits runs psfex's and weightwatcher's compiled code); tests excluded."""
    modules, others = [], set()
    for path in sorted(Path(directory).rglob("*.py")):
        if "tests" in path.relative_to(directory).parts:
            continue
        try:
            text = path.read_bytes()
        except OSError:
            continue
        if _USES_NUMBA.search(text):
            modules.append(path)
        others.update(m.decode() for m in _IMPORTS.findall(text))
    return tuple(modules), tuple(sorted(others))


def _package_dir(name: str) -> str | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)  # a top-level package: found without importing it
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return locations[0] if locations else None


def _cached(source: Path) -> bool:
    """numba's ``cache=True`` index of a function of ``source``, up to date: in ``__pycache__`` beside it,
    or under NUMBA_CACHE_DIR mirroring its absolute directory (numba's cache locators)."""
    dirs = [source.parent / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        dirs.append(Path(os.environ["NUMBA_CACHE_DIR"]) / str(source.parent.resolve()).lstrip(os.sep))
    try:
        mtime = source.stat().st_mtime
    except OSError:
        return False
    for cache in dirs:
        try:
            if any(f.stat().st_mtime >= mtime for f in cache.glob(f"{source.stem}.*.nbi")):
                return True
        except OSError:
            continue
    return False


def warmup_reason(tool_cls: type) -> str | None:
    """Why the first unit of ``tool_cls`` will be slow, or None.

    "numba compilation, first run only" when the tool's package, or a plugin package it imports, uses
    numba and has no compiled code cached yet (an earlier run compiled it: loading takes seconds).

    Parameters
    ----------
    tool_cls : type
        A :class:`~terapix_fw.tool.Tool` subclass.

    Returns
    -------
    str or None
    """
    module = sys.modules.get(tool_cls.__module__)
    if module is None or not getattr(module, "__file__", None):
        return None
    todo, seen = [str(Path(module.__file__).parent)], set()
    while todo:
        directory = todo.pop()
        if directory in seen:
            continue
        seen.add(directory)
        modules, others = _scan(directory)
        if modules and not any(_cached(m) for m in modules):
            return "numba compilation, first run only"
        todo.extend(d for name in others if (d := _package_dir(name)))
    return None


class _AboveBar:
    """A stream for the terminal's log handler while the bar is shown: each message is printed above the
    bar (cleared, written, redrawn) instead of in the middle of it."""

    def __init__(self, bar, stream):
        self.bar, self.stream = bar, stream

    def write(self, text: str) -> int:
        if text.strip():
            self.bar.write(text.rstrip("\n"), file=self.stream)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class Progress:
    """Progress of one run on ``stream`` (stderr): a bar on a terminal, plain lines elsewhere.

    The runner reports events; nothing here waits for anything.  ``tty`` forces the mode (tests)."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None, tty: bool | None = None,
                 warmups: dict[str, str] | None = None):
        self.total, self.enabled = total, enabled
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = self.stream.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.warmups = dict(warmups or {})  # tool -> reason of its warm-up
        self.counts = {"done": 0, "skipped": 0, "failed": 0, "blocked": 0}
        self.running: dict[str, int] = {}  # step -> units running, in the order the steps started
        self.warming: dict[str, float] = {}  # tool -> when its first unit started
        self.tools: dict[str, str] = {}  # step -> tool
        self.start = time.time()
        self._bar = None
        if enabled and tty:
            from tqdm import tqdm

            # refreshed by the events themselves (and by tick()): no monitor thread
            tqdm.monitor_interval = 0
            self._bar = tqdm(total=total, file=self.stream, unit="unit", dynamic_ncols=True, leave=True,
                             bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} units [{elapsed}{postfix}]")
            # warnings and errors logged to this terminal (terapix's console handler) go above the bar
            self._handlers = [(h, h.setStream(_AboveBar(self._bar, self.stream))) for h in logging.root.handlers
                              if type(h) is logging.StreamHandler and h.stream is self.stream]
            self._refresh()

    # -- events from the runner -------------------------------------------------------------------------
    def step_started(self, step: str, tool: str, units: int) -> None:
        """A step's first unit is about to start.

        Parameters
        ----------
        step : str
            Step id.
        tool : str
            Its tool.
        units : int
            Its number of units.
        """
        self.tools[step] = tool
        self._event(f"step {step} ({tool}) started: {units} unit{'s' if units != 1 else ''}")

    def unit_started(self, step: str, unit: str) -> None:
        """A unit was handed to a worker (the first unit of a tool that warms up shows the warm-up phase).

        Parameters
        ----------
        step : str
        unit : str
        """
        self.running[step] = self.running.get(step, 0) + 1
        tool = self.tools.get(step, step)
        if tool in self.warmups and tool not in self.warming:
            self.warming[tool] = time.time()
            log.info("warming up %s (%s): first unit %s/%s", tool, self.warmups[tool], step, unit)
            self._event(f"warming up {tool} ({self.warmups[tool]})")
        elif not self.tty:
            self._event(f"{step}/{unit} started; running: {self._running_text()}")
        self._refresh()

    def unit_finished(self, step: str, unit: str, status: str, seconds: float | None = None,
                      was_running: bool = True) -> None:
        """A unit ended.

        Parameters
        ----------
        step : str
        unit : str
        status : str
            done, skipped, failed or blocked.
        seconds : float, optional
            Its duration.
        was_running : bool
            False for a unit that never started (blocked, up to date).
        """
        self.counts[status] = self.counts.get(status, 0) + 1
        if was_running and self.running.get(step):
            self.running[step] -= 1
            if not self.running[step]:
                del self.running[step]
        tool = self.tools.get(step, step)
        if was_running and tool in self.warming and tool in self.warmups:
            del self.warmups[tool]  # the first unit ended: the compiled code is there for the others
            text = f"{tool} warmed up in {time.time() - self.warming[tool]:.1f} s (first unit {step}/{unit})"
            log.info("%s", text)
            self._event(text)
        if self._bar is not None:
            self._refresh()
        elif self.enabled:
            took = f" in {seconds:.1f} s" if seconds is not None else ""
            self._event(f"{self._finished()}/{self.total} {step}/{unit} {self._word(status)}{took}; running: "
                        f"{self._running_text()}")

    def unit_lost(self, step: str, unit: str) -> None:
        """The worker running the unit was lost and the unit goes back to the queue for a retry.

        Parameters
        ----------
        step : str
        unit : str
        """
        if self.running.get(step):
            self.running[step] -= 1
            if not self.running[step]:
                del self.running[step]
        self._event(f"worker lost while running {step}/{unit}: retrying")

    def step_finished(self, step: str, counts: dict[str, int]) -> None:
        """Every unit of a step ended.

        Parameters
        ----------
        step : str
        counts : dict of str to int
            Units by status.
        """
        text = ", ".join(f"{n} {self._word(s)}" for s, n in counts.items())
        self._event(f"step {step} ({self.tools.get(step, step)}) finished: {text}")

    def tick(self) -> None:
        """Nothing ended for a while: keep the terminal's elapsed time moving (no line in a log)."""
        if self._bar is not None:
            self._refresh()

    def close(self) -> None:
        """Print the summary line and close the bar."""
        c = self.counts
        text = (f"{self._finished()}/{self.total} units ({c['done']} done, {c['skipped']} up to date, "
                f"{c['failed']} failed, {c['blocked']} blocked), {time.time() - self.start:.1f} s")
        if self._bar is not None:
            self.running.clear()
            self._refresh()
            for handler, stream in self._handlers:
                handler.setStream(stream)
            self._bar.close()
            self._bar = None
        if self.enabled:
            self._write(text)

    # -- output -----------------------------------------------------------------------------------------
    @staticmethod
    def _word(status: str) -> str:
        return "up to date" if status == "skipped" else status

    def _finished(self) -> int:
        return sum(self.counts.values())

    def _running_text(self) -> str:
        return ", ".join(f"{step} ({n})" for step, n in self.running.items()) or "nothing"

    def _event(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(f"[terapix] {text}", file=self.stream)
            self._refresh()
        else:
            self._write(text)

    def _write(self, text: str) -> None:
        self.stream.write(f"[terapix] {text}\n")
        self.stream.flush()

    def _refresh(self) -> None:
        if self._bar is None:
            return
        warming = [f"warming up {tool}" for tool in self.warming if tool in self.warmups]
        done = self._finished()
        idle = "finished" if done >= self.total else "waiting" if done else "starting"
        self._bar.set_description_str("; ".join(warming + ([self._running_text()] if self.running else []))
                                      or idle, refresh=False)
        c = self.counts
        self._bar.set_postfix_str(f"{c['done']} done, {c['skipped']} up to date, {c['failed']} failed, "
                                  f"{c['blocked']} blocked", refresh=False)
        self._bar.n = done  # counts and bar drawn together, never one ahead of the other
        self._bar.refresh()
