"""Output-to-input pixel mapping, exact (astropy WCS) and approximated on a coarse grid (PROJECTION_ERR).

SWarp never calls the WCS library for every output pixel: it tabulates the mapping on a coarse grid and
interpolates it, with the grid made fine enough that the interpolation error stays below PROJECTION_ERR
(output pixels).  We do the same: the exact mapping (astropy, which handles TAN/TPV/SIP and every
projection wcslib knows) is evaluated at grid nodes, interpolated with 4-point cubic Lagrange
polynomials along y then x, and the step is halved until the error measured at every cell centre is
below PROJECTION_ERR.  PROJECTION_ERR 0 means a node at every output pixel (an exact mapping).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from terapix_fw.wcsutil import world_to_pixel

__all__ = ["PixelMap", "MapGrid", "build_grid", "celestial_frame", "same_system"]

_EQUATORIAL = ("RA", "DEC")


def _system(wcs) -> str:
    """The celestial system of a WCS from its CTYPE prefix: EQUATORIAL, GALACTIC, ECLIPTIC, SUPERGALACTIC."""
    ctype = wcs.wcs.ctype[wcs.wcs.lng].upper()
    prefix = ctype.split("-")[0]
    return {"RA": "EQUATORIAL", "GLON": "GALACTIC", "ELON": "ECLIPTIC", "SLON": "SUPERGALACTIC"}.get(
        prefix, prefix)


def celestial_frame(system: str):
    """The astropy frame for a SWarp CELESTIAL_TYPE."""
    from astropy.coordinates import BarycentricMeanEcliptic, Galactic, ICRS, Supergalactic

    return {"EQUATORIAL": ICRS(), "GALACTIC": Galactic(), "ECLIPTIC": BarycentricMeanEcliptic(),
            "SUPERGALACTIC": Supergalactic()}[system]


def same_system(wcs_a, wcs_b) -> bool:
    return _system(wcs_a) == _system(wcs_b)


def convert_lonlat(lon, lat, from_system: str, to_system: str):
    """Convert celestial coordinates (deg) between systems.  Equatorial to equatorial is the identity:
    SWarp treats every equatorial header alike (ICRS and FK5 J2000 agree to well below 0.1")."""
    if from_system == to_system:
        return lon, lat
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    coord = SkyCoord(np.asarray(lon) * u.deg, np.asarray(lat) * u.deg, frame=celestial_frame(from_system))
    out = coord.transform_to(celestial_frame(to_system)).spherical
    return out.lon.deg, out.lat.deg


class PixelMap:
    """Exact mapping between the pixel grids of two celestial WCSs (1-based FITS pixel coordinates)."""

    def __init__(self, in_wcs, out_wcs):
        self.in_wcs = in_wcs
        self.out_wcs = out_wcs
        self.in_system = _system(in_wcs)
        self.out_system = _system(out_wcs)

    @staticmethod
    def _pix2world(wcs, x, y):
        world = wcs.all_pix2world(np.column_stack([x, y]), 1)
        return world[:, wcs.wcs.lng], world[:, wcs.wcs.lat]

    @staticmethod
    def _world2pix(wcs, lon, lat):
        world = np.empty((len(lon), 2))
        world[:, wcs.wcs.lng] = lon
        world[:, wcs.wcs.lat] = lat
        pix = world_to_pixel(wcs, world, 1)  # astropy's inverse, with Newton where it diverges
        return pix[:, 0], pix[:, 1]

    def out_to_in(self, x, y):
        x = np.asarray(x, dtype=float).ravel()
        y = np.asarray(y, dtype=float).ravel()
        lon, lat = self._pix2world(self.out_wcs, x, y)
        lon, lat = convert_lonlat(lon, lat, self.out_system, self.in_system)
        return self._world2pix(self.in_wcs, lon, lat)

    def in_to_out(self, x, y):
        x = np.asarray(x, dtype=float).ravel()
        y = np.asarray(y, dtype=float).ravel()
        lon, lat = self._pix2world(self.in_wcs, x, y)
        lon, lat = convert_lonlat(lon, lat, self.in_system, self.out_system)
        return self._world2pix(self.out_wcs, lon, lat)

    @staticmethod
    def pixel_area(wcs, x, y):
        """Sky area of the pixel at (x, y) as SWarp's ``wcs_scale``: forward differences of one pixel
        along each axis, longitude differences times cos(latitude) (deg^2)."""
        x = np.asarray(x, dtype=float).ravel()
        y = np.asarray(y, dtype=float).ravel()
        n = len(x)
        lon, lat = PixelMap._pix2world(wcs, np.concatenate([x, x + 1, x]), np.concatenate([y, y, y + 1]))
        d1 = (lon[n:2 * n] - lon[:n] + 180.0) % 360.0 - 180.0
        d2 = (lon[2 * n:] - lon[:n] + 180.0) % 360.0 - 180.0
        return np.abs((d1 * (lat[2 * n:] - lat[:n]) - (lat[n:2 * n] - lat[:n]) * d2) * np.cos(np.radians(lat[:n])))

    def area_ratio(self, x, y):
        """Output/input pixel-area ratio at output positions (x, y), computed as SWarp does: the area of
        the output pixel over that of the input pixel it maps to, each by one-pixel forward differences.
        (With strong distortions this differs from the Jacobian of the mapping at the 1e-4 level.)"""
        x = np.asarray(x, dtype=float).ravel()
        y = np.asarray(y, dtype=float).ravel()
        xi, yi = self.out_to_in(x, y)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.pixel_area(self.out_wcs, x, y) / self.pixel_area(self.in_wcs, xi, yi)


@dataclass
class MapGrid:
    """Input positions (and optionally area ratios) of output grid nodes.

    Node (j, i) is at output position (x0 + i * step, y0 + j * step), 1-based.
    """

    gx: np.ndarray
    gy: np.ndarray
    garea: np.ndarray
    x0: float
    y0: float
    step: float
    max_error: float


def _nodes(lo: float, hi: float, step: float) -> np.ndarray:
    # one extra node on each side so the 4-point stencil never leaves the grid
    n = int(np.ceil((hi - lo) / step)) + 3
    return lo - step + step * np.arange(n + 1)


def build_grid(pmap: PixelMap, xmin: int, xmax: int, ymin: int, ymax: int, proj_err: float,
               variable_area: bool = False, start_step: float = 128.0) -> MapGrid:
    """Tabulate the output->input mapping over output pixels [xmin, xmax] x [ymin, ymax] (1-based).

    The step starts at ``start_step`` output pixels and is halved until the cubic interpolation error
    at the cell centres is below ``proj_err`` pixels (or a node sits on every pixel).
    """
    from .kernels import mapping_rows

    lo_x, hi_x = xmin - 1.0, xmax + 1.0
    lo_y, hi_y = ymin - 1.0, ymax + 1.0
    span = max(hi_x - lo_x, hi_y - lo_y)
    step = 1.0 if proj_err <= 0 else float(min(start_step, max(1.0, 2.0 ** np.floor(np.log2(span / 3)))))
    while True:
        xs = _nodes(lo_x, hi_x, step)
        ys = _nodes(lo_y, hi_y, step)
        xx, yy = np.meshgrid(xs, ys)
        gx, gy = pmap.out_to_in(xx, yy)
        gx = gx.reshape(xx.shape)
        gy = gy.reshape(xx.shape)
        if step <= 1.0 or proj_err <= 0:
            err = 0.0
            break
        # check at cell centres inside the requested area
        cx = xs[1:-2] + step / 2
        cy = ys[1:-2] + step / 2
        cxx, cyy = np.meshgrid(cx, cy)
        ex, ey = pmap.out_to_in(cxx, cyy)
        ax, ay = mapping_rows(gx, gy, xs[0], ys[0], step, cx, cy)
        good = np.isfinite(ex) & np.isfinite(ey)
        diff = np.hypot(ax.ravel() - ex, ay.ravel() - ey)[good]
        err = float(diff.max()) if diff.size else 0.0
        if err <= proj_err:
            break
        step /= 2.0
    garea = np.zeros((1, 1))
    if variable_area:
        garea = pmap.area_ratio(xx, yy).reshape(xx.shape)
    if not (np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))):
        # points without a valid projection (beyond a projection's boundary) are sent far away
        bad = ~(np.isfinite(gx) & np.isfinite(gy))
        gx[bad] = -1e9
        gy[bad] = -1e9
    return MapGrid(gx=np.ascontiguousarray(gx), gy=np.ascontiguousarray(gy),
                   garea=np.ascontiguousarray(garea), x0=float(xs[0]), y0=float(ys[0]), step=step,
                   max_error=err)
