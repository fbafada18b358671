"""The skywatcher tool: placeholder until its issue lands."""
from terapix_fw.errors import ToolError
from terapix_fw.tool import Tool


class SkyWatcherTool(Tool):
    name = "skywatcher"
    version = "0.1.0"
    description = "skywatcher (not implemented yet)"
    parameters = []
    produces = ("coverage",)

    def run(self, ctx):
        raise ToolError("skywatcher is not implemented yet")
