"""SCAMP 2.10 configuration keywords, names and defaults exactly as ``scamp -dd`` prints them.

Keywords that only make sense for the network catalogue servers, merged/full output catalogues,
differential geometry maps, check-images and parallaxes are accepted (a SCAMP configuration file must
load unchanged) and reported as ignored when set to a non-default value by :mod:`.pipeline`.
"""
from __future__ import annotations

from terapix_fw.params import Parameter, astromatic_keywords

__all__ = ["PARAMETERS", "IGNORED_KEYWORDS", "ASTREF_CATALOGS", "CHECKPLOT_TYPES"]

ASTREF_CATALOGS = ("NONE", "FILE", "USNO-A2", "USNO-B1", "GSC-2.3", "TYCHO-2", "UCAC-4", "URAT-1", "NOMAD-1",
                   "PPMX", "CMC-15", "2MASS", "DENIS-3", "SDSS-R9", "SDSS-R12", "IGSL", "GAIA-DR1", "GAIA-DR2",
                   "GAIA-EDR3", "GAIA-DR3", "PANSTARRS-1", "ALLWISE")
CHECKPLOT_TYPES = ("NONE", "FGROUPS", "DISTORTION", "ASTR_INTERROR2D", "ASTR_INTERROR1D", "ASTR_REFERROR2D",
                   "ASTR_REFERROR1D", "ASTR_PIXERROR1D", "ASTR_SUBPIXERROR1D", "ASTR_CHI2", "ASTR_REFSYSMAP",
                   "ASTR_REFPROPER", "ASTR_COLSHIFT1D", "PHOT_ERROR", "PHOT_ERRORVSMAG", "PHOT_ZPCORR",
                   "PHOT_ZPCORR3D", "SHEAR_VS_AIRMASS")
_OUTCAT = ("NONE", "ASCII_HEAD", "ASCII", "FITS_LDAC")

P = Parameter
PARAMETERS = astromatic_keywords("SCAMP", [
    # ---------------------------- Reference catalogs
    P("REF_SERVER", "str", ["vizier.unistra.fr"], "Internet addresses of catalog servers", nvalues=(1, None)),
    P("REF_TIMEOUT", "int", [10], "Server connection timeouts (s) 0=none", nvalues=(1, None), minimum=0),
    P("ASTREF_CATALOG", "keyword", "2MASS", "astrometric reference catalog", choices=ASTREF_CATALOGS),
    P("ASTREF_BAND", "str", "DEFAULT", "Photom. band for astr.ref.magnitudes or DEFAULT, BLUEST, or REDDEST"),
    P("ASTREFCAT_NAME", "path", ["astrefcat.cat"], "Local astrometric reference catalogs", nvalues=(1, None)),
    P("ASTREFCENT_KEYS", "str", ["X_WORLD", "Y_WORLD"], "Local ref.cat. centroid parameters", nvalues=2),
    P("ASTREFERR_KEYS", "str", ["ERRA_WORLD", "ERRB_WORLD", "ERRTHETA_WORLD"],
      "Local ref.cat. err. ellipse params", nvalues=(1, 3)),
    P("ASTREFPROP_KEYS", "str", ["PMALPHA_J2000", "PMDELTA_J2000"], "Local ref.cat. PM params", nvalues=2),
    P("ASTREFPROPERR_KEYS", "str", ["PMALPHAERR_J2000", "PMDELTAERR_J2000"], "Local ref.cat. PM err. params",
      nvalues=2),
    P("ASTREFMAG_KEY", "str", "MAG", "Local ref.cat. magnitude parameter"),
    P("ASTREFMAGERR_KEY", "str", "MAGERR", "Local ref.cat. mag. error parameter"),
    P("ASTREFOBSDATE_KEY", "str", "OBSDATE", "Local ref.cat. obs. date parameter"),
    P("ASTREFMAG_LIMITS", "float", [-99.0, 99.0], "Select magnitude range in ASTREF_BAND", nvalues=2),
    P("SAVE_REFCATALOG", "bool", False, "Save ref catalogs in FITS-LDAC format?"),
    P("REFOUT_CATPATH", "path", ".", "Save path for reference catalogs"),
    # ---------------------------- Merged / full output catalogs, differential geometry maps
    P("MERGEDOUTCAT_TYPE", "keyword", "NONE", "Merged output catalog type", choices=_OUTCAT),
    P("MERGEDOUTCAT_NAME", "path", "merged.cat", "Merged output catalog filename"),
    P("SAVE_DGEOMAP", "bool", False, "Save differential geometry maps (Y/N)?"),
    P("DGEOMAP_NAME", "path", "dgeo.fits", "Differential geometry map filename"),
    P("DGEOMAP_STEP", "int", 2, "Map sampling step", minimum=1),
    P("DGEOMAP_NNEAREST", "int", 21, "Number of nearest neighbors", minimum=1),
    P("FULLOUTCAT_TYPE", "keyword", "NONE", "Full output catalog type", choices=_OUTCAT),
    P("FULLOUTCAT_NAME", "path", "full.cat", "Full output catalog filename"),
    # ---------------------------- Pattern matching
    P("MATCH", "bool", True, "Do pattern-matching (Y/N) ?"),
    P("MATCH_NMAX", "int", 0, "Max.number of detections for MATCHing (0=auto)", minimum=0),
    P("PIXSCALE_MAXERR", "float", 1.2, "Max scale-factor uncertainty", minimum=1.0),
    P("POSANGLE_MAXERR", "float", 5.0, "Max position-angle uncertainty (deg)", minimum=0.0, maximum=180.0),
    P("POSITION_MAXERR", "float", 1.0, "Max positional uncertainty (arcmin)", minimum=0.0),
    P("MATCH_RESOL", "float", 0.0, "Matching resolution (arcsec); 0=auto", minimum=0.0),
    P("MATCH_FLIPPED", "bool", False, "Allow matching with flipped axes?"),
    P("MOSAIC_TYPE", "keyword", "UNCHANGED", "mosaic handling",
      choices=("UNCHANGED", "SAME_CRVAL", "SHARE_PROJAXIS", "FIX_FOCALPLANE", "LOOSE")),
    P("FIXFOCALPLANE_NMIN", "int", 1, "Min number of dets for FIX_FOCALPLANE", minimum=0),
    # ---------------------------- Cross-identification
    P("CROSSID_RADIUS", "float", 2.0, "Cross-id initial radius (arcsec)", minimum=0.0),
    # ---------------------------- Astrometric solution
    P("SOLVE_ASTROM", "bool", True, "Compute astrometric solution (Y/N) ?"),
    P("PROJECTION_TYPE", "keyword", "SAME", "SAME, TPV or TAN", choices=("SAME", "TPV", "TAN")),
    P("ASTRINSTRU_KEY", "str", ["FILTER", "QRUNID"], "FITS keyword(s) defining the astrom", nvalues=(1, None)),
    P("STABILITY_TYPE", "keyword", "INSTRUMENT", "EXPOSURE, PRE-DISTORTED or INSTRUMENT",
      choices=("EXPOSURE", "PRE-DISTORTED", "INSTRUMENT")),
    P("CENTROID_KEYS", "str", ["XWIN_IMAGE", "YWIN_IMAGE"], "Cat. parameters for centroiding", nvalues=2),
    P("CENTROIDERR_KEYS", "str", ["ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE"],
      "Cat. params for centroid err ellipse", nvalues=3),
    P("DISTORT_KEYS", "str", ["XWIN_IMAGE", "YWIN_IMAGE"], "Cat. parameters or FITS keywords",
      nvalues=(1, None)),
    P("DISTORT_GROUPS", "int", [1, 1], "Polynom group for each context key", nvalues=(1, None), minimum=1),
    P("DISTORT_DEGREES", "int", [3], "Polynom degree for each group", nvalues=(1, None), minimum=0,
      maximum=7),
    P("FOCDISTORT_DEGREE", "int", 1, "Polynom degree for focal plane coords", minimum=-1, maximum=1),
    P("ASTREF_WEIGHT", "float", [1.0], "Relative weight of ref.astrom.cat.", nvalues=(1, None), minimum=0.0),
    P("ASTRACCURACY_TYPE", "keyword", "SIGMA-PIXEL", "SIGMA-PIXEL, SIGMA-ARCSEC, or TURBULENCE-ARCSEC",
      choices=("SIGMA-PIXEL", "SIGMA-ARCSEC", "TURBULENCE-ARCSEC")),
    P("ASTRACCURACY_KEY", "str", "ASTRACCU", "FITS keyword for ASTR_ACCURACY param."),
    P("ASTR_ACCURACY", "float", [0.01], "Astrom. uncertainty floor parameter", nvalues=(1, None), minimum=0.0),
    P("ASTRCLIP_NSIGMA", "float", 3.0, "Astrom. clipping threshold in sigmas", minimum=0.0),
    P("COMPUTE_PARALLAXES", "bool", False, "Compute trigonom. parallaxes (Y/N)?"),
    P("COMPUTE_PROPERMOTIONS", "bool", False, "Compute proper motions (Y/N)?"),
    P("CORRECT_COLOURSHIFTS", "bool", False, "Correct for colour shifts (Y/N)?"),
    P("INCLUDE_ASTREFCATALOG", "bool", True, "Include ref.cat in prop.motions (Y/N)?"),
    P("ASTR_FLAGSMASK", "int", 0x00FC, "Astrometry rejection mask on SEx FLAGS", minimum=0),
    P("ASTR_IMAFLAGSMASK", "int", 0x0, "Astrometry rejection mask on IMAFLAGS", minimum=0),
    # ---------------------------- Photometric solution
    P("SOLVE_PHOTOM", "bool", True, "Compute photometric solution (Y/N) ?"),
    P("MAGZERO_OUT", "float", [0.0], "Magnitude zero-point(s) in output", nvalues=(1, None)),
    P("MAGZERO_INTERR", "float", [0.01], "Internal mag.zero-point accuracy", nvalues=(1, None), minimum=0.0),
    P("MAGZERO_REFERR", "float", [0.03], "Photom.field mag.zero-point accuracy", nvalues=(1, None),
      minimum=0.0),
    P("PHOTINSTRU_KEY", "str", ["FILTER"], "FITS keyword(s) defining the photom.", nvalues=(1, None)),
    P("MAGZERO_KEY", "str", "PHOT_C", "FITS keyword for the mag zero-point"),
    P("EXPOTIME_KEY", "str", "EXPTIME", "FITS keyword for the exposure time (s)"),
    P("AIRMASS_KEY", "str", "AIRMASS", "FITS keyword for the airmass"),
    P("EXTINCT_KEY", "str", "PHOT_K", "FITS keyword for the extinction coeff"),
    P("PHOTOMFLAG_KEY", "str", "PHOTFLAG", "FITS keyword for the photometry flag"),
    P("PHOTFLUX_KEY", "str", "FLUX_AUTO", "Catalog param. for the flux measurement"),
    P("PHOTFLUXERR_KEY", "str", "FLUXERR_AUTO", "Catalog parameter for the flux error"),
    P("PHOTCLIP_NSIGMA", "float", 3.0, "Photom.clipping threshold in sigmas", minimum=0.0),
    P("PHOT_ACCURACY", "float", 1e-3, "Photometric uncertainty floor (frac.)", minimum=0.0),
    P("PHOT_FLAGSMASK", "int", 0x00FC, "Photometry rejection mask on SEx FLAGS", minimum=0),
    P("PHOT_IMAFLAGSMASK", "int", 0x0, "Photometry rejection mask on IMAFLAGS", minimum=0),
    # ---------------------------- Source selection
    P("SN_THRESHOLDS", "float", [10.0, 100.0], "S/N thresholds (in sigmas) for all and high-SN sample",
      nvalues=2, minimum=0.0),
    P("FWHM_THRESHOLDS", "float", [0.0, 100.0], "FWHM thresholds (in pixels) for sources", nvalues=2,
      minimum=0.0),
    P("ELLIPTICITY_MAX", "float", 0.5, "Max. source ellipticity", minimum=0.0, maximum=1.0),
    P("FLAGS_MASK", "int", 0x00F0, "Global rejection mask on SEx FLAGS", minimum=0),
    P("WEIGHTFLAGS_MASK", "int", 0x00FF, "Global rejec. mask on SEx FLAGS_WEIGHT", minimum=0),
    P("IMAFLAGS_MASK", "int", 0x0, "Global rejec. mask on SEx IMAFLAGS_ISO", minimum=0),
    # ---------------------------- WCS headers
    P("AHEADER_GLOBAL", "path", "scamp.ahead", "Filename of a global input header"),
    P("AHEADER_NAME", "path", [], "List of input header filenames (overrides AHEADER_SUFFIX)",
      nvalues=(0, None)),
    P("AHEADER_SUFFIX", "str", ".ahead", "Filename extension for additional input headers"),
    P("HEADER_NAME", "path", [], "List of output header filenames (overrides HEADER_SUFFIX)",
      nvalues=(0, None)),
    P("HEADER_SUFFIX", "str", ".head", "Filename extension for output headers"),
    P("HEADER_TYPE", "keyword", "NORMAL", "NORMAL or FOCAL_PLANE", choices=("NORMAL", "FOCAL_PLANE")),
    # ---------------------------- Check-plots
    P("CHECKPLOT_CKEY", "str", "SCAMPCOL", "FITS keyword for PLPLOT field colour"),
    P("CHECKPLOT_DEV", "keyword", ["PNG"], "NULL, XWIN, TK, PS, PSC, XFIG, PNG, JPEG, AQT, PDF or SVG",
      choices=("NULL", "XWIN", "TK", "PS", "PSC", "XFIG", "PNG", "JPEG", "AQT", "PDF", "SVG"),
      nvalues=(1, None)),
    P("CHECKPLOT_RES", "int", [0], "Check-plot resolution (0 = default)", nvalues=(1, 2), minimum=0),
    P("CHECKPLOT_ANTIALIAS", "bool", True, "Anti-aliasing using convert (Y/N) ?"),
    P("CHECKPLOT_TYPE", "keyword",
      ["FGROUPS", "DISTORTION", "ASTR_INTERROR2D", "ASTR_INTERROR1D", "ASTR_REFERROR2D", "ASTR_REFERROR1D",
       "ASTR_CHI2", "PHOT_ERROR"], "Check-plot type(s)", choices=CHECKPLOT_TYPES, nvalues=(1, None)),
    P("CHECKPLOT_NAME", "path",
      ["fgroups", "distort", "astr_interror2d", "astr_interror1d", "astr_referror2d", "astr_referror1d",
       "astr_chi2", "psphot_error"], "Check-plot filename(s)", nvalues=(1, None)),
    # ---------------------------- Check-images
    P("CHECKIMAGE_TYPE", "keyword", ["NONE"], "NONE, AS_PAIR, AS_REFPAIR, or AS_XCORR",
      choices=("NONE", "AS_PAIR", "AS_REFPAIR", "AS_XCORR"), nvalues=(1, None)),
    P("CHECKIMAGE_NAME", "path", ["check.fits"], "Check-image filename(s)", nvalues=(1, None)),
    # ---------------------------- Miscellaneous
    P("VERBOSE_TYPE", "keyword", "NORMAL", "QUIET, NORMAL, LOG or FULL", choices=("QUIET", "NORMAL", "LOG", "FULL")),
    P("WRITE_XML", "bool", True, "Write XML file (Y/N)?"),
    P("XML_NAME", "path", "scamp.xml", "Filename for XML output"),
    P("XSL_URL", "str", "file:///usr/share/scamp/scamp.xsl", "Filename for XSL style-sheet"),
    P("NTHREADS", "int", 0, "Number of simultaneous threads for the SMP version of SCAMP (0 = automatic)",
      minimum=0),
])

#: keywords accepted for compatibility whose non-default values are not implemented (logged as ignored)
IGNORED_KEYWORDS = ("REF_SERVER", "REF_TIMEOUT", "ASTREF_BAND", "SAVE_REFCATALOG", "REFOUT_CATPATH",
                    "MERGEDOUTCAT_TYPE", "MERGEDOUTCAT_NAME", "SAVE_DGEOMAP", "DGEOMAP_NAME", "DGEOMAP_STEP",
                    "DGEOMAP_NNEAREST", "FULLOUTCAT_TYPE", "FULLOUTCAT_NAME", "COMPUTE_PARALLAXES",
                    "COMPUTE_PROPERMOTIONS", "CORRECT_COLOURSHIFTS", "INCLUDE_ASTREFCATALOG",
                    "CHECKIMAGE_TYPE", "CHECKIMAGE_NAME", "CHECKPLOT_CKEY", "CHECKPLOT_ANTIALIAS",
                    "HEADER_TYPE", "DISTORT_KEYS", "DISTORT_GROUPS", "ASTRACCURACY_KEY", "CHECKPLOT_RES")
