"""Registers the qualityfits tool with terapix-fw (entry point group ``terapix_fw.plugins``).

Only the tool class is imported here; its algorithms are imported inside ``run`` so that
``terapix plugins`` and drop-in start-up stay fast.
"""
from terapix_fw.hookspecs import hookimpl


@hookimpl
def register_tools(register):
    from .tool import QualityFitsTool

    register(QualityFitsTool)
