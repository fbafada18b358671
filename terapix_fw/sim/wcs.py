"""True and first-guess astrometry of a simulated exposure (TPV, the convention SCAMP and SWarp use).

Model: every CCD of an exposure shares the tangent point ``CRVAL`` (the true pointing) and the TPV
polynomial (the optical distortion of the camera, in degrees of intermediate world coordinates); its
``CRPIX`` is the optical axis in its own pixel frame and its ``CD`` matrix holds the pixel scale, the
east-left flip, the field rotation and the CCD's small placement rotation.  The distortion is common to a
QRUNID (camera run) with small per-exposure changes.

The first-guess header (what a raw MegaCam header carries) uses the same CRPIX but a CRVAL off by
``offset`` arcsec, a CD matrix rotated by ``rotation`` degrees and no distortion terms (``RA---TAN``).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from .focalplane import CCD, FocalPlane

__all__ = ["tpv_forward", "tpv_inverse", "tan_project", "tan_deproject", "Distortion", "ExposureWCS",
           "qrun_distortion"]

NPV = 11  # TPV terms up to 3rd order: 1, x, y, r, x2, xy, y2, x3, x2y, xy2, y3


def _terms(x, y, radial: bool = True):
    # the radial term r is only computed when its coefficient is used (it never is in our model)
    r = np.hypot(x, y) if radial else 0.0
    x2, y2 = x * x, y * y
    return [1.0, x, y, r, x2, x * y, y2, x2 * x, x2 * y, x * y2, y2 * y]


def tpv_forward(x, y, pv1, pv2):
    """Intermediate coordinates (deg) -> distorted projection-plane coordinates (xi, eta) in deg.

    TPV swaps the roles of x and y for the second axis: ``eta = sum PV2_i * term_i(y, x)``.

    Parameters
    ----------
    x, y : array_like
        Intermediate coordinates (deg).
    pv1, pv2 : sequence of float
        PV1_0.. and PV2_0.. coefficients.

    Returns
    -------
    tuple of numpy.ndarray
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    t1 = _terms(x, y, pv1[3] != 0.0)
    t2 = _terms(y, x, pv2[3] != 0.0)
    xi = sum(c * t for c, t in zip(pv1, t1) if c != 0.0)
    eta = sum(c * t for c, t in zip(pv2, t2) if c != 0.0)
    return xi + 0.0 * x, eta + 0.0 * y


def tpv_inverse(xi, eta, pv1, pv2, niter: int = 20):
    """Invert :func:`tpv_forward` by Newton iterations (numerical Jacobian; converges to ~1e-14 deg).

    Parameters
    ----------
    xi, eta : array_like
        Degrees.
    pv1, pv2 : sequence of float
    niter : int

    Returns
    -------
    tuple of numpy.ndarray
    """
    xi = np.asarray(xi, float)
    eta = np.asarray(eta, float)
    x, y = xi.copy(), eta.copy()
    h = 1e-7
    for _ in range(niter):
        fx, fy = tpv_forward(x, y, pv1, pv2)
        rx, ry = fx - xi, fy - eta
        if np.all(np.abs(rx) < 1e-14) and np.all(np.abs(ry) < 1e-14):
            break
        ax, ay = tpv_forward(x + h, y, pv1, pv2)
        bx, by = tpv_forward(x, y + h, pv1, pv2)
        j11, j21 = (ax - fx) / h, (ay - fy) / h
        j12, j22 = (bx - fx) / h, (by - fy) / h
        det = j11 * j22 - j12 * j21
        x = x - (j22 * rx - j12 * ry) / det
        y = y - (-j21 * rx + j11 * ry) / det
    return x, y


def tan_project(ra, dec, ra0, dec0):
    """Gnomonic projection: (ra, dec) deg -> (xi, eta) deg about the tangent point (ra0, dec0).

    Parameters
    ----------
    ra, dec : array_like
    ra0, dec0 : float

    Returns
    -------
    tuple of numpy.ndarray
    """
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def tan_deproject(xi, eta, ra0, dec0):
    """Inverse gnomonic projection: (xi, eta) deg -> (ra, dec) deg.

    Parameters
    ----------
    xi, eta : array_like
    ra0, dec0 : float

    Returns
    -------
    tuple of numpy.ndarray
    """
    x, y = np.radians(xi), np.radians(eta)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    den = np.cos(d0) - y * np.sin(d0)
    ra = a0 + np.arctan2(x, den)
    dec = np.arctan2(np.sin(d0) + y * np.cos(d0), np.hypot(x, den))
    return np.degrees(ra) % 360.0, np.degrees(dec)


@dataclass(frozen=True)
class Distortion:
    """TPV coefficients PV1_0..PV1_10 and PV2_0..PV2_10 (intermediate coordinates in degrees)."""

    pv1: tuple[float, ...]
    pv2: tuple[float, ...]

    def perturbed(self, rng: np.random.Generator, amplitude_deg: float, radius_deg: float) -> "Distortion":
        """Small random changes of the 2nd and 3rd order terms, each moving a corner by ~amplitude.

        Parameters
        ----------
        rng : numpy.random.Generator
        amplitude_deg : float
        radius_deg : float

        Returns
        -------
        Distortion
        """
        pv1, pv2 = list(self.pv1), list(self.pv2)
        for i in range(4, NPV):
            order = 2 if i < 7 else 3
            pv1[i] += rng.normal(0.0, amplitude_deg / radius_deg ** order)
            pv2[i] += rng.normal(0.0, amplitude_deg / radius_deg ** order)
        return Distortion(tuple(pv1), tuple(pv2))


def _stable_int(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def qrun_distortion(seed: int, qrunid: str, radius_deg: float, amplitude_arcsec: float = 4.0) -> Distortion:
    """The true distortion of a camera run: a cubic pincushion moving the field corner (at ``radius_deg``
    from the axis) by ``amplitude_arcsec``, plus run-specific 2nd/3rd order terms ~5% as large.

    Parameters
    ----------
    seed : int
    qrunid : str
        The camera run.
    radius_deg : float
    amplitude_arcsec : float

    Returns
    -------
    Distortion
    """
    k = amplitude_arcsec / 3600.0 / radius_deg ** 3
    pv1 = [0.0] * NPV
    pv2 = [0.0] * NPV
    pv1[1] = pv2[1] = 1.0
    # xi = x (1 + k r^2): x^3 and x y^2 terms; for eta the roles are swapped (y^3, y x^2)
    pv1[7] = pv1[9] = k
    pv2[7] = pv2[9] = k
    base = Distortion(tuple(pv1), tuple(pv2))
    rng = np.random.default_rng([seed, _stable_int(qrunid), 77])
    return base.perturbed(rng, 0.05 * amplitude_arcsec / 3600.0, radius_deg)


@dataclass
class ExposureWCS:
    """Astrometry of one exposure: true pointing, field rotation (deg), distortion, and the first-guess
    errors (``offset_arcsec`` in direction ``offset_pa`` deg east of north, ``rotation_deg``)."""

    focal_plane: FocalPlane
    ra: float
    dec: float
    distortion: Distortion
    field_rotation: float = 0.0
    offset_arcsec: float = 3.0
    offset_pa: float = 0.0
    rotation_deg: float = 0.02

    def _lin(self, rot_deg: float) -> np.ndarray:
        s = self.focal_plane.pixscale / 3600.0
        c, n = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))
        return np.array([[-s, 0.0], [0.0, s]]) @ np.array([[c, -n], [n, c]])

    def focal_to_world(self, u, v):
        """Focal-plane (u, v) pixels -> (ra, dec) degrees through the true rotation and distortion.

        Parameters
        ----------
        u, v : array_like

        Returns
        -------
        tuple of numpy.ndarray
        """
        m = self._lin(self.field_rotation)
        x = m[0, 0] * np.asarray(u, float) + m[0, 1] * np.asarray(v, float)
        y = m[1, 0] * np.asarray(u, float) + m[1, 1] * np.asarray(v, float)
        xi, eta = tpv_forward(x, y, self.distortion.pv1, self.distortion.pv2)
        return tan_deproject(xi, eta, self.ra, self.dec)

    def world_to_focal(self, ra, dec):
        """(ra, dec) degrees -> focal-plane (u, v) pixels.

        Parameters
        ----------
        ra, dec : array_like

        Returns
        -------
        tuple of numpy.ndarray
        """
        xi, eta = tan_project(ra, dec, self.ra, self.dec)
        x, y = tpv_inverse(xi, eta, self.distortion.pv1, self.distortion.pv2)
        mi = np.linalg.inv(self._lin(self.field_rotation))
        return mi[0, 0] * x + mi[0, 1] * y, mi[1, 0] * x + mi[1, 1] * y

    def cd_matrix(self, ccd: CCD, extra_rotation: float = 0.0) -> np.ndarray:
        """The CD matrix of a CCD.

        Parameters
        ----------
        ccd : CCD
        extra_rotation : float
            Degrees added to the field rotation (a first guess's error).

        Returns
        -------
        numpy.ndarray
        """
        return self._lin(self.field_rotation + extra_rotation) @ ccd.matrix()

    def guess_crval(self) -> tuple[float, float]:
        """The first-guess pointing: the true one moved by ``offset_arcsec`` towards ``offset_pa``.

        Returns
        -------
        tuple of (float, float)
        """
        d = self.offset_arcsec / 3600.0
        pa = math.radians(self.offset_pa)
        ra, dec = tan_deproject(d * math.sin(pa), d * math.cos(pa), self.ra, self.dec)
        return float(ra), float(dec)

    def header(self, ccd: CCD, true: bool = True):
        """The WCS cards of ``ccd`` as an astropy Header: the true TPV solution or the first guess.

        Parameters
        ----------
        ccd : CCD
        true : bool
            True solution (else the first guess).

        Returns
        -------
        astropy.io.fits.Header
        """
        from astropy.io import fits
        hdr = fits.Header()
        crpix = ccd.crpix()
        if true:
            cd = self.cd_matrix(ccd)
            crval = (self.ra, self.dec)
            ctype = ("RA---TPV", "DEC--TPV")
        else:
            cd = self.cd_matrix(ccd, self.rotation_deg)
            crval = self.guess_crval()
            ctype = ("RA---TAN", "DEC--TAN")
        hdr["EQUINOX"] = (2000.0, "Mean equinox")
        hdr["RADESYS"] = ("ICRS", "Astrometric system")
        hdr["CTYPE1"] = (ctype[0], "WCS projection type for this axis")
        hdr["CTYPE2"] = (ctype[1], "WCS projection type for this axis")
        hdr["CUNIT1"] = ("deg", "Axis unit")
        hdr["CUNIT2"] = ("deg", "Axis unit")
        hdr["CRVAL1"] = (float(crval[0]), "World coordinate on this axis")
        hdr["CRVAL2"] = (float(crval[1]), "World coordinate on this axis")
        hdr["CRPIX1"] = (crpix[0], "Reference pixel on this axis")
        hdr["CRPIX2"] = (crpix[1], "Reference pixel on this axis")
        hdr["CD1_1"] = (float(cd[0, 0]), "Linear projection matrix")
        hdr["CD1_2"] = (float(cd[0, 1]), "Linear projection matrix")
        hdr["CD2_1"] = (float(cd[1, 0]), "Linear projection matrix")
        hdr["CD2_2"] = (float(cd[1, 1]), "Linear projection matrix")
        if true:
            for axis, pv in ((1, self.distortion.pv1), (2, self.distortion.pv2)):
                for i, c in enumerate(pv):
                    hdr[f"PV{axis}_{i}"] = (float(c), "Projection distortion parameter")
        return hdr
