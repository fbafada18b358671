"""Every hook of terapix-fw.  The argument names are the contract; each hook's docstring says what they are.

Built-in features (the database recorder, the progress display, the web pages of each plugin) are
plugins implementing these hooks, exactly as a third party's plugin would.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("terapix_fw")
hookimpl = pluggy.HookimplMarker("terapix_fw")

__all__ = ["hookspec", "hookimpl"]


@hookspec
def register_tools(register):
    """Call ``register(ToolClass)`` for every tool this plugin provides.

    Parameters
    ----------
    register : callable
        ``register(ToolClass)`` adds a :class:`~terapix_fw.tool.Tool` subclass under its ``name``.
    """


@hookspec
def register_commands(subparsers):
    """Add ``terapix`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The sub-parser collection of the ``terapix`` command; ``add_parser`` one per command and set its
        ``func`` default.
    """


@hookspec
def run_started(run):
    """A run of an instruction file (or a drop-in tool run) starts.

    Parameters
    ----------
    run : RunInfo
        The run (id, instruction file, work directory, parameters).
    """


@hookspec
def run_finished(run, summary):
    """A run ended.

    Parameters
    ----------
    run : RunInfo
        The run (id, instruction file, work directory, parameters).
    summary : dict of str to int
        Unit counts by status (``done``, ``failed``, ``skipped``).
    """


@hookspec
def step_started(run, step):
    """The first unit of ``step`` is about to be submitted.

    Parameters
    ----------
    run : RunInfo
        The run (id, instruction file, work directory, parameters).
    step : Step
        The step of the task graph (id, tool, fan-out, units).
    """


@hookspec
def step_finished(run, step, summary):
    """Every unit of ``step`` ended and none failed.

    Parameters
    ----------
    run : RunInfo
        The run (id, instruction file, work directory, parameters).
    step : Step
        The step of the task graph (id, tool, fan-out, units).
    summary : dict of str to int
        Unit counts by status.
    """


@hookspec
def step_failed(run, step, summary):
    """Every unit of ``step`` ended and at least one failed.

    Parameters
    ----------
    run : RunInfo
        The run (id, instruction file, work directory, parameters).
    step : Step
        The step of the task graph (id, tool, fan-out, units).
    summary : dict of str to int
        Unit counts by status.
    """


@hookspec
def unit_finished(run, step, unit, result):
    """One unit ended (done, skipped or failed).

    Parameters
    ----------
    run : RunInfo
        The run (id, instruction file, work directory, parameters).
    step : Step
        The step of the task graph (id, tool, fan-out, units).
    unit : Unit
        The data unit (step, key, inputs, extension or group).
    result : UnitResult
        Status, products, records, error, log path, host and start/end times.
    """


@hookspec
def product_recorded(run, step, unit, product):
    """A unit produced a file.

    Parameters
    ----------
    run : RunInfo
        The run (id, instruction file, work directory, parameters).
    step : Step
        The step of the task graph (id, tool, fan-out, units).
    unit : Unit
        The data unit (step, key, inputs, extension or group).
        Its ``inputs`` are the files the product was made from.
    product : Product
        Path, kind, checksum and size of the file.
    """


@hookspec
def record_emitted(run, step, unit, kind, data):
    """A tool sent a record with :meth:`StepContext.record <terapix_fw.tool.StepContext.record>`.

    Parameters
    ----------
    run : RunInfo
        The run (id, instruction file, work directory, parameters).
    step : Step
        The step of the task graph (id, tool, fan-out, units).
    unit : Unit
        The data unit (step, key, inputs, extension or group).
    kind : str
        Record kind (``exposure``, ``quality``, ``catalog``, ``stack``...).
    data : dict
        The record's fields.
    """


@hookspec
def web_pages(register):
    """Add pages to the web report.

    Parameters
    ----------
    register : callable
        ``register(name, template, context)`` for each page; ``context(db)`` returns the template's
        variables as a dict.
    """


@hookspec
def stack_finished(job):
    """A Spica job (stack, field or image-by-image exposure) ended.

    Parameters
    ----------
    job : dict
        Its ``spica_jobs`` row.
    """
