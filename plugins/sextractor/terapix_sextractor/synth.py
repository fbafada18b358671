"""Small simulated CCD images with a truth table, for the tests, the classifier training and the benchmark.

Stars are Moffat (beta 3) profiles of a given FWHM; galaxies are exponential discs convolved with the same
seeing (approximated by adding Gaussian widths in quadrature on an oversampled grid).  Noise is Gaussian
with the variance of a Poisson process (sky + source) in electrons.  Truth positions are FITS 1-based
pixel coordinates, as SExtractor reports them.  The framework's full simulator (``terapix_fw.sim``) makes
whole MegaCam exposures; this one is deliberately tiny and dependency-free.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SimImage", "render_source", "make_image", "simple_wcs_header", "gaussian_image", "write_fits"]


@dataclass
class SimImage:
    data: np.ndarray
    truth: dict  # column name -> numpy array
    sky: float
    noise: float
    gain: float
    fwhm: float


def render_source(shape, x0, y0, flux, kind, fwhm, r_e=0.0, q=1.0, theta=0.0, beta=3.0, oversample=3,
                  out=None):
    """Add one source to ``out`` (created if None).  ``x0, y0`` are 0-based pixel centres.

    ``kind`` is ``"star"`` (Moffat) or ``"galaxy"`` (exponential of half-light radius ``r_e`` pixels and
    axis ratio ``q`` at position angle ``theta`` degrees, counter-clockwise from +x, seen through seeing
    ``fwhm``).
    """
    if out is None:
        out = np.zeros(shape, dtype=np.float32)
    ny, nx = shape
    half = int(np.ceil(4 * fwhm + (6 * r_e if kind == "galaxy" else 0) + 3))
    xlo, xhi = max(int(x0) - half, 0), min(int(x0) + half + 1, nx)
    ylo, yhi = max(int(y0) - half, 0), min(int(y0) + half + 1, ny)
    if xlo >= xhi or ylo >= yhi:
        return out
    s = oversample
    sub = (np.arange(s) + 0.5) / s - 0.5
    xs = (np.arange(xlo, xhi)[:, None] + sub[None, :]).ravel() - x0
    ys = (np.arange(ylo, yhi)[:, None] + sub[None, :]).ravel() - y0
    dx, dy = np.meshgrid(xs, ys)
    if kind == "star":
        alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
        prof = (beta - 1) / (np.pi * alpha ** 2) * (1 + (dx ** 2 + dy ** 2) / alpha ** 2) ** (-beta)
    else:
        # exponential disc: I ~ exp(-r/h), r_e = 1.678 h; seeing approximated by a Gaussian smoothing
        h = r_e / 1.678
        t = np.radians(theta)
        c, si = np.cos(t), np.sin(t)
        u = dx * c + dy * si
        v = (-dx * si + dy * c) / q
        r = np.sqrt(u ** 2 + v ** 2)
        prof = np.exp(-r / max(h, 1e-3))
        sig = fwhm / 2.3548
        # convolve by the seeing on the oversampled grid (separable Gaussian)
        k = int(np.ceil(3 * sig * s))
        kx = np.exp(-0.5 * (np.arange(-k, k + 1) / (sig * s)) ** 2)
        kx /= kx.sum()
        prof = np.apply_along_axis(lambda m: np.convolve(m, kx, mode="same"), 0, prof)
        prof = np.apply_along_axis(lambda m: np.convolve(m, kx, mode="same"), 1, prof)
        norm = 2 * np.pi * h * h * q * s * s
        prof = prof / norm
    prof = prof.reshape(yhi - ylo, s, xhi - xlo, s).sum(axis=(1, 3)) / (s * s)
    out[ylo:yhi, xlo:xhi] += (flux * prof).astype(np.float32)
    return out


def simple_wcs_header(shape, pixscale=0.186, ra=150.0, dec=2.0):
    """A TAN WCS header with north up, east left and ``pixscale`` arcsec/pixel (MegaCam's 0.186)."""
    from astropy.io import fits

    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRPIX1"], h["CRPIX2"] = shape[1] / 2 + 0.5, shape[0] / 2 + 0.5
    h["CRVAL1"], h["CRVAL2"] = ra, dec
    h["CD1_1"], h["CD1_2"] = -pixscale / 3600, 0.0
    h["CD2_1"], h["CD2_2"] = 0.0, pixscale / 3600
    h["EQUINOX"], h["RADESYS"] = 2000.0, "FK5"
    return h


def make_image(shape=(512, 512), nstars=60, ngal=60, fwhm=3.0, sky=1000.0, gain=2.0, seed=1,
               mag_range=(17.0, 23.0), zeropoint=30.0, satur=None, margin=10, positions=None,
               galaxy_re=(1.5, 5.0)) -> SimImage:
    """A simulated CCD: ``nstars`` Moffat stars and ``ngal`` exponential galaxies on a flat sky.

    Magnitudes are uniform in ``mag_range`` with ``zeropoint``; ``satur`` clips the image (ADU).
    Returns the image (ADU, background included) and the truth (1-based x/y, flux, mag, class, r_e, q,
    theta).
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    n = nstars + ngal
    if positions is None:
        x = rng.uniform(margin, nx - margin - 1, n)
        y = rng.uniform(margin, ny - margin - 1, n)
    else:
        x, y = (np.asarray(p, float) for p in positions)
    mag = rng.uniform(*mag_range, n)
    flux = 10 ** (-0.4 * (mag - zeropoint))
    is_star = np.zeros(n, bool)
    is_star[:nstars] = True
    r_e = np.where(is_star, 0.0, rng.uniform(*galaxy_re, n))
    q = np.where(is_star, 1.0, rng.uniform(0.4, 1.0, n))
    theta = np.where(is_star, 0.0, rng.uniform(-90, 90, n))
    img = np.zeros(shape, dtype=np.float32)
    for i in range(n):
        render_source(shape, x[i], y[i], flux[i], "star" if is_star[i] else "galaxy", fwhm, r_e[i], q[i],
                      theta[i], out=img)
    var_e = np.maximum((img + sky) * gain, 0)
    noisy = img + sky + (rng.standard_normal(shape) * np.sqrt(var_e) / gain)
    if satur is not None:
        noisy = np.minimum(noisy, satur)
    truth = {"x": x + 1, "y": y + 1, "flux": flux, "mag": mag, "star": is_star, "r_e": r_e, "q": q,
             "theta": theta}
    return SimImage(noisy.astype(np.float32), truth, sky, float(np.sqrt(sky / gain)), gain, fwhm)


def gaussian_image(shape, sources, sky=100.0, noise=1.0, seed=0):
    """Noise ``noise`` (ADU rms) plus elliptical Gaussians ``(x0, y0, flux, sigma_x, sigma_y, theta_deg)``
    with 0-based centres, integrated over pixels by 5x5 sub-sampling."""
    ny, nx = shape
    img = np.zeros(shape, dtype=np.float64)
    s = 5
    sub = (np.arange(s) + 0.5) / s - 0.5
    for x0, y0, flux, sx, sy, theta in sources:
        half = int(np.ceil(6 * max(sx, sy))) + 2
        xlo, xhi = max(int(x0) - half, 0), min(int(x0) + half + 1, nx)
        ylo, yhi = max(int(y0) - half, 0), min(int(y0) + half + 1, ny)
        xs = (np.arange(xlo, xhi)[:, None] + sub).ravel() - x0
        ys = (np.arange(ylo, yhi)[:, None] + sub).ravel() - y0
        dx, dy = np.meshgrid(xs, ys)
        t = np.radians(theta)
        u = dx * np.cos(t) + dy * np.sin(t)
        v = -dx * np.sin(t) + dy * np.cos(t)
        prof = np.exp(-0.5 * (u / sx) ** 2 - 0.5 * (v / sy) ** 2) / (2 * np.pi * sx * sy)
        prof = prof.reshape(yhi - ylo, s, xhi - xlo, s).mean(axis=(1, 3))
        img[ylo:yhi, xlo:xhi] += flux * prof
    rng = np.random.default_rng(seed)
    return (img + sky + rng.normal(0, noise, shape)).astype(np.float32)


def write_fits(path, data, **cards):
    from astropy.io import fits

    hdr = fits.Header()
    for k, v in cards.items():
        hdr[k] = v
    fits.PrimaryHDU(data, hdr).writeto(path)
    return path
