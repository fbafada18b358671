"""A third party's terapix-fw plugin: one tool, ``invert``, that negates an image and adds an offset.

It is found through the ``terapix_fw.plugins`` entry point of its own distribution, exactly as the
built-in tools are.
"""
from terapix_fw.hookspecs import hookimpl
from terapix_fw.params import Parameter, terapix_only
from terapix_fw.tool import Tool


class Invert(Tool):
    name = "invert"
    version = "2.5.0"
    produces = ("image",)
    parameters = [Parameter("OFFSET", "float", 0.0, "added after negation",
                            astromatic=terapix_only("no AstrOmatic program inverts images")),
                  Parameter("OUTPUT_NAME", "str", "{stem}_inv.fits", "output name",
                            astromatic="STIFF OUTFILE_NAME (a FITS image, not a picture)")]

    def run(self, ctx):
        from astropy.io import fits  # imported when the tool runs: `terapix plugins` stays fast
        for path in ctx.inputs:
            data = fits.getdata(path)
            with ctx.product(ctx.config["OUTPUT_NAME"], kind="image") as tmp:
                fits.PrimaryHDU(-data + ctx.config["OFFSET"]).writeto(tmp)


@hookimpl
def register_tools(register):
    register(Invert)
