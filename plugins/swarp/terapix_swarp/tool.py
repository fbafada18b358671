"""The swarp tool: SWarp's resampling and co-addition, with SWarp 2.41's keywords and defaults.

``terapix tool swarp IMAGE... -c default.swarp -KEYWORD value`` behaves like ``SWarp``.  The algorithms
live in :mod:`terapix_swarp.swarp` (run), :mod:`.inputs`, :mod:`.grid`, :mod:`.mapping`,
:mod:`.resample`, :mod:`.kernels`, :mod:`.coadd` and :mod:`.combine`; they are imported in ``run`` so that
listing plugins stays fast.
"""
from terapix_fw.params import Parameter as P
from terapix_fw.params import astromatic_keywords, terapix_only
from terapix_fw.tool import Tool

__all__ = ["SwarpTool", "EXTENSIONS"]

ANY = (0, None)  # zero or more values
EACH = (1, None)  # "all or for each image"
AXES = (1, 2)  # one value or one per axis

# every keyword is SWarp's of the same name but the extension, which says so
PARAMETERS = astromatic_keywords("SWarp", [
    # Output
    P("IMAGEOUT_NAME", "path", "coadd.fits", "Output filename"),
    P("WEIGHTOUT_NAME", "path", "coadd.weight.fits", "Output weight-map filename"),
    P("HEADEROUT_NAME", "path", "", "Out. header filename (overrides suffix)"),
    P("HEADER_NAME", "path", [], "Header filename if suffix not used", nvalues=ANY),
    P("HEADER_ONLY", "bool", False, "Only a header as an output file (Y/N)?"),
    P("HEADER_SUFFIX", "str", ".head", "Filename extension for additional headers"),
    P("TILE_COMPRESS", "bool", False, "Write tile compressed output image (Y/N)?"),
    # Input weights
    P("WEIGHT_TYPE", "keyword", ["NONE"], "BACKGROUND,MAP_RMS,MAP_VARIANCE or MAP_WEIGHT",
      choices=("NONE", "BACKGROUND", "MAP_RMS", "MAP_VARIANCE", "MAP_WEIGHT"), nvalues=EACH),
    P("RESCALE_WEIGHTS", "bool", [True], "Rescale input weights/variances (Y/N)?", nvalues=EACH),
    P("WEIGHT_SUFFIX", "str", ".weight.fits", "Suffix to use for weight-maps"),
    P("WEIGHT_IMAGE", "path", [], "Weightmap filename if suffix not used", nvalues=ANY),
    P("WEIGHT_THRESH", "float", [], "Bad pixel weight-threshold", nvalues=ANY),
    # Co-addition
    P("COMBINE", "bool", True, "Combine resampled images (Y/N)?"),
    P("COMBINE_TYPE", "keyword", "MEDIAN", "Co-addition method",
      choices=("MEDIAN", "AVERAGE", "MIN", "MAX", "WEIGHTED", "CLIPPED", "CHI-OLD", "CHI-MODE", "CHI-MEAN",
               "SUM", "WEIGHTED_WEIGHT", "MEDIAN_WEIGHT", "AND", "NAND", "OR", "NOR")),
    P("CLIP_AMPFRAC", "float", 0.3, "Fraction of flux variation allowed with clipping", minimum=0.0),
    P("CLIP_SIGMA", "float", 4.0, "RMS error multiple variation allowed with clipping", minimum=0.0),
    P("CLIP_WRITELOG", "bool", False, "Write output file with coordinates of clipped pixels (Y/N)"),
    P("CLIP_LOGNAME", "path", "clipped.log", "Name of output file with coordinates of clipped pixels",
      output=True),
    P("BLANK_BADPIXELS", "bool", False, "Set to 0 pixels having a weight of 0"),
    # Astrometry
    P("CELESTIAL_TYPE", "keyword", "NATIVE", "Output celestial system",
      choices=("NATIVE", "PIXEL", "EQUATORIAL", "GALACTIC", "ECLIPTIC", "SUPERGALACTIC")),
    P("PROJECTION_TYPE", "str", "TAN", "Any WCS projection code or NONE"),
    P("PROJECTION_ERR", "float", [0.001], "Maximum projection error (in output pixels), or 0 for no "
      "approximation", nvalues=EACH, minimum=0.0),
    P("CENTER_TYPE", "keyword", ["ALL"], "MANUAL, ALL or MOST", choices=("MANUAL", "ALL", "MOST"),
      nvalues=AXES),
    P("CENTER", "str", ["00:00:00.0", "+00:00:00.0"], "Coordinates of the image center", nvalues=AXES),
    P("PIXELSCALE_TYPE", "keyword", ["MEDIAN"], "MANUAL,FIT,MIN,MAX or MEDIAN",
      choices=("MANUAL", "FIT", "MIN", "MAX", "MEDIAN"), nvalues=AXES),
    P("PIXEL_SCALE", "float", [0.0], "Pixel scale", nvalues=AXES, minimum=0.0),
    P("IMAGE_SIZE", "int", [0], "Image size (0 = AUTOMATIC)", nvalues=AXES, minimum=0),
    # Resampling
    P("RESAMPLE", "bool", True, "Resample input images (Y/N)?"),
    P("RESAMPLE_DIR", "path", ".", "Directory path for resampled images"),
    P("RESAMPLE_SUFFIX", "str", ".resamp.fits", "filename extension for resampled images"),
    P("RESAMPLING_TYPE", "keyword", ["LANCZOS3"], "NEAREST,BILINEAR,LANCZOS2,LANCZOS3 LANCZOS4 (1 per axis) "
      "or FLAGS", choices=("NEAREST", "BILINEAR", "LANCZOS2", "LANCZOS3", "LANCZOS4", "FLAGS"), nvalues=AXES),
    P("OVERSAMPLING", "int", [0], "Oversampling in each dimension (0 = automatic)", nvalues=AXES, minimum=0),
    P("INTERPOLATE", "bool", [False], "Interpolate bad input pixels (Y/N)?", nvalues=EACH),
    P("FSCALASTRO_TYPE", "keyword", "FIXED", "NONE,FIXED, or VARIABLE", choices=("NONE", "FIXED", "VARIABLE")),
    P("FSCALE_KEYWORD", "str", "FLXSCALE", "FITS keyword for the multiplicative factor applied to each input "
      "image"),
    P("FSCALE_DEFAULT", "float", [1.0], "Default FSCALE value if not in header", nvalues=EACH),
    P("GAIN_KEYWORD", "str", "GAIN", "FITS keyword for effect. gain (e-/ADU)"),
    P("GAIN_DEFAULT", "float", [0.0], "Default gain if no FITS keyword found", nvalues=EACH, minimum=0.0),
    P("SATLEV_KEYWORD", "str", "SATURATE", "FITS keyword for saturation level (ADU)"),
    P("SATLEV_DEFAULT", "float", [50000.0], "Default saturation if no FITS keyword", nvalues=EACH),
    # Background subtraction
    P("SUBTRACT_BACK", "bool", [True], "Subtraction sky background (Y/N)?", nvalues=EACH),
    P("BACK_TYPE", "keyword", ["AUTO"], "AUTO or MANUAL", choices=("AUTO", "MANUAL"), nvalues=EACH),
    P("BACK_DEFAULT", "float", [0.0], "Default background value in MANUAL", nvalues=EACH),
    P("BACK_SIZE", "int", [128], "Background mesh size (pixels)", nvalues=EACH, minimum=1),
    P("BACK_FILTERSIZE", "int", [3], "Background map filter range (meshes)", nvalues=EACH, minimum=1),
    P("BACK_FILTTHRESH", "float", 0.0, "Threshold above which the background-map filter operates"),
    # Memory management
    P("VMEM_DIR", "path", ".", "Directory path for swap files"),
    P("VMEM_MAX", "int", 2047, "Maximum amount of virtual memory (MB)"),
    P("MEM_MAX", "int", 256, "Maximum amount of usable RAM (MB)"),
    P("COMBINE_BUFSIZE", "int", 256, "RAM dedicated to co-addition(MB)", minimum=1),
    # terapix-fw extension (not in SWarp): output made in bands of rows when the resampled images would not fit
    P("RESAMPLE_DISKMAX", "int", 0, "Max. disk space for temporary resampled images (MB), 0 = half the free "
      "space of RESAMPLE_DIR; beyond, the output is made in bands", minimum=0,
      astromatic=terapix_only("SWarp writes every resampled image to RESAMPLE_DIR with no limit on disk space")),
    # Miscellaneous
    P("DELETE_TMPFILES", "bool", True, "Delete temporary resampled FITS files (Y/N)?"),
    P("COPY_KEYWORDS", "str", ["OBJECT"], "List of FITS keywords to propagate from the input to the output "
      "headers", nvalues=ANY),
    P("WRITE_FILEINFO", "bool", False, "Write information about each input file in the output image header?"),
    P("WRITE_XML", "bool", True, "Write XML file (Y/N)?"),
    P("XML_NAME", "path", "swarp.xml", "Filename for XML output"),
    P("XSL_URL", "str", "file:///usr/share/swarp/swarp.xsl", "Filename for XSL style-sheet"),
    P("VERBOSE_TYPE", "keyword", "NORMAL", "QUIET,LOG,NORMAL, or FULL", choices=("QUIET", "LOG", "NORMAL", "FULL")),
    P("NNODES", "int", 1, "Number of nodes (for clusters)", minimum=1),
    P("NODE_INDEX", "int", 0, "Node index (for clusters)", minimum=0),
    P("NTHREADS", "int", 0, "Number of simultaneous threads for the SMP version of SWarp (0 = automatic)",
      minimum=0),
    P("NOPENFILES_MAX", "int", 512, "Maximum number of files opened by SWarp", minimum=1),
])
#: keywords of the plugin that SWarp does not have
EXTENSIONS = tuple(p.name for p in PARAMETERS if p.equivalent.program is None)


class SwarpTool(Tool):
    """Resample images onto a common grid and co-add them, as SWarp does."""

    name = "swarp"
    version = "1.0.0"
    description = "resampling and co-addition (SWarp), chi-squared detection images"
    parameters = PARAMETERS
    consumes = ("image", "weight", "head")
    produces = ("stack", "weight", "resampled", "resampled_weight", "cliplog", "xml")
    default_fanout = "all"
    worker_preload = ("terapix_swarp.warm",)  # libraries, modules and cached numba kernels, once per warm process

    def run(self, ctx):
        """Resample the unit's images and co-add them (see :mod:`terapix_swarp.swarp`).

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.
        """
        from .swarp import run_swarp

        run_swarp(ctx)
