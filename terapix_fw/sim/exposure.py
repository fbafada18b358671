"""Simulate one MegaCam-like exposure (a MEF of detrended CCD images) and the truth behind it.

Conventions
-----------
* Pixel positions in every output (truth table, headers) are FITS 1-based: the centre of the first pixel
  is (1.0, 1.0); a pixel covers ``[x - 0.5, x + 0.5)``.
* Images are in ADU, flat-fielded and bias-subtracted like Elixir-processed MegaCam data, sky not
  subtracted.  The noise is Poisson (on the electrons seen through the flat response) plus read noise, so
  the variance of a pixel is ``(model * flat * gain + rdnoise**2) / (gain * flat)**2`` and an inverse-variance
  weight is proportional to the flat.  Saturated pixels equal SATURATE exactly.
* Zero point: ``mag = ZP - 2.5 log10(flux_ADU)`` for the total flux of a source in the image.  The true
  zero point of the exposure is ``PHOT_C + 2.5 log10(EXPTIME) - PHOT_K (AIRMASS - 1) - cloud``; the
  header's ``MAGZP`` omits ``cloud``, so it is exact for photometric exposures (PHOTFLAG = T) and off by
  ``cloud`` (0.05-0.3 mag) for the others.
"""
from __future__ import annotations

import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, write_text_atomic
from .focalplane import CCD, FocalPlane, megacam_focal_plane
from .sky import SkyModel
from .wcs import ExposureWCS, qrun_distortion

__all__ = ["FILTERS", "ExposureSpec", "ExposureResult", "simulate_exposure", "filter_info",
           "psf_at", "TRUTH_COLUMNS", "TRUTH_DIR", "TRUE_WCS_SUFFIX"]

#: sub-directory of the output directory holding every truth file (tables, true WCS, true zero points)
TRUTH_DIR = "truth"
#: the true WCS in SCAMP/SWarp .head format, under a suffix no AstrOmatic tool reads by default
TRUE_WCS_SUFFIX = ".wcs.truth"

#: MegaCam filters: name, PHOT_C (mag for 1 ADU/s at airmass 1), PHOT_K (extinction mag/airmass),
#: dark-sky surface brightness (mag/arcsec^2).
FILTERS = {
    "u": ("u.MP9301", 25.78, 0.35, 22.7),
    "g": ("g.MP9401", 26.55, 0.15, 22.0),
    "r": ("r.MP9601", 26.18, 0.10, 21.2),
    "i": ("i.MP9701", 25.98, 0.04, 20.3),
    "i2": ("i.MP9702", 25.93, 0.04, 20.3),
    "z": ("z.MP9801", 24.90, 0.03, 19.3),
}

#: Columns of the truth table, with units and meaning.
TRUTH_COLUMNS = {
    "ID": ("", "source identifier, the same in every exposure and in the reference catalogue"),
    "RA": ("deg", "true right ascension (ICRS)"),
    "DEC": ("deg", "true declination (ICRS)"),
    "CCD": ("", "CCD number (EXTNAME ccd%02d)"),
    "EXT": ("", "HDU index of the CCD in the MEF (1-based, primary = 0)"),
    "X_IMAGE": ("pix", "true x, FITS 1-based (centre of first pixel = 1.0)"),
    "Y_IMAGE": ("pix", "true y, FITS 1-based"),
    "MAG": ("mag", "true total magnitude in the exposure's filter"),
    "FLUX": ("adu", "true total flux in the image, 10**(-0.4 (MAG - ZP))"),
    "IS_STAR": ("", "True for stars (point sources), False for galaxies"),
    "SERSIC_N": ("", "Sersic index (1 exponential, 4 de Vaucouleurs; 0 for stars)"),
    "RE_ARCSEC": ("arcsec", "intrinsic major-axis half-light radius (0 for stars)"),
    "AXIS_RATIO": ("", "intrinsic b/a (1 for stars)"),
    "THETA_WORLD": ("deg", "intrinsic position angle, east of north"),
    "FWHM_PSF": ("arcsec", "PSF FWHM (geometric mean of the axes) at the source"),
    "ELLIP_PSF": ("", "PSF ellipticity 1 - b/a at the source"),
    "SATURATED": ("", "True if the noise-free image reaches SATURATE at the source centre"),
}


def filter_info(name: str) -> tuple[str, float, float, float]:
    """(MegaCam filter name, PHOT_C, PHOT_K, sky mag/arcsec^2) of ``r``, ``r.MP9601`` etc.

    Parameters
    ----------
    name : str

    Returns
    -------
    tuple of (str, float, float, float)

    Raises
    ------
    ValueError
        On an unknown filter.
    """
    key = name.strip()
    for short, info in FILTERS.items():
        if key == short or key == info[0]:
            return info
    raise ValueError(f"unknown filter {name!r}: expected one of "
                     + ", ".join(sorted({v[0] for v in FILTERS.values()} | set(FILTERS))))


@dataclass
class ExposureSpec:
    """Everything that defines one exposure (all optional; defaults give a photometric r-band 300 s
    exposure of the CFHTLS D1 field).  Angles in degrees, seeing in arcsec, times in MJD.

    ``distortion_arcsec`` is the displacement by the cubic optical distortion at the corner of the
    focal plane; ``wcs_offset_arcsec`` / ``wcs_rotation_deg`` how wrong the first-guess header WCS is.
    ``density`` scales the source counts (use small values for fast tests); ``maglim`` is the faintest
    r magnitude simulated.  ``cloud`` is the extinction by clouds of a non-photometric exposure (drawn
    between 0.05 and 0.3 mag when ``None``).  ``satellite`` forces (True/False) a satellite trail;
    ``None`` draws one with probability ``satellite_probability``.
    """

    name: str = "sim0001p"
    object: str = "D1"
    ra: float = 36.5
    dec: float = -4.5
    filter: str = "r.MP9601"
    exptime: float = 300.0
    seeing: float = 0.8
    beta: float = 3.0
    psf_variation: float = 0.1
    psf_ellipticity: float = 0.03
    airmass: float = 1.2
    mjd: float = 52640.3
    photometric: bool = True
    cloud: float | None = None
    qrunid: str = "03AQ01"
    runid: str = "03AL99"
    expnum: int = 700001
    release_date: str | None = None
    field_rotation: float = 0.0
    wcs_offset_arcsec: float = 3.0
    wcs_rotation_deg: float = 0.02
    distortion_arcsec: float = 4.0
    maglim: float = 26.0
    density: float = 1.0
    star_density: float = 1.0
    sky_mag: float | None = None
    cosmic_rays: bool = True
    cosmic_rate: float = 4.5e-8
    defects: bool = True
    satellite: bool | None = None
    satellite_probability: float = 0.1
    compress: bool = False
    refcat_maglim: float = 21.0
    #: pixel storage: -32 (float32) or 16 (raw-camera style: unsigned 16-bit, BITPIX 16 + BZERO 32768,
    #: rounded and clipped to [0, 65535], so that a full well reads 65535 as on a real CCD)
    bitpix: int = -32

    def __post_init__(self) -> None:
        filter_info(self.filter)
        for key in ("exptime", "seeing", "airmass"):
            if not getattr(self, key) > 0:
                raise ValueError(f"ExposureSpec {self.name}: {key}={getattr(self, key)!r}, expected > 0")
        if self.airmass < 1.0:
            raise ValueError(f"ExposureSpec {self.name}: AIRMASS={self.airmass}, expected >= 1")
        if self.beta <= 1.0:
            raise ValueError(f"ExposureSpec {self.name}: beta={self.beta}, expected > 1 (Moffat)")
        if self.bitpix not in (-32, 16):
            raise ValueError(f"ExposureSpec {self.name}: bitpix={self.bitpix!r}, expected -32 or 16")


@dataclass
class ExposureResult:
    """What :func:`simulate_exposure` wrote and the truth behind it.

    Attributes
    ----------
    path : the MEF (primary header + one image HDU per CCD, EXTNAME ``ccd00``...).
    truth : astropy Table, one row per source whose centre falls on a CCD (columns in ``TRUTH_COLUMNS``).
    truth_path : the truth table as FITS (HDU ``TRUTH``; the zero point and seeing in its header).
    true_wcs : list of astropy Headers (one per CCD, TPV) - the true astrometry.
    true_wcs_path : the same as a SCAMP/SWarp ``.head`` text file (one block per extension, ``END``), in
        ``truth/<name>.wcs.truth``: give it to a tool explicitly (e.g. SWarp's HEADER_NAME) to use it.
    guess_wcs : the first-guess WCS headers written in the MEF.
    zeropoint : true zero point (mag of 1 ADU in the image); ``header_zeropoint`` is MAGZP in the header.
    reference_catalog : FITS_LDAC astrometric reference catalogue of the exposure's area (or None).
    flat_path, bpm_path : flat-field response and bad-pixel map MEFs (bit 1 bad column, bit 2 hot pixel).
    """

    path: Path
    spec: ExposureSpec
    focal_plane: FocalPlane
    truth: Any
    truth_path: Path
    true_wcs: list
    true_wcs_path: Path
    guess_wcs: list
    zeropoint: float
    header_zeropoint: float
    photometric: bool
    seeing: float
    reference_catalog: Path | None
    flat_path: Path | None
    bpm_path: Path | None
    satellite: bool = False
    meta: dict = field(default_factory=dict)


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _alpha_from_fwhm(fwhm, beta):
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def psf_at(spec: ExposureSpec, fp: FocalPlane, u, v, e0_angle: float = 0.0):
    """PSF at focal-plane positions (u, v): FWHM (pixels, geometric mean), axis ratio q and the angle of
    the major axis (radians, from +x towards +y).  FWHM grows by ``psf_variation`` (fractionally) to the
    field edge; the ellipticity is a constant ``psf_ellipticity`` plus a radial pattern growing to 0.05.

    Parameters
    ----------
    spec : ExposureSpec
    fp : FocalPlane
    u, v : array_like
        Focal-plane positions (pixels).
    e0_angle : float
        Angle (radians) of the constant ellipticity.

    Returns
    -------
    tuple of numpy.ndarray
    """
    rmax = fp.radius()
    u = np.asarray(u, float)
    v = np.asarray(v, float)
    rho2 = (u * u + v * v) / (rmax * rmax)
    fwhm = spec.seeing / fp.pixscale * (1.0 + spec.psf_variation * rho2)
    phi = np.arctan2(v, u)
    e1 = spec.psf_ellipticity * math.cos(2 * e0_angle) + 0.05 * rho2 * np.cos(2 * phi)
    e2 = spec.psf_ellipticity * math.sin(2 * e0_angle) + 0.05 * rho2 * np.sin(2 * phi)
    e = np.clip(np.hypot(e1, e2), 0.0, 0.5)
    theta = 0.5 * np.arctan2(e2, e1)
    return fwhm, 1.0 - e, theta


class _Exposure:
    """Per-exposure state shared by the CCD workers (read-only inside them)."""

    def __init__(self, spec: ExposureSpec, fp: FocalPlane, seed: int, sky: SkyModel):
        self.spec = spec
        self.fp = fp
        self.seed = seed
        self.sky = sky
        self.fname, phot_c, phot_k, sky_mag = filter_info(spec.filter)
        self.band = self.fname[0]
        rng = np.random.default_rng([seed, spec.expnum, _crc(spec.name), 1])
        cloud = 0.0 if spec.photometric else (spec.cloud if spec.cloud is not None else rng.uniform(0.05, 0.3))
        self.cloud = float(cloud)
        self.phot_c, self.phot_k = phot_c, phot_k
        self.header_zp = phot_c + 2.5 * math.log10(spec.exptime) - phot_k * (spec.airmass - 1.0)
        self.zp = self.header_zp - self.cloud
        self.sky_mag = spec.sky_mag if spec.sky_mag is not None else sky_mag
        # sky in ADU per pixel: surface brightness through the same zero point, dimmed by clouds too
        self.sky_adu = 10.0 ** (-0.4 * (self.sky_mag - self.zp)) * fp.pixscale ** 2
        radius_deg = fp.radius() * fp.pixscale / 3600.0
        base = qrun_distortion(seed, spec.qrunid, radius_deg, spec.distortion_arcsec)
        # per-exposure flexure: 2nd/3rd order changes of ~1% of the distortion amplitude
        dist = base.perturbed(rng, 0.01 * spec.distortion_arcsec / 3600.0, radius_deg)
        self.wcs = ExposureWCS(fp, spec.ra, spec.dec, dist, spec.field_rotation, spec.wcs_offset_arcsec,
                               float(rng.uniform(0.0, 360.0)),
                               spec.wcs_rotation_deg * float(rng.choice([-1.0, 1.0])))
        self.e0_angle = float(rng.uniform(0.0, math.pi))
        sat = spec.satellite if spec.satellite is not None else bool(rng.random() < spec.satellite_probability)
        self.satellite = None
        if sat:
            # a great circle is a straight line in the tangent plane: point + direction in focal pixels
            r = fp.radius()
            self.satellite = (float(rng.uniform(-0.5, 0.5) * r), float(rng.uniform(-0.5, 0.5) * r),
                              float(rng.uniform(0.0, math.pi)), float(rng.uniform(50.0, 400.0)))
        margin = 60.0  # pixels: sources just off a CCD still spill light onto it
        self.sources = sky.around(spec.ra, spec.dec, (fp.radius() + margin) * fp.pixscale / 3600.0 * 1.02)
        u, v = self.wcs.world_to_focal(self.sources.ra, self.sources.dec)
        self.u, self.v = u, v
        self.mag = self.sources.mag(self.band)
        self.flux = 10.0 ** (-0.4 * (self.mag - self.zp))
        self.fwhm, self.q, self.theta = psf_at(spec, fp, u, v, self.e0_angle)
        # typical sky noise (gain 1.6 e-/ADU, 5 e- read noise): only used to size the stamps
        self.noise_adu = math.sqrt(self.sky_adu * 1.6 + 25.0) / 1.6

    # -- per-CCD work --------------------------------------------------------------------------
    def flat(self, ccd: CCD) -> np.ndarray:
        """Flat-field response of ``ccd`` for this QRUNID and filter: a smooth few-% illumination
        pattern times 0.7% pixel-to-pixel variations (mean 1)."""
        from .render import make_flat
        seq = np.random.SeedSequence([self.seed, _crc(self.spec.qrunid), _crc(self.fname), ccd.number, 3])
        rng = np.random.default_rng(seq)
        coeffs = rng.normal(0.0, 0.01, 5)
        return make_flat(coeffs, 0.007, rng.random((ccd.ny, ccd.nx), dtype=np.float32))

    def bpm(self, ccd: CCD) -> np.ndarray:
        """Bad-pixel map (uint8): bit 1 bad columns, bit 2 hot pixels; fixed for the camera (seed)."""
        bpm = np.zeros((ccd.ny, ccd.nx), np.uint8)
        if not self.spec.defects:
            return bpm
        rng = np.random.default_rng([self.seed, ccd.number, 4])
        area = ccd.nx * ccd.ny / (2048.0 * 4612.0)
        for _ in range(rng.poisson(1.5 * max(area, 0.3))):
            col = int(rng.integers(0, ccd.nx))
            start = int(rng.integers(0, ccd.ny // 2)) if rng.random() < 0.5 else 0
            bpm[start:, col] |= 1
        nhot = rng.poisson(60 * area)
        bpm[rng.integers(0, ccd.ny, nhot), rng.integers(0, ccd.nx, nhot)] |= 2
        return bpm

    def render_ccd(self, ccd: CCD):
        from .render import (add_line, add_noise, apply_flat, bleed_columns, detrend, moffat_mixture,
                             render_mixtures, render_moffat_stars, sersic_mixture)
        spec, fp = self.spec, self.fp
        seq = np.random.SeedSequence([self.seed, spec.expnum, _crc(spec.name), ccd.number, 2])
        rng = np.random.default_rng(seq)
        x1, y1 = ccd.focal_to_pix(self.u, self.v)  # FITS 1-based
        x0, y0 = x1 - 1.0, y1 - 1.0  # 0-based array coordinates for the kernels
        margin = 60.0
        near = (x0 > -margin) & (x0 < ccd.nx + margin) & (y0 > -margin) & (y0 < ccd.ny + margin)
        idx = np.nonzero(near)[0]
        model = np.zeros((ccd.ny, ccd.nx), np.float64)
        src = self.sources
        star = idx[src.kind[idx] == 0]
        gal = idx[src.kind[idx] == 1]
        alpha = _alpha_from_fwhm(self.fwhm, spec.beta)
        rot = ccd.rot  # PSF is fixed to the focal plane; CCD rotation tilts it in pixel coordinates
        # stamp radius: where the Moffat wing falls below 2% of the sky noise, at least 4 FWHM
        peak = self.flux * (spec.beta - 1.0) / (math.pi * alpha ** 2)
        ratio = np.maximum(peak / (0.02 * self.noise_adu), 1.0)
        rad = alpha * np.sqrt(np.maximum(ratio ** (1.0 / spec.beta) - 1.0, 0.0))
        radius = np.clip(np.maximum(rad, 4.0 * self.fwhm), 4.0, 300.0)
        if star.size:
            render_moffat_stars(model, x0[star], y0[star], self.flux[star], alpha[star], spec.beta,
                                self.q[star], self.theta[star] - rot, radius[star])
        if gal.size:
            self._render_galaxies(model, ccd, gal, x0, y0, alpha, sersic_mixture, moffat_mixture,
                                  render_mixtures)
        model += self.sky_adu * (1.0 + 0.01 * (ccd.pix_to_focal(ccd.nx / 2, ccd.ny / 2)[0] / fp.radius()))
        if self.satellite is not None:
            su, sv, ang, peak_adu = self.satellite
            sx, sy = ccd.focal_to_pix(su, sv)
            add_line(model, float(sx) - 1.0, float(sy) - 1.0, math.cos(ang - rot), math.sin(ang - rot),
                     float(psf_at(spec, fp, np.array([su]), np.array([sv]))[0][0]) / 2.355, peak_adu)
        flat = self.flat(ccd)
        bpm = self.bpm(ccd)
        # truth: sources whose centre lies on this CCD; saturated if the noise-free image (sky and
        # neighbours included) reaches SATURATE in the source's central pixel
        on = idx[(x1[idx] >= 0.5) & (x1[idx] < ccd.nx + 0.5) & (y1[idx] >= 0.5) & (y1[idx] < ccd.ny + 0.5)]
        ci = np.clip(np.rint(x0[on]).astype(int), 0, ccd.nx - 1)
        cj = np.clip(np.rint(y0[on]).astype(int), 0, ccd.ny - 1)
        truth = dict(index=on, x=x1[on], y=y1[on], saturated=model[cj, ci] * flat[cj, ci] >= ccd.saturate)
        raw = model
        apply_flat(raw, flat)  # ADU the CCD actually collects
        bleed_columns(raw, float(ccd.saturate))
        add_noise(raw, ccd.gain, ccd.rdnoise, rng.standard_normal((ccd.ny, ccd.nx), dtype=np.float32),
                  int(seq.generate_state(1)[0] >> 1))
        if spec.cosmic_rays:
            self._cosmic_rays(raw, ccd, rng)
        if spec.defects:
            hot = (bpm & 2) > 0
            raw[hot] += rng.uniform(500.0, 20000.0, int(hot.sum()))
            dead = (bpm & 1) > 0
            raw[dead] = rng.normal(0.0, ccd.rdnoise / ccd.gain, int(dead.sum()))
        image = detrend(raw, flat, float(ccd.saturate))
        # big-endian now, in the worker thread, so that writing the FITS file needs no byte swap
        return stored_pixels(image, spec.bitpix), flat.astype(">f4"), bpm, truth

    def _render_galaxies(self, model, ccd, gal, x0, y0, alpha, sersic_mixture, moffat_mixture,
                         render_mixtures):
        spec, src = self.spec, self.sources
        # sky -> pixel Jacobian (linear part of the true WCS; the distortion changes shapes < 0.1%)
        cd = self.wcs.cd_matrix(ccd) * 3600.0  # arcsec per pixel
        jinv = np.linalg.inv(cd)
        pw, pv = moffat_mixture(spec.beta)
        for n in np.unique(src.n[gal]):
            sel = gal[src.n[gal] == n]
            gw, gv = sersic_mixture(float(n))
            re, q = src.re[sel], src.q[sel]
            pa = np.radians(src.pa[sel])
            # major axis direction on the sky (xi east, eta north), PA east of north
            ux, uy = np.sin(pa), np.cos(pa)
            a2, b2 = re * re, (q * re) ** 2
            sxx = a2 * ux * ux + b2 * uy * uy
            syy = a2 * uy * uy + b2 * ux * ux
            sxy = (a2 - b2) * ux * uy
            gxx = jinv[0, 0] ** 2 * sxx + 2 * jinv[0, 0] * jinv[0, 1] * sxy + jinv[0, 1] ** 2 * syy
            gyy = jinv[1, 0] ** 2 * sxx + 2 * jinv[1, 0] * jinv[1, 1] * sxy + jinv[1, 1] ** 2 * syy
            gxy = (jinv[0, 0] * jinv[1, 0] * sxx + (jinv[0, 0] * jinv[1, 1] + jinv[0, 1] * jinv[1, 0]) * sxy
                   + jinv[0, 1] * jinv[1, 1] * syy)
            al, qq, th = alpha[sel], self.q[sel], self.theta[sel] - ccd.rot
            ca, sa = np.cos(th), np.sin(th)
            pa2, pb2 = al * al / qq, al * al * qq
            mxx = pa2 * ca * ca + pb2 * sa * sa
            myy = pa2 * sa * sa + pb2 * ca * ca
            mxy = (pa2 - pb2) * ca * sa
            # all galaxy x PSF component pairs; variance units: r_e^2 (galaxy) and alpha^2 (PSF shape)
            amp = (gw[:, None] * pw[None, :]).ravel()
            keep = amp > 2e-3
            gi, pj = np.meshgrid(np.arange(gw.size), np.arange(pw.size), indexing="ij")
            gi, pj = gi.ravel()[keep], pj.ravel()[keep]
            amp = amp[keep] / amp[keep].sum()
            cxx = gxx[:, None] * gv[gi] + mxx[:, None] * pv[pj] + 1.0 / 12.0
            cyy = gyy[:, None] * gv[gi] + myy[:, None] * pv[pj] + 1.0 / 12.0
            cxy = gxy[:, None] * gv[gi] + mxy[:, None] * pv[pj]
            amps = np.broadcast_to(amp, cxx.shape).copy()
            # stamp radius: 3 sigma of the widest significant component, or less (down to 1.5 sigma) for
            # faint galaxies when the flux beyond it is below a tenth of the noise within the stamp
            # (that flux is put back by the stamp normalisation, so it only changes the profile there)
            big = np.sqrt(np.maximum(cxx, cyy))
            sig = np.max(big * (amps > 0.02), axis=1)
            radius = 3.0 * sig
            for k in (2.5, 2.0, 1.5):
                r = k * sig
                lost = self.flux[sel] * np.sum(amps * np.exp(-0.5 * (r[:, None] / big) ** 2), axis=1)
                ok = lost < 0.1 * self.noise_adu * np.sqrt(np.pi) * r
                radius = np.where(ok, r, radius)
            radius = np.clip(radius, 3.0, 250.0)
            render_mixtures(model, x0[sel], y0[sel], self.flux[sel], cxx, cxy, cyy, amps, radius)

    def _cosmic_rays(self, raw, ccd, rng):
        n = rng.poisson(self.spec.cosmic_rate * ccd.nx * ccd.ny * self.spec.exptime)
        if n == 0:
            return
        xs = rng.uniform(0, ccd.nx, n)
        ys = rng.uniform(0, ccd.ny, n)
        length = rng.exponential(3.0, n) + 1.0
        ang = rng.uniform(0, math.pi, n)
        energy = rng.lognormal(math.log(1500.0), 0.6, n) / ccd.gain  # ADU per pixel along the track
        for k in range(n):
            steps = int(length[k]) + 1
            t = np.arange(steps)
            ix = np.clip((xs[k] + t * math.cos(ang[k])).astype(int), 0, ccd.nx - 1)
            iy = np.clip((ys[k] + t * math.sin(ang[k])).astype(int), 0, ccd.ny - 1)
            raw[iy, ix] += energy[k]


def _iso_date(mjd: float) -> str:
    from astropy.time import Time
    return Time(mjd, format="mjd", scale="utc").isot[:19]


def _sexagesimal(value: float) -> str:
    sign = "-" if value < 0 else ""
    total = round(abs(float(value)) * 360000.0)  # hundredths of a second
    d, rest = divmod(total, 360000)
    m, cs = divmod(rest, 6000)
    return f"{sign}{d:02d}:{m:02d}:{cs / 100:05.2f}"


def _primary_header(exp: _Exposure, fp: FocalPlane):
    from astropy.io import fits
    spec = exp.spec
    h = fits.Header()
    rel = spec.release_date or _iso_date(spec.mjd + 365.25)[:10]
    cards = [
        ("ORIGIN", "terapix-fw simulator", "simulated data (SkyMaker's role)"),
        ("TELESCOP", "CFHT 3.6m", "telescope"),
        ("INSTRUME", "MegaPrime", "instrument"),
        ("DETECTOR", fp.name, "camera"),
        ("FILENAME", spec.name, "base filename"),
        ("EXPNUM", spec.expnum, "CFHT odometer number"),
        ("OBSTYPE", "OBJECT", "observation type"),
        ("OBJECT", spec.object, "target field"),
        ("FILTER", exp.fname, "MegaCam filter"),
        ("EXPTIME", float(spec.exptime), "integration time (s)"),
        ("AIRMASS", round(float(spec.airmass), 4), "airmass at start"),
        ("MJD-OBS", round(float(spec.mjd), 8), "modified Julian date at start"),
        ("DATE-OBS", _iso_date(spec.mjd), "UTC date and time at start"),
        ("RA", _sexagesimal(exp.wcs.guess_crval()[0] / 15.0), "telescope pointing RA (hh:mm:ss)"),
        ("DEC", _sexagesimal(exp.wcs.guess_crval()[1]), "telescope pointing Dec (dd:mm:ss)"),
        ("RA_DEG", round(float(exp.wcs.guess_crval()[0]), 6), "telescope pointing RA (deg)"),
        ("DEC_DEG", round(float(exp.wcs.guess_crval()[1]), 6), "telescope pointing Dec (deg)"),
        ("QRUNID", spec.qrunid, "queue run (camera run) identifier"),
        ("RUNID", spec.runid, "CFHT program run identifier"),
        ("PHOTFLAG", bool(spec.photometric), "photometric conditions"),
        ("REL_DATE", rel, "public release date"),
        ("PHOT_C", round(exp.phot_c, 4), "zero point, 1 ADU/s at airmass 1"),
        ("PHOT_K", exp.phot_k, "extinction coefficient (mag/airmass)"),
        ("MAGZP", round(exp.header_zp, 4), "nominal zero point of this exposure (total ADU)"),
        ("SEEING", round(float(spec.seeing), 3), "nominal seeing FWHM at field centre (arcsec)"),
        ("NEXTEND", fp.nccd, "number of image extensions"),
    ]
    for key, value, comment in cards:
        h[key] = (value, comment)
    return h


_COPY_TO_EXT = ("OBJECT", "FILTER", "EXPTIME", "AIRMASS", "MJD-OBS", "DATE-OBS", "QRUNID", "RUNID",
                "PHOTFLAG", "REL_DATE", "EXPNUM", "MAGZP", "PHOT_C", "PHOT_K")


def _ext_header(exp: _Exposure, ccd: CCD, primary, guess):
    from astropy.io import fits
    h = fits.Header()
    h["EXTNAME"] = (ccd.extname, "CCD name")
    h["CCDNUM"] = (ccd.number, "CCD number")
    h["GAIN"] = (ccd.gain, "gain (e-/ADU)")
    h["RDNOISE"] = (ccd.rdnoise, "read noise (e-)")
    h["SATURATE"] = (float(ccd.saturate), "saturation level (ADU)")
    for key in _COPY_TO_EXT:
        h[key] = (primary[key], primary.comments[key])
    h.extend(guess)
    return h


def stored_pixels(image, bitpix: int):
    """The pixels as the file stores them: big-endian float32 (BITPIX -32), or for BITPIX 16 unsigned
    16-bit integers as raw CCD frames hold them (rounded, clipped to [0, 65535]: astropy writes uint16 as
    BITPIX 16 with BZERO 32768; RICE compression of integers is lossless).

    Parameters
    ----------
    image : numpy.ndarray
    bitpix : int
        16 or -32.

    Returns
    -------
    numpy.ndarray
    """
    if bitpix == 16:
        return np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    return image.astype(">f4")


def _write_mef(path: Path, primary, hdus_iter, compress: bool, dither_seed: int) -> None:
    """Write a MEF one extension at a time (memory stays bounded for 36 full-size CCDs).

    Each extension is serialised by astropy on its own (behind an empty 2880-byte primary that is then
    dropped) and appended to the file: astropy's append mode re-verifies the whole file at every flush,
    which is quadratic in the number of extensions.
    """
    import io

    from astropy.io import fits
    empty = fits.PrimaryHDU()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as out:
            fits.PrimaryHDU(header=primary).writeto(out)
            for data, header in hdus_iter:
                if compress and data.dtype.kind == "f":
                    hdu = fits.CompImageHDU(data, header, compression_type="RICE_1",
                                            quantize_level=16.0, dither_seed=dither_seed)
                elif compress:
                    hdu = fits.CompImageHDU(data, header, compression_type="RICE_1")
                else:
                    hdu = fits.ImageHDU(data, header)
                buf = io.BytesIO()
                fits.HDUList([empty, hdu]).writeto(buf)
                out.write(buf.getbuffer()[2880:])


def _ordered_parallel(func, items, nthreads):
    """``map(func, items)`` on ``nthreads`` threads, yielding in order with at most nthreads+1 results
    held in memory (full-size CCDs are 40-80 MB each)."""
    if nthreads <= 1:
        for item in items:
            yield func(item)
        return
    with ThreadPoolExecutor(nthreads) as pool:
        pending = []
        it = iter(items)
        for item in it:
            pending.append(pool.submit(func, item))
            if len(pending) > nthreads:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


def simulate_exposure(outdir: str | Path, spec: ExposureSpec | None = None, *, seed: int = 1,
                      focal_plane: FocalPlane | None = None, sky: SkyModel | None = None,
                      nthreads: int | None = None, write_refcat: bool = True,
                      write_calibration: bool = True, **overrides: Any) -> ExposureResult:
    """Simulate one exposure into ``outdir`` and return what was written with the truth.

    Parameters
    ----------
    outdir : directory for ``<name>.fits`` (the MEF, first-guess WCS only), ``truth/<name>.truth.fits``,
        ``truth/<name>.wcs.truth`` (true WCS, ``.head`` format under a name no tool reads),
        ``<name>.refcat.fits`` and the calibration maps ``flat_<QRUNID>_<filter>.fits``,
        ``bpm_<camera>.fits``.
    spec : an :class:`ExposureSpec`; keyword ``overrides`` replace its fields (e.g. ``seeing=0.6``).
    seed : master seed; the same seed and spec give byte-identical files.  Unless ``sky`` is given the
        sky is ``SkyModel(seed, spec.maglim, spec.density, spec.star_density)``.
    focal_plane : default the full MegaCam mosaic; use :func:`small_focal_plane` for tests.
    sky : the sky model (a :class:`~terapix_fw.sim.sky.SkyModel` or a fixed source list); see ``seed``.
    nthreads : CCDs rendered in parallel (default: all cores).
    write_refcat : also write ``<name>.refcat.fits``, the astrometric reference catalogue.
    write_calibration : also write the flat and bad-pixel maps.
    **overrides : :class:`ExposureSpec` fields to replace.

    Returns
    -------
    ExposureResult
        The paths written, the truth catalogue, the true and first-guess WCS and the zero point.

    Raises
    ------
    TypeError
        On an override that is not an :class:`ExposureSpec` field.
    """
    valid = {f.name for f in fields(ExposureSpec)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise TypeError(f"simulate_exposure: unknown argument(s) {unknown}; ExposureSpec fields are "
                        f"{sorted(valid)}")
    spec = replace(spec or ExposureSpec(), **overrides)
    fp = focal_plane or megacam_focal_plane()
    sky = sky or SkyModel(seed, spec.maglim, spec.density, spec.star_density)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    nthreads = max(1, min(nthreads or os.cpu_count() or 1, fp.nccd))
    exp = _Exposure(spec, fp, seed, sky)
    primary = _primary_header(exp, fp)
    flat_path = outdir / f"flat_{spec.qrunid}_{exp.fname}.fits"
    bpm_path = outdir / f"bpm_{fp.name}.fits"
    # the maps depend on the seed and camera, not on the exposure: written once, rewritten only when a
    # map of another seed or camera sits under the same name
    cal_key = f"seed={seed} camera={fp.name} nccd={fp.nccd} size={fp.ccds[0].nx}x{fp.ccds[0].ny}"
    want_cal = write_calibration and not (_has_key(flat_path, cal_key) and _has_key(bpm_path, cal_key))
    flats, bpms, truths = [], [], []
    guess_wcs = [exp.wcs.header(ccd, true=False) for ccd in fp.ccds]

    def images():
        rendered = _ordered_parallel(exp.render_ccd, fp.ccds, nthreads)
        for k, (ccd, (image, flat, bpm, truth)) in enumerate(zip(fp.ccds, rendered)):
            truths.append((ccd, truth))
            if want_cal:
                flats.append((flat, _cal_header(ccd, "flat field response (mean 1)")))
                bpms.append((bpm, _cal_header(ccd, "bad pixels: bit 1 bad column, bit 2 hot pixel")))
            yield image, _ext_header(exp, ccd, primary, guess_wcs[k])

    path = outdir / f"{spec.name}.fits"
    dither_seed = 1 + (seed * 7919 + spec.expnum) % 10000
    _write_mef(path, primary, images(), spec.compress, dither_seed)
    if want_cal:
        from astropy.io import fits
        cal = fits.Header()
        cal["SIMKEY"] = cal_key  # seed and camera of the simulation that made the map
        bpm_primary = cal.copy()
        cal["QRUNID"] = spec.qrunid
        cal["FILTER"] = exp.fname
        _write_mef(flat_path, cal, iter(flats), False, 1)
        _write_mef(bpm_path, bpm_primary, iter(bpms), False, 1)
    truth = _truth_table(exp, truths)
    true_wcs = [exp.wcs.header(ccd, true=True) for ccd in fp.ccds]
    # truth never sits where a tool looks for its inputs: a .head beside the MEF would be read by
    # SExtractor/SCAMP/SWarp (HEADER_SUFFIX) and every astrometric solution would start from the answer
    truth_dir = outdir / TRUTH_DIR
    truth_dir.mkdir(exist_ok=True)
    truth_path = truth_dir / f"{spec.name}.truth.fits"
    _write_truth(truth_path, truth, exp)
    head_path = truth_dir / f"{spec.name}{TRUE_WCS_SUFFIX}"
    write_text_atomic(head_path, "".join(h.tostring(sep="\n", endcard=True, padding=False) + "\n"
                                         for h in true_wcs))
    refcat = None
    if write_refcat:
        from .refcat import write_reference_catalog
        refcat = outdir / f"{spec.name}.refcat.fits"
        write_reference_catalog(refcat, exp.sources, exp.band, spec.refcat_maglim, seed)
    return ExposureResult(path, spec, fp, truth, truth_path, true_wcs, head_path, guess_wcs, exp.zp,
                          exp.header_zp, spec.photometric, spec.seeing, refcat,
                          flat_path if write_calibration else None, bpm_path if write_calibration else None,
                          exp.satellite is not None,
                          meta=dict(name=spec.name, filter=exp.fname, qrunid=spec.qrunid, runid=spec.runid,
                                    mjd=spec.mjd, exptime=spec.exptime, airmass=spec.airmass,
                                    zeropoint=exp.zp, header_zeropoint=exp.header_zp, cloud=exp.cloud,
                                    seeing=spec.seeing, photometric=spec.photometric,
                                    sky_adu=exp.sky_adu, nsources=int(len(truth))))


def _has_key(path: Path, key: str) -> bool:
    from astropy.io import fits
    if not path.exists():
        return False
    try:
        return fits.getheader(path, 0).get("SIMKEY") == key
    except OSError:  # unreadable: rewrite it
        return False


def _cal_header(ccd: CCD, what: str):
    from astropy.io import fits
    h = fits.Header()
    h["EXTNAME"] = ccd.extname
    h["CCDNUM"] = ccd.number
    h["COMMENT"] = what
    return h


def _truth_table(exp: _Exposure, truths) -> Any:
    from astropy.table import Table
    src = exp.sources
    index = np.concatenate([t["index"] for _, t in truths]) if truths else np.zeros(0, int)
    ccdn = np.concatenate([np.full(t["index"].size, c.number) for c, t in truths]) if truths else index
    x = np.concatenate([t["x"] for _, t in truths]) if truths else np.zeros(0)
    y = np.concatenate([t["y"] for _, t in truths]) if truths else np.zeros(0)
    sat = np.concatenate([t["saturated"] for _, t in truths]) if truths else np.zeros(0, bool)
    ext = {c.number: i + 1 for i, c in enumerate(exp.fp.ccds)}
    t = Table()
    t["ID"] = src.id[index]
    t["RA"] = src.ra[index]
    t["DEC"] = src.dec[index]
    t["CCD"] = ccdn.astype(np.int16)
    t["EXT"] = np.array([ext[c] for c in ccdn], dtype=np.int16)
    t["X_IMAGE"] = x
    t["Y_IMAGE"] = y
    t["MAG"] = exp.mag[index]
    t["FLUX"] = exp.flux[index]
    t["IS_STAR"] = src.kind[index] == 0
    t["SERSIC_N"] = src.n[index]
    t["RE_ARCSEC"] = src.re[index]
    t["AXIS_RATIO"] = src.q[index]
    t["THETA_WORLD"] = src.pa[index]
    t["FWHM_PSF"] = exp.fwhm[index] * exp.fp.pixscale
    t["ELLIP_PSF"] = 1.0 - exp.q[index]
    t["SATURATED"] = sat
    for name, (unit, desc) in TRUTH_COLUMNS.items():
        t[name].unit = unit or None
        t[name].description = desc
    t.meta.update(ZP=exp.zp, MAGZP=exp.header_zp, CLOUD=exp.cloud, SEEING=exp.spec.seeing,
                  FILTER=exp.fname, EXPNAME=exp.spec.name, SKYADU=exp.sky_adu)
    return t


def _write_truth(path: Path, truth, exp: _Exposure) -> None:
    from astropy.io import fits
    hdu = fits.table_to_hdu(truth)
    hdu.header["EXTNAME"] = "TRUTH"
    hdu.header["ZP"] = (exp.zp, "true zero point: mag = ZP - 2.5 log10(ADU)")
    hdu.header["PIXCONV"] = ("FITS 1-based", "X_IMAGE/Y_IMAGE: first pixel centre = 1.0")
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp)
