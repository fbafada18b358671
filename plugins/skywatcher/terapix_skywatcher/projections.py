"""Map projections of the sky, and sky polygons and lines cut at the projection's edge.

Every projection comes from a maintained library; nothing here re-derives a projection formula:

=============================  =======================================================================
``AITOFF``                     matplotlib's ``AitoffAxes.AitoffTransform`` (Aitoff 1889; not a FITS WCS)
``HAMMER``                     astropy.wcs ``AIT`` (the FITS "Hammer-Aitoff" equal-area projection)
``MOLLWEIDE``                  astropy.wcs ``MOL``
``SINUSOIDAL``                 astropy.wcs ``SFL`` (Sanson-Flamsteed)
``PLATE_CARREE``               astropy.wcs ``CAR``
``CYLINDRICAL_EQUAL_AREA``     astropy.wcs ``CEA`` (lambda = 1: Lambert's)
``GNOMONIC``                   astropy.wcs ``TAN``, tangent at the field centre (zoomed fields)
=============================  =======================================================================

Plane coordinates are degrees (WCS intermediate world coordinates, ``CDELT = 1``) with x growing to the
**west**, so that east is on the left as on the sky.  All-sky projections are centred on ``RA = lon0``,
``Dec = 0``; their edge is the meridian ``lon0 + 180``.  A footprint or a line crossing that meridian is cut
in (RA, Dec) along it (:func:`split_polygon`), each piece projected on its own side; a footprint around a
pole is closed along the pole's edge of the map.  Edges are sampled densely enough (CCD edges through the
CCD's WCS, see :mod:`.footprints`) that straight segments between samples are exact to the plot's pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PROJECTIONS", "Projection", "split_polygon", "split_line", "densify_lonlat", "densify_pieces"]

PROJECTIONS = {"AITOFF": None, "HAMMER": "AIT", "MOLLWEIDE": "MOL", "SINUSOIDAL": "SFL", "PLATE_CARREE": "CAR",
               "CYLINDRICAL_EQUAL_AREA": "CEA", "GNOMONIC": "TAN"}


@dataclass
class Projection:
    """A sky projection centred on (``lon0``, ``lat0``); ``lat0`` is used by GNOMONIC only."""

    name: str
    lon0: float = 0.0
    lat0: float = 0.0

    def __post_init__(self):
        from astropy.wcs import WCS

        if self.name not in PROJECTIONS:
            raise ValueError(f"projection {self.name!r}: expected one of {', '.join(PROJECTIONS)}")
        code = PROJECTIONS[self.name]
        self.wcs = None
        if code is not None:
            w = WCS(naxis=2)
            w.wcs.ctype = [f"RA---{code}", f"DEC--{code}"]
            w.wcs.crval = [self.lon0 % 360.0, self.lat0 if code == "TAN" else 0.0]
            w.wcs.crpix = [0.0, 0.0]
            w.wcs.cdelt = [-1.0, 1.0]  # pixel x = minus the intermediate x: east to the left
            if code == "CEA":
                w.wcs.set_pv([(2, 1, 1.0)])
            w.wcs.set()
            self.wcs = w

    @property
    def all_sky(self) -> bool:
        return self.name != "GNOMONIC"

    def forward(self, ra, dec) -> tuple[np.ndarray, np.ndarray]:
        """Plane (x, y) in degrees of (RA, Dec) in degrees; NaN where the projection is undefined
        (the far hemisphere of GNOMONIC).  For all-sky projections, RA is first brought within 180
        degrees of ``lon0`` (points on the edge meridian go to the east edge, x < 0)."""
        ra = np.asarray(ra, float)
        dec = np.asarray(dec, float)
        if self.name == "GNOMONIC":
            # far side of the tangent plane: undefined
            c = np.sin(np.deg2rad(dec)) * np.sin(np.deg2rad(self.lat0)) + np.cos(np.deg2rad(dec)) * \
                np.cos(np.deg2rad(self.lat0)) * np.cos(np.deg2rad(ra - self.lon0))
            x, y = self.wcs.wcs_world2pix(ra.ravel() % 360.0, dec.ravel(), 1)  # CRPIX 0, origin 1: plane = pixel
            bad = (c <= 1e-6).ravel()
            x[bad] = np.nan
            y[bad] = np.nan
            return x.reshape(ra.shape), y.reshape(ra.shape)
        return self.forward_rel(self.relative_lon(ra), dec)

    def forward_rel(self, rel, dec) -> tuple[np.ndarray, np.ndarray]:
        """Plane (x, y) of longitudes relative to ``lon0`` in [-180, 180] (pieces of :func:`split_polygon`:
        -180 is the west edge, +180 the east edge) and declinations."""
        rel = np.asarray(rel, float)
        dec = np.asarray(dec, float)
        if self.name == "GNOMONIC":
            return self.forward(self.lon0 + rel, dec)
        # wcslib puts a point on the edge meridian at either side: keep it on the side asked for
        rel = np.clip(rel, -179.999999, 179.999999)
        if self.wcs is None:  # Aitoff, via matplotlib
            from matplotlib.projections.geo import AitoffAxes

            xy = AitoffAxes.AitoffTransform(resolution=1).transform_non_affine(
                np.column_stack([np.deg2rad(rel).ravel(), np.deg2rad(dec).ravel()]))
            # matplotlib's transform gives x / 2 (its axes stretch x by 2 afterwards): Aitoff's x is twice it
            return -2.0 * np.rad2deg(xy[:, 0]).reshape(rel.shape), np.rad2deg(xy[:, 1]).reshape(rel.shape)
        x, y = self.wcs.wcs_world2pix((self.lon0 + rel).ravel() % 360.0, dec.ravel(), 1)
        return x.reshape(rel.shape), y.reshape(rel.shape)

    def relative_lon(self, ra) -> np.ndarray:
        """RA minus ``lon0`` in (-180, 180]."""
        rel = (np.asarray(ra, float) - self.lon0 + 180.0) % 360.0 - 180.0
        return np.where(rel == -180.0, 180.0, rel)


def densify_lonlat(lon, lat, step: float = 1.0, closed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Insert points on straight (lon, lat) segments so that no step exceeds ``step`` degrees (boxes with
    edges of constant RA or Dec, the graticule)."""
    lon = np.asarray(lon, float)
    lat = np.asarray(lat, float)
    if closed:
        lon = np.append(lon, lon[0])
        lat = np.append(lat, lat[0])
    out_lon, out_lat = [], []
    for i in range(len(lon) - 1):
        n = max(1, int(np.ceil(max(abs(lon[i + 1] - lon[i]), abs(lat[i + 1] - lat[i])) / step)))
        t = np.arange(n) / n
        out_lon.append(lon[i] + t * (lon[i + 1] - lon[i]))
        out_lat.append(lat[i] + t * (lat[i + 1] - lat[i]))
    if not closed:
        out_lon.append(lon[-1:])
        out_lat.append(lat[-1:])
    return np.concatenate(out_lon), np.concatenate(out_lat)


def _densify_great_circles(ra, dec, max_dlon: float = 2.0):
    """Insert points along the great circle between consecutive vertices of a closed outline where the
    longitude jumps by more than ``max_dlon`` (near a pole a short edge spans many degrees of longitude,
    and its projection is not the chord between its ends)."""
    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    dlon = np.abs((np.roll(ra, -1) - ra + 180.0) % 360.0 - 180.0)
    if dlon.max(initial=0.0) <= max_dlon:
        return ra, dec
    v = np.column_stack([np.cos(np.deg2rad(dec)) * np.cos(np.deg2rad(ra)),
                         np.cos(np.deg2rad(dec)) * np.sin(np.deg2rad(ra)), np.sin(np.deg2rad(dec))])
    out = []
    for i in range(len(ra)):
        a, b = v[i], v[(i + 1) % len(ra)]
        n = max(1, int(np.ceil(dlon[i] / max_dlon)))
        t = (np.arange(n) / n)[:, None]
        omega = np.arccos(np.clip(a @ b, -1.0, 1.0))
        if omega < 1e-12:
            out.append(np.repeat(a[None, :], n, axis=0))
        else:  # slerp: points on the great circle from a to b
            out.append((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega))
    p = np.concatenate(out)
    return np.rad2deg(np.arctan2(p[:, 1], p[:, 0])) % 360.0, np.rad2deg(np.arcsin(np.clip(p[:, 2], -1.0, 1.0)))


def densify_pieces(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Points inserted (linearly in lon, lat) along the long segments of a closed piece: the cut along the
    edge meridian and the closure at a pole are lines of constant longitude or latitude, curved on most
    projections; within 1 degree of a pole the latitude step is 0.002 degree (there a meridian's image
    bends sharply, e.g. as the square root of the distance to the pole on Mollweide's map)."""
    lon = np.asarray(lon, float)
    lat = np.asarray(lat, float)
    nxt_lon, nxt_lat = np.roll(lon, -1), np.roll(lat, -1)
    dlon, dlat = np.abs(nxt_lon - lon), np.abs(nxt_lat - lat)
    polar = np.maximum(np.abs(lat), np.abs(nxt_lat)) > 89.0
    n = np.maximum(1, np.ceil(np.maximum(dlon / 2.0, dlat / np.where(polar, 0.002, 0.1)))).astype(int)
    if (n == 1).all():
        return lon, lat
    out_lon = [lon[i] + np.arange(k) / k * (nxt_lon[i] - lon[i]) for i, k in enumerate(n)]
    out_lat = [lat[i] + np.arange(k) / k * (nxt_lat[i] - lat[i]) for i, k in enumerate(n)]
    return np.concatenate(out_lon), np.concatenate(out_lat)


def _clip_half(lon, lat, limit: float, keep_below: bool):
    """Sutherland-Hodgman clip of a closed (lon, lat) polygon by the half-plane lon <= limit (or >=)."""
    n = len(lon)
    out_lon, out_lat = [], []
    inside = (lon <= limit) if keep_below else (lon >= limit)
    for i in range(n):
        j = (i + 1) % n
        if inside[i]:
            out_lon.append(lon[i])
            out_lat.append(lat[i])
        if inside[i] != inside[j]:
            t = (limit - lon[i]) / (lon[j] - lon[i])
            out_lon.append(limit)
            out_lat.append(lat[i] + t * (lat[j] - lat[i]))
    return np.array(out_lon), np.array(out_lat)


def split_polygon(proj: Projection, ra, dec) -> list[tuple[np.ndarray, np.ndarray]]:
    """The pieces, as (RA-relative lon, Dec) arrays, of a closed sky polygon drawn on ``proj``.

    The polygon's longitudes are unwrapped along its outline; one that winds once around a pole (a
    footprint containing the pole) is closed along that pole.  Pieces beyond the edge meridian are
    shifted by 360 degrees to the other side.  For GNOMONIC the polygon is returned whole (if on the near
    hemisphere).
    """
    if not proj.all_sky:
        return [(proj.relative_lon(ra), np.asarray(dec, float))]
    ra, dec = _densify_great_circles(ra, dec)
    rel = proj.relative_lon(ra)
    lon = np.rad2deg(np.unwrap(np.deg2rad(rel)))
    winding = lon[-1] + ((lon[0] - lon[-1] + 180.0) % 360.0 - 180.0) - lon[0]
    if abs(winding) > 180.0:  # winds around a pole: close along the pole's edge
        pole = 90.0 if np.mean(dec) > 0 else -90.0
        end = lon[0] + winding
        lon = np.concatenate([lon, [end, end, lon[0]]])
        dec = np.concatenate([dec, [dec[0], pole, pole]])
    pieces = []
    # the polygon spans at most [lo, lo + 360 + a bit]: try the three 360-degree shifts
    for shift in (-360.0, 0.0, 360.0):
        plon = lon + shift
        if plon.max() <= -180.0 or plon.min() >= 180.0:
            continue
        clon, clat = _clip_half(plon, dec, 180.0, keep_below=True)
        if len(clon) < 3:
            continue
        clon, clat = _clip_half(clon, clat, -180.0, keep_below=False)
        if len(clon) >= 3:
            pieces.append((clon, clat))
    return pieces


def split_line(proj: Projection, ra, dec) -> list[tuple[np.ndarray, np.ndarray]]:
    """An open sky line (galactic plane, ecliptic, graticule) cut where it crosses the edge meridian."""
    rel = proj.relative_lon(ra)
    dec = np.asarray(dec, float)
    if not proj.all_sky:
        return [(rel, dec)]
    jumps = np.flatnonzero(np.abs(np.diff(rel)) > 180.0) + 1
    return [(a, b) for a, b in zip(np.split(rel, jumps), np.split(dec, jumps)) if len(a) > 1]
