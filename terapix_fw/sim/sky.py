"""The simulated sky: stars and galaxies fixed by a seed, identical in every exposure that sees them.

The sky is cut into cells (Dec bands of ``CELL_DEG``, RA cells of about the same width); each cell's
sources come from a random generator seeded by ``(seed, band, cell)``, so overlapping fields and repeated
exposures see exactly the same objects and a catalogue of any region is reproducible.

Magnitudes are given in the r band (``MAG_R``) with per-source colours; :meth:`SourceList.mag` returns the
magnitude in any MegaCam band.  Number counts (per deg^2 per mag) follow power laws close to high galactic
latitude counts: stars ``10**(2.4 + 0.12 (r - 20))`` from r = 13.5, galaxies
``10**(4.3 + 0.33 (r - 24))`` from r = 16 (about 1.2e5 galaxies per deg^2 to r = 26).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SkyModel", "StaticSky", "SourceList", "BANDS", "make_sources"]

CELL_DEG = 0.1
BANDS = ("u", "g", "r", "i", "z")


@dataclass
class SourceList:
    """Columnar source list.  ``kind`` is 0 for stars, 1 for galaxies; sizes in arcsec (major-axis
    half-light radius), ``pa`` in degrees east of north, ``q`` the axis ratio b/a, ``n`` the Sersic index
    (0 for stars).  ``colors`` has columns u-g, g-r, r-i, i-z."""

    id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    kind: np.ndarray
    mag_r: np.ndarray
    colors: np.ndarray
    re: np.ndarray
    n: np.ndarray
    q: np.ndarray
    pa: np.ndarray

    def __len__(self) -> int:
        return int(self.id.size)

    def take(self, index) -> "SourceList":
        """The sources at ``index``.

        Parameters
        ----------
        index : array_like
            Indices or a boolean mask.

        Returns
        -------
        SourceList
        """
        return SourceList(**{k: getattr(self, k)[index] for k in self.__dataclass_fields__})

    @staticmethod
    def concatenate(parts: list["SourceList"]) -> "SourceList":
        """One list of several.

        Parameters
        ----------
        parts : list of SourceList

        Returns
        -------
        SourceList
        """
        if not parts:
            return SkyModel(0).empty()
        return SourceList(**{k: np.concatenate([getattr(p, k) for p in parts])
                             for k in SourceList.__dataclass_fields__})

    def mag(self, band: str) -> np.ndarray:
        """Magnitude in ``band`` (one of u g r i z, or a MegaCam filter name such as ``r.MP9601``).

        Parameters
        ----------
        band : str

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        ValueError
            On an unknown band.
        """
        b = band[0].lower()
        ug, gr, ri, iz = self.colors.T
        if b == "u":
            return self.mag_r + gr + ug
        if b == "g":
            return self.mag_r + gr
        if b == "r":
            return self.mag_r.copy()
        if b == "i":
            return self.mag_r - ri
        if b in ("z", "y"):
            return self.mag_r - ri - iz
        raise ValueError(f"unknown band {band!r}: expected one of u g r i z (or a MegaCam filter name)")


def _powerlaw_mags(rng, n, slope, m1, m2):
    u = rng.random(n)
    a, b = 10.0 ** (slope * m1), 10.0 ** (slope * m2)
    return np.log10(a + u * (b - a)) / slope


def _expected(norm, slope, mref, m1, m2):
    """Integral of 10**(norm + slope (m - mref)) dm from m1 to m2 (objects per deg^2)."""
    return 10.0 ** norm / (slope * math.log(10.0)) * (10.0 ** (slope * (m2 - mref)) - 10.0 ** (slope * (m1 - mref)))


class SkyModel:
    """Deterministic stars and galaxies to ``maglim`` (r band) at ``density`` times realistic counts.

    Parameters
    ----------
    seed : the sky seed; the same seed gives the same sky everywhere.
    maglim : faintest r magnitude simulated (default 26).
    density : multiplies both number counts (use < 1 for fast tests).
    star_fraction_scale : multiplies the star counts only (galactic latitude proxy).
    """

    STAR = (2.4, 0.12, 20.0, 13.5)  # log10 N at mref, slope, mref, brightest
    GALAXY = (4.3, 0.33, 24.0, 16.0)

    def __init__(self, seed: int, maglim: float = 26.0, density: float = 1.0, star_density: float = 1.0):
        if density < 0 or star_density < 0:
            raise ValueError(f"density={density}, star_density={star_density}: expected non-negative values")
        self.seed = int(seed)
        self.maglim = float(maglim)
        self.density = float(density)
        self.star_density = float(star_density)

    def empty(self) -> SourceList:
        """An empty source list.

        Returns
        -------
        SourceList
        """
        z = np.zeros(0)
        return SourceList(np.zeros(0, np.int64), z, z, np.zeros(0, np.int8), z, np.zeros((0, 4)), z, z, z, z)

    def _cell(self, band: int, cell: int, ncell: int) -> SourceList:
        dec_lo = -90.0 + band * CELL_DEG
        dec_hi = min(dec_lo + CELL_DEG, 90.0)
        ra_lo = cell * 360.0 / ncell
        ra_hi = (cell + 1) * 360.0 / ncell
        area = (ra_hi - ra_lo) * (math.sin(math.radians(dec_hi)) - math.sin(math.radians(dec_lo))) * 180.0 / math.pi
        rng = np.random.default_rng([self.seed, band, cell, 2024])
        sn, ss, sref, sbright = self.STAR
        gn, gs, gref, gbright = self.GALAXY
        nstar = rng.poisson(area * self.density * self.star_density * _expected(sn, ss, sref, sbright, self.maglim))
        ngal = rng.poisson(area * self.density * _expected(gn, gs, gref, gbright, self.maglim))
        n = nstar + ngal
        ra = rng.uniform(ra_lo, ra_hi, n)
        sdec = rng.uniform(math.sin(math.radians(dec_lo)), math.sin(math.radians(dec_hi)), n)
        dec = np.degrees(np.arcsin(sdec))
        kind = np.r_[np.zeros(nstar, np.int8), np.ones(ngal, np.int8)]
        mag = np.r_[_powerlaw_mags(rng, nstar, ss, sbright, self.maglim),
                    _powerlaw_mags(rng, ngal, gs, gbright, self.maglim)]
        colors = np.empty((n, 4))
        # Stars: a rough stellar locus parametrised by g-r (F/G/K main sequence plus an M-dwarf tail).
        gr = np.clip(0.3 + np.abs(rng.normal(0.0, 0.45, nstar)), -0.3, 1.7)
        colors[:nstar, 0] = 0.75 + 1.45 * gr + rng.normal(0, 0.05, nstar)
        colors[:nstar, 1] = gr
        ri = np.where(gr < 1.2, 0.38 * gr - 0.05, 0.41 + 1.6 * (gr - 1.2))
        colors[:nstar, 2] = ri + rng.normal(0, 0.03, nstar)
        colors[:nstar, 3] = 0.5 * ri + rng.normal(0, 0.03, nstar)
        # Galaxies: blue cloud / red sequence mixture.
        red = rng.random(ngal) < 0.35
        ggr = np.where(red, rng.normal(0.95, 0.1, ngal), rng.normal(0.45, 0.2, ngal))
        colors[nstar:, 0] = 0.6 + 0.9 * ggr + rng.normal(0, 0.1, ngal)
        colors[nstar:, 1] = ggr
        colors[nstar:, 2] = 0.15 + 0.35 * ggr + rng.normal(0, 0.05, ngal)
        colors[nstar:, 3] = 0.05 + 0.3 * ggr + rng.normal(0, 0.05, ngal)
        # Galaxy shapes: de Vaucouleurs (n=4) for the red sequence, exponential discs (n=1) otherwise,
        # with a few intermediate Sersic indices; log-normal sizes shrinking with magnitude.
        sersic = np.where(red, 4.0, 1.0)
        mid = rng.random(ngal) < 0.1
        sersic[mid] = 2.0
        gmag = mag[nstar:]
        re = 10.0 ** (np.log10(0.9) - 0.12 * (gmag - 22.0) + rng.normal(0.0, 0.2, ngal))
        re = np.where(red, 0.7 * re, re)
        qd = np.clip(np.sqrt(rng.uniform(0.02, 1.0, ngal)), 0.1, 1.0)  # inclined discs
        qe = np.clip(rng.normal(0.75, 0.15, ngal), 0.3, 1.0)
        q = np.where(red, qe, qd)
        pa = rng.uniform(0.0, 180.0, ngal)
        ids = (np.int64(band) * 8192 + np.int64(cell)) * (1 << 24) + np.arange(n, dtype=np.int64)
        return SourceList(ids, ra, dec, kind, mag, colors,
                          np.r_[np.zeros(nstar), re], np.r_[np.zeros(nstar), sersic],
                          np.r_[np.ones(nstar), q], np.r_[np.zeros(nstar), pa])

    def sources(self, ra_min: float, ra_max: float, dec_min: float, dec_max: float) -> SourceList:
        """All sources with ``dec_min <= dec <= dec_max`` and RA in ``[ra_min, ra_max]`` (deg; ``ra_min``
        may be negative or ``ra_max`` above 360 to cross RA = 0).

        Parameters
        ----------
        ra_min, ra_max, dec_min, dec_max : float

        Returns
        -------
        SourceList
        """
        parts = []
        b0 = max(int(math.floor((dec_min + 90.0) / CELL_DEG)), 0)
        b1 = min(int(math.floor((dec_max + 90.0) / CELL_DEG)), int(round(180.0 / CELL_DEG)) - 1)
        for band in range(b0, b1 + 1):
            dmid = -90.0 + (band + 0.5) * CELL_DEG
            ncell = max(1, int(360.0 * math.cos(math.radians(dmid)) / CELL_DEG))
            width = 360.0 / ncell
            c0 = int(math.floor(ra_min / width))
            c1 = int(math.floor(ra_max / width))
            seen = set()
            for c in range(c0, c1 + 1):
                cell = c % ncell
                if cell in seen:
                    continue
                seen.add(cell)
                src = self._cell(band, cell, ncell)
                ra = src.ra
                span_lo, span_hi = ra_min % 360.0, ra_max % 360.0
                if ra_max - ra_min >= 360.0:
                    inra = np.ones(ra.size, bool)
                elif span_lo <= span_hi:
                    inra = (ra >= span_lo) & (ra <= span_hi)
                else:
                    inra = (ra >= span_lo) | (ra <= span_hi)
                keep = inra & (src.dec >= dec_min) & (src.dec <= dec_max)
                parts.append(src.take(keep))
        return SourceList.concatenate(parts)

    def around(self, ra: float, dec: float, radius_deg: float) -> SourceList:
        """Sources within a box that contains the circle of ``radius_deg`` around (ra, dec).

        Parameters
        ----------
        ra, dec : float
            Degrees.
        radius_deg : float

        Returns
        -------
        SourceList
        """
        dra = radius_deg / max(math.cos(math.radians(min(abs(dec) + radius_deg, 89.9))), 1e-3)
        return self.sources(ra - dra, ra + dra, dec - radius_deg, dec + radius_deg)


def make_sources(ra, dec, mag_r, *, is_star=True, colors=None, re=0.0, n=1.0, q=1.0, pa=0.0, ids=None) -> SourceList:
    """A :class:`SourceList` from explicit values (scalars broadcast), e.g. to inject known sources.

    Parameters
    ----------
    ra, dec : array_like
        Degrees.
    mag_r : array_like
    is_star : bool or array_like
    colors : array_like, optional
        u-g, g-r, r-i, i-z.
    re : float or array_like
        Half-light radius (arcsec).
    n : float or array_like
        Sersic index.
    q : float or array_like
        Axis ratio.
    pa : float or array_like
        Degrees east of north.
    ids : array_like, optional

    Returns
    -------
    SourceList
    """
    ra = np.atleast_1d(np.asarray(ra, float))
    size = ra.size
    def arr(v, dtype=float):
        return np.broadcast_to(np.asarray(v, dtype), (size,)).copy()
    star = arr(is_star, bool)
    cols = np.zeros((size, 4)) if colors is None else np.broadcast_to(np.asarray(colors, float), (size, 4)).copy()
    return SourceList(arr(ids if ids is not None else np.arange(1, size + 1), np.int64), ra, arr(dec),
                      np.where(star, 0, 1).astype(np.int8), arr(mag_r), cols,
                      np.where(star, 0.0, arr(re)), np.where(star, 0.0, arr(n)), np.where(star, 1.0, arr(q)),
                      np.where(star, 0.0, arr(pa)))


class StaticSky:
    """A sky made of a fixed :class:`SourceList` (for tests that inject known sources); usable wherever a
    :class:`SkyModel` is (``simulate_exposure(..., sky=StaticSky(make_sources(...)))``)."""

    def __init__(self, sources: SourceList):
        self.source_list = sources

    def around(self, ra: float, dec: float, radius_deg: float) -> SourceList:
        """The sources within ``radius_deg`` of (ra, dec).

        Parameters
        ----------
        ra, dec : float
            Degrees.
        radius_deg : float

        Returns
        -------
        SourceList
        """
        s = self.source_list
        cosd = math.cos(math.radians(dec))
        dra = ((s.ra - ra + 180.0) % 360.0 - 180.0) * cosd
        keep = np.hypot(dra, s.dec - dec) <= radius_deg * 1.5
        return s.take(keep)

    def sources(self, ra_min: float, ra_max: float, dec_min: float, dec_max: float) -> SourceList:
        """The sources in a declination band.

        Parameters
        ----------
        ra_min, ra_max, dec_min, dec_max : float
            Degrees; only the declinations cut (the list is small).

        Returns
        -------
        SourceList
        """
        s = self.source_list
        return s.take((s.dec >= dec_min) & (s.dec <= dec_max))
