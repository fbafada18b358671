"""Registers the datatransfer tool with terapix-fw (entry point group ``terapix_fw.plugins``).

Only the tool class is imported here; paramiko and astropy are imported inside ``run`` so that
``terapix plugins`` and drop-in start-up stay fast.
"""
from terapix_fw.hookspecs import hookimpl


@hookimpl
def register_tools(register):
    from .tool import DatatransferTool

    register(DatatransferTool)
