"""A tool for the worker-preload tests: ``probe`` declares :mod:`preload_probe_heavy` as its worker
preload and writes, per unit, its worker's pid, whether that module was already imported when the unit
started, and the PROBE_VALUE environment variable it sees; and the garbage collector's state: whether it
ran while that module was imported, whether it runs in the unit, and how many objects it holds frozen."""
from __future__ import annotations

import gc
import json
import os
import sys

from terapix_fw.hookspecs import hookimpl
from terapix_fw.params import Parameter
from terapix_fw.tool import Tool


class ProbeTool(Tool):
    name = "probe"
    version = "1.0"
    produces = ("probe",)
    worker_preload = ("preload_probe_heavy",)
    parameters = [Parameter("OUTPUT_NAME", "str", "{stem}.probe.json", "output file name", output=True)]

    def run(self, ctx):
        seen = {"pid": os.getpid(), "preloaded": "preload_probe_heavy" in sys.modules,
                "value": os.environ.get("PROBE_VALUE"), "gc_in_unit": gc.isenabled(),
                "frozen": gc.get_freeze_count()}
        heavy = sys.modules.get("preload_probe_heavy")
        seen["gc_in_preload"] = getattr(heavy, "COLLECTING", None)
        with ctx.product(ctx.config["OUTPUT_NAME"], kind="probe") as tmp:
            tmp.write_text(json.dumps(seen))


@hookimpl
def register_tools(register):
    register(ProbeTool)
