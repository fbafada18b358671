"""The snooppix tool: placeholder until its issue lands."""
from terapix_fw.errors import ToolError
from terapix_fw.tool import Tool


class SnooppixTool(Tool):
    name = "snooppix"
    version = "0.1.0"
    description = "snooppix (not implemented yet)"
    parameters = []
    produces = ("download",)

    def run(self, ctx):
        raise ToolError("snooppix is not implemented yet")
