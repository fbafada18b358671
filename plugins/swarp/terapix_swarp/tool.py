"""The swarp tool: placeholder until its issue lands."""
from terapix_fw.errors import ToolError
from terapix_fw.tool import Tool


class SwarpTool(Tool):
    name = "swarp"
    version = "0.1.0"
    description = "swarp (not implemented yet)"
    parameters = []
    produces = ("stack",)

    def run(self, ctx):
        raise ToolError("swarp is not implemented yet")
