"""One sextractor step: read inputs named by the context, extract, write catalogue and check images."""
from __future__ import annotations

import time
from pathlib import Path

from terapix_fw.errors import ToolError

__all__ = ["run_step", "output_name"]


def output_name(template: str, image: Path, default: str, pipeline: bool, extension: int | None = None) -> str:
    """``{stem}`` in a name is the image name without extension (plus ``_<ext>`` in a per-extension
    run); in a pipeline run the SExtractor default name (``test.cat``, ``check.fits``) becomes
    ``<stem>.cat`` / ``<stem>.check.fits`` so that units do not overwrite each other."""
    stem = image.name
    for suffix in (".fz", ".gz", ".fits", ".fit"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if extension is not None:
        stem = f"{stem}_{extension}"
    if pipeline and template == default:
        template = "{stem}" + (".cat" if default == "test.cat" else "." + default)
    return template.replace("{stem}", stem)


def run_step(ctx) -> None:
    import contextlib

    from .extraction import iter_results

    cfg = ctx.config
    inputs = list(ctx.inputs)
    if not inputs:
        raise ToolError("sextractor needs an input image")
    det = None
    if len(inputs) == 2:
        det, image = inputs
    elif len(inputs) == 1:
        image = inputs[0]
    else:
        raise ToolError(f"sextractor takes IMAGE or DETECTION_IMAGE,IMAGE; got {len(inputs)} inputs")
    quiet = cfg["VERBOSE_TYPE"] == "QUIET"
    if cfg["WRITE_XML"]:
        ctx.log.warning("WRITE_XML Y: the SExtractor XML meta-data file is not written by terapix-fw "
                        "sextractor; the run is recorded in RDBix instead (catalog record)")
    types = [t for t in cfg["CHECKIMAGE_TYPE"] if t != "NONE"]
    names = list(cfg["CHECKIMAGE_NAME"])
    if types and len(names) < len(types):
        raise ToolError(f"CHECKIMAGE_TYPE lists {len(types)} types but CHECKIMAGE_NAME only {len(names)} names")
    t0 = time.time()
    extensions = None
    if ctx.extension is not None:  # the n-th image extension (1-based) or an EXTNAME
        from terapix_fw.fitsimage import FitsImage

        with FitsImage(image, "image") as img:
            extensions = [img.select(ctx.extension).index]
    nthreads = cfg["NTHREADS"] or ctx.nthreads
    pipeline = ctx.confine_outputs
    ctype = cfg["CATALOG_TYPE"]
    cat_name = output_name(cfg["CATALOG_NAME"], image, "test.cat", pipeline, ctx.extension) if ctype != "NONE" \
        else None
    nobj, backgrounds, rms = 0, [], []
    # every extension's catalogue and check images are written as soon as it is measured, into temporary
    # files renamed only when all went well: memory does not grow with the number of extensions
    with contextlib.ExitStack() as stack:
        cat_tmp = stack.enter_context(ctx.product(cat_name, kind="catalog", catalog_type=ctype)) if cat_name \
            else None
        check_tmps = [(t, stack.enter_context(ctx.product(output_name(nm, image, "check.fits", pipeline,
                                                                      ctx.extension), kind="checkimage",
                                                          check_type=t)))
                      for t, nm in zip(types, names)]
        writers = None
        # closed on an error too: worker processes stop at once instead of when the traceback is freed
        results = stack.enter_context(contextlib.closing(iter_results(
            image, cfg, None, detection_path=det, extensions=extensions, nthreads=nthreads)))
        for r in results:
            if writers is None:
                writers = _open_writers(stack, ctype, cat_tmp, check_tmps, r.header["FITSNEXT"])
            h = r.header
            if not quiet:
                ctx.log.info("extension %d: background %.6g rms %.6g threshold %.6g: %d detections, %d sources",
                             h["FITSEXT"], h["SEXBKGND"], h["SEXBKDEV"], h["SEXTHLD"], h["SEXNDET"], h["SEXNFIN"])
                timings = r.meta.get("TIMINGS") or {}
                ctx.log.info("extension %d: CPU time per phase: %s", h["FITSEXT"],
                             ", ".join(f"{phase} {seconds:.3f} s" for phase, seconds in timings.items()) or "-")
            for w in writers:
                w.add(r)
            nobj += r.nrows
            backgrounds.append(h["SEXBKGND"])
            rms.append(h["SEXBKDEV"])
            del r, h  # written: let the extension go before the next one arrives
        if writers is None:
            _open_writers(stack, ctype, cat_tmp, check_tmps, 0)
    if cat_name:
        final = str(ctx.output_path(cat_name))
        for product in ctx.products:
            if product.path == final and product.kind == "catalog":
                product.meta["nobjects"] = nobj  # known only now that every extension is written
        ctx.record("catalog", image=str(image), detection_image=str(det) if det else None, path=final,
                   catalog_type=ctype, nobjects=nobj, nextensions=len(backgrounds), background=backgrounds,
                   background_rms=rms)
    if not quiet:
        ctx.log.info("sextractor: %d sources in %d extension(s) in %.2f s", nobj, len(backgrounds), time.time() - t0)


def _open_writers(stack, ctype, cat_tmp, check_tmps, nextensions):
    """The catalogue and check-image writers of a step, closed by ``stack`` (before its products are
    renamed).  Imported at the first extension: astropy loads while a single image's detection runs in
    another process."""
    from .catalog import CatalogWriter, CheckImageWriter

    writers = []
    if cat_tmp is not None:
        writers.append(stack.enter_context(CatalogWriter(cat_tmp, ctype)))
    for t, tmp in check_tmps:
        writers.append(stack.enter_context(CheckImageWriter(tmp, t, nextensions)))
    return writers
