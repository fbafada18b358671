"""Phase 1: resample one input field onto its rectangle of the output grid (SWarp's ``resample_field``).

Per input: read pixels and weights; estimate the SExtractor mesh background (subtracted with SUBTRACT_BACK,
its rms gives the variance for WEIGHT_TYPE NONE/BACKGROUND and the RESCALE_WEIGHTS factor); convert the
weight map to variances; find the output rectangle covered by the input; tabulate the pixel mapping within
PROJECTION_ERR; run the numba kernel; write ``<name>[.<ext>]<RESAMPLE_SUFFIX>`` and its
``.weight`` companion (standard WCS: the output grid with CRPIX shifted) into RESAMPLE_DIR.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

from .inputs import InputField, per_image, read_pixels
from .kernels import (BIG, INTERP_CODES, KERNEL_WIDTH, WEIGHT_CODES, finish_pixels, kernel_table, mesh_variance,
                      resample_rect, row_max, variance_map)
from .mapping import PixelMap, build_grid

#: output rows resampled (and written) at a time in phase 1
RESAMPLE_BLOCK_LINES = 256

__all__ = ["Resampled", "resample_field", "field_footprint", "resampled_names", "field_variance", "rescale_factor",
           "as_resampled", "RESAMPLE_BLOCK_LINES"]


@dataclass
class Resampled:
    """A resampled input: where it sits in the output and what the co-addition needs from it."""

    image: Path
    weight: Path
    name: str
    fileno: int
    xmin: int  # 1-based output column of the first pixel
    ymin: int
    nx: int
    ny: int
    exptime: float
    gain: float
    fgain: float
    fscale: float
    fascale: float
    backmean: float
    backsig: float
    saturation: float
    subback: bool
    image_offset: int = 0  # byte offset of the pixels in the resampled files
    weight_offset: int = 0
    mapping_error: float = 0.0

    @property
    def xmax(self) -> int:
        return self.xmin + self.nx - 1

    @property
    def ymax(self) -> int:
        return self.ymin + self.ny - 1


def resampled_names(fld: InputField, resample_dir: Path, suffix: str) -> tuple[Path, Path]:
    """SWarp's names: ``dir/<stem>[.<frameno:04d>]<suffix>`` and ``...<suffix stem>.weight<suffix ext>``."""
    name = fld.path.name
    stem = name[: name.rfind(".")] if "." in name else name
    if name.endswith(".fits.fz"):
        stem = name[: -len(".fits.fz")]
    base = f"{stem}.{fld.frameno:04d}" if fld.frameno else stem
    if "." in suffix:
        s1, s2 = suffix[: suffix.rfind(".")], suffix[suffix.rfind("."):]
    else:
        s1, s2 = suffix, ""
    return resample_dir / f"{base}{suffix}", resample_dir / f"{base}{s1}.weight{s2}"


def field_variance(data, weight, fld: InputField, bkg=None, out=None):
    """Variance map (float32, BIG for bad pixels) of an input, before RESCALE_WEIGHTS.

    MAP_WEIGHT: 1 / w (bad where w <= WEIGHT_THRESH, default 0); MAP_VARIANCE: v; MAP_RMS: rms^2;
    BACKGROUND: background rms^2; NONE: global background rms^2 (these two need ``bkg``).  ``out`` may be
    the (float32) weight map itself: the variances then replace the weights.
    """
    wtype = fld.weight_type
    var = np.empty(data.shape, dtype=np.float32) if out is None else out
    dummy = np.zeros((1, 1), dtype=np.float32)
    if wtype == "MAP_WEIGHT":
        thresh, has_thresh = (0.0 if fld.weight_thresh is None else fld.weight_thresh), True
    else:
        thresh, has_thresh = (0.0, False) if fld.weight_thresh is None else (fld.weight_thresh, True)
    variance_map(data, weight if weight is not None else dummy,
                 bkg.rms if wtype == "BACKGROUND" else dummy, WEIGHT_CODES[wtype], float(thresh), has_thresh,
                 float(bkg.global_rms ** 2) if bkg is not None else 0.0, var)
    return var


def rescale_factor(var, bkg) -> float:
    """RESCALE_WEIGHTS: sigfac, the median over background meshes of the measured rms over
    sqrt(mean variance), as SWarp's ``back.c`` (variances are then multiplied by sigfac^2)."""
    bw, bh = bkg.back_size
    rms_mini = bkg.mini("rms")
    total, ngood, npix = mesh_variance(var, bw, bh)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_var = total / ngood
    ok = (ngood >= 0.5 * npix) & (ngood > 0) & (mean_var > 0) & (rms_mini > 0)
    ratios = rms_mini[ok] / np.sqrt(mean_var[ok])
    return float(np.median(ratios)) if ratios.size else 1.0


def _footprint(pmap: PixelMap, shape, out_shape):
    """Output rectangle (1-based, inclusive) covered by an input, as SWarp's ``frame_wcs``: the input is
    sampled on a 32x32 cosine-spaced grid from 0.5 to n+0.5, output positions are truncated after adding
    0.499, and the minimum is lowered by 2 pixels (SWarp's margin; its maximum is left as is).  None when
    the input misses the output."""
    ny, nx = shape
    k = np.arange(32)
    frac = 0.5 * (1 - np.cos(np.pi * k / 31.0))
    xs = 0.5 + nx * frac
    ys = 0.5 + ny * frac
    xx, yy = np.meshgrid(xs, ys)
    xo, yo = pmap.in_to_out(xx, yy)
    ok = np.isfinite(xo) & np.isfinite(yo)
    if not ok.any():
        return None
    ix = np.trunc(xo[ok] + 0.499).astype(np.int64)
    iy = np.trunc(yo[ok] + 0.499).astype(np.int64)
    onx, ony = out_shape[1], out_shape[0]
    xmin, xmax = int(ix.min()) - 2, int(ix.max())
    ymin, ymax = int(iy.min()) - 2, int(iy.max())
    if xmin > onx or ymin > ony or xmax < 0 or ymax < 0:
        return None
    xmin, ymin = max(1, xmin), max(1, ymin)
    xmax, ymax = min(onx, xmax), min(ony, ymax)
    if xmin > xmax or ymin > ymax:
        return None
    return xmin, xmax, ymin, ymax


def _interp_codes(config) -> tuple[int, int]:
    types = config["RESAMPLING_TYPE"]
    types = types if isinstance(types, list) else [types]
    if len(types) == 1:
        types = types * 2
    codes = []
    for t in types[:2]:
        if t not in INTERP_CODES:
            raise ToolError(f"RESAMPLING_TYPE {t} is not supported (expected one of "
                            f"{', '.join(INTERP_CODES)})")
        codes.append(INTERP_CODES[t])
    return codes[0], codes[1]


def field_footprint(fld: InputField, out_header, out_wcs):
    """The pixel mapping of a field onto the output grid and the output rectangle it covers
    ``(xmin, xmax, ymin, ymax)`` (1-based, inclusive; None when it misses the output)."""
    out_shape = (int(out_header["NAXIS2"]), int(out_header["NAXIS1"]))
    pmap = PixelMap(fld.wcs, out_wcs)
    return pmap, _footprint(pmap, fld.shape, out_shape)


def _background(fld: InputField, data, var, config, nfiles: int):
    """The SExtractor mesh background of a field (pixels with variance BIG masked, as SWarp's back.c)."""
    from terapix_fw.background import estimate_background

    try:
        return estimate_background(
            data, mask=(var >= BIG) if var is not None else None,
            back_size=per_image(config, "BACK_SIZE", fld.fileno, nfiles),
            filter_size=per_image(config, "BACK_FILTERSIZE", fld.fileno, nfiles),
            filter_thresh=config["BACK_FILTTHRESH"], back_type=per_image(config, "BACK_TYPE", fld.fileno, nfiles),
            back_value=per_image(config, "BACK_DEFAULT", fld.fileno, nfiles))
    except ValueError as exc:
        raise ToolError(f"{fld.name}: background estimation failed: {exc}") from None


def resample_field(fld: InputField, out_header, out_wcs, config, index: int, nfiles: int,
                   image_path: Path, weight_path: Path, log=None, *, footprint=None, rows=None,
                   cache: dict | None = None) -> Resampled | None:
    """Resample one field; write its resampled image and weight (atomically) to the given paths.

    ``footprint``: ``field_footprint(...)`` if already computed.  ``rows = (y0, y1)`` (1-based, inclusive)
    restricts the output to those rows of the field's rectangle (output bands: the pixels are exactly those
    of the full rectangle, the mapping grid being tabulated over the full rectangle); None if the field
    has no row there.  ``cache``: a dict kept by the caller between bands of the same field, holding its
    background model (mesh), RESCALE_WEIGHTS factor and mapping grid so that they are computed once.
    """
    from terapix_fw.atomic import atomic_path

    from .coadd import StripWriter

    pmap, box = footprint if footprint is not None else field_footprint(fld, out_header, out_wcs)
    if box is None:
        if log:
            log.info("  %s does not overlap the output image: skipped", fld.name)
        return None
    xmin, xmax, ymin, ymax = box
    ya, yb = (ymin, ymax) if rows is None else (max(ymin, rows[0]), min(ymax, rows[1]))
    if ya > yb:
        return None
    cache = {} if cache is None else cache
    # Memory: at most the CCD's pixels and variances (the weight map converted in place) plus one
    # boolean mask (background estimation) or one full-size rms map (RESCALE_WEIGHTS, for which the
    # pixels are dropped and read again); the background is subtracted row by row, never as a map.
    data, weight = read_pixels(fld)
    subback = bool(per_image(config, "SUBTRACT_BACK", fld.fileno, nfiles))
    # weight-map variances first (pixels with variance BIG -- bad weight or non-finite data -- are masked in
    # the background as in SWarp's back.c); NONE and BACKGROUND variances come from the background itself
    var = None
    if weight is not None:
        var = field_variance(data, weight, fld, out=weight)  # in place: no second CCD-sized array
        del weight
    if "bkg" in cache:  # the same mesh model, its full-resolution maps rebuilt (not kept between bands)
        bkg = cache["bkg"].without_maps()
    else:
        bkg = _background(fld, data, var, config, nfiles)
    if var is None:
        var = field_variance(data, None, fld, bkg)
    if "sigfac" not in cache:
        sigfac = 1.0
        if fld.weight_type in ("MAP_WEIGHT", "MAP_VARIANCE") and per_image(config, "RESCALE_WEIGHTS", fld.fileno,
                                                                           nfiles):
            del data  # the full-size rms map takes its place for a moment
            sigfac = rescale_factor(var, bkg)
            bkg = bkg.without_maps()
            data = read_pixels(fld, weight=False)[0]
        cache["sigfac"] = sigfac
    sigfac = cache["sigfac"]
    bkg = bkg.without_maps()  # the rms map is no longer needed
    if subback:
        bkg.subtract_inplace(data)  # bad pixels included: finish_pixels zeroes them next
    finish_pixels(data, var, float(sigfac * sigfac))
    backmean, backsig = bkg.global_back, bkg.global_rms
    if rows is not None:
        cache["bkg"] = bkg.without_maps()
    del bkg

    # flux scaling from the astrometry (FSCALASTRO_TYPE) and oversampling
    ny, nx = fld.shape
    ctr_out = pmap.in_to_out(np.array([(nx + 1) / 2.0]), np.array([(ny + 1) / 2.0]))
    area_ctr = float(pmap.area_ratio(ctr_out[0], ctr_out[1])[0])
    fstype = config["FSCALASTRO_TYPE"]
    fascale = 1.0 if fstype == "NONE" else area_ctr
    variable = fstype == "VARIABLE"
    oversamp = config["OVERSAMPLING"]
    oversamp = oversamp if isinstance(oversamp, list) else [oversamp]
    if len(oversamp) == 1:
        oversamp = oversamp * 2
    lin = math.sqrt(area_ctr)  # out/in linear scale ratio
    ov = [int(o) if o else (int(lin + 0.5) if lin > 1.0 else 1) for o in oversamp[:2]]
    ascale = max(1.0, area_ctr)
    interp_x, interp_y = _interp_codes(config)
    if interp_x != interp_y:
        raise ToolError(f"RESAMPLING_TYPE {config['RESAMPLING_TYPE']}: different kernels per axis are not "
                        "supported")
    proj_err = float(per_image(config, "PROJECTION_ERR", fld.fileno, nfiles))
    grid = cache.get("grid")
    if grid is None:
        grid = build_grid(pmap, xmin, xmax, ymin, ymax, proj_err, variable_area=variable)
        if rows is not None:
            cache["grid"] = grid
    vmaxx = row_max(var, KERNEL_WIDTH[interp_x])  # in place: var is now the row maximum
    del var
    gain = fld.gain
    fgain = gain if fstype != "NONE" else gain / area_ctr
    saturation = fld.saturation * fascale
    shape = (yb - ya + 1, xmax - xmin + 1)
    header = _resampled_header(out_header, fld, xmin, ya, shape, gain=fgain, saturation=saturation,
                               fscale=fld.fscale, fascale=fascale, backmean=backmean * fascale,
                               backsig=backsig * fascale, sigfac=sigfac)
    wheader = header.copy()
    wheader["WGHTTYPE"] = ("MAP_WEIGHT", "Weight-map type")
    # the output rectangle by blocks of rows written as they are made: only a block is in memory
    block = min(shape[0], RESAMPLE_BLOCK_LINES)
    out = np.empty((block, shape[1]), dtype=np.float32)
    outw = np.empty_like(out)
    ktab = kernel_table(interp_x)
    with atomic_path(image_path) as tmp, atomic_path(weight_path) as wtmp:
        img, wgt = StripWriter(tmp, header), StripWriter(wtmp, wheader)
        try:
            for r0 in range(0, shape[0], block):
                h = min(block, shape[0] - r0)
                resample_rect(data, vmaxx, ktab, grid.gx, grid.gy, grid.garea, grid.x0, grid.y0, grid.step,
                              float(xmin), float(ya + r0), out[:h], outw[:h], interp_x, ov[0], ov[1], fascale,
                              variable, ascale)
                img.write_rows(r0 + 1, out[:h])
                wgt.write_rows(r0 + 1, outw[:h])
        finally:
            img.close()
            wgt.close()
    image_offset, weight_offset = img.offset, wgt.offset
    del data, vmaxx
    return Resampled(image=image_path, weight=weight_path, name=fld.name, fileno=fld.fileno, xmin=xmin,
                     ymin=ya, nx=shape[1], ny=shape[0], exptime=fld.exptime, gain=gain, fgain=fgain,
                     fscale=fld.fscale, fascale=fascale, backmean=backmean * fascale,
                     backsig=backsig * fascale, saturation=saturation, subback=subback,
                     image_offset=image_offset, weight_offset=weight_offset, mapping_error=grid.max_error)


def _resampled_header(out_header, fld: InputField, xmin: int, ymin: int, shape, *, gain, saturation, fscale,
                      fascale, backmean, backsig, sigfac):
    header = out_header.copy()
    header["NAXIS1"] = shape[1]
    header["NAXIS2"] = shape[0]
    header["CRPIX1"] = out_header["CRPIX1"] - (xmin - 1)
    header["CRPIX2"] = out_header["CRPIX2"] - (ymin - 1)
    header["EXPTIME"] = (fld.exptime, "Max. equivalent exposure time (s)")
    header["GAIN"] = (gain, "Max. equivalent gain (e-/ADU)")
    header["SATURATE"] = (saturation, "Saturation Level (ADU)")
    header["FLXSCALE"] = (fscale, "Relative flux scaling from photometry")
    header["FLASCALE"] = (fascale, "Relative flux scaling from astrometry")
    header["BACKMEAN"] = (backmean, "Effective background level")
    header["BACKSIG"] = (backsig, "Effective background RMS")
    header["SIGFAC"] = (sigfac, "Weight-map rescaling factor")
    header["COMIN1"] = (xmin, "Output minimum position of image")
    header["COMIN2"] = (ymin, "Output minimum position of image")
    header["ORIGFILE"] = (fld.path.name, "Input filename")
    header["ORIGEXT"] = (fld.hdu, "Input HDU")
    if fld.ident:
        header["OBJECT"] = fld.ident
    return header


def as_resampled(fld: InputField, out_header, config, nfiles: int) -> Resampled | None:
    """RESAMPLE N: an input already on the output grid, used as it is (float32 pixels and a MAP_WEIGHT
    weight map; GAIN, SATURATE, EXPTIME, FLXSCALE, BACKMEAN, BACKSIG from its header, as written in the
    resampled images of a COMBINE N run)."""
    loc, wloc = fld.meta["loc"], fld.meta["wloc"]
    if loc.offset is None or loc.bitpix != -32 or loc.bscale != 1.0 or loc.bzero != 0.0:
        raise ToolError(f"RESAMPLE N: {fld.name} must be an uncompressed float32 image (BITPIX -32)")
    if fld.weight_type != "MAP_WEIGHT" or wloc is None or wloc.offset is None or wloc.bitpix != -32:
        raise ToolError(f"RESAMPLE N: {fld.name} needs a float32 weight map (WEIGHT_TYPE MAP_WEIGHT), such as the "
                        ".weight companion of a resampled image")
    xmin = int(math.floor(out_header["CRPIX1"] - fld.wcs.wcs.crpix[0] + 1.0))
    ymin = int(math.floor(out_header["CRPIX2"] - fld.wcs.wcs.crpix[1] + 1.0))
    ny, nx = fld.shape
    if xmin > out_header["NAXIS1"] or ymin > out_header["NAXIS2"] or xmin + nx - 1 < 1 or ymin + ny - 1 < 1:
        return None
    h = fld.header
    return Resampled(image=fld.path, weight=fld.weight_path, name=fld.name, fileno=fld.fileno, xmin=xmin,
                     ymin=ymin, nx=nx, ny=ny, exptime=fld.exptime, gain=fld.gain, fgain=fld.gain,
                     fscale=fld.fscale, fascale=float(h.get("FLASCALE", 1.0)),
                     backmean=float(h.get("BACKMEAN", 0.0)), backsig=float(h.get("BACKSIG", 0.0)),
                     saturation=fld.saturation, subback=False, image_offset=loc.offset,
                     weight_offset=wloc.offset)
