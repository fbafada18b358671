"""World coordinates: the image's celestial WCS (:func:`_wcs`, a broken one an error), the pixel scale,
and the world positions and shapes of the catalogue (:func:`_world_columns`, SExtractor's ``astrom.c``).

Part of :mod:`terapix_sextractor.extraction`."""
from __future__ import annotations

import numpy as np

from terapix_fw.errors import ToolError


def _pixel_scale(cfg, wcs, header):
    if cfg["PIXEL_SCALE"] > 0:
        return float(cfg["PIXEL_SCALE"])
    if wcs is not None:
        from terapix_fw.wcsutil import pixel_scale_arcsec
        return pixel_scale_arcsec(wcs)
    return 1.0


def _in_thread(fn, *args):
    """``fn(*args)`` started in a thread; the returned Future is resolved where the value is used."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="sextractor-wcs")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def _wcs(header, where="image"):
    """The celestial WCS, None without one; a header whose WCS is broken (latitude outside [-90, 90],
    singular CD matrix, unknown projection) is an error naming the keyword: world coordinates computed
    from it would be a plausible-looking wrong catalogue.  TAN and TPV headers (raw MegaCam, SCAMP, SWarp)
    are read without astropy.wcs, which would import astropy.coordinates into every drop-in run."""
    from terapix_fw.wcsutil import TangentWCS, wcs_problem

    problem = wcs_problem(header)
    if problem:
        raise ToolError(f"{where}: broken WCS: {problem}; world coordinates (and PIXEL_SCALE 0) need a valid "
                        "one: fix the header (or a .head file), or ask only for pixel columns with PIXEL_SCALE > 0")
    tangent = TangentWCS.from_header(header)
    if tangent is not None:
        return tangent
    try:
        from astropy.wcs import WCS, FITSFixedWarning
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w = WCS(header, naxis=2)
        return w if w.has_celestial else None
    except Exception:  # noqa: BLE001 - a broken WCS only disables world coordinates, as in SExtractor
        return None


def _wants_world(want) -> bool:
    return any(n.endswith("_WORLD") or "J2000" in n or n.endswith("_SKY") for n in want)


def _world_columns(cols, wcs, want, n):
    """World coordinates and shapes (SExtractor ``astrom.c``): positions through the WCS, second moments
    through the local Jacobian (with cos(delta) on the longitude axis), angles in degrees."""
    if wcs is None:
        # no celestial WCS: as SExtractor, world = pixel - 1 (a unit linear WCS), sky coordinates 0
        for name, src in (("X_WORLD", "X_IMAGE"), ("Y_WORLD", "Y_IMAGE"), ("XWIN_WORLD", "XWIN_IMAGE"),
                          ("YWIN_WORLD", "YWIN_IMAGE"), ("XPEAK_WORLD", "XPEAK_IMAGE"),
                          ("YPEAK_WORLD", "YPEAK_IMAGE")):
            if src in cols:
                cols[name] = np.asarray(cols[src], dtype=np.float64) - 1.0
        for name in ("ALPHA_J2000", "DELTA_J2000", "ALPHA_SKY", "DELTA_SKY", "ALPHAWIN_J2000", "DELTAWIN_J2000",
                     "ALPHAWIN_SKY", "DELTAWIN_SKY", "ALPHAPEAK_J2000", "DELTAPEAK_J2000"):
            cols[name] = np.zeros(n)
        jac = np.tile(np.eye(2), (n, 1, 1))
    else:
        def world(xs, ys):
            if len(xs) == 0:
                return np.zeros(0), np.zeros(0)
            w = wcs.all_pix2world(np.column_stack([xs, ys]), 1)
            return w[:, 0], w[:, 1]
        ra, dec = world(cols["X_IMAGE"], cols["Y_IMAGE"])
        cols["X_WORLD"] = cols["ALPHA_J2000"] = cols["ALPHA_SKY"] = ra
        cols["Y_WORLD"] = cols["DELTA_J2000"] = cols["DELTA_SKY"] = dec
        if "XWIN_IMAGE" in cols:
            rw, dw = world(cols["XWIN_IMAGE"], cols["YWIN_IMAGE"])
            cols["XWIN_WORLD"] = cols["ALPHAWIN_J2000"] = cols["ALPHAWIN_SKY"] = rw
            cols["YWIN_WORLD"] = cols["DELTAWIN_J2000"] = cols["DELTAWIN_SKY"] = dw
        rp, dp = world(cols["XPEAK_IMAGE"].astype(float), cols["YPEAK_IMAGE"].astype(float))
        cols["XPEAK_WORLD"] = cols["ALPHAPEAK_J2000"] = rp
        cols["YPEAK_WORLD"] = cols["DELTAPEAK_J2000"] = dp
        # Jacobian by finite differences (deg/pixel), longitude scaled by cos(dec)
        jac = np.zeros((n, 2, 2))
        if n:
            cosd = np.cos(np.radians(dec))
            rx, dx_ = world(cols["X_IMAGE"] + 0.5, cols["Y_IMAGE"])
            rx0, dx0 = world(cols["X_IMAGE"] - 0.5, cols["Y_IMAGE"])
            ry, dy_ = world(cols["X_IMAGE"], cols["Y_IMAGE"] + 0.5)
            ry0, dy0 = world(cols["X_IMAGE"], cols["Y_IMAGE"] - 0.5)
            dra_x = ((rx - rx0 + 180) % 360 - 180)
            dra_y = ((ry - ry0 + 180) % 360 - 180)
            jac[:, 0, 0] = dra_x * cosd
            jac[:, 0, 1] = dra_y * cosd
            jac[:, 1, 0] = dx_ - dx0
            jac[:, 1, 1] = dy_ - dy0

    from .isophotal import ellipse_from_moments

    def transform(x2, y2, xy):
        c11, c12, c21, c22 = jac[:, 0, 0], jac[:, 0, 1], jac[:, 1, 0], jac[:, 1, 1]
        wx2 = c11 * c11 * x2 + c12 * c12 * y2 + 2 * c11 * c12 * xy
        wy2 = c21 * c21 * x2 + c22 * c22 * y2 + 2 * c21 * c22 * xy
        wxy = c11 * c21 * x2 + c12 * c22 * y2 + (c11 * c22 + c12 * c21) * xy
        return wx2, wy2, wxy

    def wrap(t):
        return (np.asarray(t) + 90.0) % 180.0 - 90.0

    wx2, wy2, wxy = transform(cols["X2_IMAGE"], cols["Y2_IMAGE"], cols["XY_IMAGE"])
    cols["X2_WORLD"], cols["Y2_WORLD"], cols["XY_WORLD"] = wx2, wy2, wxy
    det = wx2 * wy2 - wxy * wxy
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["CXX_WORLD"], cols["CYY_WORLD"], cols["CXY_WORLD"] = wy2 / det, wx2 / det, -2 * wxy / det
    # a and b in world units come from the image a, b scaled (SExtractor scales the moments).
    # THETA_WORLD is measured from the world x axis (the Jacobian carries the east-left flip);
    # THETA_J2000 is the position angle east of north

    def world_ellipse(prefix, suffix, x2, y2, xy):
        a, b, theta = ellipse_from_moments(x2, y2, xy)
        cols[f"{prefix}A{suffix}_WORLD"], cols[f"{prefix}B{suffix}_WORLD"] = a, b
        cols[f"{prefix}THETA{suffix}_WORLD"] = wrap(theta)
        cols[f"{prefix}THETA{suffix}_J2000"] = cols[f"{prefix}THETA{suffix}_SKY"] = wrap(90.0 - wrap(theta))

    world_ellipse("", "", wx2, wy2, wxy)
    world_ellipse("ERR", "", *transform(cols["ERRX2_IMAGE"], cols["ERRY2_IMAGE"], cols["ERRXY_IMAGE"]))
    if "XWIN_IMAGE" in cols:
        world_ellipse("", "WIN", *transform(cols["X2WIN_IMAGE"], cols["Y2WIN_IMAGE"], cols["XYWIN_IMAGE"]))
        world_ellipse("ERR", "WIN", *transform(cols["ERRX2WIN_IMAGE"], cols["ERRY2WIN_IMAGE"],
                                               cols["ERRXYWIN_IMAGE"]))
    if wcs is None:  # position angles east of north need a celestial frame
        for name in ("THETA_J2000", "THETA_SKY", "ERRTHETA_J2000", "ERRTHETA_SKY", "THETAWIN_J2000",
                     "THETAWIN_SKY", "ERRTHETAWIN_J2000", "ERRTHETAWIN_SKY"):
            if name in cols:
                cols[name] = np.zeros(n)
