"""Detection of one extension: weight maps to variance maps and bad-pixel masks, SExtractor's
zero-weight interpolation, background, thresholds and sep's segmentation (:func:`_detect`), leaving a
:class:`_Detected` for the measurements.

Part of :mod:`terapix_sextractor.extraction`."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from terapix_fw.errors import ConfigError, ToolError

from .reading import ImageSpec, _mark, _timings
from .worldcoords import _pixel_scale, _wcs


def _variance_from_weight(weight, wtype, thresh, inplace=False):
    """(variance map or None, bad-pixel mask) for a weight map of WEIGHT_TYPE ``wtype``.

    With ``inplace`` a float32 ``weight`` becomes the variance map (no second image-sized array); the
    values are those of the out-of-place formulas, bit for bit (the same float32 operations)."""
    w = np.asarray(weight, dtype=np.float32)
    if not (inplace and w is weight and w.flags.writeable):
        w = w.copy()
    if wtype == "MAP_WEIGHT":
        t = 0.0 if thresh is None else thresh
        bad = np.greater(w, t)
        np.logical_not(bad, out=bad)  # ~(w > t), NaN included, without a second image-sized mask
        # 1/w everywhere (bad pixels are overwritten below): a masked divide costs twice as much
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.divide(np.float32(1.0), w, out=w)
    elif wtype == "MAP_VAR":
        bad = ~np.isfinite(w) | (w >= (1e30 if thresh is None else thresh)) | (w <= 0)
    elif wtype == "MAP_RMS":
        bad = ~np.isfinite(w) | (w >= (1e15 if thresh is None else thresh)) | (w <= 0)
        np.square(w, out=w, where=~bad)
    else:
        raise ConfigError(f"bad WEIGHT_TYPE {wtype}", "WEIGHT_TYPE", "WEIGHT_TYPE")
    w[bad] = np.float32(1e30)
    return w, bad


def _runs_back(flat, along, length):
    """For bad pixels given by sorted flat indices ``flat`` (row-major along the axis walked) and their
    coordinate ``along`` that axis: the coordinate of the last good pixel before each one (-1 if none),
    i.e. the pixel before the start of its run of consecutive bad pixels."""
    start = np.ones(len(flat), bool)
    start[1:] = (flat[1:] != flat[:-1] + 1)
    start |= along == 0  # a run never continues across lines
    first = np.maximum.accumulate(np.where(start, np.arange(len(flat)), 0))
    return along[first] - 1


def _interpolate_bad(data, var, bad, maxxlag, maxylag, inplace=False, data_too=True, flat=None):
    """SExtractor's zero-weight interpolation (INTERP_TYPE, ``interpolate.c``): a bad pixel takes the value
    (and variance) of the last good pixel before it on its line if within INTERP_MAXXLAG, else of the last
    good pixel below it in its column if within INTERP_MAXYLAG.  Returns (data, var, filled mask).

    Works on the list of bad pixels only (a few percent of a CCD: bad columns, saturated or cosmic-ray
    pixels set to zero weight), never on image-sized index arrays; ``inplace`` fills ``data`` and ``var``
    themselves (their good pixels, the only sources, are not changed); ``data_too`` False leaves the
    data as it is (INTERP_TYPE VAR_ONLY); ``flat`` is ``np.flatnonzero(bad)`` when already known."""
    ny, nx = bad.shape
    out = data if inplace or not data_too else data.copy()
    vout = var if inplace else var.copy()
    if flat is None:
        flat = np.flatnonzero(bad)
    yy, xx = np.divmod(flat, nx)
    lastx = _runs_back(flat, xx, nx)
    okx = (lastx >= 0) & (xx - lastx <= maxxlag)
    # the same along columns: bad pixels in column-major order
    order = np.lexsort((yy, xx))
    lasty = np.empty_like(yy)
    lasty[order] = _runs_back(xx[order] * ny + yy[order], yy[order], ny)
    oky = ~okx & (lasty >= 0) & (yy - lasty <= maxylag)
    sy, sx = yy[okx], lastx[okx]
    ty, tx = yy[oky], xx[oky]
    ly = lasty[oky]
    if data_too:
        vals_x, vals_y = data[sy, sx], data[ly, tx]
        out[yy[okx], xx[okx]] = vals_x
        out[ty, tx] = vals_y
    vx, vy = var[sy, sx], var[ly, tx]
    vout[yy[okx], xx[okx]] = vx
    vout[ty, tx] = vy
    filled = np.zeros(bad.shape, bool)
    filled.ravel()[flat[okx | oky]] = True
    return out, vout, filled


def _every_nth(values, select, step, block=256, unselected=None):
    """``values[select][::step]`` without the image-sized copy of ``values[select]``.  ``unselected``
    (the sorted flat indices of ``~select``, when known and few): the k-th selected pixel is found by
    counting the unselected ones before it; otherwise by blocks of rows, keeping the phase of the
    global sequence."""
    if unselected is not None:
        nsel = values.size - len(unselected)
        if not len(unselected):  # a strided view: no index arrays
            return values.ravel()[::step]
        k = np.arange(0, nsel, step, dtype=np.int64)
        # selected pixels before the j-th unselected one: unselected[j] - j; the k-th selected pixel
        # comes after every unselected one with fewer selected pixels before it than k + 1
        return values.ravel()[k + np.searchsorted(unselected - np.arange(len(unselected)), k, side="right")]
    parts, seen = [], 0
    for y0 in range(0, values.shape[0], block):
        v = values[y0:y0 + block][select[y0:y0 + block]]
        first = (-seen) % step
        parts.append(v[first::step])
        seen += len(v)
    return np.concatenate(parts) if parts else values[:0].ravel()


def _thresholds(cfg, key, sigma, zp, pixscale):
    """Absolute threshold (ADU) or relative (sigmas) for DETECT_THRESH/ANALYSIS_THRESH; ``pixscale()``
    gives the pixel scale, needed (and evaluated) only for thresholds in mag/arcsec^2."""
    values = cfg[key]
    ttype = cfg["THRESH_TYPE"]
    kind = ttype[0] if key == "DETECT_THRESH" or len(ttype) == 1 else ttype[1]
    if len(values) == 2:  # <mu>,<ZP> in mag/arcsec^2 -> absolute ADU per pixel
        mu, zpt = values
        return 10 ** (-0.4 * (mu - zpt)) * pixscale() ** 2, False
    return float(values[0]), kind == "RELATIVE"


@dataclass
class _Detected:
    """What detection leaves for the measurements: background-subtracted images, variance and bad-pixel
    maps, backgrounds, the detected objects with their segmentation map, thresholds and photometric
    constants.  Picklable (it crosses a process boundary in :func:`_overlapped_job`) once the
    backgrounds keep only their scalars (:meth:`portable`)."""

    t0: float
    header: Any
    data: Any
    sub_m: Any
    sub_d: Any
    var_m: Any
    bad_m: Any
    zero_m: Any
    bkg_m: Any
    bkg_d: Any
    kernel: Any
    objs: Any
    seg: Any
    ndetect: int
    gain: float
    satur: float
    zp: float
    thresholds: tuple  # athresh, a_rel, athresh_adu, dthresh, d_rel, dthresh_adu
    sigfac_m: float
    sigfac_d: float
    var_d: Any = None  # detection variance map, when the detection image is another one
    timings: dict = field(default_factory=dict)  # CPU seconds per phase spent in another process
    pre: dict = field(default_factory=dict)  # measurements already made (:func:`_precompute`)

    def portable(self) -> "_Detected":
        """A copy to send to another process: backgrounds reduced to their scalars (sep's background object
        cannot be pickled; only check images need the maps, and those runs are not split across
        processes), arrays the measurements no longer need left out."""
        from dataclasses import replace

        from terapix_fw.background import BackgroundMap

        def scalars(b):
            return BackgroundMap(global_back=b.global_back, global_rms=b.global_rms, back_size=b.back_size,
                                 filter_size=b.filter_size, shape=b.shape)
        same = self.bkg_d is self.bkg_m
        bkg_m = scalars(self.bkg_m)
        _mark("measurements")
        # the raw image is only needed for the background at the objects (in ``pre`` by then)
        return replace(self, data=None if "background" in self.pre else self.data,
                       bkg_m=bkg_m, bkg_d=bkg_m if same else scalars(self.bkg_d),
                       sub_d=None if self.sub_d is self.sub_m else self.sub_d, timings=_timings())

    def restored(self) -> "_Detected":
        """Undo the sharing shortcuts of :meth:`portable` (the detection image is the measurement one)."""
        if self.sub_d is None:
            self.sub_d = self.sub_m
        return self


def _detect(spec: ImageSpec, cfg, wtype_m, wtype_d) -> _Detected:
    """Weights, background, thresholds and detection of one extension (the first half of
    :func:`extract_image`)."""
    import sep
    from astropy.io import fits

    from terapix_fw.background import all_finite, as_sep_array, estimate_background, sep_mask

    t0 = time.time()
    _mark("read")
    header = spec.header if spec.header is not None else fits.Header()
    data = as_sep_array(spec.data)
    if data.ndim != 2:
        raise ToolError(f"{spec.name}: extension {spec.ext} is not a 2-D image (shape {data.shape})")
    dual = spec.det_data is not None
    ddata = as_sep_array(spec.det_data) if dual else data
    ny, nx = data.shape
    # header values override the configuration (SExtractor's *_KEY); one that is not a number, or a
    # negative gain / non-positive saturation level, is an error naming it (GAIN 0 means infinite gain,
    # as SExtractor's GAIN 0)
    from terapix_fw.fitsimage import header_number

    where = f"image {spec.name} extension {spec.ext}"
    gain = header_number(header, cfg["GAIN_KEY"], where, cfg["GAIN"], positive=True, allow_zero=True)
    satur = header_number(header, cfg["SATUR_KEY"], where, cfg["SATUR_LEVEL"], positive=True)
    zp = header_number(header, cfg["MAG_ZEROPOINT_KEY"], where, cfg["MAG_ZEROPOINT"])
    wthresh = list(cfg["WEIGHT_THRESH"])

    _mark("weights")
    # ---- weights -> variance maps and bad-pixel masks
    def weights(wtype, w, which):
        if wtype in ("NONE", "BACKGROUND") or w is None:
            if wtype not in ("NONE", "BACKGROUND"):
                raise ToolError(f"WEIGHT_TYPE {wtype} needs a WEIGHT_IMAGE for the {which} image")
            return None, None
        t = wthresh[0 if which == "detection" or len(wthresh) == 1 else 1] if wthresh else None
        return _variance_from_weight(w, wtype, t, inplace=spec.owned)

    var_m, bad_m = weights(wtype_m, spec.weight, "measurement")
    if dual:
        var_d, bad_d = weights(wtype_d, spec.det_weight, "detection")
    else:
        var_d, bad_d = var_m, bad_m
    # zero-weight pixels: remember them for FLAGS_WEIGHT, then interpolate them as SExtractor does
    zero_m = None if bad_m is None else np.flatnonzero(bad_m)  # few: kept as a list of pixels
    itypes = list(cfg["INTERP_TYPE"])
    xlags, ylags = list(cfg["INTERP_MAXXLAG"]), list(cfg["INTERP_MAXYLAG"])

    def interp(img, var, bad, k):
        itype = itypes[min(k, len(itypes) - 1)]
        if bad is None or itype == "NONE" or not bad.any():
            return img, var, bad
        # the variance map is always this extraction's own (made from the weight map)
        img_i, var_i, filled = _interpolate_bad(img, var, bad, xlags[min(k, len(xlags) - 1)],
                                                ylags[min(k, len(ylags) - 1)], inplace=spec.owned,
                                                data_too=itype != "VAR_ONLY",
                                                flat=zero_m if bad is bad_m else None)
        if itype == "VAR_ONLY":
            return img, var_i, bad
        # the filled pixels are bad ones: clear them in the mask (this extraction's own) in one pass
        return img_i, var_i, np.logical_xor(bad, filled, out=bad)

    if dual:
        ddata, var_d, bad_d = interp(ddata, var_d, bad_d, 0)
        data, var_m, bad_m = interp(data, var_m, bad_m, 1)
    else:
        data, var_m, bad_m = interp(data, var_m, bad_m, 0)
        ddata, var_d, bad_d = data, var_m, bad_m
    if not all_finite(data):
        nonfinite = ~np.isfinite(data)
        bad_m = nonfinite if bad_m is None else (bad_m | nonfinite)
        if not (spec.owned and data.flags.writeable):
            data = data.copy()
        data[nonfinite] = 0
        if not dual:
            bad_d = bad_m
            ddata = data
        del nonfinite  # an image-sized mask not to keep through the detection

    _mark("background")
    # ---- background
    btypes, bvalues = list(cfg["BACK_TYPE"]), list(cfg["BACK_VALUE"])
    bk_kw = dict(back_size=cfg["BACK_SIZE"], filter_size=cfg["BACK_FILTERSIZE"],
                 filter_thresh=cfg["BACK_FILTTHRESH"])
    def background(img, mask, btype, bvalue, finite=False):
        try:
            return estimate_background(img, mask=mask, back_type=btype, back_value=bvalue, finite=finite, **bk_kw)
        except ValueError as exc:
            if mask is None or not np.all(mask):
                raise ToolError(f"{spec.name}[{spec.ext}]: {exc}") from None
            # every pixel masked (an all-NaN CCD, a dead amplifier): nothing to detect, an empty catalogue
            # for this extension as SExtractor gives, not a failed exposure
            logging.getLogger("terapix").warning("%s[%s]: every pixel is masked (NaN, inf or zero weight): "
                                                 "no source can be detected", spec.name, spec.ext)
            return estimate_background(np.zeros_like(img), back_type="MANUAL", back_value=0.0, **bk_kw)

    # the measurement image is finite by now (non-finite pixels were set to 0 above): not tested again
    bkg_m = background(data, bad_m, btypes[-1] if dual else btypes[0], bvalues[-1] if dual else bvalues[0],
                       finite=True)
    bkg_d = background(ddata, bad_d, btypes[0], bvalues[0]) if dual else bkg_m

    def rescale(var, bad, bkg, which):
        if var is None:
            return None, 0.0
        badflat = np.flatnonzero(bad)  # few once interpolated: the bad pixels are handled as a list
        ngood = bad.size - len(badflat)
        if not ngood:
            raise ToolError(f"{spec.name}[{spec.ext}]: every pixel of the {which} weight map is bad")
        sigfac = 1.0
        rescale_flags = list(cfg["RESCALE_WEIGHTS"])
        if rescale_flags[0 if which == "detection" or len(rescale_flags) == 1 else 1]:
            med = float(np.median(_every_nth(var, None, max(1, ngood // 1000000), unselected=badflat)))
            if med > 0:
                sigfac = bkg.global_rms / math.sqrt(med)
                # the good pixels only: every pixel, then the bad ones put back (cheaper than a mask)
                keep = var.ravel()[badflat]
                np.multiply(var, np.float32(sigfac * sigfac), out=var)
                np.put(var, badflat, keep)
        return var, sigfac

    var_m, sigfac_m = rescale(var_m, bad_m, bkg_m, "measurement")
    if dual:
        var_d, sigfac_d = rescale(var_d, bad_d, bkg_d, "detection")
    else:
        var_d, sigfac_d = var_m, sigfac_m
    if wtype_m == "BACKGROUND":
        var_m = (bkg_m.rms * bkg_m.rms).astype(np.float32)
    if wtype_d == "BACKGROUND":
        var_d = (bkg_d.rms * bkg_d.rms).astype(np.float32) if dual else var_m

    sub_m = bkg_m.subtract_from(data)
    sub_d = bkg_d.subtract_from(ddata) if dual else sub_m
    if bad_m is not None:
        sub_m[bad_m] = 0
    if dual and bad_d is not None:
        sub_d[bad_d] = 0

    _mark("thresholds")
    # ---- thresholds
    def pixscale():
        return _pixel_scale(cfg, _wcs(header, f"image {spec.name} extension {spec.ext}")
                            if cfg["PIXEL_SCALE"] == 0 else None, header)

    dthresh, d_rel = _thresholds(cfg, "DETECT_THRESH", bkg_d.global_rms, zp, pixscale)
    athresh, a_rel = _thresholds(cfg, "ANALYSIS_THRESH", bkg_m.global_rms, zp, pixscale)
    dthresh_adu = dthresh * bkg_d.global_rms if d_rel else dthresh
    athresh_adu = athresh * bkg_m.global_rms if a_rel else athresh

    _mark("detection")
    # ---- detection
    kernel = None
    if cfg["FILTER"]:
        from .filters import read_filter
        kernel = read_filter(cfg["FILTER_NAME"])
    sep.set_sub_object_limit(int(max(1024, cfg["MEMORY_OBJSTACK"])))
    ext_kw = dict(minarea=cfg["DETECT_MINAREA"], filter_kernel=kernel, filter_type="conv",
                  deblend_nthresh=cfg["DEBLEND_NTHRESH"], deblend_cont=cfg["DEBLEND_MINCONT"],
                  clean=cfg["CLEAN"], clean_param=cfg["CLEAN_PARAM"], segmentation_map=True)
    # sep initialises its whole pixel stack at every call (1e6 pixels: ~40 MB written, 0.05 s on a
    # 2048x4612 CCD): start at MEMORY_PIXSTACK (SExtractor's 300000 by default) and enlarge it only when
    # an image needs more, instead of failing as SExtractor does
    pixstack = int(cfg["MEMORY_PIXSTACK"])
    mask_d = sep_mask(bad_d)  # None once every zero-weight pixel was interpolated
    while True:
        sep.set_extract_pixstack(min(pixstack, nx * ny + 1000))
        try:
            if d_rel and var_d is not None:
                objs, seg = sep.extract(sub_d, dthresh, var=var_d, mask=mask_d, **ext_kw)
            else:
                objs, seg = sep.extract(sub_d, dthresh_adu, mask=mask_d, **ext_kw)
            break
        except Exception as exc:  # sep raises a bare Exception on buffer overflows
            if "pixel buffer full" in str(exc) and pixstack < nx * ny:
                pixstack *= 8
                continue
            raise ToolError(f"{spec.name}[{spec.ext}]: detection failed: {exc} (raise MEMORY_PIXSTACK / "
                            "MEMORY_OBJSTACK)") from None
    ndetect = len(objs)
    if cfg["DETECT_MAXAREA"] > 0 and len(objs):
        keep = objs["npix"] <= cfg["DETECT_MAXAREA"]
        if not keep.all():
            old_ids = np.nonzero(keep)[0] + 1
            lut = np.zeros(len(objs) + 1, dtype=np.int32)
            lut[old_ids] = np.arange(1, len(old_ids) + 1)
            seg = lut[seg]
            objs = objs[keep]
    if dual and len(objs):
        # SExtractor's dual mode: positions, shapes and footprints come from the detection image; the
        # isophotal flux and peak are measured in the measurement image within the detection footprints
        mobjs = sep.extract(sub_m, athresh_adu if not a_rel or var_m is None else athresh,
                            var=var_m if (a_rel and var_m is not None) else None,
                            mask=bad_m, segmentation_map=seg, filter_kernel=None, clean=False,
                            deblend_cont=1.0, minarea=1)
        if isinstance(mobjs, tuple):
            mobjs = mobjs[0]
        if len(mobjs) == len(objs):
            for name in ("flux", "peak"):
                objs[name] = mobjs[name]
    seg = seg.astype(np.int32, copy=False)
    _mark("detected")
    return _Detected(t0, header, data, sub_m, sub_d, var_m, bad_m, zero_m, bkg_m, bkg_d, kernel, objs, seg,
                     ndetect, gain, satur, zp, (athresh, a_rel, athresh_adu, dthresh, d_rel, dthresh_adu),
                     sigfac_m, sigfac_d, var_d if dual else None)
