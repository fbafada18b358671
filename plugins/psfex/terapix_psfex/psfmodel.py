"""PSF models in the PSFEx manner: star selection, a pixel-basis PSF varying as a polynomial of the position,
Moffat diagnostics (FWHM, ellipticity) and the ``.psf`` file format.

Conventions (PSFEx 3.x):

* selection (``sample.c``): SNR_WIN > SAMPLE_MINSN, (FLAGS & SAMPLE_FLAGMASK) == 0, ELONGATION <
  (1 + SAMPLE_MAXELLIP) / (1 - SAMPLE_MAXELLIP), FWHM = 2 FLUX_RADIUS within SAMPLE_FWHMRANGE; the FWHM mode
  is the middle of the narrowest window holding a quarter of the sorted values, and stars are kept within
  [mode / v, mode * v^2] with v = (1 + SAMPLE_VARIABILITY)^(1/3) (``compute_fwhmrange``);
* sampling step PSF_SAMPLING, or (0) FWHM mode / 2.35 / 2;
* the polynomial terms of degree d in ``x = (X_IMAGE - POLZERO1) / POLSCAL1`` and ``y`` are ordered
  1, x, x^2, ..., y, xy, ..., y^2 ... (x varies fastest), PSF_MASK[ncoeff, ny, nx];
* model pixel ``[j, i]`` is at offset ``((i - nx//2) * step, (j - ny//2) * step)`` image pixels from the star's
  centre; the model is normalised so that ``sum(model) * step^2 = 1`` (flux of one image pixel unit);
* three fitting passes, each rejecting stars with chi > median + 3 sigma (``psf.c``);
* diagnostics: elliptical Moffat fit to the model (``diagnostic.c``), FWHM = sqrt(FWHM_min * FWHM_max),
  ellipticity = (FWHM_max - FWHM_min) / (FWHM_max + FWHM_min).  The fit integrates the Moffat over an image
  pixel, so the FWHM is that of the optical PSF before pixelisation.

Samples are resampled onto the model grid with a Lanczos3 kernel (as PSFEx's ``vignet_resample``) and the
polynomial coefficients of every model pixel are fitted by weighted least squares, all pixels at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

__all__ = ["SelectionConfig", "PsfModel", "select_stars", "sample_candidates", "fwhm_range", "fit_psf", "poly_terms",
           "fit_moffat", "write_psf", "read_psf", "BIG_NEG"]

BIG_NEG = -1e29  # SExtractor marks masked VIGNET pixels with -BIG


@dataclass
class SelectionConfig:
    minsn: float = 20.0
    flagmask: int = 0x00FE
    maxellip: float = 0.3
    fwhmrange: tuple = (2.0, 10.0)
    variability: float = 0.2


def fwhm_range(fwhm, variability=0.2, fwhmrange=(2.0, 10.0)):
    """PSFEx ``compute_fwhmrange``: (mode, min, max) of the FWHM sample.

    Parameters
    ----------
    fwhm : array_like
    variability : float
        SAMPLE_VARIABILITY.
    fwhmrange : tuple of float
        SAMPLE_FWHMRANGE.

    Returns
    -------
    tuple of float
    """
    f = np.sort(np.asarray(fwhm, float))
    n = f.size
    if n == 0:
        return 0.0, 0.0, 0.0
    nw = n // 4
    if nw < 4:
        nw = 1
    if n < 2:
        mode = f[0]
    else:
        widths = f[nw:] - f[:-nw]
        k = int(np.argmin(widths))
        mode = 0.5 * (f[k + nw] + f[k])
    v = (1.0 + variability) ** (1.0 / 3.0)
    return float(mode), float(max(mode / v, fwhmrange[0])), float(min(mode * v * v, fwhmrange[1]))


def sample_candidates(table, cfg: SelectionConfig | None = None):
    """(mask, fwhm): sources passing PSFEx's S/N, flag, ellipticity and FWHM-range cuts, before the
    FWHM-mode window; fwhm = 2 FLUX_RADIUS.

    Parameters
    ----------
    table : astropy.table.Table or dict
    cfg : SelectionConfig, optional
        PSFEx's defaults if None.

    Returns
    -------
    tuple of numpy.ndarray
    """
    cfg = cfg or SelectionConfig()
    snr = np.asarray(table["SNR_WIN"], float)
    flags = np.asarray(table["FLAGS"]).astype(int)
    elong = np.asarray(table["ELONGATION"], float)
    radius = np.asarray(table["FLUX_RADIUS"], float)
    fwhm = 2.0 * (radius.reshape(len(snr), -1)[:, 0] if radius.ndim > 1 else radius)  # also 0 rows
    maxelong = (1.0 + cfg.maxellip) / (1.0 - cfg.maxellip) if cfg.maxellip < 1 else np.inf
    ok = (snr > cfg.minsn) & ((flags & cfg.flagmask) == 0) & (elong < maxelong)
    ok &= (fwhm >= cfg.fwhmrange[0]) & (fwhm < cfg.fwhmrange[1])
    return ok, fwhm


def select_stars(table, cfg: SelectionConfig | None = None):
    """Boolean mask of PSF stars in a catalogue (astropy Table or dict of arrays), and the FWHM mode.

    PSFEx computes the mode over all the extensions of a catalogue file: to do the same, gather
    :func:`sample_candidates` of every extension and call :func:`fwhm_range` once.

    Parameters
    ----------
    table : astropy.table.Table or dict
    cfg : SelectionConfig, optional
        PSFEx's defaults if None.

    Returns
    -------
    tuple of (numpy.ndarray, float)
    """
    cfg = cfg or SelectionConfig()
    ok, fwhm = sample_candidates(table, cfg)
    mode, lo, hi = fwhm_range(fwhm[ok], cfg.variability, cfg.fwhmrange)
    ok &= (fwhm >= lo) & (fwhm <= hi)
    return ok, mode


def poly_terms(x, y, degree):
    """Polynomial terms in PSFEx order (x fastest): 1, x, ..., x^d, y, xy, ..., y^d.  Shape [n, ncoeff]."""
    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    cols = []
    for j in range(degree + 1):
        for i in range(degree + 1 - j):
            cols.append(x ** i * y ** j)
    return np.stack(cols, axis=1)


@dataclass
class PsfModel:
    """One extension's PSF model (the content of a PSFEx PSF_DATA table)."""

    mask: np.ndarray  # [ncoeff, ny, nx]
    step: float
    degree: int
    polzero: tuple = (0.0, 0.0)
    polscal: tuple = (1.0, 1.0)
    polname: tuple = ("X_IMAGE", "Y_IMAGE")
    fwhm: float = 0.0  # Moffat FWHM (pixels) at the centre of the field
    ellipticity: float = 0.0
    chi2: float = 0.0
    loaded: int = 0
    accepted: int = 0
    sample_fwhm: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def ncoeff(self) -> int:
        return self.mask.shape[0]

    def at(self, x, y):
        """The PSF image (model grid) at FITS position (x, y)."""
        t = poly_terms((x - self.polzero[0]) / self.polscal[0], (y - self.polzero[1]) / self.polscal[1],
                       self.degree)[0]
        return np.tensordot(t, self.mask, axes=1)

    def image(self, x, y, size: int, dx: float = 0.0, dy: float = 0.0):
        """The PSF resampled onto image pixels: a ``size`` x ``size`` stamp of unit flux whose centre is at
        ``(size//2 + dx, size//2 + dy)`` (0-based), for injecting fake stars."""
        psf = self.at(x, y)
        ny, nx = psf.shape
        stamp = _sample_model(psf.astype(np.float64), self.step, size, dx, dy)
        total = stamp.sum()
        return stamp / total if total > 0 else stamp


@njit(cache=True)
def _lanczos3(x):
    if x == 0.0:
        return 1.0
    if abs(x) >= 3.0:
        return 0.0
    px = math.pi * x
    return 3.0 * math.sin(px) * math.sin(px / 3.0) / (px * px)


@njit(cache=True)
def _interp(img, x, y):
    """Lanczos3 interpolation of ``img`` at 0-based (x, y); pixels outside the array count as 0."""
    ny, nx = img.shape
    ix = int(math.floor(x))
    iy = int(math.floor(y))
    s = 0.0
    for j in range(iy - 2, iy + 4):
        if j < 0 or j >= ny:
            continue
        wy = _lanczos3(y - j)
        if wy == 0.0:
            continue
        for i in range(ix - 2, ix + 4):
            if i < 0 or i >= nx:
                continue
            s += wy * _lanczos3(x - i) * img[j, i]
    return s


@njit(cache=True)
def _resample_samples(vig, cx, cy, step, nx, ny):
    """Each vignette resampled at the model grid positions around its star's centre."""
    ns = vig.shape[0]
    out = np.zeros((ns, ny * nx))
    for s in range(ns):
        for j in range(ny):
            for i in range(nx):
                out[s, j * nx + i] = _interp(vig[s], cx[s] + (i - nx // 2) * step, cy[s] + (j - ny // 2) * step)
    return out


@njit(cache=True)
def _sample_model(psf, step, size, dx, dy):
    """Model grid -> image pixels: value at image offset (u, v) is the model at grid (u/step + nx//2, ...)."""
    ny, nx = psf.shape
    out = np.zeros((size, size))
    c = size // 2
    for j in range(size):
        for i in range(size):
            out[j, i] = _interp(psf, (i - c - dx) / step + nx // 2, (j - c - dy) / step + ny // 2)
    return out


def fit_psf(vignets, x, y, snr=None, backnoise: float = 1.0, gain: float = 0.0, degree: int = 2,
            size=(25, 25), step: float = 0.0, sample_fwhm: float = 0.0, npass: int = 3, log=None) -> PsfModel:
    """Fit a pixel-basis PSF whose pixels are polynomials of degree ``degree`` in (X_IMAGE, Y_IMAGE).

    ``vignets`` [n, vy, vx] are background-subtracted SExtractor VIGNETs centred on pixel
    ``round(X_IMAGE - 1)``; ``x``, ``y`` the FITS 1-based centres.  The degree is lowered when there are fewer
    than two stars per coefficient (PSFEx does the same when the sample is too small).

    Parameters
    ----------
    vignets : numpy.ndarray
        ``[n, vy, vx]`` VIGNETs.
    x, y : numpy.ndarray
        FITS 1-based centres (X_IMAGE, Y_IMAGE).
    snr : numpy.ndarray, optional
        Not used: each pixel's weight comes from ``backnoise`` and ``gain``.
    backnoise : float
        Background noise (ADU).
    gain : float
        e-/ADU (0: no photon noise).
    degree : int
        PSFVAR_DEGREES.
    size : tuple of int
        PSF_SIZE.
    step : float
        PSF_SAMPLING (0: from ``sample_fwhm``).
    sample_fwhm : float
        FWHM of the sample (pixels).
    npass : int
        Fitting passes, each rejecting outlying stars.
    log : logging.Logger, optional

    Returns
    -------
    PsfModel
    """
    vig = np.asarray(vignets, dtype=np.float64)
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n = vig.shape[0]
    if n == 0:
        raise ValueError("no PSF star in the sample")
    if step <= 0:
        step = sample_fwhm / 2.35 / 2.0 if sample_fwhm > 0 else 1.0
    nx, ny = (size[0], size[1]) if len(size) == 2 else (size[0], size[0])
    bad = vig < BIG_NEG
    vy, vx = vig.shape[1:]
    x0, y0 = x - 1.0, y - 1.0
    cx = vx // 2 + (x0 - np.floor(x0 + 0.5))
    cy = vy // 2 + (y0 - np.floor(y0 + 0.5))
    # a masked pixel inside the model footprint spoils the sample
    yy, xx = np.mgrid[0:vy, 0:vx]
    foot = 0.5 * max(nx, ny) * step
    inside = (np.abs(xx[None] - cx[:, None, None]) <= foot) & (np.abs(yy[None] - cy[:, None, None]) <= foot)
    good = ~np.any(bad & inside, axis=(1, 2))
    vig = np.where(bad, 0.0, vig)
    samples = _resample_samples(np.ascontiguousarray(vig), cx, cy, float(step), nx, ny)
    flux = samples.sum(axis=1) * step * step
    good &= flux > 0
    samples = samples / np.where(flux > 0, flux, 1.0)[:, None]
    # pixel variances of the normalised samples: sky noise plus photon noise, per star
    var = (backnoise ** 2 + (np.maximum(samples * flux[:, None] * step * step, 0) / gain if gain > 0 else 0.0))
    var = var / np.where(flux > 0, flux, 1.0)[:, None] ** 2 / (step * step) ** 2
    w = 1.0 / np.maximum(var, 1e-30)
    polzero = (0.5 * (x.max() + x.min()), 0.5 * (y.max() + y.min()))
    polscal = (max(x.max() - x.min(), 1.0), max(y.max() - y.min(), 1.0))
    ncoef = lambda d: (d + 1) * (d + 2) // 2  # noqa: E731
    deg = degree
    while deg > 0 and good.sum() < 2 * ncoef(deg):
        deg -= 1
    terms = poly_terms((x - polzero[0]) / polscal[0], (y - polzero[1]) / polscal[1], deg)
    chi = np.zeros(n)
    coeffs = None
    for _ in range(npass):
        use = good.copy()
        if use.sum() < ncoef(deg):
            raise ValueError(f"only {int(use.sum())} usable PSF stars for {ncoef(deg)} coefficients")
        a, s, ww = terms[use], samples[use], w[use]
        mat = np.einsum("sp,si,sj->pij", ww, a, a)
        rhs = np.einsum("sp,si,sp->pi", ww, a, s)
        mat += np.eye(a.shape[1])[None] * 1e-12 * np.trace(mat, axis1=1, axis2=2)[:, None, None]
        coeffs = np.linalg.solve(mat, rhs[..., None])[..., 0]  # [npix, ncoeff]
        resid = samples - terms @ coeffs.T
        chi = np.sqrt(np.sum(resid ** 2 * w, axis=1) / resid.shape[1])
        cu = chi[good]
        med = np.median(cu)
        sig = 1.4826 * np.median(np.abs(cu - med))
        newgood = good & (chi <= med + 3 * sig)
        if newgood.sum() == good.sum() or newgood.sum() < ncoef(deg):
            break
        good = newgood
    mask = coeffs.T.reshape(-1, ny, nx)
    model = PsfModel(mask=mask.astype(np.float32), step=float(step), degree=deg, polzero=polzero,
                     polscal=polscal, chi2=float(np.mean(chi[good] ** 2)), loaded=int(n),
                     accepted=int(good.sum()), sample_fwhm=float(sample_fwhm))
    diag = fit_moffat(model.at(*polzero), step)
    model.fwhm, model.ellipticity = diag["fwhm"], diag["ellipticity"]
    model.meta["accepted_mask"] = good
    return model


def _moffat_grid(p, gx, gy, sub):
    amp, x0, y0, la, lb, theta, beta = p
    a, b = math.exp(la), math.exp(lb)
    c, s = math.cos(theta), math.sin(theta)
    out = 0.0
    for ox, oy in sub:
        dx = gx + ox - x0
        dy = gy + oy - y0
        u = (c * dx + s * dy) / a
        v = (-s * dx + c * dy) / b
        out = out + (1.0 + u * u + v * v) ** (-beta)
    return amp * out / len(sub)


def fit_moffat(psf, step: float = 1.0, pixel_integrate: bool = True) -> dict:
    """Elliptical Moffat fit to a PSF image sampled every ``step`` image pixels (grid centre at n//2).

    Returns FWHM (image pixels, geometric mean of the axes), ellipticity (A-B)/(A+B), beta, position angle
    (degrees, counter-clockwise from x) and the centre offset.  With ``pixel_integrate`` the Moffat is
    averaged over one image pixel before comparison, so the result describes the pre-pixel PSF.

    Parameters
    ----------
    psf : numpy.ndarray
        2-D PSF image.
    step : float
        Its sampling step (image pixels).
    pixel_integrate : bool

    Returns
    -------
    dict
    """
    from scipy.optimize import least_squares

    img = np.asarray(psf, float)
    ny, nx = img.shape
    gy, gx = np.mgrid[0:ny, 0:nx]
    gx = (gx - nx // 2) * step
    gy = (gy - ny // 2) * step
    if pixel_integrate:
        o = (np.arange(4) + 0.5) / 4 - 0.5
        sub = [(a, b) for a in o for b in o]
    else:
        sub = [(0.0, 0.0)]
    peak = img.max()
    # initial width from the second moments of the positive core
    wts = np.clip(img, 0, None)
    wts = np.where(img > 0.1 * peak, wts, 0)
    tot = wts.sum()
    r2 = (wts * (gx ** 2 + gy ** 2)).sum() / max(tot, 1e-30)
    sigma0 = max(math.sqrt(max(r2 / 2, 1e-6)), 0.3)
    beta0 = 3.0
    alpha0 = 2.355 * sigma0 / (2 * math.sqrt(2 ** (1 / beta0) - 1))
    p0 = [peak, 0.0, 0.0, math.log(alpha0), math.log(alpha0), 0.1, beta0]
    lo = [0.0, -3.0, -3.0, math.log(0.05), math.log(0.05), -10.0, 0.5]
    hi = [np.inf, 3.0, 3.0, math.log(100.0), math.log(100.0), 10.0, 10.0]
    res = least_squares(lambda p: (_moffat_grid(p, gx, gy, sub) - img).ravel(), p0, bounds=(lo, hi),
                        x_scale="jac", max_nfev=400)
    amp, x0, y0, la, lb, theta, beta = res.x
    k = 2.0 * math.sqrt(2 ** (1.0 / beta) - 1.0)
    fa, fb = k * math.exp(la), k * math.exp(lb)
    fmax, fmin = max(fa, fb), min(fa, fb)
    pa = math.degrees(theta if fa >= fb else theta + math.pi / 2)
    pa = (pa + 90.0) % 180.0 - 90.0
    return {"fwhm": math.sqrt(fmax * fmin), "fwhm_max": fmax, "fwhm_min": fmin,
            "ellipticity": (fmax - fmin) / (fmax + fmin), "beta": float(beta), "theta": pa,
            "dx": float(x0), "dy": float(y0)}


def write_psf(path, models: list[PsfModel], extra_header=None) -> None:
    """Write PSF models in PSFEx's ``.psf`` format: an empty primary HDU and one ``PSF_DATA`` binary table per
    extension with the ``PSF_MASK`` column (TDIM (nx, ny, ncoeff)).  Written atomically.

    Parameters
    ----------
    path : str or Path
    models : list of PsfModel
        One per extension.
    extra_header : dict or astropy.io.fits.Header, optional
        Keywords added to every PSF_DATA header.
    """
    from astropy.io import fits

    from terapix_fw.atomic import write_fits_atomic

    hdus = [fits.PrimaryHDU()]
    for m in models:
        ncoeff, ny, nx = m.mask.shape
        col = fits.Column(name="PSF_MASK", format=f"{ncoeff * ny * nx}E", dim=f"({nx}, {ny}, {ncoeff})",
                          array=m.mask[None].astype(np.float32))
        hdu = fits.BinTableHDU.from_columns([col])
        h = hdu.header
        h["EXTNAME"] = "PSF_DATA"
        h["LOADED"] = (m.loaded, "Number of loaded sources")
        h["ACCEPTED"] = (m.accepted, "Number of accepted sources")
        h["CHI2"] = (round(m.chi2, 6), "Final Chi2")
        h["POLNAXIS"] = (2, "Number of context parameters")
        for k in range(2):
            h[f"POLGRP{k + 1}"] = (1, "Polynom group for this context parameter")
            h[f"POLNAME{k + 1}"] = (m.polname[k], "Name of this context parameter")
            h[f"POLZERO{k + 1}"] = (float(m.polzero[k]), "Offset value for this context parameter")
            h[f"POLSCAL{k + 1}"] = (float(m.polscal[k]), "Scale value for this context parameter")
        h["POLNGRP"] = (1, "Number of context groups")
        h["POLDEG1"] = (m.degree, "Polynom degree for this context group")
        h["PSF_FWHM"] = (round(m.fwhm, 4), "PSF FWHM in image pixels")
        h["PSF_SAMP"] = (round(m.step, 6), "Sampling step of the PSF data")
        h["PSF_ELL"] = (round(m.ellipticity, 5), "Moffat ellipticity (A-B)/(A+B) at field centre")
        h["PSFNAXIS"] = (3, "Dimensionality of the PSF data")
        h["PSFAXIS1"] = (nx, "Number of element along this axis")
        h["PSFAXIS2"] = (ny, "Number of element along this axis")
        h["PSFAXIS3"] = (ncoeff, "Number of element along this axis")
        for key, value in (extra_header or {}).items():
            h[key] = value
        hdus.append(hdu)
    write_fits_atomic(path, fits.HDUList(hdus))


def read_psf(path) -> list[PsfModel]:
    """Read a ``.psf`` file (ours or the real PSFEx's) into PsfModel objects.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of PsfModel

    Raises
    ------
    ToolError
        If the file has no PSF_DATA extension or lacks its keywords.
    """
    from astropy.io import fits

    from terapix_fw.errors import ToolError

    out = []
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul[1:]:
            if hdu.header.get("EXTNAME") != "PSF_DATA":
                continue
            h = hdu.header
            try:
                nx, ny, nc = h["PSFAXIS1"], h["PSFAXIS2"], h["PSFAXIS3"]
                mask = np.asarray(hdu.data["PSF_MASK"][0], np.float32).reshape(nc, ny, nx)
                deg = int(h.get("POLDEG1", 0)) if h.get("POLNAXIS", 0) else 0
                model = PsfModel(mask=mask, step=float(h["PSF_SAMP"]), degree=deg,
                                 polzero=(h.get("POLZERO1", 0.0), h.get("POLZERO2", 0.0)),
                                 polscal=(h.get("POLSCAL1", 1.0), h.get("POLSCAL2", 1.0)),
                                 fwhm=float(h.get("PSF_FWHM", 0.0)), chi2=float(h.get("CHI2", 0.0)),
                                 loaded=int(h.get("LOADED", 0)), accepted=int(h.get("ACCEPTED", 0)))
            except KeyError as exc:
                raise ToolError(f"{path}: PSF_DATA extension lacks keyword {exc}; not a PSFEx .psf file") from None
            out.append(model)
    if not out:
        raise ToolError(f"{path}: no PSF_DATA extension; expected a PSFEx .psf file")
    return out
