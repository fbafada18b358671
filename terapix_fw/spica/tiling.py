"""Non-overlapping quanta of a sky area (CFHTLS report: "Basic image quantum will be 1 deg x 1 deg ...
Quanta will be non-overlapping areas on the sky. Each quantum will occupy a fixed area on the sky").

An area is cut into declination strips of ``quantum`` degrees from ``dec_min``; each strip into cells of
about ``quantum / cos(dec)`` degrees of right ascension (one quantum of great circle) from ``ra_min`` (``dec`` being the strip's edge nearest
the equator, where the cell is widest on the sky, so that a quantum's 1 deg square images never overlap
their neighbours').  A strip that reaches a pole is one cap quantum centred on the pole.  The layout
depends only on the area, never on the data, so a quantum keeps its place as the survey grows.  Areas
crossing RA = 0 have ``ra_min > ra_max``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .release import Area

__all__ = ["Quantum", "tile_area", "quantum_of"]


@dataclass(frozen=True)
class Quantum:
    """One cell of an area's tiling: the footprint of one stack.

    Attributes
    ----------
    area : str
    row, col : int
    ra, dec : float
        Centre, degrees.
    ra_lo, ra_hi, dec_lo, dec_hi : float
        Bounds (``ra_lo > ra_hi`` when the cell crosses RA = 0).
    """
    area: str
    row: int
    col: int
    ra: float     # centre, degrees
    dec: float
    ra_lo: float  # cell bounds (ra_lo > ra_hi when the cell crosses RA = 0)
    ra_hi: float
    dec_lo: float
    dec_hi: float

    @property
    def name(self) -> str:
        """``<area>_<row>_<col>``."""
        return f"{self.area}_{self.row}_{self.col}"


def _ra_width(area: Area) -> float:
    return (area.ra_max - area.ra_min) % 360.0 or 360.0


def _strip(area: Area, quantum: float, row: int) -> tuple[float, float, float, int]:
    dec_lo = area.dec_min + row * quantum
    dec_hi = min(dec_lo + quantum, area.dec_max, 90.0)
    widest = 0.0 if dec_lo <= 0.0 <= dec_hi else min(abs(dec_lo), abs(dec_hi))
    if dec_hi >= 90.0 or dec_lo <= -90.0:
        return dec_lo, dec_hi, 360.0, 1  # polar cap: one quantum
    # the RA step whose great-circle chord at the widest edge is one quantum (q / cos(dec) at low
    # declination, more near a pole where the small circle and the great circle part)
    ratio = math.sin(math.radians(quantum) / 2) / math.cos(math.radians(widest))
    if ratio >= 1.0:
        return dec_lo, dec_hi, 360.0, 1
    step = math.degrees(2 * math.asin(ratio))
    ncol = max(1, math.ceil(_ra_width(area) / step - 1e-9))
    return dec_lo, dec_hi, step, ncol


def tile_area(area: Area, quantum: float = 1.0) -> list[Quantum]:
    """The quanta covering ``area``, row by row from ``dec_min``, column by column from ``ra_min``.

    Parameters
    ----------
    area : Area
    quantum : float
        Side of a cell, degrees.

    Returns
    -------
    list of Quantum
    """
    nrow = max(1, math.ceil((area.dec_max - area.dec_min) / quantum - 1e-9))
    out = []
    for row in range(nrow):
        dec_lo, dec_hi, step, ncol = _strip(area, quantum, row)
        if step >= 360.0:
            pole = 90.0 if dec_hi >= 90.0 else -90.0
            out.append(Quantum(area.name, row, 0, 0.0, pole, 0.0, 360.0, dec_lo, dec_hi))
            continue
        for col in range(ncol):
            lo = (area.ra_min + col * step) % 360.0
            hi = (lo + step) % 360.0
            out.append(Quantum(area.name, row, col, (lo + step / 2) % 360.0, (dec_lo + dec_hi) / 2, lo, hi,
                               dec_lo, dec_hi))
    return out


def quantum_of(area: Area, quantum: float, ra, dec):
    """(row, col) of the quantum holding each position (arrays), -1 where outside the area.

    Parameters
    ----------
    area : Area
    quantum : float
    ra, dec : array_like
        Degrees.

    Returns
    -------
    tuple of numpy.ndarray
    """
    ra = np.asarray(ra, float) % 360.0
    dec = np.asarray(dec, float)
    nrow = max(1, math.ceil((area.dec_max - area.dec_min) / quantum - 1e-9))
    row = np.floor((dec - area.dec_min) / quantum).astype(int)
    row = np.where(dec == area.dec_max, nrow - 1, row)  # the top edge belongs to the last strip
    col = np.full(ra.shape, -1, int)
    offset = (ra - area.ra_min) % 360.0
    inside_ra = offset <= _ra_width(area) + 1e-12
    for r in range(nrow):
        _, _, step, ncol = _strip(area, quantum, r)
        here = (row == r) & inside_ra
        c = np.zeros(ra.shape, int) if step >= 360.0 else np.floor(offset / step).astype(int)
        col = np.where(here & (c < ncol), c, col)
    ok = (row >= 0) & (row < nrow) & (col >= 0)
    return np.where(ok, row, -1), np.where(ok, col, -1)
