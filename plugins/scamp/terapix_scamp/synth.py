"""Synthetic SExtractor catalogues with a known truth, for tests and benchmarks (no images needed).

Truth: a mosaic of ``nccd`` CCDs on a grid; the optics add a radial distortion ``r' = r (1 + k r^2)`` in
the focal plane plus a small per-CCD quadratic term; each exposure has its pointing, a position angle,
a tiny scale change and a cloud extinction.  Sky sources are projected through that truth into pixels,
then perturbed by centroid noise.  The LDAC headers carry a *first guess* WCS (plain TAN) with chosen
errors: shift, rotation, scale and flipped axis.  A reference catalogue (``LDAC_OBJECTS`` with X_WORLD,
Y_WORLD, ERRA_WORLD, ERRB_WORLD, MAG, MAGERR, as SCAMP reads it) samples the bright sources with noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .sky import deproject, project

__all__ = ["SurveyTruth", "ExposureTruth", "make_survey"]


@dataclass
class ExposureTruth:
    """What is known about one simulated exposure."""

    path: Path
    ra: float
    dec: float
    angle: float  # deg, true position angle
    scale: float  # true plate-scale factor
    filter: str
    photflag: bool
    cloud: float  # mag of extinction (0 for photometric exposures)
    airmass: float
    exptime: float
    qrunid: str


@dataclass
class SurveyTruth:
    """A simulated survey: catalogues, reference file and the truth to compare solutions with."""

    exposures: list[ExposureTruth]
    refcat: Path
    nccd: int
    nx: int
    ny: int
    pixscale: float
    ncol: int
    gap: float
    k_radial: float
    chip_quad: np.ndarray  # (nccd, 2) per-CCD quadratic coefficient (pixels at the CCD edge)
    phot_c: float = 26.0
    phot_k: float = 0.1
    meta: dict = field(default_factory=dict)

    # --- the true mapping -----------------------------------------------------------------------------
    def chip_origin(self, chip: int):
        nrow = int(np.ceil(self.nccd / self.ncol))
        row, col = divmod(chip, self.ncol)
        width = self.ncol * self.nx + (self.ncol - 1) * self.gap
        height = nrow * self.ny + (nrow - 1) * self.gap
        u0 = -width / 2 + col * (self.nx + self.gap)
        v0 = height / 2 - (row + 1) * self.ny - row * self.gap
        return u0, v0

    def focal_radius(self) -> float:
        nrow = int(np.ceil(self.nccd / self.ncol))
        width = self.ncol * self.nx + (self.ncol - 1) * self.gap
        height = nrow * self.ny + (nrow - 1) * self.gap
        return 0.5 * float(np.hypot(width, height))

    def pix_to_focal(self, chip: int, x, y):
        """1-based pixel -> distorted focal-plane coordinates (pixels)."""
        u0, v0 = self.chip_origin(chip)
        u = np.asarray(x, float) - 1 + u0
        v = np.asarray(y, float) - 1 + v0
        xn = (np.asarray(x, float) - 0.5 * (self.nx + 1)) / (0.5 * self.nx)
        yn = (np.asarray(y, float) - 0.5 * (self.ny + 1)) / (0.5 * self.ny)
        u = u + self.chip_quad[chip, 0] * xn * yn
        v = v + self.chip_quad[chip, 1] * xn ** 2
        rn2 = (u ** 2 + v ** 2) / self.focal_radius() ** 2
        factor = 1 + self.k_radial * rn2
        return u * factor, v * factor

    def pix_to_sky(self, exposure: int, chip: int, x, y):
        """The true sky position (deg) of 1-based pixel (x, y) of ``chip`` in ``exposure``."""
        e = self.exposures[exposure]
        u, v = self.pix_to_focal(chip, x, y)
        c, s = np.cos(np.deg2rad(e.angle)), np.sin(np.deg2rad(e.angle))
        scale = self.pixscale / 3600.0 * e.scale
        xi = scale * (c * (-u) - s * v)  # (xi, eta) = scale R(angle) (-u, v): east to the left
        eta = scale * (s * (-u) + c * v)
        return deproject(xi, eta, e.ra, e.dec)

    def sky_to_pix(self, exposure: int, chip: int, ra, dec, iterations: int = 4):
        """Inverse of :meth:`pix_to_sky` by fixed-point iteration (the distortion is small)."""
        e = self.exposures[exposure]
        xi, eta = project(ra, dec, e.ra, e.dec)
        c, s = np.cos(np.deg2rad(e.angle)), np.sin(np.deg2rad(e.angle))
        scale = self.pixscale / 3600.0 * e.scale
        mu = -(c * xi + s * eta) / scale
        mv = (-s * xi + c * eta) / scale
        u0, v0 = self.chip_origin(chip)
        x = mu - u0 + 1
        y = mv - v0 + 1
        for _ in range(iterations):
            pu, pv = self.pix_to_focal(chip, x, y)
            x = x + (mu - pu)
            y = y + (mv - pv)
        return x, y


def make_survey(outdir: str | Path, *, nexp: int = 4, nccd: int = 4, ncol: int | None = None, nx: int = 512,
                ny: int = 512, gap: float = 20.0, pixscale: float = 0.186, filters: tuple[str, ...] = ("r",),
                dither_arcmin: float = 1.5, center: tuple[float, float] = (150.0, 2.0),
                nsources_per_arcmin2: float = 8.0, ref_fraction: float = 0.35, ref_sigma_mas: float = 30.0,
                centroid_sigma_pix: float = 0.02, k_radial: float = 2e-4, chip_quad_pix: float = 0.6,
                first_guess: dict | None = None, clouds: list[float] | None = None,
                photflags: list[bool] | None = None, seed: int = 0, qrunid: str = "08AQ01",
                outlier_fraction: float = 0.0, pm_mas_per_yr: float = 0.0, ref_epoch: float = 2000.0,
                obs_epoch: float = 2008.0, name: str = "exp") -> SurveyTruth:
    """Write ``nexp`` LDAC catalogues (``<name>NN.cat``) and ``ref.cat`` under ``outdir``.

    ``first_guess`` maps exposure index (or ``"all"``) to errors of the header WCS:
    ``{"shift": (dra_arcsec, ddec_arcsec), "angle": deg, "scale": factor, "flip": bool, "jitter": arcsec}``
    (``jitter``: random per-CCD offsets of the first guess).
    ``clouds`` are the extinctions (mag) of the exposures; ``photflags`` their PHOTFLAG.
    ``outlier_fraction`` of detections get a 3-10" position error (tests of clipping).
    """
    from astropy.io import fits
    from astropy.table import Table

    from terapix_fw.ldac import LdacExtension, write_ldac

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ncol = ncol or int(np.ceil(np.sqrt(nccd)))
    first_guess = first_guess or {}
    clouds = list(clouds) if clouds is not None else [0.0] + list(rng.uniform(0.0, 0.3, nexp - 1))
    photflags = list(photflags) if photflags is not None else [c == 0.0 for c in clouds]
    exposures = []
    for k in range(nexp):
        # dither pattern around the centre; filters alternate
        ang = 2 * np.pi * k / max(nexp, 1)
        rad = dither_arcmin / 60.0 * (0.3 + 0.7 * (k % 3) / 2)
        dra = rad * np.cos(ang) / np.cos(np.deg2rad(center[1])) if k else 0.0
        ddec = rad * np.sin(ang) if k else 0.0
        exposures.append(ExposureTruth(outdir / f"{name}{k:02d}.cat", center[0] + dra, center[1] + ddec,
                                       float(rng.normal(0, 0.01)), float(1 + rng.normal(0, 2e-5)),
                                       filters[k % len(filters)], bool(photflags[k]), float(clouds[k]),
                                       float(1.0 + 0.4 * rng.uniform()), 60.0 + 30 * (k % 3), qrunid))
    truth = SurveyTruth(exposures, outdir / "ref.cat", nccd, nx, ny, pixscale, ncol, gap, k_radial,
                        rng.normal(0, chip_quad_pix, (nccd, 2)))
    # sky sources over the union of the fields
    half = truth.focal_radius() * pixscale / 3600.0 + dither_arcmin / 60.0 + 0.02
    area = (2 * half) ** 2 * 3600.0
    nsrc = int(nsources_per_arcmin2 * area)
    xi = rng.uniform(-half, half, nsrc)
    eta = rng.uniform(-half, half, nsrc)
    ra, dec = deproject(xi, eta, *center)
    mag = 24.5 - rng.exponential(1.6, nsrc)  # steep counts, bright tail
    mag = np.clip(mag, 15.0, 24.5)
    pmra = rng.normal(0, pm_mas_per_yr, nsrc) if pm_mas_per_yr else np.zeros(nsrc)
    pmdec = rng.normal(0, pm_mas_per_yr, nsrc) if pm_mas_per_yr else np.zeros(nsrc)
    # sources move: positions at obs_epoch for the catalogues, at ref_epoch for the reference
    dt = obs_epoch - ref_epoch
    ra_obs = ra + pmra * dt / 3.6e6 / np.cos(np.deg2rad(dec))
    dec_obs = dec + pmdec * dt / 3.6e6
    # reference catalogue: the brightest sources, with noise
    nref = int(ref_fraction * nsrc)
    bright = np.argsort(mag)[:nref]
    sig = ref_sigma_mas / 3.6e6
    cosd = np.cos(np.deg2rad(dec[bright]))
    ref = Table()
    ref["X_WORLD"] = ra[bright] + rng.normal(0, sig, nref) / cosd
    ref["Y_WORLD"] = dec[bright] + rng.normal(0, sig, nref)
    ref["ERRA_WORLD"] = np.full(nref, sig, dtype=np.float32)
    ref["ERRB_WORLD"] = np.full(nref, sig, dtype=np.float32)
    ref["MAG"] = (mag[bright] + rng.normal(0, 0.02, nref)).astype(np.float32)
    ref["MAGERR"] = np.full(nref, 0.02, dtype=np.float32)
    ref["OBSDATE"] = np.full(nref, ref_epoch)
    if pm_mas_per_yr:
        ref["PMALPHA_J2000"] = pmra[bright].astype(np.float32)
        ref["PMDELTA_J2000"] = pmdec[bright].astype(np.float32)
    refhdr = fits.Header()
    refhdr["SIMPLE"] = True
    refhdr["BITPIX"] = 8
    refhdr["NAXIS"] = 0
    refhdr["EPOCH"] = ref_epoch
    write_ldac(truth.refcat, [LdacExtension(refhdr, ref)])
    # catalogues
    for k, e in enumerate(exposures):
        guess = dict(first_guess.get("all", {}))
        guess.update(first_guess.get(k, {}))
        zp = truth.phot_c - truth.phot_k * (e.airmass - 1) - e.cloud
        exts = []
        for chip in range(nccd):
            x, y = truth.sky_to_pix(k, chip, ra_obs, dec_obs)
            inside = (x > 3) & (x < nx - 2) & (y > 3) & (y < ny - 2)
            idx = np.nonzero(inside)[0]
            n = len(idx)
            flux = 10 ** (-0.4 * (mag[idx] - zp)) * e.exptime
            bkg = 400.0 * e.exptime / 60.0
            fluxerr = np.sqrt(flux + bkg)
            flux_obs = flux + rng.normal(0, 1, n) * fluxerr
            snr = np.clip(flux_obs / fluxerr, 1.0, None)
            perr = np.sqrt((0.8 / snr) ** 2 + centroid_sigma_pix ** 2)
            xo = x[idx] + rng.normal(0, 1, n) * perr
            yo = y[idx] + rng.normal(0, 1, n) * perr
            if outlier_fraction:
                bad = rng.uniform(size=n) < outlier_fraction
                offs = rng.uniform(3, 10, bad.sum()) / pixscale * rng.choice([-1, 1], bad.sum())
                xo[bad] += offs
            table = Table()
            table["NUMBER"] = np.arange(1, n + 1, dtype=np.int32)
            table["XWIN_IMAGE"] = xo
            table["YWIN_IMAGE"] = yo
            table["ERRAWIN_IMAGE"] = perr.astype(np.float32)
            table["ERRBWIN_IMAGE"] = perr.astype(np.float32)
            table["ERRTHETAWIN_IMAGE"] = np.zeros(n, np.float32)
            table["FLUX_AUTO"] = flux_obs.astype(np.float32)
            table["FLUXERR_AUTO"] = fluxerr.astype(np.float32)
            with np.errstate(invalid="ignore", divide="ignore"):
                table["MAG_AUTO"] = (-2.5 * np.log10(np.clip(flux_obs, 1e-3, None))).astype(np.float32)
            table["MAGERR_AUTO"] = (1.0857 / snr).astype(np.float32)
            table["FLAGS"] = np.zeros(n, np.int16)
            table["FLUX_RADIUS"] = np.full(n, 2.0, np.float32)
            table["ELONGATION"] = np.full(n, 1.1, np.float32)
            exts.append(LdacExtension(_first_guess_header(truth, k, chip, guess), table))
        write_ldac(e.path, exts)
    truth.meta.update(nsources=nsrc, nref=nref)
    return truth


def _first_guess_header(truth: SurveyTruth, k: int, chip: int, guess: dict):
    """A TAN header for ``chip`` of exposure ``k``: the undistorted truth with the requested errors."""
    from astropy.io import fits

    e = truth.exposures[k]
    u0, v0 = truth.chip_origin(chip)
    shift = guess.get("shift", (0.0, 0.0))
    angle = e.angle + guess.get("angle", 0.0)
    scale = truth.pixscale / 3600.0 * e.scale * guess.get("scale", 1.0)
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    # xi = scale (-c u - s v), eta = scale (-s u + c v), with (u, v) = (x - 1 + u0, y - 1 + v0)
    cd = scale * np.array([[-c, -s], [-s, c]])
    if guess.get("flip"):  # mirror image about the optical axis
        cd[:, 0] = -cd[:, 0]
    crpix = (1 - u0, 1 - v0)
    h = fits.Header()
    h["SIMPLE"] = True  # SExtractor stores the full image header; SCAMP rejects one without SIMPLE
    h["BITPIX"] = -32
    h["NAXIS"] = 2
    h["NAXIS1"] = truth.nx
    h["NAXIS2"] = truth.ny
    h["EXTNAME"] = f"ccd{chip:02d}"
    h["CTYPE1"] = "RA---TAN"
    h["CTYPE2"] = "DEC--TAN"
    h["CUNIT1"] = "deg"
    h["CUNIT2"] = "deg"
    h["EQUINOX"] = 2000.0
    h["RADESYS"] = "ICRS"
    jitter = guess.get("jitter", 0.0)  # per-CCD placement error of the first guess (arcsec), Elixir-like
    if jitter:
        jrng = np.random.default_rng([k, chip, 77])
        shift = (shift[0] + jrng.normal(0, jitter), shift[1] + jrng.normal(0, jitter))
    h["CRVAL1"] = e.ra + shift[0] / 3600.0 / np.cos(np.deg2rad(e.dec))
    h["CRVAL2"] = e.dec + shift[1] / 3600.0
    h["CRPIX1"] = crpix[0]
    h["CRPIX2"] = crpix[1]
    h["CD1_1"] = cd[0, 0]
    h["CD1_2"] = cd[0, 1]
    h["CD2_1"] = cd[1, 0]
    h["CD2_2"] = cd[1, 1]
    h["FILTER"] = e.filter
    h["QRUNID"] = e.qrunid
    h["EXPTIME"] = e.exptime
    h["AIRMASS"] = e.airmass
    h["PHOTFLAG"] = e.photflag
    h["PHOT_C"] = truth.phot_c
    h["PHOT_K"] = truth.phot_k
    h["MJD-OBS"] = 54466.0 + k
    h["OBJECT"] = "SIM"
    return h


def head_errors(truth: SurveyTruth, exposure: int, head_path, n: int = 10) -> np.ndarray:
    """Distances (mas) between the sky positions a ``.head`` gives (through astropy) and the truth, on an
    ``n`` x ``n`` grid over every CCD of ``exposure``."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    from terapix_fw.headfile import read_head_file

    from .sky import angular_sep

    heads = read_head_file(head_path)
    gx, gy = np.meshgrid(np.linspace(1, truth.nx, n), np.linspace(1, truth.ny, n))
    gx, gy = gx.ravel(), gy.ravel()
    out = []
    for chip, head in enumerate(heads):
        head = head.copy()
        head["NAXIS"] = 2
        head["NAXIS1"] = truth.nx
        head["NAXIS2"] = truth.ny
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w = WCS(head)
        ra, dec = w.all_pix2world(gx, gy, 1)
        rt, dt = truth.pix_to_sky(exposure, chip, gx, gy)
        out.append(angular_sep(ra, dec, rt, dt) * 3.6e6)
    return np.concatenate(out)
