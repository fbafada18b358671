"""Registers the stiff tool with terapix-fw (entry point group ``terapix_fw.plugins``)."""
from terapix_fw.hookspecs import hookimpl


@hookimpl
def register_tools(register):
    from .tool import StiffTool

    register(StiffTool)
