"""The skywatcher tool: monitors the progress of a survey on the celestial sphere.

From the headers of all exposures (or FITS_LDAC catalogues) of a step it draws the CCD footprints per
filter and builds HEALPix maps of the number of exposures and the summed exposure time per sky pixel,
then reports the area covered in each filter.

Outputs (names relative to the step's directory; FILTER is the header value, made file-name safe):

* ``COVERAGE_NAME_FILTER.fits``: partial HEALPix map (columns PIXEL, COUNT, EXPTIME);
* ``COVERAGE_NAME_FILTER.png``: exposure count and summed exposure time on the sky;
* ``FOOTPRINT_NAME.png``: CCD outlines, one panel per filter;
* one ``coverage`` record per filter for RDBix (area, exposures, CCDs, depth statistics).

Drop-in use::

    terapix tool skywatcher exposures/*.fits.fz -NSIDE 2048
"""
from __future__ import annotations

import re

from terapix_fw.errors import ConfigError, ToolError
from terapix_fw.params import Parameter
from terapix_fw.tool import Tool

__all__ = ["SkyWatcherTool", "file_safe"]


def file_safe(text: str) -> str:
    """A filter name from a header, reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text).strip(".") or "unknown"


class SkyWatcherTool(Tool):
    name = "skywatcher"
    version = "1.0.0"
    description = "sky coverage maps (footprints, HEALPix exposure count and time) per filter"
    default_fanout = "all"
    consumes = ("exposure", "catalog")
    produces = ("coverage_map", "coverage_plot", "footprint_plot")
    parameters = [
        Parameter("NSIDE", "int", 4096, "HEALPix resolution (power of 2; 4096 = 0.86 arcmin pixels)",
                  minimum=1, maximum=1 << 29),
        Parameter("HEALPIX_ORDERING", "keyword", "RING", "pixel ordering of the maps",
                  choices=("RING", "NESTED")),
        Parameter("FILTER_KEY", "str", "FILTER", "header keyword giving the filter"),
        Parameter("EXPTIME_KEY", "str", "EXPTIME", "header keyword giving the exposure time (s)"),
        Parameter("HEADER_SUFFIX", "str", ".head", "suffix of external headers overriding the WCS"),
        Parameter("GOAL_FILTERS", "str", [], "filters with a depth goal", nvalues=(0, None)),
        Parameter("GOAL_EXPTIME", "float", [], "summed EXPTIME goal of each GOAL_FILTERS (s)",
                  nvalues=(0, None), minimum=0.0),
        Parameter("COVERAGE_NAME", "str", "coverage", "prefix of the coverage maps and plots"),
        Parameter("FOOTPRINT_NAME", "str", "footprints", "name of the footprint plot (no extension)"),
        Parameter("CHECKPLOT_TYPE", "keyword", ["FOOTPRINTS", "COVERAGE"], "plots to draw",
                  choices=("FOOTPRINTS", "COVERAGE", "NONE"), nvalues=(1, None)),
        Parameter("CHECKPLOT_DEV", "keyword", "PNG", "plot format", choices=("PNG", "SVG", "PDF")),
        Parameter("CHECKPLOT_RES", "int", 1200, "plot width in pixels", minimum=600, maximum=10000),
    ]

    def run(self, ctx):
        from .coverage import coverage_maps, write_healpix_partial
        from .footprints import read_footprints
        from .plots import plot_depth, plot_footprints

        cfg = ctx.config
        nside = cfg["NSIDE"]
        if nside & (nside - 1):
            raise ConfigError(f"NSIDE = {nside} is not a power of 2", "skywatcher", "NSIDE")
        goals = dict(zip([f for f in cfg["GOAL_FILTERS"] if f], cfg["GOAL_EXPTIME"]))
        if len([f for f in cfg["GOAL_FILTERS"] if f]) != len(cfg["GOAL_EXPTIME"]):
            raise ConfigError(f"GOAL_FILTERS has {len(cfg['GOAL_FILTERS'])} filter(s) but GOAL_EXPTIME "
                              f"{len(cfg['GOAL_EXPTIME'])} value(s); expected one goal per filter",
                              "skywatcher", "GOAL_EXPTIME")
        if not ctx.inputs:
            raise ToolError("skywatcher needs at least one exposure or catalogue")
        footprints = []
        for path in ctx.inputs:
            found = read_footprints(path, filter_key=cfg["FILTER_KEY"], exptime_key=cfg["EXPTIME_KEY"],
                                    head_suffix=cfg["HEADER_SUFFIX"], select=ctx.extension)
            ctx.log.info("%s: %d CCD(s), filter %s", path, len(found),
                         ", ".join(sorted({fp.filter for fp in found})))
            footprints += found
        maps = coverage_maps(footprints, nside, nest=cfg["HEALPIX_ORDERING"] == "NESTED")
        fmt = cfg["CHECKPLOT_DEV"].lower()
        plots = set(cfg["CHECKPLOT_TYPE"]) - {"NONE"}
        width = cfg["CHECKPLOT_RES"]
        footprint_name = f"{cfg['FOOTPRINT_NAME']}.{fmt}"
        used: set[str] = set()
        for band, cov in maps.items():
            safe = file_safe(band)
            while safe in used:  # two filter names that reduce to the same file name
                safe += "_"
            used.add(safe)
            stem = f"{cfg['COVERAGE_NAME']}_{safe}"
            with ctx.product(stem + ".fits", kind="coverage_map", filter=band) as tmp:
                write_healpix_partial(tmp, cov)
            if "COVERAGE" in plots:
                with ctx.product(f"{stem}.{fmt}", kind="coverage_plot", filter=band) as tmp:
                    plot_depth(tmp, cov, width_px=width, fmt=fmt)
            summary = cov.summary(goals.get(band))
            ctx.record("coverage", **summary, map=str(ctx.output_path(stem + ".fits")),
                       plot=str(ctx.output_path(f"{stem}.{fmt}")) if "COVERAGE" in plots else "",
                       footprints=str(ctx.output_path(footprint_name)) if "FOOTPRINTS" in plots else "")
            ctx.log.info("filter %s: %d exposure(s), %d CCD(s), %.4f deg^2 covered (%.4f deg^2 twice or "
                         "more), up to %d exposure(s) and %.0f s per pixel", band, cov.nexposures, cov.nccds,
                         summary["area_deg2"], summary["area_deg2_2plus"], summary["max_count"],
                         summary["max_exptime"])
            if "exptime_goal" in summary:
                ctx.log.info("filter %s: %.4f deg^2 reach the goal of %.0f s (%.1f %% of the covered area)",
                             band, summary["area_at_goal_deg2"], summary["exptime_goal"],
                             100 * summary["goal_fraction"])
        if "FOOTPRINTS" in plots:
            with ctx.product(footprint_name, kind="footprint_plot") as tmp:
                plot_footprints(tmp, maps, width_px=width, fmt=fmt)
