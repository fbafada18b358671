"""Small real tools for the core's tests: they read and write FITS files through the framework API.

``scale`` multiplies images (per file or per extension) and can be told to fail or to kill its own worker
once; ``stack`` sums its inputs.  Both append to ORDER_LOG so tests can see the execution order.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from terapix_fw.errors import ToolError
from terapix_fw.hookspecs import hookimpl
from terapix_fw.params import Parameter
from terapix_fw.tool import Tool


def _log_order(ctx) -> None:
    if ctx.config["ORDER_LOG"]:
        with open(ctx.config["ORDER_LOG"], "a") as handle:
            handle.write(f"{ctx.step}/{ctx.unit}\n")


class ScaleTool(Tool):
    name = "scale"
    version = "1.2"
    description = "multiply image data by FACTOR"
    produces = ("image",)
    parameters = [
        Parameter("FACTOR", "float", 1.0, "multiplicative factor"),
        Parameter("OUTPUT_NAME", "str", "{stem}_scaled.fits", "output file name", output=True),
        Parameter("FAIL_ON", "str", "", "fail deterministically on inputs whose name contains this"),
        Parameter("KILL_ONCE", "str", "", "marker file: if absent, create it and kill this worker"),
        Parameter("SLEEP", "float", 0.0, "seconds to sleep before working", minimum=0),
        Parameter("ORDER_LOG", "str", "", "append step/unit to this file when starting"),
        Parameter("MODE", "keyword", "FAST", "processing mode", choices=("FAST", "SLOW")),
        Parameter("EXTRA", "str", "", "a file name given by an input param", nvalues=(0, None)),
    ]

    def run(self, ctx):
        from astropy.io import fits

        _log_order(ctx)
        if ctx.config["SLEEP"]:
            time.sleep(ctx.config["SLEEP"])
        marker = ctx.config["KILL_ONCE"]
        if marker and not os.path.exists(marker):
            Path(marker).write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        for path in ctx.inputs:
            if ctx.config["FAIL_ON"] and ctx.config["FAIL_ON"] in path.name:
                ctx.record("refusal", path=str(path))  # reported before failing: must reach RDBix
                raise ToolError(f"{path}: refused because its name contains {ctx.config['FAIL_ON']!r}")
            with fits.open(path) as hdul:
                hdus = [hdul[ctx.extension]] if ctx.extension is not None else list(hdul)
                factor = ctx.config["FACTOR"]
                out = fits.HDUList([fits.PrimaryHDU(None if hdus[0].data is None else hdus[0].data * factor)])
                out[0].header["FILTER"] = hdul[0].header.get("FILTER", "")
                out.extend(fits.ImageHDU(h.data * factor, header=h.header) for h in hdus[1:])
                out[0].header["SCALED"] = (ctx.config["FACTOR"], "factor applied by scale")
                name = ctx.config["OUTPUT_NAME"]
                with ctx.product(name, kind="image") as tmp:
                    out.writeto(tmp)
        ctx.record("catalog", path=str(ctx.inputs[0]), nsources=len(ctx.inputs))
        ctx.log.info("extra inputs: %s", ctx.config["EXTRA"])


class StackTool(Tool):
    name = "stack"
    version = "0.3"
    description = "sum all input images"
    produces = ("sum",)
    default_fanout = "all"
    parameters = [
        Parameter("OUTPUT_NAME", "str", "sum_{unit}.fits", "output file name", output=True),
        Parameter("ORDER_LOG", "str", "", "append step/unit to this file when starting"),
    ]

    def run(self, ctx):
        import numpy as np
        from astropy.io import fits

        _log_order(ctx)
        total = None
        for path in ctx.inputs:
            with fits.open(path) as hdul:
                data = next(h.data for h in hdul if h.data is not None).astype(np.float64)
            total = data if total is None else total + data
        with ctx.product(ctx.config["OUTPUT_NAME"], kind="sum") as tmp:
            fits.PrimaryHDU(total).writeto(tmp)


@hookimpl
def register_tools(register):
    register(ScaleTool)
    register(StackTool)
