"""Survey descriptions (XML, ``schemas/survey.xsd``) and whole-survey simulation.

A survey lists camera runs (QRUNID, program RUNID, start MJD) and fields - single pointings (Deep-like)
or ``grid`` mosaics of overlapping pointings (Wide-like) - each with blocks of exposures (filter, number,
exposure time, run, seeing, photometric conditions, dither pattern).  :func:`simulate_survey` writes every
exposure (first-guess WCS in its headers), one astrometric reference catalogue for the whole area
(``refcat.fits``) and, under ``truth/`` only (names no tool reads), each exposure's truth table and true
WCS, a table of true and header zero points (``truth/zeropoints.fits``) and every simulated source of the
area with its magnitudes in u g r i z (``truth/sky_truth.fits``, for completeness and photometry on stacks).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .exposure import ExposureResult, ExposureSpec, filter_info, simulate_exposure
from .focalplane import FocalPlane, megacam_focal_plane, small_focal_plane
from .sky import SkyModel

__all__ = ["SurveySpec", "SurveyResult", "simulate_survey", "DITHERS"]

CFHT_LATITUDE = 19.8255  # deg
CFHT_LONGITUDE = -155.4681  # deg (east positive)
OVERHEAD_S = 40.0  # readout + slew between dithered exposures

#: dither patterns in units of ``dither_arcsec`` (east, north).  ``cfhtls`` mimics the large Wide
#: pattern that fills the inter-CCD gaps; ``random`` draws offsets uniformly in +-dither_arcsec.
DITHERS = {
    "cfhtls": [(0, 0), (0.2, 1.0), (-0.2, -1.0), (0.4, 0.5), (-0.4, -0.5), (0.6, 1.5), (-0.6, -1.5)],
}


def _gmst_deg(mjd: float) -> float:
    return (280.46061837 + 360.98564736629 * (mjd - 51544.5)) % 360.0


def _airmass(ra: float, dec: float, mjd: float) -> float:
    ha = math.radians((_gmst_deg(mjd) + CFHT_LONGITUDE - ra) % 360.0)
    lat, d = math.radians(CFHT_LATITUDE), math.radians(dec)
    cosz = math.sin(lat) * math.sin(d) + math.cos(lat) * math.cos(d) * math.cos(ha)
    return 1.0 / max(cosz, 0.2)  # plane-parallel secant, capped at 5


def _transit_mjd(ra: float, mjd0: float) -> float:
    """First meridian transit of ``ra`` at CFHT after ``mjd0``."""
    lst = (_gmst_deg(mjd0) + CFHT_LONGITUDE) % 360.0
    return mjd0 + ((ra - lst) % 360.0) / 360.98564736629


def _pointings(root, fp: FocalPlane):
    """(name, ra, dec, exposure blocks) of every ``field`` and of every pointing of every ``grid``
    (a Wide-like mosaic of ncols x nrows pointings overlapping by ``overlap`` of the camera's size)."""
    for el in root:
        if el.tag == "field":
            yield el.get("name"), float(el.get("ra")), float(el.get("dec")), el.findall("exposures")
        elif el.tag == "grid":
            ncols, nrows = int(el.get("ncols")), int(el.get("nrows"))
            overlap = float(el.get("overlap", "0.1"))
            wdeg, hdeg = fp.size_deg()
            ra0, dec0 = float(el.get("ra")), float(el.get("dec"))
            for j in range(nrows):
                dec = dec0 + (j - (nrows - 1) / 2.0) * hdeg * (1.0 - overlap)
                for i in range(ncols):
                    dra = (i - (ncols - 1) / 2.0) * wdeg * (1.0 - overlap) / math.cos(math.radians(dec))
                    yield f"{el.get('name')}+{i}+{j}", (ra0 + dra) % 360.0, dec, el.findall("exposures")


def _dither_offsets(pattern: str, n: int, amp: float, rng) -> list[tuple[float, float]]:
    """Offsets (east, north) in arcsec of ``n`` dithered exposures (see :data:`DITHERS`)."""
    if pattern == "none":
        return [(0.0, 0.0)] * n
    if pattern == "line":
        return [((k - (n - 1) / 2.0) * amp,) * 2 for k in range(n)]
    if pattern in DITHERS:
        steps = DITHERS[pattern]
        return [(steps[k % len(steps)][0] * amp, steps[k % len(steps)][1] * amp) for k in range(n)]
    return [tuple(rng.uniform(-amp, amp, 2)) for _ in range(n)]


@dataclass
class SurveySpec:
    """A parsed survey: its name, camera, sky, and the list of exposures to simulate."""

    name: str
    focal_plane: FocalPlane
    exposures: list[ExposureSpec]
    maglim: float = 26.0
    density: float = 1.0
    star_density: float = 1.0
    refcat_maglim: float = 21.0
    refcat_band: str = "r"
    seed: int | None = None
    source: str = ""
    fields: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_xml(cls, path: str | Path) -> "SurveySpec":
        """Parse and validate a survey file against ``schemas/survey.xsd`` with the core's safe parser
        (no entities, no DTD, no network); errors name the file, line and column.

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        SurveySpec

        Raises
        ------
        ConfigError
            On malformed XML or a schema violation.
        """
        from ..xmlutil import parse_xml, validate
        path = Path(path)
        doc = parse_xml(path, str(path), error_class=ConfigError)
        validate(doc, "survey.xsd", str(path), error_class=ConfigError)
        return cls._from_tree(doc.getroot(), str(path))

    @classmethod
    def _from_tree(cls, root, source: str) -> "SurveySpec":
        from astropy.time import Time

        def attr(el, key, default=None, conv=str):
            # the schema has checked types; absent elements and attributes take the schema's defaults
            value = None if el is None else el.get(key)
            return default if value is None else conv(value)

        cam, sky, ast, ref = (root.find(tag) for tag in ("camera", "sky", "astrometry", "refcat"))
        nccd, nx, ny = attr(cam, "nccd", 36, int), attr(cam, "nx", 2048, int), attr(cam, "ny", 4612, int)
        pixscale = attr(cam, "pixscale", 0.186, float)
        if attr(cam, "layout", "megacam") == "megacam" and nccd == 36:
            fp = megacam_focal_plane(nx, ny, pixscale)
        else:
            fp = small_focal_plane(nccd, nx, ny, pixscale, attr(cam, "gap", 20.0, float))
        maglim = attr(sky, "maglim", 26.0, float)
        density = attr(sky, "density", 1.0, float)
        star_density = attr(sky, "star_density", 1.0, float)
        refmag = attr(ref, "maglim", 21.0, float)
        common = dict(maglim=maglim, density=density, star_density=star_density, refcat_maglim=refmag,
                      compress=attr(cam, "compress", "false").strip() in ("true", "1"),
                      bitpix=attr(cam, "bitpix", -32, int),
                      wcs_offset_arcsec=attr(ast, "offset_arcsec", 3.0, float),
                      wcs_rotation_deg=attr(ast, "rotation_deg", 0.02, float),
                      distortion_arcsec=attr(ast, "distortion_arcsec", 4.0, float))
        runs = {r.get("id"): r for r in root.findall("run")}
        seed = attr(root, "seed", None, int)

        exposures: list[ExposureSpec] = []
        expnum = 700000
        run_clock: dict[str, float] = {}  # exposures of a run follow each other (next transit)
        centres = {}
        for fname, ra, dec, blocks in _pointings(root, fp):
            centres[fname] = (ra, dec)
            for block in blocks:
                run = runs[block.get("run")]
                qrun = run.get("id")
                filt = filter_info(block.get("filter"))[0]
                n = int(block.get("n"))
                exptime = float(block.get("exptime"))
                seeing = attr(block, "seeing", 0.8, float)
                scatter = attr(block, "seeing_scatter", 0.1, float)
                phot = attr(block, "photometric", "true").strip()
                # the block's draws depend only on its content and the survey seed
                rng = np.random.default_rng([seed or 0, zlib.crc32(f"{fname}/{filt}/{qrun}".encode())])
                offsets = _dither_offsets(attr(block, "dither", "random"), n,
                                          attr(block, "dither_arcsec", 15.0, float), rng)
                start = max(run_clock.get(qrun, float(run.get("mjd"))), float(run.get("mjd")))
                t0 = _transit_mjd(ra, start) - 0.5 / 24.0
                release_days = attr(run, "release_days", 365.0, float)
                for k, (dx, dy) in enumerate(offsets):
                    expnum += 1
                    edec = dec + dy / 3600.0
                    era = (ra + dx / 3600.0 / math.cos(math.radians(edec))) % 360.0
                    mjd = t0 + k * (exptime + OVERHEAD_S) / 86400.0
                    if phot in ("true", "1", "false", "0"):
                        photometric = phot in ("true", "1")
                    else:  # a probability
                        photometric = bool(rng.random() < float(phot))
                    exposures.append(ExposureSpec(
                        name=f"{expnum}p", object=fname, ra=era, dec=edec, filter=filt, exptime=exptime,
                        seeing=max(0.35, float(rng.normal(seeing, scatter))) if scatter > 0 else seeing,
                        airmass=round(_airmass(era, edec, mjd), 4), mjd=round(mjd, 6),
                        photometric=photometric, qrunid=qrun, runid=run.get("runid"), expnum=expnum,
                        release_date=Time(mjd + release_days, format="mjd").isot[:10],
                        field_rotation=float(rng.normal(0.0, 0.003)), **common))
                run_clock[qrun] = t0 + n * (exptime + OVERHEAD_S) / 86400.0 + 0.5 / 24.0
        refband = filter_info(attr(ref, "band", "r"))[0][0]
        return cls(root.get("name"), fp, exposures, maglim, density, star_density, refmag, refband, seed,
                   source, centres)

    def sky(self, seed: int) -> SkyModel:
        """The survey's sky model.

        Parameters
        ----------
        seed : int

        Returns
        -------
        SkyModel
        """
        return SkyModel(seed, self.maglim, self.density, self.star_density)


@dataclass
class SurveyResult:
    """Everything :func:`simulate_survey` wrote."""

    spec: SurveySpec
    outdir: Path
    exposures: list[ExposureResult]
    reference_catalog: Path
    zeropoints_path: Path
    sky_truth_path: Path | None = None


def simulate_survey(spec: SurveySpec | str | Path, outdir: str | Path, seed: int | None = None,
                    nthreads: int | None = None, only: list[str] | None = None,
                    progress=None) -> SurveyResult:
    """Simulate every exposure of ``spec`` (a :class:`SurveySpec` or an XML path) into ``outdir``.

    ``seed`` defaults to the survey's ``seed`` attribute (else 1); the sky is shared by all exposures so
    overlapping fields see the same objects.  ``only`` restricts to the named exposures (``700001p``...).
    ``progress(i, n, result)`` is called after each exposure.

    Parameters
    ----------
    spec : SurveySpec, str or Path
    outdir : str or Path
    seed : int, optional
    nthreads : int, optional
        CCDs rendered in parallel.
    only : list of str, optional
        Names of the exposures to simulate (all by default).
    progress : callable, optional
        Called after each exposure.

    Returns
    -------
    SurveyResult

    Raises
    ------
    ConfigError
        If ``only`` names exposures the survey does not have.
    """
    from astropy.table import Table
    from ..atomic import atomic_path
    from .refcat import write_reference_catalog
    if not isinstance(spec, SurveySpec):
        spec = SurveySpec.from_xml(spec)
    seed = seed if seed is not None else (spec.seed if spec.seed is not None else 1)
    outdir = Path(outdir)
    if only is not None:
        missing = sorted(set(only) - {e.name for e in spec.exposures})
        if missing:
            names = [e.name for e in spec.exposures]
            raise ConfigError(f"exposure(s) {missing} not in survey {spec.name!r} (it has {names[0]}..{names[-1]})"
                              if names else f"survey {spec.name!r} has no exposures", spec.source or None)
    outdir.mkdir(parents=True, exist_ok=True)
    sky = spec.sky(seed)
    todo = [e for e in spec.exposures if only is None or e.name in only]
    results = []
    for i, e in enumerate(todo):
        res = simulate_exposure(outdir, e, seed=seed, focal_plane=spec.focal_plane, sky=sky,
                                nthreads=nthreads, write_refcat=False)
        results.append(res)
        if progress is not None:
            progress(i + 1, len(todo), res)
    # one reference catalogue over the whole survey area
    radius = spec.focal_plane.radius() * spec.focal_plane.pixscale / 3600.0 * 1.05
    ras = np.array([e.ra for e in spec.exposures])
    decs = np.array([e.dec for e in spec.exposures])
    ra_c = float(np.degrees(np.arctan2(np.sin(np.radians(ras)).mean(), np.cos(np.radians(ras)).mean())) % 360)
    dra = np.abs(((ras - ra_c + 180.0) % 360.0) - 180.0).max() if ras.size else 0.0
    cosd = max(math.cos(math.radians(min(abs(decs.min()), abs(decs.max())) + radius)), 0.05) if ras.size else 1.0
    # the survey's sky model: the same cells, hence the same stars as in the images
    area = sky.sources(ra_c - dra - radius / cosd, ra_c + dra + radius / cosd,
                        decs.min() - radius, decs.max() + radius) if ras.size else sky.empty()
    refcat = outdir / "refcat.fits"
    write_reference_catalog(refcat, area, spec.refcat_band, spec.refcat_maglim, seed)
    from .exposure import TRUTH_DIR
    sky_path = outdir / TRUTH_DIR / "sky_truth.fits"
    _write_sky_truth(sky_path, area)
    zp = Table(rows=[(r.spec.name, r.spec.object, r.meta["filter"], r.spec.qrunid, r.spec.runid,
                      r.photometric, r.zeropoint, r.header_zeropoint, r.meta["cloud"], r.seeing,
                      r.spec.airmass, r.spec.mjd, r.spec.exptime) for r in results],
               names=("NAME", "OBJECT", "FILTER", "QRUNID", "RUNID", "PHOTFLAG", "ZP_TRUE", "MAGZP", "CLOUD",
                      "SEEING", "AIRMASS", "MJD_OBS", "EXPTIME"))
    zp_path = outdir / TRUTH_DIR / "zeropoints.fits"
    with atomic_path(zp_path) as tmp:
        zp.write(tmp, format="fits")
    return SurveyResult(spec, outdir, results, refcat, zp_path, sky_path)


def _write_sky_truth(path: Path, src) -> None:
    """Every simulated source of the survey area (on a CCD or not) with its magnitudes in all bands,
    for completeness and photometry on stacks."""
    from astropy.table import Table
    from ..atomic import atomic_path
    t = Table()
    t["ID"] = src.id
    t["RA"] = src.ra
    t["DEC"] = src.dec
    t["IS_STAR"] = src.kind == 0
    for band in ("u", "g", "r", "i", "z"):
        t[f"MAG_{band.upper()}"] = src.mag(band)
    t["SERSIC_N"] = src.n
    t["RE_ARCSEC"] = src.re
    t["AXIS_RATIO"] = src.q
    t["THETA_WORLD"] = src.pa
    for name in ("RA", "DEC", "THETA_WORLD"):
        t[name].unit = "deg"
    with atomic_path(path) as tmp:
        t.write(tmp, format="fits")
