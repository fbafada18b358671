"""The sextractor tool: SExtractor-compatible source extraction (drop-in for ``source-extractor``).

``terapix tool sextractor [DETECTION_IMAGE,]IMAGE -c file.sex -PARAMETERS_NAME x.param -KEYWORD value``
takes the same keywords, files and defaults as SExtractor 2.25 and writes the same catalogues.  The work
is in :mod:`terapix_sextractor.extraction` (imported inside :meth:`run` to keep start-up fast).
"""
from terapix_fw.errors import ToolError
from terapix_fw.tool import Tool

from .keywords import PARAMETERS


class SExtractorTool(Tool):
    """SExtractor-compatible source extraction on sep: FITS_LDAC (or ASCII) catalogues for SCAMP and PSFEx, check
    images, SExtractor's keywords and defaults.
    """
    name = "sextractor"
    version = "0.2.0"
    description = "SExtractor-compatible source extraction on sep (FITS_LDAC catalogues for SCAMP and PSFEx)"
    parameters = PARAMETERS
    consumes = ("image",)
    produces = ("catalog", "checkimage")
    default_fanout = "file"
    dropin_overlap = True  # one CCD takes about a second: opening RDBix meanwhile matters
    worker_preload = ("terapix_sextractor.warm",)  # libraries and numba kernels, once per pipeline run

    def describe_inputs(self, inputs):
        """``DET,MEAS`` (dual-image mode, as SExtractor) becomes ``[DET, MEAS]``; a single image ``[IMAGE]``."""
        out = []
        for item in inputs:
            out.extend(part for part in item.split(",") if part)
        if len(out) > 2:
            raise ToolError(f"sextractor takes IMAGE or DETECTION_IMAGE,IMAGE; got {len(out)} images: "
                            + ", ".join(out))
        return out

    def run(self, ctx):
        """Extract the sources of each input image (``DETECTION,MEASUREMENT`` in dual-image mode); write the
        catalogue and check images.

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.
        """
        from .run import run_step

        run_step(ctx)
