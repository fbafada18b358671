"""The qualityfits tool: placeholder until its issue lands."""
from terapix_fw.errors import ToolError
from terapix_fw.tool import Tool


class QualityFitsTool(Tool):
    name = "qualityfits"
    version = "0.1.0"
    description = "qualityfits (not implemented yet)"
    parameters = []
    produces = ("quality",)

    def run(self, ctx):
        raise ToolError("qualityfits is not implemented yet")
