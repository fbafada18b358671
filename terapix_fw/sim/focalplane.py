"""Focal-plane geometry: CCD sizes, layout, gaps and the small placement errors of each CCD.

Focal-plane coordinates ``(u, v)`` are in pixels, centred on the optical axis, ``u`` along the CCD rows
(FITS x) and ``v`` along the columns (FITS y).  CCD ``k`` maps its FITS 1-based pixel ``(x, y)`` to
``(u, v) = R(rot_k) @ (x - 1, y - 1) + (u0_k, v0_k)``.  CCDs are numbered row by row from the top-left
(north-east with the default orientation, east to the left), like MegaCam's ccd00..ccd35.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CCD", "FocalPlane", "megacam_focal_plane", "small_focal_plane"]


@dataclass(frozen=True)
class CCD:
    """One detector: ``number`` (0-based, EXTNAME ``ccd%02d``), size ``nx`` x ``ny``, position of its pixel
    (1, 1) centre in the focal plane ``(u0, v0)`` (pixels), rotation ``rot`` (radians), gain (e-/ADU),
    read noise (e-) and saturation level (ADU)."""

    number: int
    nx: int
    ny: int
    u0: float
    v0: float
    rot: float = 0.0
    gain: float = 1.6
    rdnoise: float = 5.0
    saturate: float = 65000.0

    @property
    def extname(self) -> str:
        """``ccdNN``."""
        return f"ccd{self.number:02d}"

    def matrix(self) -> np.ndarray:
        """The 2x2 rotation from pixel to focal-plane axes.

        Returns
        -------
        numpy.ndarray
        """
        c, s = math.cos(self.rot), math.sin(self.rot)
        return np.array([[c, -s], [s, c]])

    def pix_to_focal(self, x, y):
        """FITS 1-based pixel -> focal-plane (u, v).

        Parameters
        ----------
        x, y : array_like

        Returns
        -------
        tuple of numpy.ndarray
        """
        m = self.matrix()
        dx, dy = np.asarray(x, float) - 1.0, np.asarray(y, float) - 1.0
        return m[0, 0] * dx + m[0, 1] * dy + self.u0, m[1, 0] * dx + m[1, 1] * dy + self.v0

    def focal_to_pix(self, u, v):
        """Focal-plane (u, v) -> FITS 1-based pixel.

        Parameters
        ----------
        u, v : array_like

        Returns
        -------
        tuple of numpy.ndarray
        """
        m = self.matrix().T  # inverse of a rotation
        du, dv = np.asarray(u, float) - self.u0, np.asarray(v, float) - self.v0
        return m[0, 0] * du + m[0, 1] * dv + 1.0, m[1, 0] * du + m[1, 1] * dv + 1.0

    def crpix(self) -> tuple[float, float]:
        """FITS pixel of the optical axis (the CRPIX of a WCS whose CRVAL is the pointing)."""
        x, y = self.focal_to_pix(0.0, 0.0)
        return float(x), float(y)


@dataclass(frozen=True)
class FocalPlane:
    """A mosaic camera: its CCDs and pixel scale (arcsec/pixel)."""

    ccds: tuple[CCD, ...]
    pixscale: float = 0.186
    name: str = "MegaCam"

    @property
    def nccd(self) -> int:
        """Number of CCDs."""
        return len(self.ccds)

    def extent(self) -> tuple[float, float, float, float]:
        """Focal-plane bounding box (umin, umax, vmin, vmax) in pixels."""
        us, vs = [], []
        for ccd in self.ccds:
            u, v = ccd.pix_to_focal(np.array([0.5, ccd.nx + 0.5, 0.5, ccd.nx + 0.5]),
                                    np.array([0.5, 0.5, ccd.ny + 0.5, ccd.ny + 0.5]))
            us.extend(u)
            vs.extend(v)
        return min(us), max(us), min(vs), max(vs)

    def radius(self) -> float:
        """Largest distance (pixels) of a CCD corner from the optical axis."""
        umin, umax, vmin, vmax = self.extent()
        return math.hypot(max(abs(umin), abs(umax)), max(abs(vmin), abs(vmax)))

    def size_deg(self) -> tuple[float, float]:
        """Width and height of the mosaic in degrees."""
        umin, umax, vmin, vmax = self.extent()
        return (umax - umin) * self.pixscale / 3600.0, (vmax - vmin) * self.pixscale / 3600.0


def _grid(ncol: int, nrow: int, nccd: int, nx: int, ny: int, xgap: float, ygaps: list[float],
          pixscale: float, name: str, placement_error: float, seed: int, gain: float,
          rdnoise: float, saturate: float, flipped_rows: tuple[int, ...] = ()) -> FocalPlane:
    rng = np.random.default_rng([seed, 4242])
    width = ncol * nx + (ncol - 1) * xgap
    height = nrow * ny + sum(ygaps[: nrow - 1])
    ccds = []
    for k in range(nccd):
        row, col = divmod(k, ncol)
        left = -width / 2.0 + col * (nx + xgap)
        top = height / 2.0 - row * ny - sum(ygaps[:row])
        du, dv = rng.normal(0.0, placement_error, 2)
        rot = rng.normal(0.0, 1e-4) if placement_error > 0 else 0.0
        if row in flipped_rows:  # read out from the other side: pixel (1, 1) at the top right
            u0, v0, rot = left + nx - 0.5, top - 0.5, rot + math.pi
        else:
            u0, v0 = left + 0.5, top - ny + 0.5
        ccds.append(CCD(k, nx, ny, u0 + du, v0 + dv, rot,
                        gain=round(gain * rng.uniform(0.9, 1.1), 3),
                        rdnoise=round(rdnoise * rng.uniform(0.85, 1.15), 2),
                        saturate=float(round(saturate * rng.uniform(0.92, 1.0)))))
    return FocalPlane(tuple(ccds), pixscale, name)


def megacam_focal_plane(nx: int = 2048, ny: int = 4612, pixscale: float = 0.186, seed: int = 0,
                        placement_error: float = 1.0, flip_top: bool = True) -> FocalPlane:
    """The CFHT MegaCam mosaic: 36 CCDs of 2048x4612 pixels in 9 columns x 4 rows, 0.186"/px.

    Gaps (from the CCD pitch in SCAMP's ``megacam.ahead``): 103 px between columns, 97 px between the two
    middle rows and 507 px between the outer rows and the middle ones (scaled with ``nx``).  As on MegaCam, the CCDs of the two
    upper rows (ccd00-ccd17) are rotated by 180 degrees (CD1_1 > 0, CD2_2 < 0 in their WCS, as in SCAMP's
    ``megacam.ahead``).  Each CCD is displaced by ``placement_error`` pixels (rms) and rotated by ~1e-4
    rad, fixed by ``seed``.

    Parameters
    ----------
    nx, ny : int
        CCD size (smaller values give a scaled-down MegaCam, gaps scaled alike).
    pixscale : float
        Arcsec per pixel.
    seed : int
    placement_error : float
        Rms error of each CCD's placement (pixels).
    flip_top : bool
        Rotate the top two rows by 180 degrees, as on MegaCam.

    Returns
    -------
    FocalPlane
    """
    f = nx / 2048.0
    return _grid(9, 4, 36, nx, ny, 103 * f, [507 * f, 97 * f, 507 * f], pixscale, "MegaCam",
                 placement_error, seed, 1.6, 5.0, 65000.0, flipped_rows=(0, 1) if flip_top else ())


def small_focal_plane(nccd: int = 4, nx: int = 512, ny: int = 512, pixscale: float = 0.186,
                      gap: float = 20.0, seed: int = 0, placement_error: float = 0.5) -> FocalPlane:
    """A small mosaic for tests: ``nccd`` CCDs of ``nx`` x ``ny`` pixels on a near-square grid with
    ``gap``-pixel gaps (36 CCDs give the MegaCam 9x4 arrangement).

    Parameters
    ----------
    nccd : int
    nx, ny : int
    pixscale : float
    gap : float
        Pixels between CCDs.
    seed : int
    placement_error : float

    Returns
    -------
    FocalPlane

    Raises
    ------
    ValueError
        If ``nccd`` < 1.
    """
    if nccd < 1:
        raise ValueError(f"nccd={nccd}: expected at least 1 CCD")
    if nccd == 36:
        ncol, nrow = 9, 4
    else:
        ncol = int(math.ceil(math.sqrt(nccd)))
        nrow = int(math.ceil(nccd / ncol))
    return _grid(ncol, nrow, nccd, nx, ny, gap, [gap] * nrow, pixscale, f"small{nccd}",
                 placement_error, seed, 1.6, 5.0, 65000.0)
