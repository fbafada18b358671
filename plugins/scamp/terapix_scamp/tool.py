"""The scamp tool: global astrometric and photometric calibration of FITS_LDAC catalogues, as SCAMP.

``terapix tool scamp CATALOG... -c file.scamp -KEYWORD value`` writes ``CATALOG.head`` beside each
catalogue, the XML summary (XML_NAME) and the check-plots (CHECKPLOT_TYPE/CHECKPLOT_NAME), and records
per-field astrometry and photometry for RDBix.
"""
from terapix_fw.tool import Tool

from .keywords import PARAMETERS


class ScampTool(Tool):
    """Global astrometric and photometric calibration of FITS_LDAC catalogues, as SCAMP (its keywords, defaults,
    ``.head`` and XML outputs).
    """
    name = "scamp"
    version = "2.10.0-tfw1"
    description = "global astrometric and photometric calibration (SCAMP)"
    parameters = PARAMETERS
    consumes = ("catalog",)
    produces = ("head", "xml", "checkplot")
    default_fanout = "all"

    def run(self, ctx):
        """Solve the unit's catalogues together; write one ``.head`` per catalogue and the XML summary.

        Parameters
        ----------
        ctx : StepContext
            The unit: inputs, configuration, output directory, log.
        """
        import time

        from terapix_fw.headfile import format_head

        from .keywords import IGNORED_KEYWORDS
        from .output import field_headers, head_path, write_xml
        from .pipeline import run_scamp
        from .plots import write_checkplots

        start = time.time()
        config = ctx.config
        for key in IGNORED_KEYWORDS:
            if key in config.non_defaults():
                ctx.log.warning("%s = %r is accepted for compatibility but has no effect here", key, config[key])
        from threadpoolctl import threadpool_limits

        # one BLAS thread: the BLAS calls are small except the normal-matrix Cholesky (which raises the
        # limit itself); spinning OpenBLAS threads on a loaded machine make small calls 100x slower
        with threadpool_limits(limits=1, user_api="blas"):
            run = run_scamp(ctx.inputs, config, ctx.log, nthreads=ctx.nthreads)
        # every header is computed before the first one is written: a failure leaves no partial set
        heads = [(head_path(run, k, ctx), field_headers(run, k, ctx.log)) for k in range(len(run.fields))]
        for path, headers in heads:
            with ctx.product(path, kind="head") as tmp:
                tmp.write_text(format_head(headers), encoding="ascii")
        if config["WRITE_XML"]:
            with ctx.product(config["XML_NAME"], kind="xml") as tmp:
                write_xml(run, tmp, time.time() - start)
        if "NULL" not in config["CHECKPLOT_DEV"] and "NONE" not in config["CHECKPLOT_TYPE"]:
            write_checkplots(run, ctx)
        _records(run, heads, ctx)
        ctx.log.info("scamp: %d field(s), %d group(s) calibrated in %.1f s", len(run.fields), len(run.group_tp),
                     time.time() - start)


def _records(run, heads, ctx) -> None:
    """Per-field astrometry and photometry records, and one summary per field group, for RDBix."""
    for k, f in enumerate(run.fields):
        s = run.stats["fields"][k]
        first = heads[k][1][0]
        ctx.record("astrometry", catalog=str(f.path), head=str(heads[k][0]), group=int(run.group_of[k]) + 1,
                   instrument=f.astr_key, ra=float(run.field_tp[k, 0]), dec=float(run.field_tp[k, 1]),
                   internal_sigma_arcsec=s["internal"]["sigma"], internal_ndets=s["internal"]["ndets"],
                   internal_high_sigma_arcsec=s["internal_high"]["sigma"],
                   reference_sigma_arcsec=s["reference"]["sigma"], reference_ndets=s["reference"]["ndets"],
                   reference_offset_arcsec=s["reference"]["offset"],
                   reference_high_sigma_arcsec=s["reference_high"]["sigma"],
                   chi2_internal=s["internal"]["chi2"], chi2_reference=s["reference"]["chi2"],
                   ctype=str(first["CTYPE1"]))
        if run.photom is not None:
            ctx.record("photometry", catalog=str(f.path), instrument=f.phot_key,
                       photflag=bool(f.photflag), photlink=bool(run.photom.linked[k]),
                       zp_correction=float(run.photom.dzp[k]), zp_error=float(run.photom.dzp_err[k]),
                       flxscale=float(first["FLXSCALE"]), magzerop=float(first["MAGZEROP"]),
                       internal_sigma_mag=s["phot"]["sigma"], internal_ndets=s["phot"]["ndets"])
    for g, s in enumerate(run.stats["groups"]):
        ctx.record("scamp_group", group=g + 1, nfields=int((run.group_of == g).sum()),
                   ra=float(run.group_tp[g, 0]), dec=float(run.group_tp[g, 1]),
                   internal_sigma_arcsec=s["internal"]["sigma"], reference_sigma_arcsec=s["reference"]["sigma"],
                   internal_ndets=s["internal"]["ndets"], reference_ndets=s["reference"]["ndets"])
