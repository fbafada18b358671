"""The ``simulate`` tool: a survey description in, simulated exposures and their truth out.

Usable as a step of an instruction file (fan-out ``all``; no input, or the survey file as input)::

    <step id="simulate" tool="simulate" fanout="all">
      <config><param name="SURVEY_FILE">survey_tiny.xml</param><param name="SEED">1</param></config>
    </step>

Products: ``image`` (one MEF per exposure), ``truth`` (truth tables), ``head`` (true WCS as .head
files), ``flat`` and ``flag`` (calibration maps), ``refcat`` (astrometric reference catalogue,
FITS_LDAC), ``zeropoints`` (true and header zero points) and ``sky_truth`` (every source of the area,
all bands).  Later steps take ``<input step="simulate" kind="image"/>``.
"""
from __future__ import annotations

from terapix_fw.params import Parameter, terapix_only
from terapix_fw.tool import Tool

__all__ = ["SimulateTool"]

_NONE = terapix_only("the simulator renders a survey described in XML; SkyMaker's keywords describe one image")


class SimulateTool(Tool):
    """Simulated MegaCam-like exposures with known truth (SkyMaker's role), from a survey XML file."""
    name = "simulate"
    version = "1.0"
    description = "MegaCam-like simulated exposures with known truth (SkyMaker's role)"
    parameters = [
        Parameter("SURVEY_FILE", "path", "", "survey description (XML, schemas/survey.xsd); "
                  "empty: the step's input file", astromatic=_NONE),
        Parameter("OUTPUT_DIR", "str", ".", "directory of the products, relative to the step directory",
                  astromatic=_NONE),
        Parameter("SEED", "int", 0, "random seed (0: the survey's seed attribute, else 1)", minimum=0,
                  astromatic=_NONE),
        Parameter("EXPOSURES", "str", "", "simulate only these exposures (comma-separated names); empty: all",
                  nvalues=(0, None), astromatic=_NONE),
        Parameter("COMPRESS", "keyword", "SURVEY", "RICE-compress the images: Y, N or as the survey says",
                  choices=("Y", "N", "SURVEY"), astromatic=_NONE),
        Parameter("NTHREADS", "int", 0, "CCDs rendered in parallel (0: the cores given to the step)", minimum=0,
                  astromatic=_NONE),
    ]
    consumes = ("survey",)
    produces = ("image", "truth", "head", "flat", "flag", "refcat", "zeropoints", "sky_truth")
    default_fanout = "all"

    def run(self, ctx) -> None:
        """Simulate the survey of SURVEY_FILE (or the unit's input) into OUTPUT_DIR.

        Parameters
        ----------
        ctx : StepContext

        Raises
        ------
        ToolError
            Without a survey file, or on a bad survey or EXPOSURES.
        """
        from dataclasses import replace
        from pathlib import Path

        from terapix_fw.errors import ConfigError, ToolError
        from .survey import SurveySpec, simulate_survey

        cfg = ctx.config
        survey_file = cfg["SURVEY_FILE"] or (str(ctx.inputs[0]) if ctx.inputs else "")
        if not survey_file:
            raise ToolError("simulate: no survey description: set SURVEY_FILE or give the step an input file")
        path = Path(survey_file)
        if not path.is_file():
            raise ToolError(f"simulate: SURVEY_FILE {survey_file!r} does not exist (expected an XML survey "
                            f"description, see schemas/survey.xsd)")
        try:
            spec = SurveySpec.from_xml(path)
        except ConfigError as exc:
            raise ToolError(f"simulate: {exc}") from None
        if cfg["COMPRESS"] != "SURVEY":
            spec.exposures = [replace(e, compress=cfg["COMPRESS"] == "Y") for e in spec.exposures]
        names = [n for n in (cfg["EXPOSURES"] or []) if n]
        outdir = ctx.output_path(cfg["OUTPUT_DIR"])
        seed = cfg["SEED"] or None
        nthreads = cfg["NTHREADS"] or ctx.nthreads

        def progress(i, n, res):
            ctx.log.info("exposure %d/%d %s: %d sources, ZP %.3f (header %.3f), seeing %.2f\"",
                         i, n, res.path.name, len(res.truth), res.zeropoint, res.header_zeropoint, res.seeing)

        try:
            result = simulate_survey(spec, outdir, seed=seed, nthreads=nthreads, only=names or None,
                                     progress=progress)
        except ConfigError as exc:
            raise ToolError(f"simulate: EXPOSURES: {exc}") from None
        cals = set()
        for res in result.exposures:
            ctx.add_product(res.path, "image", filter=res.meta["filter"], object=res.spec.object)
            ctx.add_product(res.truth_path, "truth", exposure=res.path.name)
            ctx.add_product(res.true_wcs_path, "head", exposure=res.path.name)
            for cal, kind in ((res.flat_path, "flat"), (res.bpm_path, "flag")):
                if cal is not None and cal not in cals:
                    cals.add(cal)
                    ctx.add_product(cal, kind)
            ctx.record("simulation", exposure=res.path.name, survey=spec.name, **{
                k: v for k, v in res.meta.items() if k != "name"})
        ctx.add_product(result.reference_catalog, "refcat")
        ctx.add_product(result.zeropoints_path, "zeropoints")
        ctx.add_product(result.sky_truth_path, "sky_truth")
