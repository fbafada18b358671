"""Every hook of terapix-fw.  The argument names are the contract; each hook has a one-line docstring.

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
    """Call ``register(ToolClass)`` for every tool this plugin provides."""


@hookspec
def register_commands(subparsers):
    """Add ``terapix`` subcommands: ``subparsers`` is the argparse sub-parser collection."""


@hookspec
def run_started(run):
    """A run of an instruction file (or a drop-in tool run) starts; ``run`` is a RunInfo."""


@hookspec
def run_finished(run, summary):
    """A run ended; ``summary`` maps done/failed/skipped to unit counts."""


@hookspec
def step_started(run, step):
    """The first unit of ``step`` (a Step) is about to be submitted."""


@hookspec
def step_finished(run, step, summary):
    """Every unit of ``step`` ended and none failed; ``summary`` counts units by status."""


@hookspec
def step_failed(run, step, summary):
    """Every unit of ``step`` ended and at least one failed."""


@hookspec
def unit_finished(run, step, unit, result):
    """One unit ended (done, skipped or failed); ``result`` is a UnitResult with host, times, log."""


@hookspec
def product_recorded(run, step, unit, product):
    """A unit produced ``product`` (a Product with path, kind, checksum); inputs are ``unit.inputs``."""


@hookspec
def record_emitted(run, step, unit, kind, data):
    """A tool sent a record (``kind`` such as exposure, quality, catalog, stack) with ``data``."""


@hookspec
def web_pages(register):
    """Call ``register(name, template, context)`` for each report page; ``context(db)`` returns a dict."""


@hookspec
def stack_finished(job):
    """A Spica job (stack, field or image-by-image exposure) ended; ``job`` is its spica_jobs row as a dict."""
