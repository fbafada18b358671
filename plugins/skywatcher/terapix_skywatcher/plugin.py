"""Registers the skywatcher tool and its report page with terapix-fw (entry point group ``terapix_fw.plugins``).

Only the tool class is imported here; its algorithms are imported inside ``run`` so that
``terapix plugins`` and drop-in start-up stay fast.
"""
from pathlib import Path

from terapix_fw.hookspecs import hookimpl

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_tools(register):
    from .tool import SkyWatcherTool

    register(SkyWatcherTool)


def coverage_context(db):
    """The latest coverage of each filter (newest record first), and older ones as history."""
    from terapix_fw.web import data

    latest: dict[str, dict] = {}
    history = []
    for rec in data.records(db, "coverage"):
        band = str(rec["data"].get("filter", "?"))
        if band in latest:
            history.append(rec)
        else:
            latest[band] = rec
    figures: dict[str, str] = {}  # path -> caption; the footprint plot is shared by the filters of a run
    for band in sorted(latest):
        rec = latest[band]["data"]
        if rec.get("footprints"):
            figures.setdefault(str(rec["footprints"]), "CCD footprints")
        if rec.get("plot"):
            figures.setdefault(str(rec["plot"]), f"{band}: exposure count and summed exposure time")
    return {"latest": [latest[b] for b in sorted(latest)], "history": history,
            "figures": list(figures.items())}


@hookimpl
def web_pages(register):
    register("coverage", TEMPLATES / "skywatcher_coverage.html", coverage_context, title="Sky coverage",
             order=45)
