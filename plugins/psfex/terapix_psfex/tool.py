"""The psfex tool: PSF models from FITS_LDAC catalogues with VIGNETs (PSFEx 3.x keywords and defaults).

One ``.psf`` file per input catalogue (PSF_DIR / catalogue name with PSF_SUFFIX), one PSF_DATA extension per
catalogue extension, as PSFEx with MEF_TYPE INDEPENDENT.
"""
from terapix_fw.params import Parameter, astromatic_keywords
from terapix_fw.tool import Tool


class PsfexTool(Tool):
    """PSF models varying with position from FITS_LDAC catalogues with VIGNETs (PSFEx's keywords, defaults and
    ``.psf`` format).
    """
    name = "psfex"
    version = "0.1.0"
    description = "pixel-basis PSF models varying with position (PSFEx .psf format)"
    consumes = ("catalog",)
    produces = ("psf", "xml")
    default_fanout = "file"
    worker_preload = ("terapix_psfex.warm",)  # libraries, modules and cached numba kernels, once per warm process
    parameters = astromatic_keywords("PSFEx", [
        Parameter("BASIS_TYPE", "keyword", "PIXEL_AUTO", "PSF basis (all three give a pixel grid here)",
                  choices=("NONE", "PIXEL", "PIXEL_AUTO"), astromatic="PSFEx (no GAUSS-LAGUERRE or FILE basis)"),
        Parameter("PSF_SAMPLING", "float", 0.0, "Sampling step in pixel units (0.0 = auto)", minimum=0.0),
        Parameter("PSF_SIZE", "int", [25, 25], "Image size of the PSF model", nvalues=(1, 2), minimum=3),
        Parameter("CENTER_KEYS", "str", ["X_IMAGE", "Y_IMAGE"], "Catalogue parameters for source pre-centering",
                  nvalues=2),
        Parameter("PSFVAR_KEYS", "str", ["X_IMAGE", "Y_IMAGE"], "Catalogue or FITS (preceded by :) params",
                  nvalues=2),
        Parameter("PSFVAR_DEGREES", "int", 2, "Polynom degree for each group", minimum=0, maximum=8),
        Parameter("PSFVAR_NSNAP", "int", 9, "Number of PSF snapshots per axis", minimum=1),
        Parameter("SAMPLE_AUTOSELECT", "bool", True, "Automatically select the FWHM (Y/N) ?"),
        Parameter("SAMPLE_FWHMRANGE", "float", [2.0, 10.0], "Allowed FWHM range", nvalues=2, minimum=0.0),
        Parameter("SAMPLE_VARIABILITY", "float", 0.2, "Allowed FWHM variability (1.0 = 100%)", minimum=0.0),
        Parameter("SAMPLE_MINSN", "float", 20.0, "Minimum S/N for a source to be used", minimum=1e-6),
        Parameter("SAMPLE_MAXELLIP", "float", 0.3, "Maximum (A-B)/(A+B) for a source to be used",
                  minimum=0.0, maximum=1.0),
        Parameter("SAMPLE_FLAGMASK", "int", 0x00FE, "Rejection mask on SExtractor FLAGS", minimum=0,
                  maximum=0xFFFF),
        Parameter("PSF_DIR", "path", "", "Where to write PSFs (empty=same as input)"),
        Parameter("PSF_SUFFIX", "str", ".psf", "Filename extension for output PSF filenames"),
        Parameter("WRITE_XML", "bool", True, "Write XML file (Y/N)?"),
        Parameter("XML_NAME", "path", "psfex.xml", "Filename for XML output"),
        Parameter("VERBOSE_TYPE", "keyword", "NORMAL", "can be QUIET, NORMAL, LOG or FULL",
                  choices=("QUIET", "NORMAL", "LOG", "FULL")),
        Parameter("NTHREADS", "int", 0, "Number of simultaneous threads (0 = automatic)", minimum=0),
    ])

    def run(self, ctx):
        """Write one ``.psf`` per input catalogue (PSF_DIR, PSF_SUFFIX), the XML summary, and a ``psf`` record.

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.

        Raises
        ------
        ToolError
            With CENTER_KEYS/PSFVAR_KEYS other than X_IMAGE,Y_IMAGE, or a catalogue that cannot be read.
        """
        from pathlib import Path

        from terapix_fw.errors import ToolError
        from terapix_fw.ldac import read_ldac

        import numpy as np

        from .psfmodel import SelectionConfig, fwhm_range, sample_candidates, write_psf
        from .report import write_psfex_xml

        cfg = ctx.config
        if cfg["CENTER_KEYS"] != ["X_IMAGE", "Y_IMAGE"] or cfg["PSFVAR_KEYS"] != ["X_IMAGE", "Y_IMAGE"]:
            raise ToolError("CENTER_KEYS and PSFVAR_KEYS other than X_IMAGE,Y_IMAGE are not supported; got "
                            f"{','.join(cfg['CENTER_KEYS'])} and {','.join(cfg['PSFVAR_KEYS'])}")
        sel = SelectionConfig(minsn=cfg["SAMPLE_MINSN"], flagmask=cfg["SAMPLE_FLAGMASK"],
                              maxellip=cfg["SAMPLE_MAXELLIP"], fwhmrange=tuple(cfg["SAMPLE_FWHMRANGE"]),
                              variability=cfg["SAMPLE_VARIABILITY"])
        size = cfg["PSF_SIZE"] * 2 if len(cfg["PSF_SIZE"]) == 1 else cfg["PSF_SIZE"]
        rows = []
        for cat in ctx.inputs:
            exts = read_ldac(cat)
            # the FWHM mode is computed over all the extensions of a catalogue, as PSFEx's load_samples
            cands = [sample_candidates(e.objects, sel) if "SNR_WIN" in e.objects.colnames else None
                     for e in exts]
            allf = np.concatenate([f[ok] for ok, f in (c for c in cands if c is not None)] or [np.zeros(0)])
            window = fwhm_range(allf, sel.variability, sel.fwhmrange)
            models = []
            for n, ext in enumerate(exts, 1):
                model = psf_from_catalog(ext.header, ext.objects, sel, degree=cfg["PSFVAR_DEGREES"], size=size,
                                         step=cfg["PSF_SAMPLING"], where=f"{cat} extension {n}", window=window)
                models.append(model)
                ctx.log.info("%s [%d/%d] %d/%d stars, step %.2f, chi2 %.2f, FWHM %.2f px, ellipticity %.3f",
                             Path(cat).name, n, len(exts), model.accepted, model.loaded, model.step, model.chi2,
                             model.fwhm, model.ellipticity)
                rows.append({"catalog": str(cat), "extension": n, "loaded": model.loaded,
                             "accepted": model.accepted, "fwhm": model.fwhm, "ellipticity": model.ellipticity,
                             "chi2": model.chi2, "step": model.step, "degree": model.degree})
            stem = Path(cat).name
            stem = stem[: stem.rfind(".")] if "." in stem else stem
            name = stem + cfg["PSF_SUFFIX"]
            if cfg["PSF_DIR"]:
                final = ctx.output_path(Path(cfg["PSF_DIR"]) / name)
            elif ctx.confine_outputs:  # pipeline runs keep every product in the step's directory
                final = ctx.output_path(name)
            else:  # drop-in runs behave like PSFEx: the model goes beside its catalogue
                final = Path(cat).parent / name
            write_psf(final, models)
            ctx.add_product(final, "psf")
        if cfg["WRITE_XML"]:
            with ctx.product(cfg["XML_NAME"], "xml") as tmp:
                write_psfex_xml(tmp, rows, self.version)
        ctx.record("psf", models=rows)


def psf_from_catalog(header, objects, sel, degree=2, size=(25, 25), step=0.0, where="", window=None):
    """Select the PSF stars of one LDAC extension and fit its model (PSFEx ``load_samples`` + ``make_psf``).

    ``window`` = (mode, min, max) of the FWHM over the whole catalogue (else this extension's own)."""
    import numpy as np

    from terapix_fw.errors import ToolError

    from .psfmodel import fit_psf, sample_candidates, select_stars

    missing = [c for c in ("VIGNET", "X_IMAGE", "Y_IMAGE", "FLUX_RADIUS", "SNR_WIN", "ELONGATION", "FLAGS")
               if c not in objects.colnames]
    if missing:
        raise ToolError(f"{where}: catalogue lacks column(s) {', '.join(missing)}; PSFEx needs VIGNET, "
                        "X_IMAGE, Y_IMAGE, FLUX_RADIUS, SNR_WIN, ELONGATION and FLAGS")
    if window is None:
        ok, mode = select_stars(objects, sel)
    else:
        ok, fwhm = sample_candidates(objects, sel)
        mode, lo, hi = window
        ok &= (fwhm >= lo) & (fwhm <= hi)
    if ok.sum() < 1:
        raise ToolError(f"{where}: no PSF star passes the selection (SNR_WIN > {sel.minsn}, FLAGS & "
                        f"{sel.flagmask:#x} == 0, FWHM in {sel.fwhmrange}); {len(objects)} sources loaded")
    backnoise = float(header.get("SEXBKDEV", 1.0)) or 1.0
    gain = float(header.get("SEXGAIN", 0.0))
    vig = np.asarray(objects["VIGNET"])[ok]
    model = fit_psf(vig, np.asarray(objects["X_IMAGE"])[ok], np.asarray(objects["Y_IMAGE"])[ok],
                    backnoise=backnoise, gain=gain, degree=degree, size=size, step=step, sample_fwhm=mode)
    model.loaded = len(objects)
    return model
