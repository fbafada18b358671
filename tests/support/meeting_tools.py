"""A test tool that proves two units run at the same moment, without timing: ``meet`` announces its
arrival (a file) and waits until every partner has arrived, then until the test lets it go.

Run one after the other, the first ``meet`` would wait in vain and fail at its TIMEOUT: a unit that ends
``done`` therefore ran while each of its partners was running too.  Files, because the units run in
other processes (a process pool, Dask workers).
"""
from __future__ import annotations

import time
from pathlib import Path

from terapix_fw.errors import ToolError
from terapix_fw.hookspecs import hookimpl
from terapix_fw.params import Parameter
from terapix_fw.tool import Tool


def wait_for_files(paths: list[Path], timeout: float) -> bool:
    """True as soon as every path exists, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class MeetTool(Tool):
    name = "meet"
    version = "1.0"
    description = "arrive, wait for every partner to arrive, then for GO"
    produces = ("meeting",)
    default_fanout = "all"
    parameters = [
        Parameter("ARRIVE", "path", "", "file written when this unit starts"),
        Parameter("PARTNERS", "str", "", "arrival files that must all exist", nvalues=(0, None)),
        Parameter("GO", "path", "", "file the unit waits for once everyone has arrived (none: go at once)"),
        Parameter("TIMEOUT", "float", 120.0, "seconds before the unit gives up and fails", minimum=0),
        Parameter("OUTPUT_NAME", "str", "meeting_{unit}.txt", "output file name", output=True),
    ]

    def run(self, ctx):
        Path(ctx.config["ARRIVE"]).write_text("arrived\n")
        partners = [Path(p) for p in ctx.config["PARTNERS"] if p]
        if not wait_for_files(partners, ctx.config["TIMEOUT"]):
            raise ToolError(f"meet: partners {[p.name for p in partners if not p.exists()]} never arrived")
        go = [Path(ctx.config["GO"])] if ctx.config["GO"] else []
        if not wait_for_files(go, ctx.config["TIMEOUT"]):
            raise ToolError(f"meet: {go[0]} never appeared")
        with ctx.product(ctx.config["OUTPUT_NAME"], kind="meeting") as tmp:
            Path(tmp).write_text(" ".join(p.name for p in partners) + "\n")


@hookimpl
def register_tools(register):
    register(MeetTool)


def register_test_tools() -> None:
    """Register ``meet`` and the ``scale``/``stack`` tools of demo_tools in this process (run on Dask
    workers, whose plugin manager knows only the installed plugins)."""
    import demo_tools

    from terapix_fw import plugins
    pm = plugins.get_plugin_manager()
    for name, module in (("demo_tools", demo_tools), ("meeting_tools", __import__(__name__))):
        if not pm.is_registered(module):
            pm.register(module, name=name)
    plugins._tools.cache_clear()
