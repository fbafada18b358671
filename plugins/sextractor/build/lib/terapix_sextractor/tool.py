"""The sextractor tool: placeholder until its issue lands."""
from terapix_fw.errors import ToolError
from terapix_fw.tool import Tool


class SExtractorTool(Tool):
    name = "sextractor"
    version = "0.1.0"
    description = "sextractor (not implemented yet)"
    parameters = []
    produces = ("catalog",)

    def run(self, ctx):
        raise ToolError("sextractor is not implemented yet")
