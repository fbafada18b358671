"""Postage-stamp rendering kernels (numba, ``cache=True``, ``nogil=True`` so CCDs render in threads).

Pixel convention inside this module: 0-based array indices, the centre of pixel ``[j, i]`` (row ``j``,
column ``i``) is at ``(x, y) = (i, j)``.  The FITS 1-based position is ``(i + 1, j + 1)``; conversion
happens in :mod:`terapix_fw.sim.exposure`, never here.

Stars are true elliptical Moffat profiles integrated over each pixel by sub-sampling near the core.
Galaxies are Sersic profiles approximated by mixtures of Gaussians (fitted once per Sersic index by
non-negative least squares, as in Hogg & Lang 2013), convolved analytically with a Gaussian-mixture fit of
the same Moffat PSF; pixel integration adds 1/12 px^2 to every variance.  Every stamp is normalised so that
the flux put into the image equals the requested flux exactly (truncation is compensated, not lost).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

__all__ = ["render_moffat_stars", "render_mixtures", "sersic_mixture", "moffat_mixture", "sersic_bn",
           "bleed_columns", "add_line"]


@njit(cache=True, nogil=True)
def _moffat_stamp(x0, y0, flux, alpha, beta, q, theta, radius, nsub_radius, nx, ny, image):
    # Quadratic form of an elliptical Moffat with geometric-mean width alpha (area-preserving axis ratio q).
    ca = math.cos(theta)
    sa = math.sin(theta)
    a2 = alpha * alpha / q  # major axis squared
    b2 = alpha * alpha * q
    mxx = ca * ca / a2 + sa * sa / b2
    myy = sa * sa / a2 + ca * ca / b2
    mxy = ca * sa * (1.0 / a2 - 1.0 / b2)
    ix0 = max(int(math.floor(x0 - radius)), 0)
    ix1 = min(int(math.ceil(x0 + radius)), nx - 1)
    iy0 = max(int(math.floor(y0 - radius)), 0)
    iy1 = min(int(math.ceil(y0 + radius)), ny - 1)
    if ix1 < ix0 or iy1 < iy0:
        return
    # Normalise over the full (unclipped) circular stamp so that a star cut by a CCD edge keeps the
    # right flux in the part that is on the CCD.
    cx0 = int(math.floor(x0 - radius))
    cy0 = int(math.floor(y0 - radius))
    cw = int(math.ceil(x0 + radius)) - cx0 + 1
    ch = int(math.ceil(y0 + radius)) - cy0 + 1
    stamp = np.zeros((ch, cw))
    total = 0.0
    r2max = radius * radius
    nsub = 5
    step = 1.0 / nsub
    for jj in range(ch):
        dy = cy0 + jj - y0
        for ii in range(cw):
            dx = cx0 + ii - x0
            d2 = dx * dx + dy * dy
            if d2 > r2max:
                continue
            if d2 < nsub_radius * nsub_radius:
                s = 0.0
                for sj in range(nsub):
                    ey = dy + (sj + 0.5) * step - 0.5
                    for si in range(nsub):
                        ex = dx + (si + 0.5) * step - 0.5
                        s += (1.0 + mxx * ex * ex + 2.0 * mxy * ex * ey + myy * ey * ey) ** (-beta)
                v = s / (nsub * nsub)
            else:
                v = (1.0 + mxx * dx * dx + 2.0 * mxy * dx * dy + myy * dy * dy) ** (-beta)
            stamp[jj, ii] = v
            total += v
    if total <= 0.0:
        return
    scale = flux / total
    for j in range(iy0, iy1 + 1):
        for i in range(ix0, ix1 + 1):
            image[j, i] += stamp[j - cy0, i - cx0] * scale


@njit(cache=True, nogil=True)
def render_moffat_stars(image, x, y, flux, alpha, beta, q, theta, radius):
    """Add elliptical Moffat stars (0-based centres ``x``, ``y``; per-star alpha/q/theta/radius) to ``image``.

    Parameters
    ----------
    image : numpy.ndarray
        2-D float32 image, modified.
    x, y : numpy.ndarray
    flux : numpy.ndarray
    alpha, beta : numpy.ndarray
        Moffat parameters (pixels, exponent).
    q, theta : numpy.ndarray
        Axis ratio and angle (radians).
    radius : numpy.ndarray
        Rendering radius (pixels).
    """
    ny, nx = image.shape
    for k in range(x.size):
        nsr = max(2.5 * alpha[k], 3.0)
        _moffat_stamp(x[k], y[k], flux[k], alpha[k], beta, q[k], theta[k], radius[k], nsr, nx, ny, image)


@njit(cache=True, nogil=True, fastmath=True)
def render_mixtures(image, x, y, flux, cxx, cxy, cyy, amp, radius):
    """Add Gaussian-mixture sources.

    ``cxx/cxy/cyy[k, m]`` are the covariance terms (px^2) and ``amp[k, m]`` the weights of component ``m``
    of source ``k``; components with zero weight are skipped.  Each stamp is normalised to ``flux[k]``.

    Parameters
    ----------
    image : numpy.ndarray
        2-D float32 image, modified.
    x, y : numpy.ndarray
        0-based centres.
    flux : numpy.ndarray
    cxx, cxy, cyy : numpy.ndarray
    amp : numpy.ndarray
    radius : numpy.ndarray
        Rendering radius (pixels).
    """
    ny, nx = image.shape
    ncomp = amp.shape[1]
    inv_xx = np.empty(ncomp)
    inv_xy = np.empty(ncomp)
    inv_yy = np.empty(ncomp)
    norm = np.empty(ncomp)
    # one stamp buffer for all sources (no allocation per galaxy)
    rmax = 0.0
    for k in range(x.size):
        rmax = max(rmax, radius[k])
    side = int(2 * math.ceil(rmax) + 3)
    buf = np.empty(side * side)
    for k in range(x.size):
        nact = 0
        for m in range(ncomp):
            det = cxx[k, m] * cyy[k, m] - cxy[k, m] * cxy[k, m]
            if amp[k, m] <= 0.0 or det <= 0.0:
                continue
            inv_xx[nact] = -0.5 * cyy[k, m] / det
            inv_yy[nact] = -0.5 * cxx[k, m] / det
            inv_xy[nact] = cxy[k, m] / det  # -0.5 * 2 * (-cxy/det)
            norm[nact] = amp[k, m] / (2.0 * math.pi * math.sqrt(det))
            nact += 1
        rad = radius[k]
        x0 = x[k]
        y0 = y[k]
        cx0 = int(math.floor(x0 - rad))
        cy0 = int(math.floor(y0 - rad))
        cw = int(math.ceil(x0 + rad)) - cx0 + 1
        ch = int(math.ceil(y0 + rad)) - cy0 + 1
        if cx0 + cw <= 0 or cy0 + ch <= 0 or cx0 >= nx or cy0 >= ny or nact == 0:
            continue
        total = 0.0
        r2max = rad * rad
        for jj in range(ch):
            dy = cy0 + jj - y0
            for ii in range(cw):
                dx = cx0 + ii - x0
                v = 0.0
                if dx * dx + dy * dy <= r2max:
                    for m in range(nact):
                        q = inv_xx[m] * dx * dx + inv_xy[m] * dx * dy + inv_yy[m] * dy * dy
                        if q > -25.0:  # exp(-25) ~ 1e-11: skipping it saves most exp() calls
                            v += norm[m] * math.exp(q)
                buf[jj * cw + ii] = v
                total += v
        if total <= 0.0:
            continue
        scale = flux[k] / total
        for jj in range(max(0, -cy0), min(ch, ny - cy0)):
            for ii in range(max(0, -cx0), min(cw, nx - cx0)):
                image[cy0 + jj, cx0 + ii] += buf[jj * cw + ii] * scale


@njit(cache=True, nogil=True)
def bleed_columns(image, saturation):
    """Bleed trails: charge above ``saturation`` flows along the column (half up, half down), conserving it.

    Columns are independent, which is how CCD blooming behaves along the parallel-transfer direction.

    Parameters
    ----------
    image : numpy.ndarray
        2-D float32 image, modified.
    saturation : float
        Full-well level (ADU).

    Returns
    -------
    numpy.ndarray
        ``image``.
    """
    ny, nx = image.shape
    for i in range(nx):
        j = 0
        while j < ny:
            if image[j, i] <= saturation:
                j += 1
                continue
            start = j
            excess = 0.0
            while j < ny and image[j, i] > saturation:
                excess += image[j, i] - saturation
                image[j, i] = saturation
                j += 1
            stop = j  # first unsaturated pixel above the run
            up = 0.5 * excess
            down = excess - up
            jj = stop
            while up > 0.0 and jj < ny:
                room = saturation - image[jj, i]
                if room > 0.0:
                    take = min(room, up)
                    image[jj, i] += take
                    up -= take
                jj += 1
            jj = start - 1
            while down > 0.0 and jj >= 0:
                room = saturation - image[jj, i]
                if room > 0.0:
                    take = min(room, down)
                    image[jj, i] += take
                    down -= take
                jj -= 1
            j = max(j, jj if jj > j else j)
    return image


@njit(cache=True, nogil=True)
def add_line(image, x0, y0, dx, dy, sigma, peak):
    """Add a straight trail through 0-based ``(x0, y0)`` with unit direction ``(dx, dy)``: Gaussian cross
    profile of width ``sigma`` px and central value ``peak`` (satellite trails).

    Parameters
    ----------
    image : numpy.ndarray
        2-D float32 image, modified.
    x0, y0 : float
    dx, dy : float
    sigma : float
    peak : float
    """
    ny, nx = image.shape
    half = 5.0 * sigma
    for j in range(ny):
        for i in range(nx):
            d = abs((i - x0) * dy - (j - y0) * dx)
            if d < half:
                image[j, i] += peak * math.exp(-0.5 * d * d / (sigma * sigma))


def sersic_bn(n: float) -> float:
    """b_n of the Sersic profile such that r_e encloses half the light (Ciotti & Bertin 1999 expansion).

    Parameters
    ----------
    n : float
        Sersic index.

    Returns
    -------
    float
    """
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def _fit_mixture(r, profile, variances):
    """Non-negative least-squares fit of circular unit-flux 2D Gaussians to a radial profile (area-weighted)."""
    from scipy.optimize import nnls
    gauss = np.exp(-0.5 * r[:, None] ** 2 / variances[None, :]) / (2.0 * np.pi * variances[None, :])
    w = r[:, None]  # log-spaced radii: weight r * dr ~ r^2 for the 2D area
    amp, _ = nnls(gauss * w, profile * w[:, 0], maxiter=50 * variances.size)
    keep = amp > 1e-6 * amp.sum()
    amp, variances = amp[keep], variances[keep]
    return amp / amp.sum(), variances


@functools.lru_cache(maxsize=32)
def sersic_mixture(n: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture (weights, variances in units of r_e^2) of a Sersic profile of index ``n``,
    truncated at 8 r_e (like Hogg & Lang's "lux" profiles).

    Parameters
    ----------
    n : float
        Sersic index.

    Returns
    -------
    tuple of numpy.ndarray
    """
    r = np.logspace(-3, np.log10(8.0), 300)
    bn = sersic_bn(n)
    prof = np.exp(-bn * (r ** (1.0 / n) - 1.0))
    rl = np.linspace(0.0, 8.0, 20001)
    prof /= np.trapezoid(2 * np.pi * rl * np.exp(-bn * (rl ** (1.0 / n) - 1.0)), rl)
    # Few components keep rendering fast; 7 (n=1) to 9 (n=4) match the profile to a few per cent
    # inside 3 r_e, which the PSF convolution smooths further.
    lo = -2.5 - 0.67 * (min(max(n, 0.5), 6.0) - 1.0)
    variances = np.logspace(lo, 0.7 + 0.1 * (min(n, 4.0) - 1.0), 7 if n <= 1.5 else 9)
    return _fit_mixture(r, prof, variances)


@functools.lru_cache(maxsize=32)
def moffat_mixture(beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture (weights, variances in units of alpha^2) of a circular Moffat profile.

    Parameters
    ----------
    beta : float

    Returns
    -------
    tuple of numpy.ndarray
    """
    r = np.logspace(-3, np.log10(12.0), 300)
    prof = (beta - 1.0) / np.pi * (1.0 + r * r) ** (-beta)
    variances = np.logspace(-1.2, 1.5, 6)
    return _fit_mixture(r, prof, variances)


@njit(cache=True, nogil=True)
def _seed_thread(seed):
    # numba keeps one generator per thread: seeding it at the start of a kernel that runs entirely in
    # this thread makes the kernel's draws depend on ``seed`` only, whatever the thread pool does.
    np.random.seed(seed)


@njit(cache=True, nogil=True)
def make_flat(coeffs, pixel_rms, uniform):
    """Flat-field response (float32, mean 1) on the grid of ``uniform`` (U(0,1) draws, one per pixel):
    a smooth quadratic illumination pattern with coefficients ``coeffs`` (x, y, xy, x2, y2 over
    [-1, 1]) times pixel-to-pixel variations of rms ``pixel_rms`` (uniformly distributed).

    Parameters
    ----------
    coeffs : numpy.ndarray
    pixel_rms : float
    uniform : numpy.ndarray

    Returns
    -------
    numpy.ndarray
    """
    ny, nx = uniform.shape
    flat = np.empty((ny, nx), np.float32)
    total = 0.0
    amp = pixel_rms * math.sqrt(12.0)
    for j in range(ny):
        y = -1.0 + 2.0 * j / max(ny - 1, 1)
        for i in range(nx):
            x = -1.0 + 2.0 * i / max(nx - 1, 1)
            s = 1.0 + coeffs[0] * x + coeffs[1] * y + coeffs[2] * x * y + coeffs[3] * x * x + coeffs[4] * y * y
            v = s * (1.0 + amp * (uniform[j, i] - 0.5))
            flat[j, i] = v
            total += v
    scale = (nx * ny) / total
    for j in range(ny):
        for i in range(nx):
            flat[j, i] = flat[j, i] * scale
    return flat


@njit(cache=True, nogil=True)
def apply_flat(model, flat):
    """``model *= flat`` in place (what the CCD actually collects, in ADU).

    Parameters
    ----------
    model : numpy.ndarray
        Modified.
    flat : numpy.ndarray
    """
    ny, nx = model.shape
    for j in range(ny):
        for i in range(nx):
            model[j, i] *= flat[j, i]


@njit(cache=True, nogil=True)
def add_noise(raw, gain, rdnoise, normal, seed):
    """Replace expected ADU by a noisy realisation in place.

    Electrons are Poisson-distributed; above 400 e- the Gaussian limit is used (skewness 1/sqrt(n) below
    5% of a sigma) and merged with the Gaussian read noise (e-) into one draw from ``normal`` (standard
    normal deviates, one per pixel, drawn by numpy's fast ziggurat).  Below 400 e- the Poisson draw comes
    from numba's generator, seeded with ``seed`` in this thread.

    Parameters
    ----------
    raw : numpy.ndarray
        Expected ADU, modified.
    gain : float
        e-/ADU.
    rdnoise : float
        Read noise (e-).
    normal : numpy.ndarray
        Standard normal draws, one per pixel.
    seed : int
        Seed of the Poisson draws.
    """
    _seed_thread(seed)
    ny, nx = raw.shape
    rn2 = rdnoise * rdnoise
    for j in range(ny):
        for i in range(nx):
            lam = raw[j, i] * gain
            if lam >= 400.0:
                e = lam + math.sqrt(lam + rn2) * normal[j, i]
            else:
                e = (float(np.random.poisson(lam)) if lam > 0.0 else 0.0) + rdnoise * normal[j, i]
            raw[j, i] = e / gain


@njit(cache=True, nogil=True)
def detrend(raw, flat, saturate):
    """Flat-fielded float32 image: ``raw / flat``; pixels that saturated in ``raw`` read SATURATE exactly
    and no pixel exceeds it.

    Parameters
    ----------
    raw : numpy.ndarray
    flat : numpy.ndarray
    saturate : float

    Returns
    -------
    numpy.ndarray
    """
    ny, nx = raw.shape
    out = np.empty((ny, nx), np.float32)
    for j in range(ny):
        for i in range(nx):
            r = raw[j, i]
            if r >= saturate:
                out[j, i] = saturate
            else:
                v = r / flat[j, i]
                out[j, i] = saturate if v > saturate else v
    return out
