"""QualityFITS metrics of one CCD and of a whole exposure or stack.

Metric names (RDBix ``quality`` records: ``ccd`` 0 is the exposure, ``ccd`` k >= 1 the k-th image
extension; the same names in the XML summary):

per CCD and exposure (the exposure value is the median over CCDs unless said otherwise)
    back_adu, back_rms_adu        background level and noise (ADU, SExtractor mesh estimate)
    back_mag, back_rms_mag        the same as surface brightness (mag/arcsec^2; needs a zero point)
    fwhm_px, fwhm_arcsec          seeing: Moffat FWHM of the PSF model at the CCD centre (pre-pixel)
    ellipticity                   PSF 1 - B/A at the CCD centre (SExtractor's ELLIPTICITY)
    psf_ellipticity               PSF (A - B)/(A + B) (PSFEx's definition)
    psf_nstars                    stars accepted in the PSF model (exposure: sum)
    ndet, nstars, ngal            detections, stars and galaxies of the shallow catalogue (exposure: sums)
    nsat_obj                      saturated detections (FLAGS & 4) (exposure: sum)
    sat_fraction                  fraction of pixels flagged saturated/bleed
    ncr, ntrail                   cosmic-ray hits and satellite trails detected (exposure: sums)
    flagged_fraction              fraction of pixels with a non-zero flag
    dead                          1 for a dead CCD (exposure: n_ccd_dead)
    astrom_offset_arcsec          distance of the CCD from its focal-plane position (exposure: max)
    misplaced                     1 when astrom_offset_arcsec > MAX_CCD_OFFSET (exposure: n_ccd_misplaced)
    multiple_image_fraction       fraction of bright stars with a companion at the field's common offset
                                  (double images from a guiding jump; exposure: computed on all CCDs)
    maglim_5sig                   5-sigma point-source magnitude in a 2 FWHM diameter aperture
exposure only
    n_ccd, n_ccd_dead, n_ccd_misplaced, n_ccd_nowcs, n_trails, n_cosmics
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["classify", "number_counts", "companion_offsets", "multiple_image_fraction", "surface_brightness",
           "maglim", "exposure_metrics"]


def classify(table, rh_star: float, saturated=None, width: float = 0.15, snr_min: float = 10.0):
    """Stars and galaxies on the half-light-radius vs magnitude diagram.

    Stars lie on the locus FLUX_RADIUS = rh_star (within ``width`` relative, at least 0.25 px) or are
    saturated (FLAGS & 4, or ``saturated``: e.g. IMAFLAGS_ISO with the flag map's saturation bit, since
    zero-weight saturated pixels never reach the extraction); galaxies are resolved (above the locus), unsaturated and have SNR_WIN >
    ``snr_min`` so that the faint end, where the locus and galaxies merge, is not counted as either.
    """
    rh = np.asarray(table["FLUX_RADIUS"], float).reshape(len(table), -1)[:, 0]
    flags = np.asarray(table["FLAGS"]).astype(int)
    snr = np.asarray(table["SNR_WIN"], float) if "SNR_WIN" in table.colnames else np.full(len(table), np.inf)
    band = max(width * rh_star, 0.25)
    sat = (flags & 4) != 0
    if saturated is not None:
        sat |= np.asarray(saturated, bool)
    ok = (snr > snr_min) & ((flags & 0xF0) == 0) & (rh > 0)
    star = (ok & (np.abs(rh - rh_star) < band)) | sat
    gal = ok & ~sat & (rh > rh_star + band)
    return star, gal


def number_counts(mags, area_deg2: float, bins=None):
    """(bin centres, counts per deg^2 per 0.5 mag, raw counts) of magnitudes in 0.5-mag bins."""
    mags = np.asarray(mags, float)
    mags = mags[np.isfinite(mags) & (mags < 90)]
    if bins is None:
        lo = math.floor(np.min(mags) * 2) / 2 if mags.size else 14.0
        hi = math.ceil(np.max(mags) * 2) / 2 if mags.size else 26.0
        bins = np.arange(lo, max(hi, lo + 0.5) + 0.01, 0.5)
    counts, edges = np.histogram(mags, bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    dens = counts / max(area_deg2, 1e-12) * (0.5 / np.diff(edges))
    return centres, dens, counts


def companion_offsets(x, y, flux, rmin: float = 2.0, rmax: float = 40.0):
    """Offsets (dx, dy) from each source to its fainter neighbours within [rmin, rmax] pixels."""
    from scipy.spatial import cKDTree

    x, y, flux = (np.asarray(a, float) for a in (x, y, flux))
    if x.size < 2:
        return np.zeros((0, 2)), np.zeros(0, int)
    tree = cKDTree(np.column_stack([x, y]))
    pairs = tree.query_pairs(rmax, output_type="ndarray")
    if pairs.size == 0:
        return np.zeros((0, 2)), np.zeros(0, int)
    i, j = pairs[:, 0], pairs[:, 1]
    swap = flux[j] > flux[i]  # always from the brighter to the fainter image
    bright = np.where(swap, j, i)
    faint = np.where(swap, i, j)
    d = np.column_stack([x[faint] - x[bright], y[faint] - y[bright]])
    keep = np.hypot(d[:, 0], d[:, 1]) >= rmin
    return d[keep], bright[keep]


def multiple_image_fraction(offsets, bright_index, nbright: int, cell: float = 1.5):
    """Fraction of bright sources having a companion at the most common offset (a guiding jump repeats
    every star at the same offset; chance pairs spread over all offsets).  Returns (fraction, offset)."""
    if nbright == 0 or len(offsets) == 0:
        return 0.0, (0.0, 0.0)
    key = np.round(offsets / cell).astype(int)
    uniq, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    # merge each cell with its 8 neighbours (the offset may straddle a cell boundary)
    lut = {tuple(k): c for k, c in zip(uniq, counts)}
    best, best_key = 0, None
    for k in uniq:
        total = sum(lut.get((k[0] + a, k[1] + b), 0) for a in (-1, 0, 1) for b in (-1, 0, 1))
        if total > best:
            best, best_key = total, k
    near = np.max(np.abs(key - best_key), axis=1) <= 1
    n = len(np.unique(bright_index[near]))
    off = offsets[near].mean(axis=0)
    return n / nbright, (float(off[0]), float(off[1]))


def surface_brightness(adu_per_pixel: float, zeropoint: float | None, pixscale: float) -> float:
    """mag/arcsec^2 of a level in ADU per pixel (NaN without a zero point or for a level <= 0)."""
    if zeropoint is None or not adu_per_pixel > 0 or not pixscale > 0:
        return float("nan")
    return float(zeropoint - 2.5 * math.log10(adu_per_pixel / pixscale ** 2))


def maglim(rms_adu: float, fwhm_px: float, zeropoint: float | None, nsigma: float = 5.0) -> float:
    """n-sigma point-source limit in a circular aperture of diameter 2 FWHM (sky-noise limited)."""
    if zeropoint is None or not rms_adu > 0 or not fwhm_px > 0:
        return float("nan")
    npix = math.pi * fwhm_px ** 2
    return float(zeropoint - 2.5 * math.log10(nsigma * rms_adu * math.sqrt(npix)))


_SUMS = ("psf_nstars", "ndet", "nstars", "ngal", "nsat_obj", "ncr", "ntrail")


def exposure_metrics(per_ccd: list[dict]) -> dict:
    """Exposure-level metrics from the per-CCD ones (see the module docstring for the rules)."""
    out: dict = {"n_ccd": len(per_ccd)}
    live = [m for m in per_ccd if not m.get("dead")]
    keys = sorted({k for m in per_ccd for k, v in m.items() if isinstance(v, (int, float, np.floating))})
    for key in keys:
        values = np.array([m[key] for m in (live or per_ccd) if key in m], float)
        values = values[np.isfinite(values)]
        if key in _SUMS:
            out[key] = float(values.sum()) if values.size else 0.0
        elif key == "astrom_offset_arcsec":
            allv = np.array([m.get(key, 0.0) for m in per_ccd], float)
            finite = allv[np.isfinite(allv)]
            out[key] = float(finite.max()) if finite.size else float("nan")
        elif key in ("dead", "misplaced", "nowcs"):
            continue
        else:
            out[key] = float(np.median(values)) if values.size else float("nan")
    out["n_ccd_dead"] = sum(1 for m in per_ccd if m.get("dead"))
    out["n_ccd_misplaced"] = sum(1 for m in per_ccd if m.get("misplaced"))
    out["n_ccd_nowcs"] = sum(1 for m in per_ccd if m.get("nowcs"))
    out["n_trails"] = out.get("ntrail", 0.0)
    out["n_cosmics"] = out.get("ncr", 0.0)
    return out
