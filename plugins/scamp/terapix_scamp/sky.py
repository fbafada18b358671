"""Gnomonic (TAN) projection helpers, vectorised, in degrees.

Standard coordinates ``(xi, eta)`` are the tangent-plane coordinates of FITS WCS "intermediate world
coordinates" for a TAN projection: degrees, ``xi`` towards east (increasing RA), ``eta`` towards north.
"""
from __future__ import annotations

import numpy as np

__all__ = ["project", "deproject", "reproject", "reproject_jacobian", "mean_position", "angular_sep"]

_D2R = np.pi / 180.0


def project(ra, dec, ra0: float, dec0: float):
    """Sky (deg) -> standard coordinates (deg) on the tangent plane at (ra0, dec0)."""
    ra = np.asarray(ra, float) * _D2R
    dec = np.asarray(dec, float) * _D2R
    a0, d0 = ra0 * _D2R, dec0 * _D2R
    da = ra - a0
    cosd = np.cos(dec)
    cosc = np.sin(d0) * np.sin(dec) + np.cos(d0) * cosd * np.cos(da)
    xi = cosd * np.sin(da) / cosc
    eta = (np.cos(d0) * np.sin(dec) - np.sin(d0) * cosd * np.cos(da)) / cosc
    return xi / _D2R, eta / _D2R


def deproject(xi, eta, ra0: float, dec0: float):
    """Standard coordinates (deg) on the tangent plane at (ra0, dec0) -> sky (deg)."""
    x = np.asarray(xi, float) * _D2R
    y = np.asarray(eta, float) * _D2R
    d0 = dec0 * _D2R
    denom = np.cos(d0) - y * np.sin(d0)
    ra = ra0 * _D2R + np.arctan2(x, denom)
    dec = np.arctan2(np.sin(d0) + y * np.cos(d0), np.hypot(x, denom))
    return np.mod(ra / _D2R, 360.0), dec / _D2R


def reproject(xi, eta, frm: tuple[float, float], to: tuple[float, float]):
    """Standard coordinates on the plane tangent at ``frm`` -> the plane tangent at ``to``."""
    ra, dec = deproject(xi, eta, *frm)
    return project(ra, dec, *to)


def reproject_jacobian(xi, eta, frm: tuple[float, float], to: tuple[float, float], step: float = 1e-4):
    """Positions on the ``to`` plane and the 2x2 Jacobian d(to)/d(frm) at each point (central differences;
    the map is a smooth projective transform so a 1e-4 deg step is accurate to ~1e-9 relative)."""
    xi = np.asarray(xi, float)
    eta = np.asarray(eta, float)
    x0, y0 = reproject(xi, eta, frm, to)
    xp, yp = reproject(xi + step, eta, frm, to)
    xm, ym = reproject(xi - step, eta, frm, to)
    jac = np.empty(xi.shape + (2, 2))
    jac[..., 0, 0] = (xp - xm) / (2 * step)
    jac[..., 1, 0] = (yp - ym) / (2 * step)
    xp, yp = reproject(xi, eta + step, frm, to)
    xm, ym = reproject(xi, eta - step, frm, to)
    jac[..., 0, 1] = (xp - xm) / (2 * step)
    jac[..., 1, 1] = (yp - ym) / (2 * step)
    return x0, y0, jac


def mean_position(ra, dec) -> tuple[float, float]:
    """Mean direction of a set of sky positions (deg), robust to the RA wrap at 0/360."""
    ra = np.asarray(ra, float) * _D2R
    dec = np.asarray(dec, float) * _D2R
    v = np.array([np.sum(np.cos(dec) * np.cos(ra)), np.sum(np.cos(dec) * np.sin(ra)), np.sum(np.sin(dec))])
    v /= np.linalg.norm(v)
    return float(np.mod(np.arctan2(v[1], v[0]) / _D2R, 360.0)), float(np.arcsin(v[2]) / _D2R)


def angular_sep(ra1, dec1, ra2, dec2):
    """Angular separation (deg), haversine formula."""
    r1, d1, r2, d2 = (np.asarray(v, float) * _D2R for v in (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))) / _D2R
