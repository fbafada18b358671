"""Execution of one unit of work: the only code that calls :meth:`Tool.run`.

It runs inside a worker process (local pool or Dask worker) as well as in drop-in runs.  It never raises
for a tool error: the error comes back as a failed :class:`UnitResult` carrying the log, so the executor
can tell a deterministic failure (not retried) from a lost worker (retried).
"""
from __future__ import annotations

import logging
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .tool import StepContext, UnitResult

__all__ = ["UnitSpec", "execute_unit"]


@dataclass
class UnitSpec:
    """A picklable description of one unit, sent to a worker."""

    step: str
    unit: str
    tool: str
    config_layers: list[list[tuple[str, Any, str | None]]]
    inputs: list[str]
    outdir: str
    log_path: str
    extension: int | str | None = None  # n-th image extension (1-based) or EXTNAME
    group: str | None = None
    nthreads: int = 1
    confine_outputs: bool = True
    key: str = ""
    #: "module:Class" of the tool, so a worker imports just that tool instead of every plugin
    tool_ref: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _unit_logger(spec: UnitSpec) -> tuple[logging.Logger, logging.Handler]:
    Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"terapix.unit.{spec.step}.{spec.unit}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(spec.log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger, handler


def _import_tool(ref: str):
    import importlib

    module, _, qualname = ref.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def failure_line(exc: BaseException, spec: UnitSpec) -> str:
    """The one line a failed unit reports.

    ``Class: message`` for the errors the framework expects (:class:`~terapix_fw.errors.TerapixError`:
    they name the file and keyword themselves); any other exception is a bug met on some input, so its
    line also names the tool and its inputs and says where the traceback is.

    Parameters
    ----------
    exc : BaseException
        The error.
    spec : UnitSpec
        The unit that failed.

    Returns
    -------
    str
    """
    from .errors import TerapixError

    text = " ".join(str(exc).split())
    if isinstance(exc, TerapixError):
        return f"{type(exc).__name__}: {text}"
    where = ", ".join(spec.inputs) + (f"[{spec.extension}]" if spec.extension is not None else "")
    return f"{type(exc).__name__}: {text[:300]} (unexpected error of {spec.tool} on {where}; traceback in the log)"


def _terminal_level(config) -> int:
    """What a drop-in run prints, from the AstrOmatic VERBOSE_TYPE of tools that have it: QUIET prints
    nothing but errors (and the drop-in prints a failure's one line itself); NORMAL and FULL the unit's
    progress lines. The unit log always gets everything."""
    try:
        verbose = str(config["VERBOSE_TYPE"]).upper()
    except KeyError:
        return logging.INFO
    return logging.ERROR if verbose == "QUIET" else logging.INFO


def execute_unit(spec: UnitSpec, echo: bool = False) -> UnitResult:
    """Run one unit and return its result.  Tool errors are caught and returned, never raised.

    Parameters
    ----------
    spec : UnitSpec
        Tool, inputs, configuration, output directory and log path of the unit.
    echo : bool
        Also show the unit's log on the terminal (drop-in runs).

    Returns
    -------
    UnitResult
        Status, products, records, error line, host and times.
    """
    from .plugins import get_tool

    start = time.time()
    log, handler = _unit_logger(spec)
    stream = None
    if echo:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("> %(message)s"))
        stream.addFilter(lambda record: not getattr(record, "log_file_only", False))
        log.addHandler(stream)
    result = UnitResult(step=spec.step, unit=spec.unit, status="done", log_path=spec.log_path,
                        host=socket.gethostname(), start=start, key=spec.key)
    ctx = None
    try:
        cls = _import_tool(spec.tool_ref) if spec.tool_ref else get_tool(spec.tool).cls
        tool = cls()
        config = cls.parameter_set().resolve(*spec.config_layers)
        if stream is not None:
            stream.setLevel(_terminal_level(config))
        where = "".join(f", {label} {value}" for label, value in (("extension", spec.extension),
                                                                  ("group", spec.group)) if value is not None)
        log.info("%s %s on %s%s", cls.name, cls.version, ", ".join(spec.inputs), where)
        for key, value in config.non_defaults().items():
            log.info("  %s = %r", key, value)
        Path(spec.outdir).mkdir(parents=True, exist_ok=True)
        ctx = StepContext(inputs=[Path(p) for p in spec.inputs], config=config, outdir=Path(spec.outdir),
                          log=log, extension=spec.extension, group=spec.group, nthreads=spec.nthreads,
                          confine_outputs=spec.confine_outputs, step=spec.step, unit=spec.unit)
        tool.run(ctx)
        result.products = ctx.products
        result.records = ctx.records
        log.info("done in %.2f s: %d product(s)", time.time() - start, len(ctx.products))
    except Exception as exc:  # noqa: BLE001 - every tool error is reported, none kills the runner
        result.status = "failed"
        result.error = failure_line(exc, spec)
        if ctx is not None:  # what the tool reported before failing (e.g. failed transfers) is kept
            result.records = ctx.records
        log.error("failed: %s", result.error, extra={"log_file_only": True})  # drop-in prints it once
        # the traceback goes to the unit log only, never to the terminal of a drop-in run
        log.info("traceback:\n%s", traceback.format_exc(), extra={"log_file_only": True})
    finally:
        result.end = time.time()
        for h in list(log.handlers):
            log.removeHandler(h)
            h.close()
        handler.close()
    return result
