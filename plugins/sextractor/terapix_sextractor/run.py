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
    from .extraction import extract_results

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
    t0 = time.time()
    extensions = None
    if ctx.extension is not None:  # the n-th image extension (1-based) or an EXTNAME
        from terapix_fw.fitsimage import FitsImage

        with FitsImage(image, "image") as img:
            extensions = [img.select(ctx.extension).index]
    nthreads = cfg["NTHREADS"] or ctx.nthreads
    results = extract_results(image, cfg, None, detection_path=det, extensions=extensions, nthreads=nthreads)
    # imported only now: astropy.table loads while a single image's detection runs in another process
    from .catalog import write_catalog, write_check_image

    nobj = sum(len(r.table) for r in results)
    if not quiet:
        for r in results:
            h = r.header
            ctx.log.info("extension %d: background %.6g rms %.6g threshold %.6g: %d detections, %d sources",
                         h["FITSEXT"], h["SEXBKGND"], h["SEXBKDEV"], h["SEXTHLD"], h["SEXNDET"], h["SEXNFIN"])
            timings = r.table.meta.get("TIMINGS") or {}
            ctx.log.info("extension %d: CPU time per phase: %s", h["FITSEXT"],
                         ", ".join(f"{phase} {seconds:.3f} s" for phase, seconds in timings.items()) or "-")
    pipeline = ctx.confine_outputs
    if cfg["CATALOG_TYPE"] != "NONE":
        name = output_name(cfg["CATALOG_NAME"], image, "test.cat", pipeline, ctx.extension)
        with ctx.product(name, kind="catalog", catalog_type=cfg["CATALOG_TYPE"], nobjects=nobj) as tmp:
            write_catalog(tmp, results, cfg["CATALOG_TYPE"])
        ctx.record("catalog", image=str(image), detection_image=str(det) if det else None, path=str(
            ctx.output_path(name)), catalog_type=cfg["CATALOG_TYPE"], nobjects=nobj, nextensions=len(results),
            background=[r.header["SEXBKGND"] for r in results], background_rms=[r.header["SEXBKDEV"] for r in results])
    types = [t for t in cfg["CHECKIMAGE_TYPE"] if t != "NONE"]
    names = list(cfg["CHECKIMAGE_NAME"])
    if types and len(names) < len(types):
        raise ToolError(f"CHECKIMAGE_TYPE lists {len(types)} types but CHECKIMAGE_NAME only {len(names)} names")
    for t, nm in zip(types, names):
        name = output_name(nm, image, "check.fits", pipeline, ctx.extension)
        with ctx.product(name, kind="checkimage", check_type=t) as tmp:
            write_check_image(tmp, results, t, [r.header for r in results])
    if not quiet:
        ctx.log.info("sextractor: %d sources in %d extension(s) in %.2f s", nobj, len(results), time.time() - t0)
