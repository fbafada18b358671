"""The two tools of Spica's generated instruction files, registered like any plugin's tools.

``spica_release``: the last step of a stack — the release date of the stack (the latest release date of
its inputs, CFHTLS report section 3.3) is written into the header of every FITS product as ``REL_DATE``,
images and weight maps are RICE-compressed (fixed dither seed, so that a re-made stack compresses to the
same bytes), and every product lands in the release area under its release name.

``spica_colour``: the colour picture of a field (Lupton et al. 2004 asinh stretch) from up to three
stacks on the same pixel grid, reddest band in red.
"""
from __future__ import annotations

from ..errors import ToolError
from ..params import Parameter, terapix_only
from ..tool import Tool

__all__ = ["ReleaseTool", "ColourTool", "REL_DATE_KEY"]

REL_DATE_KEY = "REL_DATE"

_NONE = terapix_only("release packaging (release keywords, RICE compression) is no AstrOmatic program's")
_ASINH = terapix_only("STIFF has no asinh stretch (terapix-fw's stiff has it: GAMMA_TYPE ASINH, ASINH_Q)")


class ReleaseTool(Tool):
    """Release products: REL_DATE in every header, RICE compression, copies under their release names."""
    name = "spica_release"
    version = "1.0"
    description = "release products: REL_DATE in every header, RICE compression, copy under release names"
    consumes = ("stack", "weight", "catalog", "plot", "xml", "image")
    produces = ("release",)
    default_fanout = "all"
    parameters = [
        Parameter("RELEASE_DATE", "str", "", "release date written as REL_DATE (YYYY-MM-DD; empty: none)",
                  astromatic=_NONE),
        Parameter("RELEASE_NAME", "str", "", "release name of the stack (for the log and the record)",
                  astromatic=_NONE),
        Parameter("COMPRESSION", "keyword", "RICE_1", "compression of images and weight maps",
                  choices=("RICE_1", "NONE"), astromatic=_NONE),
        Parameter("QUANTIZE_LEVEL", "float", 16.0, "RICE quantisation level of floating-point pixels",
                  minimum=1.0, astromatic=_NONE),
    ]

    def run(self, ctx):
        """Write each input under its release name, with REL_DATE and RICE compression.

        Parameters
        ----------
        ctx : StepContext

        Raises
        ------
        ToolError
            If the unit has no product to release.
        """
        import shutil

        from astropy.io import fits
        import numpy as np

        cfg = ctx.config
        date = cfg["RELEASE_DATE"]
        if not ctx.inputs:
            raise ToolError("spica_release: no product to release")
        for path in ctx.inputs:
            name = path.name
            if not name.endswith((".fits", ".fit")):
                with ctx.product(name, kind="release", release=cfg["RELEASE_NAME"]) as tmp:
                    shutil.copyfile(path, tmp)
                continue
            with fits.open(path) as hdul:
                out = fits.HDUList()
                for i, hdu in enumerate(hdul):
                    header = hdu.header.copy()
                    if date:
                        header[REL_DATE_KEY] = (date, "release date: latest of the inputs")
                    is_image = hdu.is_image and hdu.data is not None and hdu.data.ndim == 2
                    if is_image and cfg["COMPRESSION"] == "RICE_1":
                        data = np.asarray(hdu.data)
                        if i == 0:
                            out.append(fits.PrimaryHDU(header=fits.Header([(REL_DATE_KEY, date)]) if date else None))
                        for key in ("XTENSION", "PCOUNT", "GCOUNT", "SIMPLE", "EXTEND"):
                            header.remove(key, ignore_missing=True, remove_all=True)
                        out.append(fits.CompImageHDU(data, header=header, compression_type="RICE_1",
                                                     quantize_level=cfg["QUANTIZE_LEVEL"],
                                                     quantize_method=1, dither_seed=1))
                    elif i == 0:
                        out.append(fits.PrimaryHDU(hdu.data, header=header))
                    else:
                        out.append(hdu.__class__(data=hdu.data, header=header))
                with ctx.product(name, kind="release", release=cfg["RELEASE_NAME"]) as tmp:
                    out.writeto(tmp, output_verify="silentfix", checksum=False)
        ctx.record("spica_release", name=cfg["RELEASE_NAME"], release_date=date or None,
                   products=[p.path for p in ctx.products])


class ColourTool(Tool):
    """A colour picture (asinh stretch, Lupton et al. 2004) of one to three aligned stacks, blue to red."""
    name = "spica_colour"
    version = "1.0"
    description = "colour picture (asinh, Lupton et al. 2004) of up to three aligned stacks"
    consumes = ("stack",)
    produces = ("plot",)
    default_fanout = "all"
    parameters = [
        Parameter("PICTURE_NAME", "str", "colour.png", "output PNG", astromatic="STIFF OUTFILE_NAME (PNG only)"),
        Parameter("BINNING", "int", 2, "binning of the picture (pixels)", minimum=1,
                  astromatic="STIFF (one factor for both axes)"),
        Parameter("STRETCH", "float", 5.0, "asinh stretch, in units of the sky noise", minimum=0.0,
                  astromatic=_ASINH),
        Parameter("Q", "float", 8.0, "asinh softening (Lupton's Q)", minimum=0.0, astromatic=_ASINH),
    ]

    def run(self, ctx):
        """Write the PNG picture of the unit's stacks.

        Parameters
        ----------
        ctx : StepContext

        Raises
        ------
        ToolError
            Without 1 to 3 stacks, or stacks of different sizes.
        """
        from astropy.io import fits
        from astropy.visualization import make_lupton_rgb
        import numpy as np

        cfg = ctx.config
        paths = list(ctx.inputs)
        if not 1 <= len(paths) <= 3:
            raise ToolError(f"spica_colour takes 1 to 3 stacks (blue to red); got {len(paths)}")
        planes, shape = [], None
        for p in paths:
            data = np.nan_to_num(np.asarray(fits.getdata(p), np.float32))
            if shape is not None and data.shape != shape:
                raise ToolError(f"{p}: {data.shape[1]}x{data.shape[0]} pixels, but {paths[0]} has "
                                f"{shape[1]}x{shape[0]}: stacks must share one grid")
            shape = data.shape
            b = cfg["BINNING"]
            ny, nx = (data.shape[0] // b) * b, (data.shape[1] // b) * b
            data = data[:ny, :nx].reshape(ny // b, b, nx // b, b).mean(axis=(1, 3))
            mad = np.median(np.abs(data - np.median(data))) * 1.4826 or 1.0
            planes.append((data - np.median(data)) / mad)
        while len(planes) < 3:
            planes.insert(0, planes[0])
        blue, green, red = planes  # inputs are given blue to red
        rgb = make_lupton_rgb(red, green, blue, stretch=cfg["STRETCH"], Q=cfg["Q"])
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        with ctx.product(cfg["PICTURE_NAME"], kind="plot") as tmp:
            plt.imsave(tmp, rgb[::-1], format="png")
