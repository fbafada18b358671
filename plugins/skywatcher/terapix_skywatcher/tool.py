"""The skywatcher tool: monitors the progress of a survey on the celestial sphere.

From the headers of all exposures (or FITS_LDAC catalogues) of a step it draws the CCD footprints per
filter and builds HEALPix maps of the number of exposures and the summed exposure time per sky pixel,
then reports the area covered in each filter.

Outputs (names relative to the step's directory; FILTER is the header value, made file-name safe):

* ``COVERAGE_NAME_FILTER.fits``: partial HEALPix map (columns PIXEL, COUNT, EXPTIME);
* ``COVERAGE_NAME_FILTER.png``: exposure count and summed exposure time on the sky;
* ``FOOTPRINT_NAME.png``: CCD outlines, one panel per filter;
* ``SKYMAP_NAME.png`` (or .pdf/.svg): every footprint on the chosen PROJECTION with the overlays, and
  ``SKYMAP_NAME_map.html`` beside it: the picture with an HTML image map linking each footprint to its
  exposure's page (:meth:`terapix_skywatcher.skymap.SkyMap.image_map`);
* one ``coverage`` record per filter for RDBix (area, exposures, CCDs, depth statistics), one ``skymap``
  record for the sky map.

Inputs: exposures or FITS_LDAC catalogues (headers), VOTables of WCS keywords (``.xml``/``.vot``: one row
per CCD), and with ``RDBIX_URL`` the CCD headers recorded in RDBix.

Drop-in use::

    terapix tool skywatcher exposures/*.fits.fz -NSIDE 2048
"""
from __future__ import annotations

import re
from pathlib import Path

from terapix_fw.errors import ConfigError, ToolError
from terapix_fw.params import Parameter, terapix_only
from terapix_fw.tool import Tool

__all__ = ["SkyWatcherTool", "file_safe"]


def file_safe(text: str) -> str:
    """A filter name from a header, reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text).strip(".") or "unknown"

_NONE = terapix_only("no AstrOmatic program maps survey coverage; SkyWatcher was TERAPIX's own")


class SkyWatcherTool(Tool):
    """Sky coverage: HEALPix maps of exposure count and time per filter, footprint plots and a sky map, from
    exposures, catalogues or RDBix.
    """
    name = "skywatcher"
    version = "1.0.0"
    description = "sky coverage maps (footprints, HEALPix exposure count and time) per filter"
    default_fanout = "all"
    consumes = ("exposure", "catalog")
    produces = ("coverage_map", "coverage_plot", "footprint_plot", "skymap_plot", "skymap_html")
    parameters = [
        Parameter("NSIDE", "int", 4096, "HEALPix resolution (power of 2; 4096 = 0.86 arcmin pixels)",
                  minimum=1, maximum=1 << 29, astromatic=_NONE),
        Parameter("HEALPIX_ORDERING", "keyword", "RING", "pixel ordering of the maps",
                  choices=("RING", "NESTED"), astromatic=_NONE),
        Parameter("FILTER_KEY", "str", "FILTER", "header keyword giving the filter", astromatic=_NONE),
        Parameter("EXPTIME_KEY", "str", "EXPTIME", "header keyword giving the exposure time (s)", astromatic=_NONE),
        Parameter("HEADER_SUFFIX", "str", ".head", "suffix of external headers overriding the WCS",
                  astromatic="SWarp"),
        Parameter("GOAL_FILTERS", "str", [], "filters with a depth goal", nvalues=(0, None), astromatic=_NONE),
        Parameter("GOAL_EXPTIME", "float", [], "summed EXPTIME goal of each GOAL_FILTERS (s)",
                  nvalues=(0, None), minimum=0.0, astromatic=_NONE),
        Parameter("COVERAGE_NAME", "str", "coverage", "prefix of the coverage maps and plots", astromatic=_NONE),
        Parameter("FOOTPRINT_NAME", "str", "footprints", "name of the footprint plot (no extension)",
                  astromatic=_NONE),
        Parameter("CHECKPLOT_TYPE", "keyword", ["FOOTPRINTS", "COVERAGE", "SKYMAP"], "plots to draw",
                  choices=("FOOTPRINTS", "COVERAGE", "SKYMAP", "NONE"), nvalues=(1, None),
                  astromatic="SCAMP (other plots)"),
        Parameter("SKYMAP_NAME", "str", "skymap", "name of the sky map (no extension)", astromatic=_NONE),
        Parameter("PROJECTION", "keyword", "HAMMER", "sky map projection",
                  choices=("AITOFF", "HAMMER", "MOLLWEIDE", "SINUSOIDAL", "PLATE_CARREE", "CYLINDRICAL_EQUAL_AREA",
                           "GNOMONIC"), astromatic=_NONE),
        Parameter("MAP_CENTER", "float", [], "RA, Dec (deg) of the map centre (default: the footprints')",
                  nvalues=(0, 2), astromatic=_NONE),
        Parameter("MAP_RADIUS", "float", 0.0, "radius (deg) of the zoomed view (0: whole sky; GNOMONIC: the "
                  "footprints)", minimum=0.0, maximum=180.0, astromatic=_NONE),
        Parameter("COLOUR_BY", "keyword", "FILTER", "footprint colours", choices=("FILTER", "GRADE", "STATUS", "EXPOSURE"),
                  astromatic=_NONE),
        Parameter("BOX_NAMES", "str", [], "names of the user boxes (e.g. W1,W2,W3,W4)", nvalues=(0, None),
                  astromatic=_NONE),
        Parameter("BOX_LIMITS", "float", [], "RA_MIN,RA_MAX,DEC_MIN,DEC_MAX (deg) of each box", nvalues=(0, None),
                  astromatic=_NONE),
        Parameter("OVERLAY_GALACTIC", "bool", True, "draw the galactic plane (b = 0, +-10 deg)", astromatic=_NONE),
        Parameter("OVERLAY_ECLIPTIC", "bool", True, "draw the ecliptic", astromatic=_NONE),
        Parameter("CATALOG_NAMES", "path", [], "VOTable or FITS catalogues drawn over the map", nvalues=(0, None),
                  astromatic=_NONE),
        Parameter("EBV_MAP", "path", "", "E(B-V) map (HEALPix or Cartesian FITS) drawn as the background",
                  astromatic=_NONE),
        Parameter("EBV_CUTS", "float", [0.0, 0.5], "E(B-V) range of the background's grey scale (mag)", nvalues=2,
                  astromatic=_NONE),
        Parameter("SELECT_RUNS", "str", [], "keep these run ids only", nvalues=(0, None), astromatic=_NONE),
        Parameter("SELECT_COMPONENTS", "str", [], "keep these survey components only", nvalues=(0, None),
                  astromatic=_NONE),
        Parameter("SELECT_FILTERS", "str", [], "keep these filters only", nvalues=(0, None), astromatic=_NONE),
        Parameter("SELECT_STATUS", "str", [], "keep these processing statuses only", nvalues=(0, None),
                  astromatic=_NONE),
        Parameter("SELECT_REGION", "float", [], "RA_MIN,RA_MAX,DEC_MIN,DEC_MAX (deg) holding the CCD centres",
                  nvalues=(0, 4), astromatic=_NONE),
        Parameter("RDBIX_URL", "str", "", "also draw every CCD whose header RDBix holds (database URL)",
                  astromatic=_NONE),
        Parameter("EXPOSURE_URL", "str", "exposure/{slug}.html",
                  "link of a footprint in the image map ({slug}: the web page slug of the exposure)",
                  astromatic=_NONE),
        Parameter("CHECKPLOT_DEV", "keyword", "PNG", "plot format", choices=("PNG", "SVG", "PDF"),
                  astromatic="SCAMP (PNG, SVG or PDF)"),
        Parameter("CHECKPLOT_RES", "int", 1200, "plot width in pixels", minimum=600, maximum=10000,
                  astromatic="SCAMP (plot width in pixels)"),
    ]

    def run(self, ctx):
        """Write the coverage maps and plots of the unit's inputs (and of RDBix with RDBIX_URL); a ``coverage``
        record per filter.

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.

        Raises
        ------
        ConfigError
            If NSIDE is not a power of 2 or GOAL_EXPTIME does not match GOAL_FILTERS.
        ToolError
            Without input, or when the SELECT_* keywords leave no footprint.
        """
        from .coverage import coverage_maps, write_healpix_partial
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
        if not ctx.inputs and not cfg["RDBIX_URL"]:
            raise ToolError("skywatcher needs at least one exposure, catalogue or VOTable, or RDBIX_URL")
        footprints = self._footprints(ctx)
        if not footprints:
            raise ToolError("no footprint left after the SELECT_* keywords")
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
        if "SKYMAP" in plots:
            self._skymap(ctx, footprints, fmt, width)

    def _footprints(self, ctx):
        """Footprints of the inputs (headers or VOTables of WCS keywords) and RDBix, then selected."""
        from pathlib import Path

        from .footprints import read_footprints
        from .skymap import select_footprints
        from .sources import footprints_from_rdbix, footprints_from_votable

        cfg = ctx.config
        keys = {"filter_key": cfg["FILTER_KEY"], "exptime_key": cfg["EXPTIME_KEY"]}
        footprints = []
        for path in ctx.inputs:
            if Path(path).suffix.lower() in (".xml", ".vot", ".votable"):
                found = footprints_from_votable(path, **keys)
            else:
                found = read_footprints(path, head_suffix=cfg["HEADER_SUFFIX"], select=ctx.extension, **keys)
            ctx.log.info("%s: %d CCD(s), filter %s", path, len(found),
                         ", ".join(sorted({fp.filter for fp in found})))
            footprints += found
        if cfg["RDBIX_URL"]:
            found = footprints_from_rdbix(cfg["RDBIX_URL"], url_template=cfg["EXPOSURE_URL"], **keys)
            ctx.log.info("RDBix: %d CCD(s) of %d exposure(s)", len(found), len({fp.exposure for fp in found}))
            footprints += found
        region = cfg["SELECT_REGION"]
        if region and len(region) != 4:
            raise ConfigError(f"SELECT_REGION has {len(region)} value(s); expected RA_MIN,RA_MAX,DEC_MIN,DEC_MAX",
                              "skywatcher", "SELECT_REGION")
        selected = select_footprints(footprints, runs=set(cfg["SELECT_RUNS"]), components=set(cfg["SELECT_COMPONENTS"]),
                                     filters=set(cfg["SELECT_FILTERS"]), statuses=set(cfg["SELECT_STATUS"]),
                                     region=tuple(region) if region else None)
        if len(selected) != len(footprints):
            ctx.log.info("selection: %d of %d CCD(s) kept", len(selected), len(footprints))
        return selected

    def _skymap(self, ctx, footprints, fmt, width):
        from .skymap import SkyMap, SkyMapOptions

        cfg = ctx.config
        names, limits = [n for n in cfg["BOX_NAMES"] if n], cfg["BOX_LIMITS"]
        if len(limits) != 4 * len(names):
            raise ConfigError(f"BOX_LIMITS has {len(limits)} value(s) for {len(names)} BOX_NAMES; expected 4 per box "
                              "(RA_MIN,RA_MAX,DEC_MIN,DEC_MAX)", "skywatcher", "BOX_LIMITS")
        centre = cfg["MAP_CENTER"]
        if centre and len(centre) != 2:
            raise ConfigError(f"MAP_CENTER has {len(centre)} value(s); expected RA,DEC", "skywatcher", "MAP_CENTER")
        for path in [*cfg["CATALOG_NAMES"], *([cfg["EBV_MAP"]] if cfg["EBV_MAP"] else [])]:
            if not Path(path).is_file():
                raise ConfigError(f"{path}: no such file", "skywatcher",
                                  "EBV_MAP" if path == cfg["EBV_MAP"] else "CATALOG_NAMES")
        options = SkyMapOptions(
            projection=cfg["PROJECTION"], centre=tuple(centre) if centre else None,
            radius=cfg["MAP_RADIUS"] or None, colour_by=cfg["COLOUR_BY"],
            boxes=[(n, *limits[4 * i:4 * i + 4]) for i, n in enumerate(names)],
            galactic=cfg["OVERLAY_GALACTIC"], ecliptic=cfg["OVERLAY_ECLIPTIC"],
            catalogues=[str(p) for p in cfg["CATALOG_NAMES"]], ebv_map=cfg["EBV_MAP"] or None,
            ebv_cuts=tuple(cfg["EBV_CUTS"]), width_px=width,
            title=f"{len({fp.exposure for fp in footprints})} exposures, {len(footprints)} CCDs")
        sky = SkyMap(footprints, options)
        name = f"{cfg['SKYMAP_NAME']}.{fmt}"
        with ctx.product(name, kind="skymap_plot", projection=cfg["PROJECTION"]) as tmp:
            sky.save(tmp, fmt)
        html_name = ""
        if fmt == "png":
            html_name = f"{cfg['SKYMAP_NAME']}_map.html"
            with ctx.product(html_name, kind="skymap_html") as tmp:
                tmp.write_text(sky.image_map(Path(name).name))
        ctx.record("skymap", plot=str(ctx.output_path(name)),
                   image_map=str(ctx.output_path(html_name)) if html_name else "", projection=cfg["PROJECTION"],
                   nccds=len(footprints), nexposures=len({fp.exposure for fp in footprints}))
