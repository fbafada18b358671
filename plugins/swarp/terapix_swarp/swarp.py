"""The swarp run: SWarp's ``makeit`` (scan inputs, output grid, resample each input, co-add, clean up)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from terapix_fw.errors import ConfigError, ToolError

__all__ = ["run_swarp", "MAGZEROP"]

#: zero-point of TERAPIX stacks, whose inputs are normalised by FLXSCALE (SCAMP) to magnitude 30
MAGZEROP = 30.0


def _check_supported(config) -> None:
    def bad(key, why):
        raise ConfigError(f"{key} {config[key]!r}: {why}", "configuration", key)

    if any(config["INTERPOLATE"]):
        bad("INTERPOLATE", "interpolation of bad input pixels is not supported; use N")
    types = config["RESAMPLING_TYPE"]
    if "FLAGS" in (types if isinstance(types, list) else [types]):
        bad("RESAMPLING_TYPE", "FLAGS (integer flag maps) is not supported")
    if config["COMBINE_TYPE"] in ("AND", "NAND", "OR", "NOR"):
        bad("COMBINE_TYPE", "flag-map combinations (AND, NAND, OR, NOR) are not supported")
    if config["NNODES"] != 1:
        bad("NNODES", "cluster splitting is done by the terapix-fw runner; use 1")
    if not config["RESAMPLE"] and not config["COMBINE"]:
        bad("RESAMPLE", "with COMBINE N too there is nothing to do")


def _output_wcs(header):
    import warnings

    from astropy.wcs import FITSFixedWarning, WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header)


def _final_header(grid_header, config, fields, summary, weight: bool):
    header = grid_header.copy()
    header["EXPTIME"] = (summary.exptime, "Max. equivalent exposure time (s)")
    header["GAIN"] = (summary.gain, "Max. equivalent gain (e-/ADU)")
    header["SATURATE"] = (summary.saturation, "Saturation Level (ADU)")
    header["MAGZEROP"] = (MAGZEROP, "Zero-point (FLXSCALE-normalised)")
    header["SOFTNAME"] = ("terapix-fw swarp", "Software that made this image")
    from .tool import SwarpTool

    header["SOFTVERS"] = (SwarpTool.version, "Version of the software")
    header["COMBINET"] = (config["COMBINE_TYPE"], "COMBINE_TYPE config parameter")
    rtypes = config["RESAMPLING_TYPE"]
    rtypes = rtypes if isinstance(rtypes, list) else [rtypes]
    ctypes = config["CENTER_TYPE"]
    ptypes = config["PIXELSCALE_TYPE"]
    for n in (1, 2):
        header[f"RESAMPT{n}"] = (rtypes[min(n, len(rtypes)) - 1], "RESAMPLING_TYPE config parameter")
        header[f"CENTERT{n}"] = (ctypes[min(n, len(ctypes)) - 1], "CENTER_TYPE config parameter")
        header[f"PSCALET{n}"] = (ptypes[min(n, len(ptypes)) - 1], "PIXELSCALE_TYPE config parameter")
    files = []
    for f in fields:
        if f.path.name not in files:
            files.append(f.path.name)
    header["NCOMBINE"] = (len(files), "Number of input files")
    for i, name in enumerate(files[:9999], start=1):
        header[f"FILE{i:04d}"] = (name, "Input file")
    if weight:
        header["WGHTTYPE"] = ("MAP_WEIGHT", "Weight-map type")
    elif fields:
        for key in config["COPY_KEYWORDS"]:
            key = key.upper()
            if key in fields[0].header and key not in header:
                header[key] = (fields[0].header[key], fields[0].header.comments[key])
    return header


def _write_xml(path: Path, config, fields, resampled, summary, elapsed: float) -> None:
    from xml.sax.saxutils import quoteattr

    rows = []
    by_name = {r.name: r for r in resampled}
    for f in fields:
        r = by_name.get(f.name)
        rows.append(f'    <field name={quoteattr(f.name)} ext_header={quoteattr("T" if f.headflag else "F")} '
                    f'exptime="{f.exptime:g}" gain="{f.gain:g}" flux_scale="{f.fscale:g}" '
                    f'resampled={quoteattr("T" if r else "F")} '
                    f'background_mean="{(r.backmean if r else 0):g}" background_stdev="{(r.backsig if r else 0):g}"'
                    f' flux_ascale="{(r.fascale if r else 0):g}"/>')
    conf = "\n".join(f"    <param name={quoteattr(k)} value={quoteattr(v)}/>"
                     for k, v in config.as_strings().items())
    stack = ""
    if summary is not None:
        stack = (f'  <stack exptime="{summary.exptime:g}" gain="{summary.gain:g}" '
                 f'saturation="{summary.saturation:g}" max_overlap="{summary.nfiles_max}" '
                 f'strips="{summary.strips}" strip_height="{summary.strip_height}"/>\n')
    text = ('<?xml version="1.0" encoding="UTF-8"?>\n<swarp software="terapix-fw swarp" '
            f'elapsed="{elapsed:.2f}">\n  <fields>\n' + "\n".join(rows) + "\n  </fields>\n" + stack
            + "  <config>\n" + conf + "\n  </config>\n</swarp>\n")
    path.write_text(text, encoding="utf-8")


def _set_threads(config, ctx) -> int:
    import numba

    n = config["NTHREADS"] or ctx.nthreads or os.cpu_count() or 1
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def run_swarp(ctx) -> None:
    """Run SWarp's processing on ``ctx.inputs`` with ``ctx.config`` (see the package docstring)."""

    from .coadd import coadd_resampled
    from .grid import grid_from_resampled, output_grid, pixel_scale_arcsec
    from .inputs import scan_inputs
    from .resample import as_resampled, resample_field, resampled_names

    config = ctx.config
    log = ctx.log
    start = time.time()
    _check_supported(config)
    nthreads = _set_threads(config, ctx)
    if not ctx.inputs:
        raise ToolError("no input image given")
    fields = scan_inputs(ctx.inputs, config, getattr(ctx, "extension", None))
    log.info("%d input file(s), %d image(s); %d thread(s)", len(ctx.inputs), len(fields), nthreads)
    out_name = config["IMAGEOUT_NAME"]
    out_final = ctx.output_path(out_name)
    resample = bool(config["RESAMPLE"])
    grid_header = output_grid(fields, config, out_final) if resample else grid_from_resampled(fields, config)
    log.info("output %dx%d pixels, %s/%s at (%.6f, %.6f), %.4f\"/pixel", grid_header["NAXIS1"],
             grid_header["NAXIS2"], grid_header["CTYPE1"], grid_header["CTYPE2"], grid_header["CRVAL1"],
             grid_header["CRVAL2"], pixel_scale_arcsec(grid_header))
    if resample and not any(config["IMAGE_SIZE"]):
        _check_grid_area(fields, grid_header)
    if config["HEADER_ONLY"]:
        with ctx.product(out_name, kind="stack_header") as tmp:
            tmp.write_bytes(grid_header.tostring().encode("ascii"))
        return
    out_wcs = _output_wcs(grid_header)

    # phase 1: resampling
    resample_dir = ctx.output_path(config["RESAMPLE_DIR"])
    resample_dir.mkdir(parents=True, exist_ok=True)
    resampled = []
    temporary: list[Path] = []
    combine = bool(config["COMBINE"])
    nfiles = len(ctx.inputs)
    summary = None
    footprints = [None] * len(fields)
    bands = None
    if resample:
        from .resample import field_footprint

        footprints = [field_footprint(fld, grid_header, out_wcs) for fld in fields]
        if combine:
            bands = _bands(config, footprints, grid_header, resample_dir, log)
    if bands is not None and len(bands) > 1:
        summary = _coadd(ctx, config, fields, grid_header, lambda img, wgt, clip: _resample_coadd_bands(
            ctx, config, fields, footprints, grid_header, out_wcs, bands, resample_dir, img, wgt, clip, resampled),
            resampled)
    else:
        try:
            for k, fld in enumerate(fields):
                t0 = time.time()
                if not resample:
                    r = as_resampled(fld, grid_header, config, nfiles)
                    if r is not None:
                        resampled.append(r)
                    continue
                image_path, weight_path = resampled_names(fld, resample_dir, config["RESAMPLE_SUFFIX"])
                r = resample_field(fld, grid_header, out_wcs, config, k, nfiles, image_path, weight_path, log,
                                   footprint=footprints[k])
                if r is None:
                    continue
                temporary += [image_path, weight_path]
                resampled.append(r)
                log.info("  resampled %s (%d/%d) -> %dx%d at (%d, %d), flux scale %.4g x %.4g, in %.2f s",
                         fld.name, k + 1, len(fields), r.nx, r.ny, r.xmin, r.ymin, r.fascale, r.fscale,
                         time.time() - t0)
            if not resampled:
                raise ToolError("no input image overlaps the output image")

            if not combine:
                for r in resampled:
                    ctx.add_product(r.image, kind="resampled")
                    ctx.add_product(r.weight, kind="resampled_weight")
                    ctx.record("resampled", image=str(r.image), weight=str(r.weight), input=r.name,
                               xmin=r.xmin, ymin=r.ymin, naxis1=r.nx, naxis2=r.ny, fscale=r.fscale,
                               fascale=r.fascale, exptime=r.exptime)
                temporary = []
            else:
                summary = _coadd(ctx, config, fields, grid_header, lambda img, wgt, clip: coadd_resampled(
                    resampled, grid_header, config, img, wgt, log=log, clip_log_path=clip,
                    header_fn=lambda summary, weight: _final_header(grid_header, config, fields, summary, weight)),
                    resampled)
                if resample and not config["DELETE_TMPFILES"]:
                    for r in resampled:
                        ctx.add_product(r.image, kind="resampled")
                        ctx.add_product(r.weight, kind="resampled_weight")
                    temporary = []
        finally:
            if config["DELETE_TMPFILES"] and combine:
                for path in temporary:
                    path.unlink(missing_ok=True)
    elapsed = time.time() - start
    if config["WRITE_XML"]:
        with ctx.product(_xml_name(config, ctx.confine_outputs), kind="xml") as tmp:
            _write_xml(tmp, config, fields, resampled, summary, elapsed)
    log.info("swarp done in %.1f s", elapsed)


def _xml_name(config, pipeline: bool) -> str:
    """XML_NAME; in a pipeline unit SWarp's default ``swarp.xml`` becomes ``<IMAGEOUT_NAME stem>.xml``:
    the units of one step (one stack per filter) would otherwise overwrite each other's file, and a
    re-run would find every unit's recorded product changed and run them all again."""
    from terapix_fw.graph import file_stem

    from .tool import SwarpTool

    name = config["XML_NAME"]
    if pipeline and name == SwarpTool.parameter_set()["XML_NAME"].default:
        name = f"{file_stem(config['IMAGEOUT_NAME'])}.xml"
    return name


def _bands(config, footprints, grid_header, resample_dir: Path, log):
    """Output bands such that the resampled pieces of one band fit in RESAMPLE_DISKMAX MB (0: half the free
    space of RESAMPLE_DIR); None (a single pass) when everything fits or temporary files are kept."""
    import shutil

    import numpy as np

    from .coadd import plan_bands

    boxes = np.array([b for _, b in footprints if b is not None], dtype=np.int64).reshape(-1, 4)
    need = float(8 * ((boxes[:, 1] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 2] + 1)).sum())
    budget = config["RESAMPLE_DISKMAX"] * 1024.0 ** 2
    if budget <= 0:
        budget = 0.5 * shutil.disk_usage(resample_dir).free
    if need <= budget:
        return None
    if not config["DELETE_TMPFILES"]:
        log.warning("the resampled images need %.0f MB, more than %.0f MB (RESAMPLE_DISKMAX); with DELETE_TMPFILES N "
                    "they are all kept", need / 1024 ** 2, budget / 1024 ** 2)
        return None
    bands = plan_bands(boxes, int(grid_header["NAXIS2"]), budget)
    log.info("the resampled images need %.0f MB, more than %.0f MB (RESAMPLE_DISKMAX): output made in %d bands of "
             "rows, resampled pieces deleted after each band", need / 1024 ** 2, budget / 1024 ** 2, len(bands))
    return bands


def _resample_coadd_bands(ctx, config, fields, footprints, grid_header, out_wcs, bands, resample_dir, img_path,
                          wgt_path, clip_path, resampled):
    """Resample and co-add band by band: for each band of output rows, resample the pieces of the inputs
    in it (the background model, weight rescaling factor and mapping grid of an input cut by a band
    boundary are kept for its next band), co-add them into those rows and delete them.  The pixels are
    those of a single pass.  ``resampled`` receives each input with its full rectangle; returns the
    summary (EXPTIME, GAIN, SATURATE from all the inputs, written into the headers at the end)."""
    import dataclasses

    from .coadd import CoaddSummary, coadd_rows, output_writers, stack_summary
    from .resample import resample_field, resampled_names

    log = ctx.log
    nfiles = len(ctx.inputs)

    def header_fn(summary, weight):
        return _final_header(grid_header, config, fields, summary, weight)

    total = CoaddSummary(exptime=0.0, gain=0.0, saturation=0.0, nmax=1, nfiles_max=1, strips=0, strip_height=0,
                         nclipped=0)
    order = [k for k, (_, box) in enumerate(footprints) if box is not None]
    if not order:
        raise ToolError("no input image overlaps the output image")
    ident = {k: n for n, k in enumerate(order)}  # input number, as in a single pass
    last_band = {k: max(b for b, (y0, y1) in enumerate(bands)
                        if footprints[k][1][2] <= y1 and footprints[k][1][3] >= y0) for k in order}
    full: dict[int, object] = {}
    caches: dict[int, dict] = {}
    t_start = time.time()
    with output_writers(config, img_path, wgt_path, clip_path, header_fn(total, False),
                        header_fn(total, True)) as (img, wgt, logfh):
        for b, (y0, y1) in enumerate(bands):
            pieces, ids, temporary = [], [], []
            try:
                for k in order:
                    box = footprints[k][1]
                    if box[3] < y0 or box[2] > y1:
                        continue
                    fld = fields[k]
                    image_path, weight_path = resampled_names(fld, resample_dir, config["RESAMPLE_SUFFIX"])
                    r = resample_field(fld, grid_header, out_wcs, config, k, nfiles, image_path, weight_path, log,
                                       footprint=footprints[k], rows=(y0, y1), cache=caches.setdefault(k, {}))
                    if b == last_band[k]:
                        caches.pop(k, None)
                    if r is None:
                        continue
                    temporary += [image_path, weight_path]
                    pieces.append(r)
                    ids.append(ident[k])
                    log.info("  band %d/%d: resampled %s (%d/%d) rows %d-%d", b + 1, len(bands), fld.name, k + 1,
                             len(fields), r.ymin, r.ymax)
                    if k not in full:
                        full[k] = dataclasses.replace(r, ymin=box[2], ny=box[3] - box[2] + 1)
                log.info("band %d/%d (rows %d-%d): %d pieces resampled; %.0f s elapsed", b + 1, len(bands), y0, y1,
                         len(pieces), time.time() - t_start)
                coadd_rows(pieces, config, img, wgt, total, log=log, clip_log=logfh, ids=ids)
            finally:
                for path in temporary:
                    path.unlink(missing_ok=True)
        resampled[:] = [full[k] for k in order if k in full]
        summary = stack_summary(resampled, config["COMBINE_TYPE"])
        summary.strips, summary.strip_height, summary.nclipped = total.strips, total.strip_height, total.nclipped
        summary.bands = len(bands)
        img.rewrite_header(header_fn(summary, False))
        wgt.rewrite_header(header_fn(summary, True))
    return summary


def _coadd(ctx, config, fields, grid_header, combine_fn, resampled):
    """Make the stack products with ``combine_fn(image_path, weight_path, clip_log_path) -> summary`` and
    record them."""
    from .grid import pixel_scale_arcsec

    out_name = config["IMAGEOUT_NAME"]
    wout_name = config["WEIGHTOUT_NAME"]
    compress = bool(config["TILE_COMPRESS"])
    clip_log = config["COMBINE_TYPE"] == "CLIPPED" and config["CLIP_WRITELOG"]

    import contextlib
    import tempfile

    with contextlib.ExitStack() as stack:
        scratch: list[Path] = []
        if compress:
            # co-add into hidden scratch files, then write the RICE-compressed products from them
            for _ in range(2):
                fd, name = tempfile.mkstemp(prefix=".swarp.", suffix=".fits",
                                            dir=ctx.output_path(out_name).parent)
                os.close(fd)
                scratch.append(Path(name))
            stack.callback(lambda: [p.unlink(missing_ok=True) for p in scratch])
            img_tmp, wgt_tmp = scratch
        else:
            img_tmp = stack.enter_context(ctx.product(out_name, kind="stack"))
            wgt_tmp = stack.enter_context(ctx.product(wout_name, kind="weight"))
        log_tmp = stack.enter_context(ctx.product(config["CLIP_LOGNAME"], kind="cliplog")) if clip_log else None
        summary = combine_fn(img_tmp, wgt_tmp, log_tmp)
        if compress:
            _compress(ctx, img_tmp, out_name + ".fz", "stack")
            _compress(ctx, wgt_tmp, wout_name + ".fz", "weight")
    image_name = out_name + (".fz" if compress else "")
    h = grid_header
    ctx.record("stack", name=Path(out_name).name.split(".fits")[0], path=str(ctx.output_path(image_name)),
               ra=float(h["CRVAL1"]), dec=float(h["CRVAL2"]), filter=_common_filter(ctx.inputs),
               images=sorted({Path(r.name.split("[")[0]).name for r in resampled}),
               image=str(ctx.output_path(image_name)),
               weight=str(ctx.output_path(wout_name + (".fz" if compress else ""))),
               combine_type=config["COMBINE_TYPE"], resampling_type=str(config["RESAMPLING_TYPE"]),
               naxis1=int(h["NAXIS1"]), naxis2=int(h["NAXIS2"]), ctype1=h["CTYPE1"], ctype2=h["CTYPE2"],
               crval1=float(h["CRVAL1"]), crval2=float(h["CRVAL2"]),
               pixel_scale=pixel_scale_arcsec(h),
               exptime=float(summary.exptime), gain=float(summary.gain), saturation=float(summary.saturation),
               magzerop=MAGZEROP, strips=summary.strips, strip_height=summary.strip_height, bands=summary.bands,
               ninputs=len(resampled), nfiles=len({r.fileno for r in resampled}),
               max_overlap=summary.nfiles_max, inputs=[r.name for r in resampled],
               nclipped=int(summary.nclipped))
    ctx.log.info("co-added %d image(s) in %d strip(s) of %d line(s); EXPTIME %.1f s, GAIN %.4g, SATURATE %.6g",
                 len(resampled), summary.strips, summary.strip_height, summary.exptime, summary.gain,
                 summary.saturation)
    return summary


#: an automatic output grid more than this many times the inputs' summed sky area is refused: inputs that far
#: apart (a header with a wrong or missing CRVAL) would make a huge, almost empty stack for hours
MAX_EMPTY_FACTOR = 100.0


def _check_grid_area(fields, grid_header) -> None:
    import numpy as np
    from astropy.wcs.utils import proj_plane_pixel_area

    from .grid import pixel_scale_arcsec

    out_area = float(grid_header["NAXIS1"]) * float(grid_header["NAXIS2"]) * (pixel_scale_arcsec(grid_header)
                                                                                / 3600.0) ** 2
    areas = [f.shape[0] * f.shape[1] * abs(proj_plane_pixel_area(f.wcs.celestial)) for f in fields]
    total = float(np.sum(areas))
    if total > 0 and out_area > MAX_EMPTY_FACTOR * total:
        centres = sorted(fields, key=lambda f: f.wcs.wcs.crval[0])
        raise ToolError(f"the automatic output grid ({grid_header['NAXIS1']}x{grid_header['NAXIS2']} pixels, "
                        f"{out_area:.3g} deg^2) is {out_area / total:.0f} times the inputs' area: inputs far apart "
                        f"on the sky ({centres[0].name} at CRVAL1 {centres[0].wcs.wcs.crval[0]:.4f}, "
                        f"{centres[-1].name} at {centres[-1].wcs.wcs.crval[0]:.4f}); check their CRVAL1/CRVAL2, "
                        "or give IMAGE_SIZE and CENTER")


def _compress(ctx, src: Path, name: str, kind: str) -> None:
    """RICE tile compression of a finished output (TILE_COMPRESS Y), as ``<name>.fz``."""
    import numpy as np
    from astropy.io import fits

    with fits.open(src, memmap=True) as hdul:
        data = np.asarray(hdul[0].data, dtype=np.float32)
        header = hdul[0].header.copy()
    with ctx.product(name, kind=kind) as tmp:
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header, compression_type="RICE_1")]).writeto(tmp)


def _common_filter(inputs) -> str | None:
    """The FILTER shared by every input (primary header), for the RDBix stack record; None if mixed."""
    from astropy.io import fits

    filters = set()
    for path in inputs:
        try:
            filters.add(str(fits.getval(path, "FILTER", 0)).strip())
        except (KeyError, OSError):
            return None
    return filters.pop() if len(filters) == 1 else None
