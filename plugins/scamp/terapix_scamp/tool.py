"""The scamp tool: placeholder until its issue lands."""
from terapix_fw.errors import ToolError
from terapix_fw.tool import Tool


class ScampTool(Tool):
    name = "scamp"
    version = "0.1.0"
    description = "scamp (not implemented yet)"
    parameters = []
    produces = ("head",)

    def run(self, ctx):
        raise ToolError("scamp is not implemented yet")
