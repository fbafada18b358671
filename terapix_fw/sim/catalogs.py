"""Ideal SExtractor-like catalogues made from the truth (for testing SCAMP-like steps without detection).

:func:`write_truth_ldac` writes one FITS_LDAC extension per CCD holding the exposure's first-guess image
header and the true positions of the sources brighter than ``maglim`` perturbed by ``pos_err`` pixels,
with the columns SCAMP reads (XWIN_IMAGE, YWIN_IMAGE, ERRAWIN_IMAGE, ERRBWIN_IMAGE, ERRTHETAWIN_IMAGE,
FLUX_AUTO, FLUXERR_AUTO, FLUX_RADIUS, ELONGATION, FLAGS) plus the truth's ID and MAG.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_truth_ldac"]


def write_truth_ldac(result, path: str | Path, maglim: float = 22.5, pos_err: float = 0.02,
                     seed: int = 0, include_saturated: bool = False) -> Path:
    """Write the LDAC catalogue of ``result`` (an :class:`~terapix_fw.sim.ExposureResult`) to ``path``.

    Positions are FITS 1-based like SExtractor's; FLUXERR_AUTO is the Poisson error of the source plus
    the sky under a 2-FWHM aperture, so SCAMP's S/N cuts behave as on real catalogues.

    Parameters
    ----------
    result : ExposureResult
    path : str or Path
    maglim : float
        Faintest magnitude listed.
    pos_err : float
        Position error (pixels) added to the true positions.
    seed : int
    include_saturated : bool
        Also list saturated stars.

    Returns
    -------
    Path
    """
    from astropy.io import fits
    from astropy.table import Table

    from ..ldac import LdacExtension, write_ldac

    rng = np.random.default_rng([seed, 99])
    truth = result.truth
    sky = float(result.meta.get("sky_adu", 0.0))
    exts = []
    with fits.open(result.path) as hdul:
        for i, ccd in enumerate(result.focal_plane.ccds):
            hdu = hdul[i + 1]
            sel = (truth["CCD"] == ccd.number) & (truth["MAG"] < maglim)
            if not include_saturated:
                sel &= ~truth["SATURATED"]
            t = truth[sel]
            n = len(t)
            gain = float(hdu.header.get("GAIN", 1.0))
            fwhm_px = np.asarray(t["FWHM_PSF"]) / result.focal_plane.pixscale
            area = np.pi * fwhm_px ** 2
            obj = Table()
            obj["XWIN_IMAGE"] = np.asarray(t["X_IMAGE"]) + rng.normal(0.0, pos_err, n)
            obj["YWIN_IMAGE"] = np.asarray(t["Y_IMAGE"]) + rng.normal(0.0, pos_err, n)
            obj["ERRAWIN_IMAGE"] = np.full(n, pos_err, np.float32)
            obj["ERRBWIN_IMAGE"] = np.full(n, pos_err, np.float32)
            obj["ERRTHETAWIN_IMAGE"] = np.zeros(n, np.float32)
            obj["FLUX_AUTO"] = np.asarray(t["FLUX"], np.float32)
            obj["FLUXERR_AUTO"] = np.sqrt(np.asarray(t["FLUX"]) / gain + area * sky / gain).astype(np.float32)
            obj["FLUX_RADIUS"] = (0.5 * fwhm_px + np.asarray(t["RE_ARCSEC"]) / result.focal_plane.pixscale
                                  ).astype(np.float32)
            obj["ELONGATION"] = (1.0 / np.asarray(t["AXIS_RATIO"])).astype(np.float32)
            obj["FLAGS"] = np.zeros(n, np.int16)
            obj["ID"] = np.asarray(t["ID"])
            obj["MAG"] = np.asarray(t["MAG"], np.float32)
            exts.append(LdacExtension(hdu.header.copy(), obj))
    return write_ldac(path, exts)
