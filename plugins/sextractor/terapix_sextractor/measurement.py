"""Measurement of the detected objects: isophotal, AUTO, aperture, Petrosian and windowed photometry,
FLUX_RADIUS, flags, CLASS_STAR and the catalogue table (:func:`_measure`, which takes one
:class:`MeasureInputs`), with the numpy helpers around the numba kernels of :mod:`measure`.

Part of :mod:`terapix_sextractor.extraction`."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from terapix_fw.errors import ToolError

from .reading import ImageSpec, _mark
from .worldcoords import _world_columns

if TYPE_CHECKING:
    from .detection import _Detected

__all__ = ["MeasureInputs"]


@dataclass
class MeasureInputs:
    """What :func:`_measure` works on for one extension, built from the detection by
    :func:`terapix_sextractor.extraction._measure_detected`."""

    objs: Any  # sep's detected objects (structured array, 0-based pixel coordinates)
    seg: Any  # segmentation map (int32; object i is labelled i + 1)
    sub: Any  # background-subtracted measurement image
    var: Any  # measurement variance map, None without a weight map
    bad: Any  # measurement bad-pixel mask, or None
    bkg: Any  # measurement background (terapix_fw.background.BackgroundMap)
    spec: ImageSpec  # the extension (its number, name and flag maps)
    cfg: Any  # the resolved configuration (terapix_fw.params.Config)
    plist: list  # catalogue parameters (CatalogParam) in catalogue order
    want: set  # names of the catalogue parameters
    gain: float  # gain (e-/ADU); 0 is infinite gain
    satur: float  # saturation level (ADU)
    zp: float  # magnitude zero-point
    pixscale: float  # pixel scale (arcsec)
    wcs: Any  # celestial WCS, None, or a Future giving it (built in a thread meanwhile)
    athresh: float  # ANALYSIS_THRESH as given (sigmas when a_rel, else ADU)
    a_rel: bool  # ANALYSIS_THRESH is relative to the noise
    athresh_adu: float  # analysis threshold (ADU)
    dthresh: float  # DETECT_THRESH as given (sigmas when d_rel, else ADU)
    d_rel: bool  # DETECT_THRESH is relative to the noise
    dthresh_adu: float  # detection threshold (ADU)
    sub_d: Any  # background-subtracted detection image (``sub`` itself in single-image mode)
    bkg_d: Any  # detection background
    kernel: Any  # detection filter kernel, or None
    zero_w: Any = None  # flat indices of the zero-weight pixels (FLAGS_WEIGHT), or None
    spec_image: Any = None  # raw measurement image (background at the objects when not precomputed)
    nthreads: int = 1  # threads sharing the per-object measurements
    pre: dict | None = None  # measurements already made by _precompute
    var_d: Any = None  # detection variance map (blanked-pixel thresholds)


_SEP_FLAG_MERGED = 1  # sep OBJ_MERGED


_SEP_FLAG_TRUNC = 2


_SEP_FLAG_DOVERFLOW = 4


def _apertures(cfg, pixscale):
    aper = np.asarray(cfg["PHOT_APERTURES"], dtype=np.float64)
    if cfg["PHOT_APERUNIT"] == "ARCSEC":
        aper = aper / pixscale
    return aper


def _mag(flux, zp):
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, zp - 2.5 * np.log10(np.where(flux > 0, flux, 1)), 99.0)


def _magerr(flux, err):
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 1.086 * err / np.where(flux > 0, flux, 1), 99.0)  # SExtractor's 1.086


def _object_ellipses(objs):
    """0-based centres and isophotal ellipses (a, b, theta in radians) of sep's objects, degenerate
    moments (single-pixel or singular objects) guarded so that sep accepts the ellipses."""
    x = objs["x"].astype(np.float64)
    y = objs["y"].astype(np.float64)
    a = np.maximum(np.nan_to_num(objs["a"].astype(np.float64), nan=0.5), 1e-3)
    b = np.minimum(np.maximum(np.nan_to_num(objs["b"].astype(np.float64), nan=0.5), 1e-3), a)
    th = np.clip(np.nan_to_num(objs["theta"].astype(np.float64)), -np.pi / 2, np.pi / 2)
    return x, y, a, b, th


def _object_background(objs, sub, var, bad, bkg, image, athresh, a_rel, athresh_adu):
    """The background map at each object's centre pixel (global photometric background) and its
    analysis threshold (ADU)."""
    ny, nx = sub.shape
    ix = np.clip((objs["x"] + 0.5).astype(int), 0, nx - 1)
    iy = np.clip((objs["y"] + 0.5).astype(int), 0, ny - 1)
    # the background map at the objects, without materialising it: image - (image - background)
    backval = image[iy, ix].astype(np.float64) - sub[iy, ix]
    if bad is not None:
        backval = np.where(bad[iy, ix], bkg.global_back, backval)
    if var is not None and a_rel:
        thr = athresh * np.sqrt(var[iy, ix].astype(np.float64))
    else:
        thr = np.full(len(objs), athresh_adu)
    return backval, thr


def _isophotal_stats(seg, sub, var, objs, thr, satur_above_back, want, pixels=None):
    """:func:`~terapix_sextractor.measure.segment_stats` of the objects (areas, ISO0..7, FWHM, variance
    sums) with the catalogue's needs."""
    from .isophotal import segment_stats

    n = len(objs)
    if not n:
        return {"area": np.zeros(0, np.int32), "iso": np.zeros((0, 8)), "fwhm": np.zeros(0), "varsum": np.zeros(0)}
    x, y, a, b, _ = _object_ellipses(objs)
    return segment_stats(seg, sub, n, thr, objs["peak"].astype(np.float64), x, y, a, b, satur_above_back,
                         flagmap=None, want_fwhm=bool(want & {"FWHM_IMAGE", "FWHM_WORLD"}),
                         want_iso=bool(want & {"CLASS_STAR", "ISO0", "ISO1", "ISO2", "ISO3", "ISO4", "ISO5",
                                               "ISO6", "ISO7"}), varmap=var, pixels=pixels)


def _precompute(det: _Detected, cfg, want, keep_image=True) -> dict:
    """The numpy-only measurements that need nothing but the detection: the background at the objects,
    isophotal position errors, and isophotal statistics when the photometric background is global.  The
    detecting process of :func:`_overlapped_job` computes them while the other loads the numba kernels;
    a serial run computes them first, so that the raw image (``keep_image`` False) and the labelled-pixel
    lists are freed before the measurements allocate their own maps."""
    from .isophotal import segment_pixels

    pre = {}
    n = len(det.objs)
    backval, thr = pre["background"] = _object_background(det.objs, det.sub_m, det.var_m, det.bad_m, det.bkg_m,
                                                          det.data, *det.thresholds[:3])
    if not keep_image:  # the raw image was needed for the background at the objects only
        det.data = None
    if not n:
        return pre
    pixels = segment_pixels(det.seg)
    if any(w.startswith("ERR") for w in want):
        pre["pos_errors"] = _pos_errors(det.seg, det.sub_d, det.objs, det.bkg_d.global_rms, det.gain, n, det.kernel,
                                        pixels)
    if cfg["BACKPHOTO_TYPE"] != "LOCAL":
        pre["stats"] = _isophotal_stats(det.seg, det.sub_m, det.var_m, det.objs, thr, det.satur - backval, want,
                                        pixels)
    return pre


def _measurement_mask(bad, blank, shape):
    """Bad pixels or blanked ones (:func:`~terapix_sextractor.measure.blanked_pixels`), as one boolean map
    (all false when neither)."""
    if bad is None and blank is None:
        return np.zeros(shape, bool)
    if bad is None or blank is None:
        return bad if blank is None else blank
    return bad | blank


def _kron_r1(sub_d, seg, objs, bad, correct):
    """sep's first-moment radius (in isophotal-ellipse units, within 6 of them) of each object on the
    detection image (photom.c reads dfield for the Kron radius), neighbours masked when ``correct``."""
    import sep

    n = len(objs)
    x, y, a, b, th = _object_ellipses(objs)
    seg_kw = dict(segmap=seg, seg_id=np.arange(1, n + 1, dtype=np.int32)) if correct and n else {}
    return sep.kron_radius(sub_d, x, y, a, b, th, 6.0, mask=bad, **seg_kw)[0]


def _measure(m: MeasureInputs):
    """The catalogue columns of the detected objects.  ``m.pre`` holds what :func:`_precompute` already
    computed (in the detecting process)."""
    objs, seg, sub, var, bad, bkg, spec, cfg = m.objs, m.seg, m.sub, m.var, m.bad, m.bkg, m.spec, m.cfg
    plist, want, gain, satur, zp, pixscale, wcs = m.plist, m.want, m.gain, m.satur, m.zp, m.pixscale, m.wcs
    athresh, a_rel, athresh_adu = m.athresh, m.a_rel, m.athresh_adu
    dthresh, d_rel, dthresh_adu = m.dthresh, m.d_rel, m.dthresh_adu
    sub_d, bkg_d, kernel, zero_w, spec_image = m.sub_d, m.bkg_d, m.kernel, m.zero_w, m.spec_image
    nthreads, pre, var_d = m.nthreads, m.pre, m.var_d
    import sep

    from .isophotal import ellipse_from_moments, segment_stats
    from .measure import warm_up, winpos
    from .paramdefs import BY_NAME

    n = len(objs)
    ny, nx = sub.shape
    rms = bkg.global_rms
    pre = pre or {}
    if n:
        warm_up()  # all kernels at once (and without numba's BLAS probe): see measure.warm_up
    # what the aperture kernels leave out or correct by symmetry besides other objects: bad pixels and
    # the pixels SExtractor blanks as detections too small to be objects

    from functools import partial
    par = partial(_objwise, _n=n, _threads=max(1, int(nthreads)))
    correct = cfg["MASK_TYPE"] != "NONE"
    ids = np.arange(1, n + 1, dtype=np.int32)
    # what the aperture kernels leave out or correct by symmetry besides other objects: bad pixels and
    # the pixels SExtractor blanks as detections too small to be objects
    blank = None
    if n and correct:
        from .measure import blanked_pixels
        blank = blanked_pixels(sub_d, seg, kernel, dthresh if d_rel and var_d is not None else dthresh_adu,
                               var_d if d_rel else None, threads=max(1, int(nthreads)),
                               minarea=int(cfg["DETECT_MINAREA"]))
    badk = _measurement_mask(bad, blank, sub.shape)
    x, y, a, b, th = _object_ellipses(objs)
    cols: dict[str, Any] = {}
    flags = np.zeros(n, dtype=np.int16)
    flags |= np.where(objs["flag"] & _SEP_FLAG_MERGED, 2, 0).astype(np.int16)
    flags |= np.where(objs["flag"] & _SEP_FLAG_DOVERFLOW, 64, 0).astype(np.int16)
    touches = (objs["xmin"] == 0) | (objs["ymin"] == 0) | (objs["xmax"] == nx - 1) | (objs["ymax"] == ny - 1)
    flags |= np.where(touches, 8, 0).astype(np.int16)

    backval, thr = pre["background"] if "background" in pre else \
        _object_background(objs, sub, var, bad, bkg, spec_image, athresh, a_rel, athresh_adu)
    dthr = objs["thresh"].astype(np.float64) if d_rel else np.full(n, dthresh_adu)
    peak = objs["peak"].astype(np.float64)
    flags |= np.where(peak + backval >= satur, 4, 0).astype(np.int16)

    # local photometric background
    local = cfg["BACKPHOTO_TYPE"] == "LOCAL"

    _mark("AUTO")
    # ---- AUTO (Kron)
    kron_fact, kron_min = cfg["PHOT_AUTOPARAMS"]
    need_auto = want & {"FLUX_AUTO", "FLUXERR_AUTO", "MAG_AUTO", "MAGERR_AUTO", "KRON_RADIUS", "FLUX_RADIUS",
                        "FLUX_BEST", "FLUXERR_BEST", "MAG_BEST", "MAGERR_BEST",
                        "XWIN_IMAGE", "YWIN_IMAGE", "FLAGS", "SNR_WIN", "FLUX_WIN", "FLUXERR_WIN", "MAG_WIN",
                        "MAGERR_WIN", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE", "X2WIN_IMAGE",
                        "Y2WIN_IMAGE", "XYWIN_IMAGE", "AWIN_IMAGE", "BWIN_IMAGE", "THETAWIN_IMAGE",
                        "FLAGS_WIN", "NITER_WIN", "ALPHAWIN_J2000", "DELTAWIN_J2000", "XWIN_WORLD",
                        "YWIN_WORLD", "BACKGROUND"} or any("WIN" in w for w in want)
    local_bkg = np.zeros(n)
    flux_auto = fluxerr_auto = None
    if n and (need_auto or local):
        # the Kron radius is measured on the detection image (photom.c reads dfield), the flux on the
        # measurement image
        r1 = _kron_r1(sub_d, seg, objs, badk, correct)
        kron = np.maximum(kron_fact * np.nan_to_num(r1, nan=0.0, posinf=0.0), kron_min)
        kron = np.where(kron > 0, kron, 1.0)
        if local:
            from .measure import local_background
            local_bkg = par(local_background, sub, bad if bad is not None else np.zeros(sub.shape, bool), seg,
                            x, y, kron * a + 1, cfg["BACKPHOTO_THICK"])
        # integrate as photom.c: whole pixels, neighbours and bad pixels CORRECTed by symmetry
        from .measure import ellipse_flux
        vsum = rms * rms if var is None else var
        badarr = badk
        cxx_, cyy_, cxy_ = (np.asarray(objs[k], np.float64) for k in ("cxx", "cyy", "cxy"))
        flux_auto, fluxerr_auto, crowded, trunc, area_auto = par(
            ellipse_flux, sub, x, y, cxx_, cyy_, cxy_, kron, vsum, badarr, seg=seg if correct else None,
            ids=ids, gain=gain, correct=correct)
        min_aper = cfg["PHOT_AUTOAPERS"][1]
        circ = (kron * np.sqrt(a * b) <= min_aper / 2.0) if min_aper > 0 else np.zeros(n, bool)
        if circ.any():  # PHOT_AUTOAPERS: the user's minimum circular aperture (KRON_RADIUS then 0)
            one = np.ones(int(circ.sum()))
            fc, ec, cc, tc, ac = ellipse_flux(sub, x[circ], y[circ], one, one, 0 * one, one * min_aper / 2.0,
                                              vsum, badarr, seg=seg if correct else None, ids=ids[circ],
                                              gain=gain, correct=correct)
            flux_auto[circ], fluxerr_auto[circ], crowded[circ], trunc[circ], area_auto[circ] = fc, ec, cc, tc, ac
        flux_auto = flux_auto - local_bkg * area_auto
        flags |= np.where(trunc, 16, 0).astype(np.int16)
        # the first (Kron radius) step searches 6 isophotal radii: it flags a box leaving the image too
        with np.errstate(divide="ignore", invalid="ignore"):
            dxl = cxx_ - cxy_ * cxy_ / (4.0 * cyy_)
            dyl = cyy_ - cxy_ * cxy_ / (4.0 * cxx_)
            dxl = np.where(dxl > 0, 6.0 / np.sqrt(np.where(dxl > 0, dxl, 1)), 0.0)
            dyl = np.where(dyl > 0, 6.0 / np.sqrt(np.where(dyl > 0, dyl, 1)), 0.0)
        out6 = ((np.rint(x - dxl) < 0) | (np.rint(x + dxl) + 1 > nx) | (np.rint(y - dyl) < 0)
                | (np.rint(y + dyl) + 1 > ny))
        flags |= np.where(out6, 16, 0).astype(np.int16)
        # FLAGS bit 1: more than 10% of neighbours' or bad pixels in the AUTO aperture, or in the 6-radius
        # ellipse searched for the Kron radius (photom.c flags both)
        _, _, crowded6, _, _ = par(ellipse_flux, sub_d, x, y, cxx_, cyy_, cxy_, np.full(n, 6.0), vsum, badarr,
                                   seg=seg if correct else None, ids=ids, gain=0.0, correct=False)
        flags |= np.where(crowded | crowded6, 1, 0).astype(np.int16)
        # as photom.c: a circular fallback aperture or a non-positive flux gives KRON_RADIUS 0
        cols["KRON_RADIUS"] = np.where(circ | (flux_auto <= 0), 0.0, kron)
    else:
        kron = np.zeros(n)

    if local:
        backval = backval + local_bkg

    _mark("isophotal")
    # ---- isophotal
    flux_iso = objs["flux"].astype(np.float64) - local_bkg * objs["npix"]
    stats = pre["stats"] if "stats" in pre else _isophotal_stats(seg, sub, var, objs, thr, satur - backval, want)
    if var is not None:
        varsum = stats["varsum"]
    else:
        varsum = objs["npix"] * rms * rms
    fluxerr_iso = np.sqrt(varsum + (np.maximum(flux_iso, 0) / gain if gain > 0 else 0))

    # flag maps
    if want & {"IMAFLAGS_ISO", "NIMAFLAGS_ISO"}:
        if not spec.flags:
            raise ToolError("IMAFLAGS_ISO is requested but no FLAG_IMAGE could be read")
        footprint = seg
        if bad is not None and n:
            where_bad, grown = _grown_labels_at(seg, (seg == 0) & bad)
            footprint = seg.copy()
            footprint.ravel()[where_bad] = grown
        ftypes = list(cfg["FLAG_TYPE"])
        imaf, nimaf = [], []
        for k, fmap in enumerate(spec.flags):
            st = segment_stats(seg, sub, n, thr, peak, x, y, a, b, satur - backval, flagmap=fmap,
                               flag_type=ftypes[min(k, len(ftypes) - 1)], want_fwhm=False, want_iso=False,
                               footprint=footprint)
            imaf.append(st["imaflags"])
            nimaf.append(st["nimaflags"])
        cols["IMAFLAGS_ISO"] = imaf[0] if len(imaf) == 1 else np.stack(imaf, axis=1)
        cols["NIMAFLAGS_ISO"] = nimaf[0] if len(nimaf) == 1 else np.stack(nimaf, axis=1)

    # FLAGS_WEIGHT: bit 2 if a zero-weight pixel (interpolated or not) is in or next to the footprint
    fw = np.zeros(n, dtype=np.int16)
    if zero_w is not None and n and len(zero_w):
        _, grown = _grown_labels_at(seg, flat=zero_w)
        touched = np.bincount(grown[grown > 0], minlength=n + 1)[1:]
        fw |= np.where(touched > 0, 2, 0).astype(np.int16)
        cols["NLOWWEIGHT_ISO"] = touched.astype(np.int32)
    else:
        cols["NLOWWEIGHT_ISO"] = np.zeros(n, np.int32)
    cols["FLAGS_WEIGHT"] = fw

    _mark("apertures")
    # ---- apertures
    aper = _apertures(cfg, pixscale)
    if want & {"FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER"} and n:
        fa = np.zeros((n, len(aper)))
        fe = np.zeros((n, len(aper)))
        from .measure import circle_flux
        vsum = rms * rms if var is None else var
        badarr = badk
        for k, d in enumerate(aper):
            f, e, area, trunc = par(circle_flux, sub, x, y, d / 2.0, vsum, badarr, seg=seg if correct else None,
                                    ids=ids, gain=gain, correct=correct)
            fa[:, k] = f - local_bkg * area
            fe[:, k] = e
            flags |= np.where(trunc, 16, 0).astype(np.int16)
        cols["FLUX_APER"], cols["FLUXERR_APER"] = fa, fe
    _mark("FLUX_RADIUS")
    # ---- FLUX_RADIUS
    fracs = list(cfg["PHOT_FLUXFRAC"])
    hl = None
    if n and (want & {"FLUX_RADIUS"} or any("WIN" in w for w in want)):
        from .measure import flux_radius, half_light_radius
        # one growth curve gives every PHOT_FLUXFRAC radius and the half-light radius of the window
        fr, gtrunc = par(flux_radius, sub, x, y, a, flux_auto, fracs + [0.5],
                         badk, seg=seg if correct else None,
                         ids=ids, min_aper=cfg["PHOT_AUTOAPERS"][0], correct=correct)
        cols["FLUX_RADIUS"] = fr[:, :len(fracs)]
        flags |= np.where(gtrunc, 16, 0).astype(np.int16)
        hl = half_light_radius(fr[:, -1], a, cfg["PHOT_AUTOAPERS"][0])
    _mark("Petrosian")
    # ---- Petrosian
    if want & {"FLUX_PETRO", "FLUXERR_PETRO", "MAG_PETRO", "MAGERR_PETRO", "PETRO_RADIUS"} and n:
        from .measure import petrosian_factor
        pfac, pmin = cfg["PHOT_PETROPARAMS"]
        kp = par(petrosian_factor, sub_d, badk,
                 seg if correct else np.zeros(sub.shape, np.int32), x, y, np.asarray(objs["cxx"], np.float64),
                 np.asarray(objs["cyy"], np.float64), np.asarray(objs["cxy"], np.float64), ids=ids)
        prad = np.where(kp > 0, np.maximum(pfac * kp, pmin), pmin)
        from .measure import ellipse_flux
        vsum = rms * rms if var is None else var
        badarr = badk
        f, e, pcrowd, ptrunc, parea = par(
            ellipse_flux, sub, x, y, np.asarray(objs["cxx"], np.float64), np.asarray(objs["cyy"], np.float64),
            np.asarray(objs["cxy"], np.float64), prad, vsum, badarr, seg=seg if correct else None, ids=ids,
            gain=gain, correct=correct)
        cols["FLUX_PETRO"] = f - local_bkg * parea
        cols["FLUXERR_PETRO"] = e
        fl = np.where(ptrunc, sep.APER_TRUNC, 0)
        flags |= np.where(pcrowd, 1, 0).astype(np.int16)
        cols["PETRO_RADIUS"] = np.where(f <= 0, 0.0, prad)
        flags |= np.where(fl & sep.APER_TRUNC, 16, 0).astype(np.int16)
    _mark("windowed")
    # ---- windowed
    win = None
    if n and any("WIN" in w for w in want):
        sig = 2.0 * hl / 2.35  # winpos.c: from the half-light radius (half-FWHM) to a Gaussian sigma
        vwin = rms * rms if var is None else var
        badwin = badk
        # neighbours are corrected as in SExtractor (MASK_TYPE CORRECT): mask other objects' pixels
        win = par(winpos, sub, x, y, sig, vwin, badwin, gain, correct, seg=seg if correct else None,
                  ids=ids if correct else None)
        flags |= np.where(win["apflag"], 16, 0).astype(np.int16)

    _mark("assemble")
    # ---- assemble columns
    x2, y2, xy = objs["x2"].astype(np.float64), objs["y2"].astype(np.float64), objs["xy"].astype(np.float64)
    ex2, ey2, exy = (objs["errx2"].astype(np.float64), objs["erry2"].astype(np.float64),
                     objs["errxy"].astype(np.float64))
    if n and any(w.startswith("ERR") for w in want):
        # SExtractor's position errors use the constant detection background noise and the filtered
        # pixel values (analyse.c), whatever the weight map: recompute them rather than take sep's
        ex2, ey2, exy = pre["pos_errors"] if "pos_errors" in pre else \
            _pos_errors(seg, sub_d, objs, bkg_d.global_rms, gain, n, kernel)
    erra, errb, errtheta = ellipse_from_moments(ex2, ey2, exy)
    cols.update({
        "NUMBER": ids, "EXT_NUMBER": np.full(n, spec.ext, np.int16),
        "X_IMAGE": x + 1, "Y_IMAGE": y + 1, "X2_IMAGE": x2, "Y2_IMAGE": y2, "XY_IMAGE": xy,
        "CXX_IMAGE": objs["cxx"], "CYY_IMAGE": objs["cyy"], "CXY_IMAGE": objs["cxy"],
        "A_IMAGE": a, "B_IMAGE": b, "THETA_IMAGE": np.degrees(th),
        "ERRX2_IMAGE": ex2, "ERRY2_IMAGE": ey2, "ERRXY_IMAGE": exy,
        "ERRA_IMAGE": erra, "ERRB_IMAGE": errb, "ERRTHETA_IMAGE": errtheta,
        "XMIN_IMAGE": objs["xmin"] + 1, "XMAX_IMAGE": objs["xmax"] + 1, "YMIN_IMAGE": objs["ymin"] + 1,
        "YMAX_IMAGE": objs["ymax"] + 1, "XPEAK_IMAGE": objs["xpeak"] + 1, "YPEAK_IMAGE": objs["ypeak"] + 1,
        "FLUX_ISO": flux_iso, "FLUXERR_ISO": fluxerr_iso,
        "ISOAREA_IMAGE": stats["area"], "ISOAREAF_IMAGE": objs["npix"].astype(np.int32),
        "THRESHOLD": dthr, "FLUX_MAX": peak, "BACKGROUND": backval,
        "ELONGATION": a / b, "ELLIPTICITY": 1 - b / a,
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["MU_THRESHOLD"] = zp - 2.5 * np.log10(np.maximum(dthr, 1e-30) / (pixscale * pixscale))
        cols["MU_MAX"] = np.where(peak > 0, zp - 2.5 * np.log10(np.maximum(peak, 1e-30) / pixscale ** 2), 99.0)
    if flux_auto is not None:
        cols["FLUX_AUTO"], cols["FLUXERR_AUTO"] = flux_auto, fluxerr_auto
    if "iso" in stats:
        for k in range(8):
            cols[f"ISO{k}"] = stats["iso"][:, k]
    if "fwhm" in stats:
        cols["FWHM_IMAGE"] = stats["fwhm"]
    if win is not None:
        wa, wb, wt = ellipse_from_moments(win["x2"], win["y2"], win["xy"])
        ea, eb, et = ellipse_from_moments(win["errx2"], win["erry2"], win["errxy"])
        # flagged windowed values fall back to the isophotal ones, the position too (SExtractor 2.25
        # gives XWIN_IMAGE = X_IMAGE for every object with FLAGS_WIN set)
        fallback = win["flag"] != 0
        cols.update({
            "XWIN_IMAGE": np.where(fallback, x, win["xwin"]) + 1, "YWIN_IMAGE": np.where(fallback, y, win["ywin"]) + 1,
            "FLUX_WIN": win["flux"], "FLUXERR_WIN": win["fluxerr"], "SNR_WIN": win["snr"],
            "X2WIN_IMAGE": np.where(fallback, x2, win["x2"]), "Y2WIN_IMAGE": np.where(fallback, y2, win["y2"]),
            "XYWIN_IMAGE": np.where(fallback, xy, win["xy"]),
            "AWIN_IMAGE": np.where(fallback, a, wa), "BWIN_IMAGE": np.where(fallback, b, wb),
            "THETAWIN_IMAGE": np.where(fallback, np.degrees(th), wt),
            "ERRX2WIN_IMAGE": np.where(fallback, ex2, win["errx2"]),
            "ERRY2WIN_IMAGE": np.where(fallback, ey2, win["erry2"]),
            "ERRXYWIN_IMAGE": np.where(fallback, exy, win["errxy"]),
            "ERRAWIN_IMAGE": np.where(fallback, erra, ea), "ERRBWIN_IMAGE": np.where(fallback, errb, eb),
            "ERRTHETAWIN_IMAGE": np.where(fallback, errtheta, et),
            "FLAGS_WIN": win["flag"], "NITER_WIN": win["niter"],
        })
    if "CLASS_STAR" in want:
        from .classifier import class_star_inputs, load_network
        net = load_network(cfg["STARNNW_NAME"])
        thr_global = athresh_adu if not a_rel else athresh * rms
        inputs = class_star_inputs(stats["iso"], peak, thr_global, cfg["SEEING_FWHM"], pixscale)
        cols["CLASS_STAR"] = net(inputs)[:, 0] if n else np.zeros(0)
    if "VIGNET" in want:
        shape = next(p.shape for p in plist if p.name == "VIGNET")
        cols["VIGNET"] = _vignets(sub, bad, x, y, shape)
    # derived shape parameters (SExtractor's definitions)
    def inverse(m2x, m2y, mxy):
        with np.errstate(divide="ignore", invalid="ignore"):
            det = m2x * m2y - mxy * mxy
            return m2y / det, m2x / det, -2 * mxy / det

    cols["X_IMAGE_DBL"], cols["Y_IMAGE_DBL"] = cols["X_IMAGE"], cols["Y_IMAGE"]
    cols["POLAR_IMAGE"] = (a * a - b * b) / (a * a + b * b)
    cols["ERRCXX_IMAGE"], cols["ERRCYY_IMAGE"], cols["ERRCXY_IMAGE"] = inverse(ex2, ey2, exy)
    if "X2WIN_IMAGE" in cols:
        cols["CXXWIN_IMAGE"], cols["CYYWIN_IMAGE"], cols["CXYWIN_IMAGE"] = inverse(
            cols["X2WIN_IMAGE"], cols["Y2WIN_IMAGE"], cols["XYWIN_IMAGE"])
        cols["ERRCXXWIN_IMAGE"], cols["ERRCYYWIN_IMAGE"], cols["ERRCXYWIN_IMAGE"] = inverse(
            cols["ERRX2WIN_IMAGE"], cols["ERRY2WIN_IMAGE"], cols["ERRXYWIN_IMAGE"])
        aw, bw = cols["AWIN_IMAGE"], cols["BWIN_IMAGE"]
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["POLARWIN_IMAGE"] = (aw * aw - bw * bw) / (aw * aw + bw * bw)
    # corrected isophotal and "best" fluxes (photom.c computeisocorflux, computemags)
    if n and want & {"FLUX_ISOCOR", "FLUXERR_ISOCOR", "MAG_ISOCOR", "MAGERR_ISOCOR", "FLUX_BEST",
                     "FLUXERR_BEST", "MAG_BEST", "MAGERR_BEST"}:
        npixf = objs["npix"].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ati = np.clip(np.where(flux_iso > 0, npixf * dthr / flux_iso, 0.0), 0.0, 1.0)
            iso_cor = flux_iso / (1.0 - 0.196099 * ati - 0.751208 * ati * ati)
            sigtv = np.where(flux_iso > 0, fluxerr_iso ** 2 / flux_iso ** 2, 0.0)
            dati = np.where(npixf > 0, ati * np.sqrt(sigtv + 1.0 / np.maximum(npixf, 1)), 0.0)
            dati = 0.196099 * dati + 0.751208 * 2 * ati * dati
            err_cor = np.where(flux_iso > 0, np.sqrt(sigtv + dati * dati) * flux_iso, fluxerr_iso)
        cols["FLUX_ISOCOR"], cols["FLUXERR_ISOCOR"] = iso_cor, err_cor
        if flux_auto is not None:
            crowded_now = (flags & 1) != 0
            cols["FLUX_BEST"] = np.where(crowded_now, iso_cor, flux_auto)
            cols["FLUXERR_BEST"] = np.where(crowded_now, err_cor, fluxerr_auto)
    # magnitudes
    for kind in ("AUTO", "ISO", "APER", "PETRO", "WIN", "ISOCOR", "BEST"):
        if f"FLUX_{kind}" in cols:
            cols[f"MAG_{kind}"] = _mag(cols[f"FLUX_{kind}"], zp)
            cols[f"MAGERR_{kind}"] = _magerr(cols[f"FLUX_{kind}"], cols[f"FLUXERR_{kind}"])
    cols["FLAGS"] = flags
    cols["FWHM_WORLD"] = cols.get("FWHM_IMAGE", np.zeros(n)) * pixscale / 3600.0
    cols["ISOAREA_WORLD"] = cols["ISOAREA_IMAGE"] * (pixscale / 3600.0) ** 2
    cols["ISOAREAF_WORLD"] = cols["ISOAREAF_IMAGE"] * (pixscale / 3600.0) ** 2
    if hasattr(wcs, "result"):  # built in a thread meanwhile (_overlapped_job)
        wcs = wcs.result()
    if wcs is not None or any(w.endswith("_WORLD") or "J2000" in w or w.endswith("_SKY") for w in want):
        _world_columns(cols, wcs, want, n)

    _mark("table")
    # ---- columns in the requested order, with SExtractor's types (units and formats: catalog_table)
    out = {}
    for p in plist:
        name = p.name
        code = BY_NAME[name][1]
        if name not in cols:
            if n:
                raise ToolError(f"catalogue parameter {name} could not be computed (internal error)")
            cols[name] = np.zeros((0,) + (p.shape if name == "VIGNET" else ((p.size,) if p.shape else ())))
        values = np.asarray(cols[name])
        dtype = {"E": np.float32, "D": np.float64, "J": np.int32, "I": np.int16, "B": np.uint8}[code]
        if name == "VIGNET":
            arr = values.astype(dtype)
        elif values.ndim == 2:
            size = p.size if p.shape else 1
            arr = np.zeros((n, size), dtype=dtype)
            if name.startswith("MAG"):
                arr[:] = 99.0
            m = min(size, values.shape[1])
            arr[:, :m] = values[:, :m]
            if size == 1:
                arr = arr[:, 0]
        else:
            if p.shape and p.size > 1:
                arr = np.zeros((n, p.size), dtype=dtype)
                arr[:, 0] = values
            else:
                arr = values.astype(dtype)
        out[name] = arr
    return out, (x, y, a, b, th, kron, aper)


def catalog_table(columns, meta=None):
    """The catalogue columns of one extension as an astropy Table with SExtractor's units, descriptions
    and TDISP formats (:attr:`ExtractionResult.table <terapix_sextractor.reading.ExtractionResult.table>`).

    Parameters
    ----------
    columns : dict
        Column name -> array, as :func:`_measure` makes them.
    meta : dict, optional
        The table's ``meta`` (its values are kept, not copied).

    Returns
    -------
    astropy.table.Table
    """
    from astropy.table import Table

    from .paramdefs import BY_NAME

    table = Table()
    for name, arr in columns.items():
        unit, disp, desc = BY_NAME[name][2:]
        table[name] = arr
        table[name].description = desc
        if unit:
            table[name].unit = _unit(unit)
        table[name].meta = {"TDISP": disp}
    table.meta.update(meta or {})
    return table


def _grown_labels_at(seg, mask=None, flat=None):
    """(flat indices of the ``mask`` pixels, or ``flat``, and the largest label of ``seg`` in the 3x3
    box around each): the segmentation map grown by one pixel (scipy's ``maximum_filter(seg, 3)``, whose
    "reflect" edges repeat the edge pixel), evaluated only where needed instead of over the whole image."""
    ny, nx = seg.shape
    if flat is None:
        flat = np.flatnonzero(mask)
    yy, xx = np.divmod(flat, nx)
    grown = np.zeros(len(flat), seg.dtype)
    for dy in (-1, 0, 1):
        y = np.clip(yy + dy, 0, ny - 1)
        for dx in (-1, 0, 1):
            np.maximum(grown, seg[y, np.clip(xx + dx, 0, nx - 1)], out=grown)
    return flat, grown


def _filtered_at(sub_d, ys, xs, kernel):
    """The detection image convolved by ``kernel`` (centred, zero outside the image), evaluated only at
    pixels (ys, xs): one gather per kernel element, edge pixels apart (numpy only, so that the detecting
    process of :func:`_overlapped_job` needs no numba)."""
    if kernel is None:
        return sub_d[ys, xs].astype(np.float64)
    kernel = np.asarray(kernel, np.float64)
    kh, kw = kernel.shape
    ny, nx = sub_d.shape
    flat = sub_d.ravel()
    out = np.zeros(len(ys))
    inner = (ys >= kh // 2) & (ys < ny - (kh - 1 - kh // 2)) & (xs >= kw // 2) & (xs < nx - (kw - 1 - kw // 2))
    base = ys[inner] * nx + xs[inner]
    edge = np.flatnonzero(~inner)
    acc = np.zeros(len(base))
    for j in range(kh):
        for i in range(kw):
            k = kernel[j, i]
            if k == 0:
                continue
            acc += k * flat[base + ((j - kh // 2) * nx + i - kw // 2)]
            yy, xx = ys[edge] + j - kh // 2, xs[edge] + i - kw // 2
            ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
            out[edge[ok]] += k * sub_d[yy[ok], xx[ok]]
    out[inner] = acc
    return out


def _objwise(fn, *args, _n, _threads, **kw):
    """``fn(*args, **kw)`` over the objects split into ``_threads`` chunks run in threads (sep and our
    numba kernels release the GIL).  1-D arrays of length ``_n`` are the per-object arguments."""
    if _threads <= 1 or _n < 256:
        return fn(*args, **kw)
    from concurrent.futures import ThreadPoolExecutor

    k = int(min(_threads, _n // 128))
    bounds = np.linspace(0, _n, k + 1).astype(int)

    def call(lo, hi):
        def cut(v):
            return v[lo:hi] if isinstance(v, np.ndarray) and v.ndim == 1 and v.shape[0] == _n else v
        return fn(*[cut(a) for a in args], **{key: cut(v) for key, v in kw.items()})

    with ThreadPoolExecutor(k) as pool:
        parts = list(pool.map(call, bounds[:-1], bounds[1:]))
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(np.concatenate([np.atleast_1d(p[i]) for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {key: np.concatenate([p[key] for p in parts]) for key in first}
    return np.concatenate(parts)


@functools.lru_cache(maxsize=None)
def _unit(text):
    """The astropy unit of a SExtractor unit string, parsed once per process (parsing is slow)."""
    import astropy.units as u

    return u.Unit(text, parse_strict="silent")


def _pos_errors(seg, sub_d, objs, rms, gain, n, kernel=None, pixels=None):
    """SExtractor's isophotal position-error moments (``analyse.c``): per pixel the detection background
    variance plus the filtered value over the gain, weighted by the squared offsets, over the flux^2."""
    from .isophotal import segment_pixels

    flat, ids, ys, xs = segment_pixels(seg) if pixels is None else pixels
    pix = sub_d.ravel()[flat].astype(np.float64)
    cdpix = _filtered_at(sub_d, ys, xs, kernel)
    err = rms * rms + (np.where(cdpix > 0, cdpix, 0) / gain if gain > 0 else np.zeros(len(pix)))
    dx = xs - objs["x"][ids]
    dy = ys - objs["y"][ids]
    flux = np.bincount(ids, pix, n)
    f2 = np.where(flux != 0, flux * flux, 1.0)
    ex2 = np.bincount(ids, err * dx * dx, n) / f2
    ey2 = np.bincount(ids, err * dy * dy, n) / f2
    exy = np.bincount(ids, err * dx * dy, n) / f2
    esum = np.bincount(ids, err, n) * 0.08333 / f2
    singu = (objs["flag"] & 8) != 0
    fix = singu & ((ex2 * ey2 - exy * exy) < esum * esum)
    ex2 = np.where(fix, ex2 + esum, ex2)
    ey2 = np.where(fix, ey2 + esum, ey2)
    return ex2, ey2, exy


def _vignets(sub, bad, x, y, shape):
    """VIGNET(w,h): pixels around the nearest pixel to the centroid, -1e30 off the image (copyimage);
    one gather for all objects."""
    w, h = shape
    ny, nx = sub.shape
    img = sub if bad is None else np.where(bad, np.float32(-1e30), sub)
    xs = (x + 0.49999).astype(int)[:, None] - w // 2 + np.arange(w)[None, :]  # (n, w)
    ys = (y + 0.49999).astype(int)[:, None] - h // 2 + np.arange(h)[None, :]  # (n, h)
    inside = ((ys >= 0) & (ys < ny))[:, :, None] & ((xs >= 0) & (xs < nx))[:, None, :]
    out = img[np.clip(ys, 0, ny - 1)[:, :, None], np.clip(xs, 0, nx - 1)[:, None, :]]
    return np.where(inside, out, np.float32(-1e30)).astype(np.float32)
