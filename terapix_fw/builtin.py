"""Built-in hook implementations of the core: the progress display and the log of lifecycle events.

Registered through the same ``terapix_fw.plugins`` entry-point group a third party would use.
"""
from __future__ import annotations

import logging

from .hookspecs import hookimpl

log = logging.getLogger("terapix.run")


@hookimpl
def step_started(run, step):
    """Log the start of a step.

    Parameters
    ----------
    run : RunInfo
    step : StepInfo
    """
    log.info("step %s (%s %s) started", step.id, step.tool, step.tool_version)


@hookimpl
def step_finished(run, step, summary):
    """Log the end of a step.

    Parameters
    ----------
    run : RunInfo
    step : StepInfo
    summary : dict of str to int
    """
    log.info("step %s finished: %s", step.id, summary)


@hookimpl
def step_failed(run, step, summary):
    # a drop-in run prints its one line itself (terapix_fw.dropin); the terminal gets nothing more
    """Log a failed step (as an error in a pipeline run; a drop-in run prints its one line itself).

    Parameters
    ----------
    run : RunInfo
    step : StepInfo
    summary : dict of str to int
    """
    log.log(logging.INFO if run.mode == "tool" else logging.ERROR, "step %s failed: %s", step.id, summary)


@hookimpl
def unit_finished(run, step, unit, result):
    """Log a unit's end: status, host, duration, error and log path.

    Parameters
    ----------
    run : RunInfo
    step : StepInfo
    unit : UnitInfo
    result : UnitResult
    """
    level = logging.ERROR if result.status == "failed" and run.mode != "tool" else logging.INFO
    log.log(level, "unit %s/%s %s on %s in %.2f s%s (log: %s)", step.id, unit.id, result.status, result.host,
            result.end - result.start, f": {result.error}" if result.error else "", result.log_path)
