"""The qualityfits tool: QualityFITS-in on exposures, QualityFITS-out on stacks.

QUALITY_MODE IN (default), for each input exposure ``<name>.fits``: ``<name>.weight.fits`` (32-bit) and
``<name>.flag.fits`` (8-bit) with the exposure's extension structure, ``<name>.ldac`` (shallow FITS_LDAC
catalogue), ``<name>.psf`` (PSFEx format, one model per CCD), ``<name>.xml`` (summary: metrics per CCD and
exposure, suggested grade and reasons) and the plots ``<name>_*.png``; RDBix records of kind ``quality``
(metrics, suggested grade) and ``qualityfits`` (reasons).

QUALITY_MODE OUT, for each stack: the same metrics with the stack's own weight map (``WEIGHT_SUFFIX``), the
PSF sampled every PSF_SAMPLE_ARCMIN, and completeness from injected point sources (``<name>_comptness.png``).

The weight/flag keywords are weightwatcher's and the PSF keywords psfex's (declared once, in those plugins).
"""
from terapix_fw.params import Parameter, terapix_only
from terapix_fw.tool import Tool
from terapix_psfex import PsfexTool
from terapix_weightwatcher import WeightWatcherTool

_WW_SKIP = {"OUTWEIGHT_NAME", "OUTFLAG_NAME", "WRITE_XML", "XML_NAME", "VERBOSE_TYPE", "NTHREADS", "GETAREA",
            "GETAREA_WEIGHT", "GETAREA_FLAGS", "POLY_INTERSECT"}
_PSF_KEEP = {"PSF_SIZE", "PSFVAR_DEGREES", "SAMPLE_FWHMRANGE", "SAMPLE_VARIABILITY", "SAMPLE_MINSN",
             "SAMPLE_MAXELLIP", "SAMPLE_FLAGMASK"}

#: QualityFITS was a TERAPIX program around the AstrOmatic tools (no public code), not one of them
_NONE = terapix_only("a QualityFITS setting; QualityFITS was TERAPIX's quality-control chain around the "
                     "AstrOmatic tools, not one of them")


class QualityFitsTool(Tool):
    """QualityFITS: weight and flag maps, shallow catalogue, PSF, metrics, plots and a suggested grade of each
    exposure (QUALITY_MODE IN), or the quality of each stack (OUT).
    """
    name = "qualityfits"
    version = "0.1.0"
    description = "QualityFITS-in/out: weight/flag maps, shallow catalogue, PSF, metrics, plots, grades"
    consumes = ("image",)
    produces = ("weight", "flag", "catalog", "psf", "xml", "plot", "quality")
    default_fanout = "file"
    parameters = [
        Parameter("QUALITY_MODE", "keyword", "IN", "IN (exposures) or OUT (stacks)", choices=("IN", "OUT"),
                  astromatic=_NONE),
        Parameter("DETECT_THRESH", "float", 5.0, "shallow-catalogue detection threshold (sigmas)", minimum=0.1,
                  astromatic="SExtractor"),
        Parameter("DETECT_MINAREA", "int", 5, "minimum number of pixels above threshold", minimum=1,
                  astromatic="SExtractor"),
        Parameter("MAG_ZEROPOINT", "float", 0.0, "magnitude zero point (0: from ZP_KEY or PHOT_C+2.5log EXPTIME)",
                  astromatic="SExtractor"),
        Parameter("ZP_KEY", "str", "MAGZP", "header keyword of the zero point (total ADU)",
                  astromatic=terapix_only("SExtractor reads MAG_ZEROPOINT from its configuration only")),
        Parameter("FOCALPLANE_REF", "path", "", "reference MEF or .head of the focal plane (empty: DETECTOR)",
                  astromatic=_NONE),
        Parameter("MAX_CCD_OFFSET", "float", 10.0, "largest CCD displacement (arcsec) before grade D", minimum=0.0,
                  astromatic=_NONE),
        Parameter("GRADING_RULES", "path", "", "grading rules file (empty: the packaged data/grading.rules)",
                  astromatic=_NONE),
        Parameter("WRITE_PLOTS", "bool", True, "write the PNG plots (Y/N)?", astromatic=_NONE),
        Parameter("THUMB_SIZE", "int", 128, "size (pixels) of a CCD in the thumbnails", minimum=8, astromatic=_NONE),
        Parameter("WEIGHT_SUFFIX", "str", ".weight.fits", "QualityFITS-out: stack weight map suffix",
                  astromatic="SWarp"),
        Parameter("PSF_SAMPLE_ARCMIN", "float", 10.0, "QualityFITS-out: PSF sampling step (arcmin)", minimum=0.1,
                  astromatic=_NONE),
        Parameter("COMPLETENESS", "bool", True, "QualityFITS-out: measure completeness (Y/N)?", astromatic=_NONE),
        Parameter("COMP_SIZE", "int", 1024, "QualityFITS-out: size of the sub-image for injections (pixels)",
                  minimum=64, astromatic=_NONE),
        Parameter("COMP_NFAKE", "int", 600, "QualityFITS-out: number of injected point sources", minimum=20,
                  astromatic=_NONE),
        Parameter("COMP_MAGSTEP", "float", 0.25, "QualityFITS-out: magnitude bin of the completeness curve",
                  minimum=0.05, astromatic=_NONE),
        Parameter("COMP_SEED", "int", 1, "QualityFITS-out: random seed of the injections", astromatic=_NONE),
    ] + [p for p in WeightWatcherTool.parameters if p.name not in _WW_SKIP] \
      + [p for p in PsfexTool.parameters if p.name in _PSF_KEEP]

    def run(self, ctx):
        """Assess each input: an exposure (IN) or a stack (OUT); products and ``quality`` records as the module says.

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.
        """
        from .assess import assess_exposure

        cfg = build_config(ctx.config)
        for image in ctx.inputs:
            if ctx.config["QUALITY_MODE"] == "IN":
                assess_exposure(ctx, image, cfg, self.version)
            else:
                from .stack import assess_stack

                assess_stack(ctx, image, cfg, ctx.config, self.version)


def build_config(config):
    """The chain's configuration from the tool's keywords."""
    from terapix_psfex import SelectionConfig
    from terapix_weightwatcher import WatchConfig

    from .assess import QFConfig

    size = config["PSF_SIZE"] * 2 if len(config["PSF_SIZE"]) == 1 else config["PSF_SIZE"]
    return QFConfig(
        watch=WatchConfig.from_config({k: config[k] for k in config}),
        weight_names=list(config["WEIGHT_NAMES"]), flag_names=list(config["FLAG_NAMES"]),
        poly_names=list(config["POLY_NAMES"]), detect_thresh=config["DETECT_THRESH"],
        detect_minarea=config["DETECT_MINAREA"], mag_zeropoint=config["MAG_ZEROPOINT"], zp_key=config["ZP_KEY"],
        psf_degree=config["PSFVAR_DEGREES"], psf_size=tuple(size),
        selection=SelectionConfig(minsn=config["SAMPLE_MINSN"], flagmask=config["SAMPLE_FLAGMASK"],
                                  maxellip=config["SAMPLE_MAXELLIP"], fwhmrange=tuple(config["SAMPLE_FWHMRANGE"]),
                                  variability=config["SAMPLE_VARIABILITY"]),
        focalplane_ref=config["FOCALPLANE_REF"], max_ccd_offset=config["MAX_CCD_OFFSET"],
        grading_rules=config["GRADING_RULES"], write_plots=config["WRITE_PLOTS"], thumb_size=config["THUMB_SIZE"])
