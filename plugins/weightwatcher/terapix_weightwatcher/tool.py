"""The weightwatcher tool: weight and flag maps of MEF exposures (WeightWatcher 1.12 keywords and defaults,
plus the defect detection QualityFITS added: saturation, cosmic rays, bad columns, satellite trails, dead CCDs).

Inputs are the science exposures (the real WeightWatcher reads only weight/flag maps; here the science image
supplies the extension structure, the header and the pixels the defects are detected on).
"""
from terapix_fw.errors import ConfigError
from terapix_fw.params import Parameter, astromatic_keywords, terapix_only
from terapix_fw.tool import Tool

_FLAG_HELP = "FLAG value for "
#: why the defect-detection keywords have no AstrOmatic equivalent
_QUALITYFITS = ("defect detection that TERAPIX's QualityFITS added around WeightWatcher; WeightWatcher only "
                "thresholds and combines existing maps")


def output_name(template: str, image_path) -> str:
    """``%s`` in an output name is replaced by the input file name without its .fits extension."""
    from pathlib import Path

    stem = Path(image_path).name
    for suffix in (".fits.fz", ".fits.gz", ".fits", ".fit", ".fz", ".gz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return template.replace("%s", stem)


class WeightWatcherTool(Tool):
    """Weight and flag maps of MEF exposures: WeightWatcher's thresholds, masks and polygons, plus the defects
    QualityFITS detected (saturation, cosmic rays, bad columns, satellite trails, dead CCDs).
    """
    name = "weightwatcher"
    version = "0.1.0"
    description = "weight and flag maps with WeightWatcher semantics and detected defects"
    consumes = ("image",)
    produces = ("weight", "flag", "xml")
    default_fanout = "file"
    worker_preload = ("terapix_weightwatcher.warm",)  # libraries, modules and cached numba kernels, once per warm process
    # WeightWatcher's keywords, then QualityFITS' defect detection, which says what it corresponds to
    parameters = astromatic_keywords("WeightWatcher", [
        Parameter("WEIGHT_NAMES", "path", [], "Filename(s) of the input WEIGHT map(s)", nvalues=(0, None)),
        Parameter("WEIGHT_MIN", "float", 0.3, "Pixel below those thresholds will be flagged"),
        Parameter("WEIGHT_MAX", "float", 1.30, "Pixels above those thresholds will be flagged"),
        Parameter("WEIGHT_OUTFLAGS", "int", 1, "FLAG values for thresholded pixels",
                  minimum=0, maximum=255),
        Parameter("FLAG_NAMES", "path", [], "Filename(s) of the input FLAG map(s)", nvalues=(0, None)),
        Parameter("FLAG_WMASKS", "int", 0xFF, "Bits which will nullify the WEIGHT-map pixels"),
        Parameter("FLAG_MASKS", "int", 0x01, "Bits which will be converted as output FLAGs"),
        Parameter("FLAG_OUTFLAGS", "int", 2, "Translation of the FLAG_MASKS bits",
                  minimum=0, maximum=255),
        Parameter("POLY_NAMES", "path", [], "Filename(s) of input DS9 regions", nvalues=(0, None)),
        Parameter("POLY_OUTFLAGS", "int", 128, "FLAG values for polygon masks", minimum=0, maximum=255),
        Parameter("POLY_OUTWEIGHTS", "float", 0.0, "Weight values for polygon masks"),
        Parameter("POLY_INTERSECT", "bool", True, "Use inclusive OR for polygon intersects (Y/N)?"),
        Parameter("OUTWEIGHT_NAME", "path", "weight.fits", "Output WEIGHT-map filename (%s: input name)"),
        Parameter("OUTFLAG_NAME", "path", "flag.fits", "Output FLAG-map filename (%s: input name)"),
        Parameter("GETAREA", "bool", False, "Compute area for flags and weights (Y/N)?"),
        Parameter("GETAREA_WEIGHT", "float", 0.0, "Weight threshold for area computation"),
        Parameter("GETAREA_FLAGS", "int", 1, "Bit mask for flag pixels not counted in area"),
        Parameter("SATUR_KEY", "str", "SATURATE", "Keyword for saturation level (ADUs)", astromatic="SExtractor"),
        Parameter("SATUR_LEVEL", "float", 50000.0, "level (in ADUs) at which arises saturation",
                  astromatic="SExtractor"),
        Parameter("SATUR_OUTFLAGS", "int", 4, _FLAG_HELP + "saturated pixels and bleed trails",
                  minimum=0, maximum=255, astromatic=terapix_only(_QUALITYFITS)),
        Parameter("GAIN_KEY", "str", "GAIN", "Keyword for detector gain in e-/ADU", astromatic="SExtractor"),
        Parameter("GAIN", "float", 0.0, "detector gain in e-/ADU (0: from GAIN_KEY)", minimum=0.0,
                  astromatic="SExtractor"),
        Parameter("CR_DETECT", "bool", True, "Detect cosmic rays (L.A.Cosmic) (Y/N)?",
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("CR_SIGCLIP", "float", 4.5, "Laplacian/noise detection limit for cosmic rays", minimum=0.0,
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("CR_SIGFRAC", "float", 0.3, "fraction of CR_SIGCLIP for neighbouring CR pixels", minimum=0.0,
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("CR_OBJLIM", "float", 1.5, "minimum contrast between Laplacian and fine structure",
                  minimum=0.0, astromatic=terapix_only(_QUALITYFITS)),
        Parameter("CR_OUTFLAGS", "int", 8, _FLAG_HELP + "cosmic rays", minimum=0, maximum=255,
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("TRAIL_DETECT", "bool", True, "Detect satellite trails (Y/N)?",
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("TRAIL_NSIGMA", "float", 8.0, "detection limit of a trail in the line transform", minimum=0.0,
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("TRAIL_OUTFLAGS", "int", 16, _FLAG_HELP + "satellite trails", minimum=0, maximum=255,
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("BADCOL_DETECT", "bool", True, "Detect bad columns (Y/N)?",
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("BADCOL_NSIGMA", "float", 5.0, "detection limit of a bad column", minimum=0.0,
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("BADCOL_OUTFLAGS", "int", 32, _FLAG_HELP + "bad columns", minimum=0, maximum=255,
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("DEAD_OUTFLAGS", "int", 64, _FLAG_HELP + "dead CCDs", minimum=0, maximum=255,
                  astromatic=terapix_only(_QUALITYFITS)),
        Parameter("BACK_SIZE", "int", 64, "Background mesh size (pixels) for defect detection", minimum=8,
                  astromatic="SExtractor (one size, no <width>,<height>)"),
        Parameter("WRITE_XML", "bool", True, "Write XML file (Y/N)?"),
        Parameter("XML_NAME", "path", "ww.xml", "Filename for XML output (%s: input name)"),
        Parameter("VERBOSE_TYPE", "keyword", "NORMAL", "can be QUIET, NORMAL or FULL",
                  choices=("QUIET", "NORMAL", "FULL")),
        Parameter("NTHREADS", "int", 1, "Number of threads (CCDs in parallel; 0 = all the unit's cores)",
                  minimum=0),
    ])

    def run(self, ctx):
        """Write the weight map, flag map and XML summary of each input exposure.

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.

        Raises
        ------
        ConfigError
            With POLY_INTERSECT N and polygons, or several inputs and output names without ``%s``.
        """
        from .report import write_ww_xml

        cfg = _watch_config(ctx.config)
        if not ctx.config["POLY_INTERSECT"] and ctx.config["POLY_NAMES"]:
            raise ConfigError("POLY_INTERSECT N (exclusive OR of overlapping polygons) is not supported; "
                              "use Y", "configuration", "POLY_INTERSECT")
        names = [ctx.config["OUTWEIGHT_NAME"], ctx.config["OUTFLAG_NAME"]]
        if ctx.config["WRITE_XML"]:
            names.append(ctx.config["XML_NAME"])
        if len(ctx.inputs) > 1 and not all("%s" in n for n in names):
            raise ConfigError(f"{len(ctx.inputs)} input images but OUTWEIGHT_NAME/OUTFLAG_NAME/XML_NAME "
                              f"({', '.join(names)}) have no %s; each input needs its own output names",
                              "configuration", "OUTWEIGHT_NAME")
        for image in ctx.inputs:
            from astropy.io import fits

            from terapix_fw.fitsimage import FitsImage

            from .maps import MapWriter, iter_watch

            with FitsImage(image, "image") as img:
                primary = img.primary_header()
            per_ext = []
            wname = ctx.output_path(output_name(ctx.config["OUTWEIGHT_NAME"], image))
            fname = ctx.output_path(output_name(ctx.config["OUTFLAG_NAME"], image))
            with MapWriter(wname, fname, primary, cfg, self.version) as out:
                nthreads = ctx.config["NTHREADS"] or ctx.nthreads
                for i, header, _, res in iter_watch(image, ctx.config["WEIGHT_NAMES"], ctx.config["FLAG_NAMES"],
                                                    ctx.config["POLY_NAMES"], cfg, ctx.log, nthreads,
                                                    select=ctx.extension):
                    out.add(i, header, res)
                    per_ext.append({"extension": i, "extname": header.get("EXTNAME", f"EXT{i}"), **res.stats})
            ctx.add_product(wname, "weight")
            ctx.add_product(fname, "flag")
            area = None
            if ctx.config["GETAREA"]:
                with fits.open(wname) as whdul, fits.open(fname) as fhdul:
                    area = _effective_area(whdul, fhdul, ctx.config["GETAREA_WEIGHT"],
                                           ctx.config["GETAREA_FLAGS"])
            if ctx.config["WRITE_XML"]:
                with ctx.product(output_name(ctx.config["XML_NAME"], image), "xml") as tmp:
                    write_ww_xml(tmp, image, per_ext, self.version, area)
            ctx.record("weightmap", image=str(image), extensions=[
                {k: v for k, v in e.items() if k != "trails"} for e in per_ext], eff_area_deg2=area)


def _watch_config(config):
    from .maps import WatchConfig

    return WatchConfig.from_config({k: config[k] for k in config})


def _effective_area(whdul, fhdul, wthresh, fmask):
    """EFF_AREA (deg^2): pixels with weight > GETAREA_WEIGHT and no GETAREA_FLAGS bit, times the pixel area."""
    import warnings

    import numpy as np
    from astropy.wcs import WCS

    total = 0.0
    for wh, fh in zip(whdul, fhdul):
        if wh.data is None or wh.data.ndim != 2:
            continue
        good = (wh.data > wthresh) & ((fh.data.astype(int) & fmask) == 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(wh.header)
        scale = np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) if wcs.has_celestial else 0.0
        total += good.sum() * scale ** 2
    return float(total)
