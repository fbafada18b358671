"""Every configuration keyword of SExtractor 2.25 (``source-extractor -dd``) with its default.

Names, defaults, list lengths and allowed values are SExtractor's (``prefs.h``).  Two keywords are
terapix-fw extensions, marked as such in their help and off by default so that a SExtractor configuration
behaves the same: ``PHOT_APERUNIT`` (``ARCSEC`` reads PHOT_APERTURES as diameters in arcseconds, converted
with the pixel scale, as the CFHTLS 3" and 4" apertures) and ``MAG_ZEROPOINT_KEY`` (a header keyword
that, when present, overrides MAG_ZEROPOINT).  This module imports nothing heavy.
"""
from terapix_fw.params import Parameter as P
from terapix_fw.params import astromatic_keywords, terapix_only

CHECK_TYPES = ("NONE", "IDENTICAL", "BACKGROUND", "BACKGROUND_RMS", "MINIBACKGROUND", "MINIBACK_RMS",
               "-BACKGROUND", "FILTERED", "OBJECTS", "-OBJECTS", "SEGMENTATION", "APERTURES")

# every keyword is SExtractor's of the same name but the two extensions, which say so
PARAMETERS = astromatic_keywords("SExtractor", [
    # Catalog
    P("CATALOG_NAME", "path", "test.cat", "name of the output catalog"),
    P("CATALOG_TYPE", "keyword", "ASCII_HEAD", "catalog format",
      choices=("NONE", "ASCII", "ASCII_HEAD", "ASCII_SKYCAT", "ASCII_VOTABLE", "FITS_1.0", "FITS_LDAC")),
    P("PARAMETERS_NAME", "path", "default.param", "name of the file containing catalog contents"),
    # Extraction
    P("DETECT_TYPE", "keyword", "CCD", "CCD (linear) or PHOTO (with gamma correction)",
      choices=("CCD", "PHOTO")),
    P("DETECT_MINAREA", "int", 5, "min. # of pixels above threshold", minimum=1),
    P("DETECT_MAXAREA", "int", 0, "max. # of pixels above threshold (0=unlimited)", minimum=0),
    P("THRESH_TYPE", "keyword", ["RELATIVE"], "threshold type: RELATIVE (in sigmas) or ABSOLUTE (in ADUs)",
      choices=("RELATIVE", "ABSOLUTE"), nvalues=(1, 2)),
    P("DETECT_THRESH", "float", [1.5], "<sigmas> or <threshold>,<ZP> in mag.arcsec-2", nvalues=(1, 2)),
    P("ANALYSIS_THRESH", "float", [1.5], "<sigmas> or <threshold>,<ZP> in mag.arcsec-2", nvalues=(1, 2)),
    P("FILTER", "bool", True, "apply filter for detection (Y or N)?"),
    P("FILTER_NAME", "path", "default.conv", "name of the file containing the filter"),
    P("FILTER_THRESH", "float", [], "Threshold[s] for retina filtering", nvalues=(0, 2)),
    P("DEBLEND_NTHRESH", "int", 32, "Number of deblending sub-thresholds", minimum=1, maximum=64),
    P("DEBLEND_MINCONT", "float", 0.005, "Minimum contrast parameter for deblending", minimum=0, maximum=1),
    P("CLEAN", "bool", True, "Clean spurious detections? (Y or N)?"),
    P("CLEAN_PARAM", "float", 1.0, "Cleaning efficiency", minimum=0.1, maximum=10),
    P("MASK_TYPE", "keyword", "CORRECT", "type of detection MASKing: NONE, BLANK or CORRECT",
      choices=("NONE", "BLANK", "CORRECT")),
    # Weighting
    P("WEIGHT_TYPE", "keyword", ["NONE"], "type of WEIGHTing: NONE, BACKGROUND, MAP_RMS, MAP_VAR or MAP_WEIGHT",
      choices=("NONE", "BACKGROUND", "MAP_RMS", "MAP_VAR", "MAP_WEIGHT"), nvalues=(1, 2)),
    P("RESCALE_WEIGHTS", "bool", [True], "Rescale input weights/variances (Y/N)?", nvalues=(1, 2)),
    P("WEIGHT_IMAGE", "path", ["weight.fits"], "weight-map filename", nvalues=(1, 2)),
    P("WEIGHT_GAIN", "bool", [True], "modulate gain (E/ADU) with weights? (Y/N)", nvalues=(1, 2)),
    P("WEIGHT_THRESH", "float", [], "weight threshold[s] for bad pixels", nvalues=(0, 2)),
    # Flagging
    P("FLAG_IMAGE", "path", ["flag.fits"], "filename for an input FLAG-image", nvalues=(1, 4)),
    P("FLAG_TYPE", "keyword", ["OR"], "flag pixel combination: OR, AND, MIN, MAX or MOST",
      choices=("OR", "AND", "MIN", "MAX", "MOST"), nvalues=(1, 4)),
    # Differential geometry
    P("DGEO_TYPE", "keyword", "NONE", "Differential geometry map type: NONE or PIXEL", choices=("NONE", "PIXEL")),
    P("DGEO_IMAGE", "path", "dgeo.fits", "Filename for input differential geometry image"),
    # Photometry
    P("PHOT_APERTURES", "float", [5.0], "MAG_APER aperture diameter(s) in pixels", nvalues=(1, 32)),
    P("PHOT_APERUNIT", "keyword", "PIXEL",
      "terapix-fw extension: PHOT_APERTURES unit, PIXEL or ARCSEC (via the pixel scale)",
      choices=("PIXEL", "ARCSEC"),
      astromatic=terapix_only("SExtractor takes PHOT_APERTURES in pixels only; the CFHTLS apertures are in "
                              "arcseconds")),
    P("PHOT_AUTOPARAMS", "float", [2.5, 3.5], "MAG_AUTO parameters: <Kron_fact>,<min_radius>", nvalues=2),
    P("PHOT_PETROPARAMS", "float", [2.0, 3.5], "MAG_PETRO parameters: <Petrosian_fact>,<min_radius>",
      nvalues=2),
    P("PHOT_AUTOAPERS", "float", [0.0, 0.0],
      "<estimation>,<measurement> minimum apertures for MAG_AUTO and MAG_PETRO", nvalues=2),
    P("PHOT_FLUXFRAC", "float", [0.5], "flux fraction[s] used for FLUX_RADIUS", nvalues=(1, 32)),
    P("SATUR_LEVEL", "float", 50000.0, "level (in ADUs) at which arises saturation"),
    P("SATUR_KEY", "str", "SATURATE", "keyword for saturation level (in ADUs)"),
    P("MAG_ZEROPOINT", "float", 0.0, "magnitude zero-point"),
    P("MAG_ZEROPOINT_KEY", "str", "",
      "terapix-fw extension: header keyword overriding MAG_ZEROPOINT when present (empty: none)",
      astromatic=terapix_only("SExtractor reads MAG_ZEROPOINT from the configuration only; per-image zero "
                              "points from SCAMP's .head or a header need this")),
    P("MAG_GAMMA", "float", 4.0, "gamma of emulsion (for photographic scans)"),
    P("GAIN", "float", 0.0, "detector gain in e-/ADU", minimum=0),
    P("GAIN_KEY", "str", "GAIN", "keyword for detector gain in e-/ADU"),
    P("PIXEL_SCALE", "float", 1.0, "size of pixel in arcsec (0=use FITS WCS info)", minimum=0),
    # Star/galaxy separation
    P("SEEING_FWHM", "float", 1.2, "stellar FWHM in arcsec", minimum=1e-12),
    P("STARNNW_NAME", "path", "default.nnw",
      "Neural-Network_Weight table filename (default.nnw: the classifier trained for terapix-fw)"),
    # Background
    P("BACK_TYPE", "keyword", ["AUTO"], "AUTO or MANUAL", choices=("AUTO", "MANUAL"), nvalues=(1, 2)),
    P("BACK_VALUE", "float", [0.0], "Default background value in MANUAL mode", nvalues=(1, 2)),
    P("BACK_SIZE", "int", [64], "Background mesh: <size> or <width>,<height>", nvalues=(1, 2), minimum=1),
    P("BACK_FILTERSIZE", "int", [3], "Background filter: <size> or <width>,<height>", nvalues=(1, 2),
      minimum=1, maximum=7),
    P("BACKPHOTO_TYPE", "keyword", "GLOBAL", "can be GLOBAL or LOCAL", choices=("GLOBAL", "LOCAL")),
    P("BACKPHOTO_THICK", "int", 24, "thickness of the background LOCAL annulus", minimum=1, maximum=256),
    P("BACK_FILTTHRESH", "float", 0.0, "Threshold above which the background-map filter operates"),
    # Check images
    P("CHECKIMAGE_TYPE", "keyword", ["NONE"], "check-image type(s)", choices=CHECK_TYPES, nvalues=(1, 16)),
    P("CHECKIMAGE_NAME", "path", ["check.fits"], "Filename(s) for the check-image(s)", nvalues=(1, 16)),
    # Memory
    P("MEMORY_OBJSTACK", "int", 3000, "number of objects in stack", minimum=1),
    P("MEMORY_PIXSTACK", "int", 300000, "number of pixels in stack", minimum=1),
    P("MEMORY_BUFSIZE", "int", 1024, "number of lines in buffer", minimum=1),
    # Association
    P("ASSOC_NAME", "path", "sky.list", "name of the ASCII file to ASSOCiate"),
    P("ASSOC_DATA", "int", [2, 3, 4], "columns of the data to replicate (0=all)", nvalues=(1, 32)),
    P("ASSOC_PARAMS", "int", [2, 3, 4], "columns of xpos,ypos[,mag]", nvalues=(2, 3)),
    P("ASSOCCOORD_TYPE", "keyword", "PIXEL", "ASSOC coordinates: PIXEL or WORLD", choices=("PIXEL", "WORLD")),
    P("ASSOC_RADIUS", "float", 2.0, "cross-matching radius (pixels)"),
    P("ASSOC_TYPE", "keyword", "NEAREST", "ASSOCiation method",
      choices=("FIRST", "NEAREST", "MEAN", "MAG_MEAN", "SUM", "MAG_SUM", "MIN", "MAX")),
    P("ASSOCSELEC_TYPE", "keyword", "MATCHED", "ASSOC selection type: ALL, MATCHED or -MATCHED",
      choices=("ALL", "MATCHED", "-MATCHED")),
    # Miscellaneous
    P("VERBOSE_TYPE", "keyword", "NORMAL", "can be QUIET, NORMAL or FULL",
      choices=("QUIET", "NORMAL", "LOG", "FULL")),
    P("HEADER_SUFFIX", "str", ".head", "Filename extension for additional headers"),
    P("WRITE_XML", "bool", False, "Write XML file (Y/N)?"),
    P("XML_NAME", "path", "sex.xml", "Filename for XML output"),
    P("XSL_URL", "str", "file:///usr/share/source-extractor/source-extractor.xsl",
      "Filename for XSL style-sheet"),
    P("NTHREADS", "int", 1, "number of threads (0 = all cores); extensions run in parallel", minimum=0),
    P("FITS_UNSIGNED", "bool", False, "Treat FITS integer values as unsigned (Y/N)?"),
    P("INTERP_MAXXLAG", "int", [16], "Max. lag along X for 0-weight interpolation", nvalues=(1, 2)),
    P("INTERP_MAXYLAG", "int", [16], "Max. lag along Y for 0-weight interpolation", nvalues=(1, 2)),
    P("INTERP_TYPE", "keyword", ["ALL"], "Interpolation type: NONE, VAR_ONLY or ALL",
      choices=("NONE", "VAR_ONLY", "ALL"), nvalues=(1, 2)),
    # Experimental
    P("PSF_NAME", "path", ["default.psf"], "File containing the PSF model", nvalues=(1, 2)),
    P("PSF_NMAX", "int", 1, "Max.number of PSFs fitted simultaneously"),
    P("PATTERN_TYPE", "keyword", "RINGS-HARMONIC", "pattern type",
      choices=("RINGS-QUADPOLE", "RINGS-OCTOPOLE", "RINGS-HARMONIC", "GAUSS-LAGUERRE")),
    P("SOM_NAME", "path", "default.som", "File containing Self-Organizing Map weights"),
])
