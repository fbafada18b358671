"""Registers the snooppix tool and its report page with terapix-fw (entry point group ``terapix_fw.plugins``).

Only the tool class is imported here; its algorithms are imported inside ``run`` so that
``terapix plugins`` and drop-in start-up stay fast.
"""
from pathlib import Path

from terapix_fw.hookspecs import hookimpl

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_tools(register):
    from .tool import SnooppixTool

    register(SnooppixTool)


def transfers_context(db):
    """Transfer history (every tool's transfers) and snooppix's own download records."""
    from terapix_fw.web import data

    history = data.transfers(db)
    downloads = [r for r in data.records(db, "transfer") if "url" in r["data"]]
    return {**history, "downloads": downloads}


@hookimpl
def web_pages(register):
    register("transfers", TEMPLATES / "snooppix_transfers.html", transfers_context, title="Transfers", order=40)
