"""The stiff tool: FITS images to PNG/TIFF pictures, with STIFF 2.4's keywords and defaults.

Drop-in use, as the C program::

    terapix tool stiff stack.fits -OUTFILE_NAME stack.tif
    terapix tool stiff i.fits r.fits g.fits -OUTFILE_NAME irg.png -BINNING 20 -COLOUR_SAT 1.5
    terapix tool stiff stack.fits -OUTFILE_NAME thumb.png -GAMMA_TYPE ASINH -ASINH_Q 10

One grey picture from one image, one colour picture from three (red, green, blue in that order).
"""
from __future__ import annotations

from terapix_fw.params import Parameter, astromatic_keywords, terapix_only
from terapix_fw.tool import Tool

__all__ = ["StiffTool", "settings_from_config"]

_TYPE_HELP = "or one value per input image"


def settings_from_config(cfg):
    """The :class:`~terapix_stiff.rendering.Settings` of a validated configuration."""
    from .rendering import Settings

    binning = list(cfg["BINNING"])
    return Settings(sky_type=cfg["SKY_TYPE"], sky_level=cfg["SKY_LEVEL"], min_type=cfg["MIN_TYPE"],
                    min_level=cfg["MIN_LEVEL"], max_type=cfg["MAX_TYPE"], max_level=cfg["MAX_LEVEL"],
                    gamma_type=cfg["GAMMA_TYPE"], gamma=cfg["GAMMA"], gamma_fac=cfg["GAMMA_FAC"],
                    colour_sat=cfg["COLOUR_SAT"], negative=cfg["NEGATIVE"],
                    bits_per_channel=cfg["BITS_PER_CHANNEL"],
                    binning=(binning[0], binning[-1]), flip_type=cfg["FLIP_TYPE"], asinh_q=cfg["ASINH_Q"])


class StiffTool(Tool):
    """FITS images to PNG/TIFF pictures, grey (1 image) or colour (3 images), with STIFF's levels, gamma and
    binning (and an asinh stretch).
    """
    name = "stiff"
    version = "2.4.0"
    description = "FITS to PNG/TIFF pictures (grey or RGB), STIFF levels, gamma or asinh stretch, binning"
    default_fanout = "all"
    consumes = ("image", "stack")
    produces = ("picture", "xml")
    # every keyword is STIFF's of the same name but ASINH_Q, which says so
    parameters = astromatic_keywords("STIFF", [
        Parameter("OUTFILE_NAME", "path", "stiff.tif", "Name of the output file", output=True),
        Parameter("IMAGE_TYPE", "keyword", "AUTO", "Output image format: AUTO (from the suffix), TIFF or PNG",
                  choices=("AUTO", "TIFF", "PNG")),
        Parameter("BITS_PER_CHANNEL", "int", 8, "8, 16 for int, -32 for float (TIFF only)"),
        Parameter("COMPRESSION_TYPE", "keyword", "LZW", "NONE, LZW, JPEG, DEFLATE or ADOBE-DEFLATE (TIFF)",
                  choices=("NONE", "LZW", "JPEG", "DEFLATE", "ADOBE-DEFLATE")),
        Parameter("COMPRESSION_QUALITY", "int", 90, "JPEG compression quality (%)", minimum=0, maximum=100),
        Parameter("BINNING", "int", [1], "Binning factor for the data (one, or x and y)", nvalues=(1, 2),
                  minimum=1),
        Parameter("FLIP_TYPE", "keyword", "NONE", "NONE, or flip about X, Y or XY",
                  choices=("NONE", "X", "Y", "XY")),
        Parameter("SKY_TYPE", "keyword", ["AUTO"], f'Sky-level: "AUTO" or "MANUAL", {_TYPE_HELP}',
                  choices=("AUTO", "MANUAL"), nvalues=(1, 3)),
        Parameter("SKY_LEVEL", "float", [0.0], "Background level for each image", nvalues=(1, 3)),
        Parameter("MIN_TYPE", "keyword", ["GREYLEVEL"], 'Min-level: "QUANTILE", "MANUAL" or "GREYLEVEL"',
                  choices=("QUANTILE", "MANUAL", "GREYLEVEL"), nvalues=(1, 3)),
        Parameter("MIN_LEVEL", "float", [0.001], "Minimum value, quantile or grey level", nvalues=(1, 3)),
        Parameter("MAX_TYPE", "keyword", ["QUANTILE"], 'Max-level: "QUANTILE" or "MANUAL"',
                  choices=("QUANTILE", "MANUAL"), nvalues=(1, 3)),
        Parameter("MAX_LEVEL", "float", [0.999], "Maximum value or quantile", nvalues=(1, 3)),
        Parameter("SATUR_LEVEL", "float", [40000.0], "FITS data saturation level(s)", nvalues=(1, 3)),
        Parameter("GAMMA_TYPE", "keyword", "POWER-LAW",
                  "Gamma correction: POWER-LAW, SRGB, REC.709, or ASINH (Lupton et al. 2004; not in STIFF)",
                  choices=("POWER-LAW", "SRGB", "REC.709", "ASINH"), astromatic="STIFF (ASINH added)"),
        Parameter("GAMMA", "float", 2.2, "Display gamma", minimum=0.01),
        Parameter("GAMMA_FAC", "float", 1.0, "Luminance gamma correction factor", minimum=0.01),
        Parameter("ASINH_Q", "float", 8.0, "Softening Q of the asinh stretch (GAMMA_TYPE ASINH; not in STIFF)",
                  minimum=1e-6, astromatic=terapix_only("STIFF has no asinh stretch (GAMMA_TYPE ASINH)")),
        Parameter("COLOUR_SAT", "float", 1.0, "Colour saturation (0.0 = B&W)", minimum=0.0),
        Parameter("NEGATIVE", "bool", False, "Make negative of the image"),
        Parameter("DESCRIPTION", "str", "STIFF image", "Image content description"),
        Parameter("COPYRIGHT", "str", "AstrOmatic.net", "Copyright notice"),
        Parameter("WRITE_XML", "bool", True, "Write XML file (Y/N)?"),
        Parameter("XML_NAME", "path", "stiff.xml", "Filename for XML output"),
        Parameter("VERBOSE_TYPE", "keyword", "NORMAL", "QUIET, NORMAL or FULL", choices=("QUIET", "NORMAL", "FULL")),
        Parameter("NTHREADS", "int", 0, "Number of threads (unused: one pass, I/O bound)", minimum=0),
    ])

    def run(self, ctx):
        """Render the unit's images into OUTFILE_NAME; write the XML summary and a ``picture`` record.

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.

        Raises
        ------
        ToolError
            Without 1 or 3 images, or BITS_PER_CHANNEL -32 for a PNG.
        """
        from terapix_fw.errors import ToolError

        from .rendering import render
        from .writers import image_format, write_picture

        cfg = ctx.config
        if len(ctx.inputs) not in (1, 3):
            raise ToolError(f"{len(ctx.inputs)} input image(s): stiff makes a grey picture from 1 image or a "
                            "colour picture from 3 (red, green, blue)")
        settings = settings_from_config(cfg)
        name = cfg["OUTFILE_NAME"]
        fmt = image_format(name, cfg["IMAGE_TYPE"])
        if fmt == "PNG" and settings.bits_per_channel == -32:
            raise ToolError(f"OUTFILE_NAME = {name}: PNG holds 8- or 16-bit integers; BITS_PER_CHANNEL -32 "
                            "needs TIFF")
        picture = render(ctx.inputs, settings, log=ctx.log)
        saturs = list(cfg["SATUR_LEVEL"]) * (len(ctx.inputs) if len(cfg["SATUR_LEVEL"]) == 1 else 1)
        for path, lev, satur in zip(ctx.inputs, picture.levels, saturs):
            if lev.max > satur:
                ctx.log.warning("MAX_LEVEL exceeds SATUR_LEVEL in %s", path.name)
        with ctx.product(name, kind="picture", format=fmt) as tmp:
            write_picture(tmp, picture.pixels, image_type=fmt, compression=cfg["COMPRESSION_TYPE"],
                          description=cfg["DESCRIPTION"], copyright=cfg["COPYRIGHT"],
                          quality=cfg["COMPRESSION_QUALITY"])
        ny, nx = picture.pixels.shape[:2]
        ctx.log.info("%s: %dx%d, %d channel(s) of %d bits, binning %dx%d", name, nx, ny,
                     1 if picture.pixels.ndim == 2 else 3, abs(settings.bits_per_channel), *picture.binning)
        rows = [{"name": str(p), "sky": lev.sky, "min": lev.min, "max": lev.max}
                for p, lev in zip(ctx.inputs, picture.levels)]
        ctx.record("picture", path=str(ctx.output_path(name)), format=fmt, width=nx, height=ny,
                   channels=1 if picture.pixels.ndim == 2 else 3, bits=settings.bits_per_channel,
                   binning=list(picture.binning), inputs=rows)
        if cfg["WRITE_XML"]:
            from terapix_fw.votable import ReportTable, write_votable_report

            fields = [("Image_Name", "char", "name"), ("Background_Level", "float", "sky"),
                      ("Min_Level", "float", "min"), ("Max_Level", "float", "max")]
            with ctx.product(cfg["XML_NAME"], kind="xml") as tmp:
                write_votable_report(tmp, "STIFF", [ReportTable("Fields", fields, rows)],
                                     description="data related to STIFF",
                                     params=[("Output_Name", "char", "", str(name)),
                                             ("Image_Width", "int", "pix", nx), ("Image_Height", "int", "pix", ny)])
