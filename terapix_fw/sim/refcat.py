"""Astrometric reference catalogues in the FITS_LDAC layout SCAMP reads with ``ASTREF_CATALOG FILE``.

Layout: an empty primary HDU, a ``LDAC_IMHEAD`` table (one row, column ``Field Header Card`` holding a
header as 80-character cards, TDIM (80, n)), and a ``LDAC_OBJECTS`` table with SCAMP's default local
reference keys: ``X_WORLD, Y_WORLD`` (ASTREFCENT_KEYS, deg), ``ERRA_WORLD, ERRB_WORLD, ERRTHETA_WORLD``
(ASTREFERR_KEYS, deg/deg/deg), ``MAG, MAGERR`` (ASTREFMAG_KEY, ASTREFMAGERR_KEY) and ``OBSDATE``
(ASTREFOBSDATE_KEY, Julian years).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ldac import LdacExtension, write_ldac
from .sky import SourceList

__all__ = ["reference_errors", "write_reference_catalog"]


def reference_errors(mag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positional (arcsec, per axis) and magnitude errors of a Gaia/SDSS-like reference catalogue:
    20 mas at the bright end rising to ~120 mas at mag 21.

    Parameters
    ----------
    mag : numpy.ndarray

    Returns
    -------
    tuple of numpy.ndarray
        Position error (arcsec) and magnitude error.
    """
    f = 10.0 ** (0.4 * (np.asarray(mag) - 21.0))
    return 0.02 + 0.1 * f, 0.003 + 0.03 * f


def write_reference_catalog(path: str | Path, sources: SourceList, band: str = "r", maglim: float = 21.0,
                            seed: int = 0, epoch: float = 2000.0) -> int:
    """Write the stars of ``sources`` brighter than ``maglim`` in ``band`` with realistic errors (positions
    and magnitudes perturbed by them, reproducibly for ``seed``).  Returns the number of objects.

    Parameters
    ----------
    path : str or Path
    sources : SourceList
    band : str
    maglim : float
    seed : int
    epoch : float

    Returns
    -------
    int
    """
    from astropy.io import fits
    stars = sources.take((sources.kind == 0) & (sources.mag(band) <= maglim))
    order = np.argsort(stars.id, kind="stable")
    stars = stars.take(order)
    mag = stars.mag(band)
    sig_pos, sig_mag = reference_errors(mag)
    rng = np.random.default_rng([seed, 31337])
    # Per-object generator draws would be order-independent but slow; sorting by id keeps them stable.
    dra = rng.normal(0.0, 1.0, len(stars)) * sig_pos / 3600.0 / np.cos(np.radians(stars.dec))
    ddec = rng.normal(0.0, 1.0, len(stars)) * sig_pos / 3600.0
    dmag = rng.normal(0.0, 1.0, len(stars)) * sig_mag
    cols = [
        fits.Column(name="X_WORLD", format="1D", unit="deg", array=(stars.ra + dra) % 360.0),
        fits.Column(name="Y_WORLD", format="1D", unit="deg", array=stars.dec + ddec),
        fits.Column(name="ERRA_WORLD", format="1E", unit="deg", array=sig_pos / 3600.0),
        fits.Column(name="ERRB_WORLD", format="1E", unit="deg", array=sig_pos / 3600.0),
        fits.Column(name="ERRTHETA_WORLD", format="1E", unit="deg", array=np.zeros(len(stars))),
        fits.Column(name="MAG", format="1E", unit="mag", array=mag + dmag),
        fits.Column(name="MAGERR", format="1E", unit="mag", array=sig_mag),
        fits.Column(name="OBSDATE", format="1D", unit="yr", array=np.full(len(stars), epoch)),
        fits.Column(name="SOURCE_ID", format="1K", array=stars.id),
    ]
    objects = fits.BinTableHDU.from_columns(cols)
    objects.header["EXTNAME"] = "LDAC_OBJECTS"
    head = fits.Header()
    head["ORIGIN"] = ("terapix-fw simulator", "reference catalogue of simulated stars")
    head["REFBAND"] = (band, "band of the MAG column")
    head["REFMAGLI"] = (maglim, "faintest magnitude included")
    head["EPOCH"] = (epoch, "epoch of the positions (Julian year)")
    write_ldac(path, [LdacExtension(head, objects)])
    return len(stars)
