"""MegaCam-like raw exposures rendered with GalSim, independent of terapix_fw's own simulator.

Made to test the tools on data they were not written against (issue 14).  Nothing here imports
``terapix_fw``; the framework never imports this module.

What an exposure holds (one MEF per exposure, empty primary HDU, one image extension per CCD):

* untruncated Moffat PSFs, beta 2.6-3.4 (one per exposure), FWHM 0.6-1.1" varying over the focal plane
  (a radial term and a gradient), with a small position-dependent ellipticity;
* stars with a power-law magnitude distribution (r from 14 to 24), Sersic galaxies (n 0.5-4, truncated at
  5 half-light radii; drawn with a PSF truncated at 6 FWHM, the difference is far below the noise);
* sky + Poisson + read noise, gain, saturation at 65535 ADU (raw 16-bit unsigned: BITPIX 16, BZERO 32768,
  optionally RICE-compressed ``.fits.fz``);
* cosmic rays: spots, straight tracks and curly "worms"; bad columns (dead or hot);
* a weight map per exposure (``<name>.weight.fits``: smooth flat-field response, 0 on bad columns);
* a first-guess TAN WCS as telescope headers have it: pointing off by a few arcsec (rms and maximum
  configurable, up to 30"), a rotation (up to 0.5 deg), a scale error (up to 1 %), per-CCD placement
  jitter, no PV terms; the true WCS optionally has a radial third-order distortion (TPV);
* keywords FILTER, QRUNID, RUNID, EXPTIME, AIRMASS, MJD-OBS, DATE-OBS, OBJECT, GAIN, RDNOISE, SATURATE,
  RA/DEC, PHOTFLAG, PHOT_C, PHOT_K in the primary header and in every extension.

Truth is written only under ``<outdir>/truth/`` with names no AstrOmatic tool or terapix-fw step reads by
default (never a ``.head`` beside a raw image):

* ``truth/survey.json``: configuration, and per exposure the pointing, the header errors, seeing, beta,
  the true zero point (``zp_adu``: MAG = zp_adu - 2.5 log10(ADU in the exposure)) and dimming;
* ``truth/<name>.truewcs.txt``: the true WCS of each CCD as 80-character cards, one block per extension
  ending with END (the ``.head`` layout under another name);
* ``truth/<name>.sources.fits``: every source drawn in the exposure (ID, RA, DEC, CCD, X, Y (FITS
  pixels), MAG, FLUX_ADU, TYPE 0 star / 1 galaxy, SERSIC_N, HLR_ARCSEC);
* ``truth/<name>.crmask.fits``: per CCD a uint8 mask of cosmic-ray pixels (bit 1: any deposit, bit 2:
  deposit above 5 sigma of the sky noise) and ``truth/sky_sources.fits``, the whole input sky.

Beside the exposures: ``reference.cat``, a FITS_LDAC reference catalogue (LDAC_OBJECTS: X_WORLD, Y_WORLD,
ERRA_WORLD, ERRB_WORLD, ERRTHETA_WORLD, MAG, MAGERR, OBSDATE) of the stars with r < 21, positions with
20 mas noise, for SCAMP's ``ASTREF_CATALOG FILE``.

API: ``make_survey(outdir, SurveyConfig(...))`` or ``make_survey(outdir, preset="small")``.
CLI: ``python -m terapix_testdata.galsim_survey --help``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SurveyConfig", "SurveyConfigError", "make_survey", "PRESETS", "main", "read_truewcs", "megacam_layout"]

ARCSEC = 1.0 / 3600.0
# Nominal MegaCam-like zero points, e-/s for a source of magnitude ZP; sky brightness in mag/arcsec^2;
# extinction per airmass (the CFHT values to ~0.02 mag).
ZP_E = {"r": 26.50, "i": 26.25}
SKY_MAG = {"r": 20.9, "i": 20.2}
EXTINCTION = {"r": 0.10, "i": 0.04}
PIXEL_CM = 13.5e-4


class SurveyConfigError(ValueError):
    """A setting of :class:`SurveyConfig` outside the supported range."""


@dataclass
class SurveyConfig:
    """All knobs of a survey.  Angles in degrees unless named ``*_arcsec``."""

    nccd: int = 4                      # 4 (2x2) or 36 (MegaCam 9x4); any n uses a near-square grid
    nx: int = 2048
    ny: int = 4612
    nexp: int = 6
    filters: tuple = ("r", "i")        # cycled over exposures
    photometric: tuple = ()            # indices of photometric exposures; () = the first of each filter
    dim_range: tuple = (0.05, 0.30)    # cloud extinction (mag) of the non-photometric exposures
    exptime: float = 300.0
    pixscale: float = 0.186            # arcsec/px
    ra: float = 150.10
    dec: float = 2.20
    dither_arcsec: float | None = None  # dither amplitude; None = 15 % of a CCD's width
    wcs_error_arcsec: float = 4.4      # rms of the radial pointing error of the header
    wcs_error_max_arcsec: float = 6.0  # clip of the pointing error (<= 30 supported)
    rotation_max_deg: float = 0.1      # header rotation error, uniform in +-
    scale_error_max: float = 0.002     # header scale error (fraction), uniform in +-
    ccd_jitter_arcsec: float = 0.3     # rms error of each CCD's nominal placement in the header (the
    #                                    real CCDs sit off the nominal layout by the same amount in every
    #                                    exposure: one draw per survey)
    distortion_arcsec: float = 0.0     # true radial distortion at the layout's corner (0: pure TAN)
    fwhm_range: tuple = (0.6, 1.1)     # arcsec, over the whole survey
    beta_range: tuple = (2.6, 3.4)
    star_density: float = 2.0          # per arcmin^2, r < 24
    galaxy_density: float = 15.0       # per arcmin^2, r < 24.5
    star_mag_range: tuple = (14.0, 24.0)
    galaxy_mag_range: tuple = (18.0, 24.5)
    gain: float = 1.6                  # e-/ADU
    read_noise: float = 5.0            # e-
    saturate: float = 65535.0          # ADU
    pedestal: float = 0.0              # ADU added to every pixel
    cr_rate: float = 0.02              # cosmic rays per cm^2 per second
    nbadcol: int = 3                   # bad columns per CCD
    refcat_maglim: float = 21.0
    refcat_sigma_mas: float = 20.0
    compress: bool = False             # write .fits.fz (RICE_1) instead of .fits
    weights: bool = True
    seed: int = 1
    runid: str = "14AQ01"
    qrunid: str = "14AQ01"
    object: str = "GALSIM_D1"
    mjd0: float = 56700.30
    expnum0: int = 1700001
    jobs: int = 1                      # processes (exposures rendered in parallel)
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`SurveyConfigError` naming the first out-of-range setting."""
        if self.wcs_error_max_arcsec > 30.0 + 1e-9:
            raise SurveyConfigError(f"wcs_error_max_arcsec={self.wcs_error_max_arcsec}: at most 30 is supported")
        if self.rotation_max_deg > 0.5 + 1e-9:
            raise SurveyConfigError(f"rotation_max_deg={self.rotation_max_deg}: at most 0.5 is supported")
        if self.scale_error_max > 0.01 + 1e-12:
            raise SurveyConfigError(f"scale_error_max={self.scale_error_max}: at most 0.01 is supported")
        for f in self.filters:
            if f not in ZP_E:
                raise SurveyConfigError(f"filter {f!r}: expected one of {sorted(ZP_E)}")
        if self.nccd < 1 or self.nx < 64 or self.ny < 64 or self.nexp < 1:
            raise SurveyConfigError("nccd >= 1, nx, ny >= 64 and nexp >= 1 are required")


PRESETS = {
    # Regression tests: 4 CCDs of 512x1024, 4 exposures, dense enough for astrometry.
    "small": dict(nccd=4, nx=512, ny=1024, nexp=4, star_density=25.0, galaxy_density=20.0),
    # 36 CCDs in the MegaCam layout, CCDs a quarter of the size in each axis, dense stars.
    "small36": dict(nccd=36, nx=512, ny=1152, nexp=4, star_density=25.0, galaxy_density=10.0),
    # Benchmarks: full-size CCDs.
    "full4": dict(nccd=4, nx=2048, ny=4612, nexp=6),
    "full36": dict(nccd=36, nx=2048, ny=4612, nexp=6),
}


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------

def megacam_layout(nccd: int, nx: int, ny: int) -> np.ndarray:
    """Centre of each CCD in focal-plane pixels (x, y) relative to the optical axis.

    36 CCDs: MegaCam's 9 x 4 mosaic (gaps of ~13" between columns, ~80" between the middle rows);
    4 CCDs: 2 x 2; other counts: a near-square grid.  Gaps scale with the CCD size."""
    gx = 0.034 * nx                      # ~70 px for 2048
    gy_small = 0.017 * ny                # ~80 px for 4612
    gy_big = 0.09 * ny                   # ~415 px between rows 2 and 3 of MegaCam
    if nccd == 36:
        ncol, nrow = 9, 4
    else:
        ncol = int(math.ceil(math.sqrt(nccd)))
        nrow = int(math.ceil(nccd / ncol))
    xs = (np.arange(ncol) - (ncol - 1) / 2.0) * (nx + gx)
    ys = []
    y = 0.0
    for r in range(nrow):
        ys.append(y)
        y += ny + (gy_big if (nccd == 36 and r == 1) else gy_small)
    ys = np.array(ys) - (ys[-1] + ys[0]) / 2.0
    out = [(xs[k % ncol], ys[k // ncol]) for k in range(nccd)]
    return np.array(out, float)


def _cd(scale_arcsec: float, rot_deg: float) -> np.ndarray:
    """CD matrix (deg/px), RA increasing to the left (east left, north up), rotated by rot_deg."""
    s = scale_arcsec * ARCSEC
    c, sn = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))
    base = np.array([[-s, 0.0], [0.0, s]])
    rot = np.array([[c, -sn], [sn, c]])
    return rot @ base


def _wcs_header(crval, crpix, cd, k_dist: float = 0.0):
    from astropy.io import fits

    h = fits.Header()
    ctype = "TPV" if k_dist else "TAN"
    h["EQUINOX"] = (2000.0, "mean equinox")
    h["RADESYS"] = ("ICRS", "astrometric system")
    h["CTYPE1"] = (f"RA---{ctype}", "WCS projection type for this axis")
    h["CTYPE2"] = (f"DEC--{ctype}", "WCS projection type for this axis")
    h["CUNIT1"] = ("deg", "axis unit")
    h["CUNIT2"] = ("deg", "axis unit")
    h["CRVAL1"] = (float(crval[0]), "world coordinate on this axis")
    h["CRVAL2"] = (float(crval[1]), "world coordinate on this axis")
    h["CRPIX1"] = (float(crpix[0]), "reference pixel on this axis")
    h["CRPIX2"] = (float(crpix[1]), "reference pixel on this axis")
    h["CD1_1"] = (float(cd[0, 0]), "linear projection matrix")
    h["CD1_2"] = (float(cd[0, 1]), "linear projection matrix")
    h["CD2_1"] = (float(cd[1, 0]), "linear projection matrix")
    h["CD2_2"] = (float(cd[1, 1]), "linear projection matrix")
    if k_dist:
        # xi' = xi (1 + k r^2), eta' = eta (1 + k r^2) in TPV terms (degrees).
        for ax in (1, 2):
            h[f"PV{ax}_0"] = 0.0
            h[f"PV{ax}_1"] = 1.0
            h[f"PV{ax}_2"] = 0.0
            h[f"PV{ax}_7"] = float(k_dist)
            h[f"PV{ax}_9"] = float(k_dist)
    return h


def read_truewcs(path: str | Path) -> list:
    """The true WCS headers of an exposure (``truth/<name>.truewcs.txt``), one astropy Header per CCD."""
    from astropy.io import fits

    text = Path(path).read_text()
    blocks, cur = [], []
    for line in text.splitlines():
        if line.startswith("END") and line[3:].strip() == "":
            blocks.append(fits.Header.fromstring("\n".join(cur), sep="\n"))
            cur = []
        elif line.strip():
            cur.append(line)
    return blocks


# --------------------------------------------------------------------------------------------------
# Sky
# --------------------------------------------------------------------------------------------------

def _powerlaw_mags(rng, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """n magnitudes with dN/dm ∝ 10^(slope m) on [lo, hi]."""
    a = 10.0 ** (slope * lo)
    b = 10.0 ** (slope * hi)
    u = rng.uniform(a, b, n)
    return np.log10(u) / slope


def _make_sky(cfg: SurveyConfig, rng, radius_deg: float):
    """Stars and galaxies in a square of half-size radius_deg around (ra, dec)."""
    area_arcmin2 = (2 * radius_deg * 60.0) ** 2
    nstar = rng.poisson(cfg.star_density * area_arcmin2)
    ngal = rng.poisson(cfg.galaxy_density * area_arcmin2)
    n = nstar + ngal
    cosd = math.cos(math.radians(cfg.dec))
    ra = cfg.ra + rng.uniform(-radius_deg, radius_deg, n) / cosd
    dec = cfg.dec + rng.uniform(-radius_deg, radius_deg, n)
    typ = np.r_[np.zeros(nstar, np.int16), np.ones(ngal, np.int16)]
    rmag = np.r_[_powerlaw_mags(rng, nstar, *cfg.star_mag_range, 0.15),
                 _powerlaw_mags(rng, ngal, *cfg.galaxy_mag_range, 0.35)]
    color = np.r_[rng.uniform(0.0, 1.2, nstar), rng.uniform(0.1, 0.8, ngal)]  # r - i
    # Galaxies: size shrinking with magnitude, Sersic index quantised (GalSim caches one table per n).
    hlr = np.where(typ == 1, np.clip(rng.lognormal(np.log(0.9 * 10 ** (-0.12 * (rmag - 20))), 0.35), 0.15, 4.0),
                   0.0)
    sersic_n = np.where(typ == 1, rng.choice([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0], n,
                                             p=[0.05, 0.35, 0.15, 0.15, 0.1, 0.1, 0.1]), 0.0)
    q = np.where(typ == 1, rng.uniform(0.3, 1.0, n), 1.0)
    pa = rng.uniform(0.0, 180.0, n)
    return dict(ID=np.arange(1, n + 1, dtype=np.int64), RA=ra % 360.0, DEC=dec, TYPE=typ, MAG_R=rmag,
                MAG_I=rmag - color, SERSIC_N=sersic_n, HLR_ARCSEC=hlr, Q=q, PA=pa)


# --------------------------------------------------------------------------------------------------
# Exposure plan
# --------------------------------------------------------------------------------------------------

def _plan(cfg: SurveyConfig, rng) -> list:
    photometric = set(cfg.photometric) if cfg.photometric else {
        next(k for k in range(cfg.nexp) if cfg.filters[k % len(cfg.filters)] == f)
        for f in dict.fromkeys(cfg.filters[:cfg.nexp]) if any(
            cfg.filters[k % len(cfg.filters)] == f for k in range(cfg.nexp))}
    dither = cfg.dither_arcsec if cfg.dither_arcsec is not None else 0.15 * cfg.nx * cfg.pixscale
    cosd = math.cos(math.radians(cfg.dec))
    exps = []
    for k in range(cfg.nexp):
        filt = cfg.filters[k % len(cfg.filters)]
        ang = 2 * math.pi * k / max(cfg.nexp, 1)
        amp = dither * (0.4 + 0.6 * ((k * 7) % 5) / 4.0) if k else 0.0
        ra = cfg.ra + amp * math.cos(ang) * ARCSEC / cosd
        dec = cfg.dec + amp * math.sin(ang) * ARCSEC
        # Header pointing error: radial rms wcs_error_arcsec (2-D Gaussian), clipped at the maximum.
        sig = cfg.wcs_error_arcsec / math.sqrt(2.0)
        while True:
            dx, dy = rng.normal(0.0, sig, 2) if sig > 0 else (0.0, 0.0)
            if math.hypot(dx, dy) <= cfg.wcs_error_max_arcsec:
                break
        rot = rng.uniform(-cfg.rotation_max_deg, cfg.rotation_max_deg)
        scl = rng.uniform(-cfg.scale_error_max, cfg.scale_error_max)
        phot = k in photometric
        dim = 0.0 if phot else float(rng.uniform(*cfg.dim_range))
        airmass = float(rng.uniform(1.02, 1.35))
        fwhm0 = float(rng.uniform(cfg.fwhm_range[0] + 0.03, 0.5 * (cfg.fwhm_range[0] + cfg.fwhm_range[1])))
        beta = round(float(rng.uniform(*cfg.beta_range)), 1)
        gain = cfg.gain
        zp_adu = (ZP_E[filt] + 2.5 * math.log10(cfg.exptime) - 2.5 * math.log10(gain)
                  - dim - EXTINCTION[filt] * (airmass - 1.0))
        mjd = cfg.mjd0 + k * 0.006
        exps.append(dict(index=k, name=f"{cfg.expnum0 + k}p", expnum=cfg.expnum0 + k, filter=filt,
                         ra_true=ra, dec_true=dec,
                         header_offset_arcsec=[float(dx), float(dy)],
                         header_rotation_deg=float(rot), header_scale_error=float(scl),
                         photometric=phot, dim_mag=dim, airmass=airmass, fwhm0=fwhm0, beta=beta,
                         gain=gain, zp_adu=zp_adu, zp_adu_per_s=zp_adu - 2.5 * math.log10(cfg.exptime),
                         mjd=mjd, seed=int(rng.integers(1 << 31))))
    return exps


def _date_obs(mjd: float) -> str:
    from astropy.time import Time

    return Time(mjd, format="mjd", scale="utc").isot[:19]


def _sexa(ra: float, dec: float) -> tuple[str, str]:
    h = ra / 15.0
    hh, mm = int(h), int((h - int(h)) * 60)
    ss = ((h - hh) * 60 - mm) * 60
    sign = "-" if dec < 0 else "+"
    d = abs(dec)
    dd, dm = int(d), int((d - int(d)) * 60)
    ds = ((d - dd) * 60 - dm) * 60
    return f"{hh:02d}:{mm:02d}:{ss:05.2f}", f"{sign}{dd:02d}:{dm:02d}:{ds:04.1f}"


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

def _psf_params(cfg, exp, u, v, rmax):
    """FWHM (arcsec) and shear (g1, g2) at focal-plane position (u, v) in pixels; rmax: layout radius."""
    r2 = (u * u + v * v) / (rmax * rmax)
    fwhm = exp["fwhm0"] * (1.0 + 0.22 * r2 + 0.05 * u / rmax)
    fwhm = np.clip(fwhm, cfg.fwhm_range[0], cfg.fwhm_range[1])
    g1 = 0.03 * r2 * np.cos(2 * np.arctan2(v, u)) + 0.01
    g2 = 0.03 * r2 * np.sin(2 * np.arctan2(v, u))
    return fwhm, g1, g2


def _cosmic_rays(rng, nx, ny, nhits, gain):
    """Deposit (e-) of nhits cosmic rays: spots, straight tracks (muons) and worms (electrons)."""
    img = np.zeros((ny, nx), np.float32)
    kinds = rng.choice(3, nhits, p=[0.45, 0.35, 0.20])
    xs_all, ys_all, ws_all = [], [], []
    for kind in kinds:
        x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        if kind == 0:            # spot: 1-4 pixels
            npt = int(rng.integers(1, 5))
            xs = x0 + rng.normal(0, 0.6, npt)
            ys = y0 + rng.normal(0, 0.6, npt)
            w = np.full(npt, rng.uniform(800, 15000) / npt)
        elif kind == 1:          # straight track
            length = rng.uniform(4, 80)
            th = rng.uniform(0, np.pi)
            t = np.arange(0, length, 0.25)
            xs = x0 + t * np.cos(th)
            ys = y0 + t * np.sin(th)
            w = np.full(t.size, rng.uniform(300, 1500) * 0.25) * rng.uniform(0.7, 1.3, t.size)
        else:                    # worm: random walk with persistent direction
            nstep = int(rng.integers(15, 80))
            th = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, nstep))
            xs = x0 + np.cumsum(0.5 * np.cos(th))
            ys = y0 + np.cumsum(0.5 * np.sin(th))
            w = rng.uniform(400, 2500, nstep) * 0.5
        xs_all.append(xs)
        ys_all.append(ys)
        ws_all.append(w)
    if not nhits:
        return img
    xs, ys, ws = np.concatenate(xs_all), np.concatenate(ys_all), np.concatenate(ws_all)
    # Bilinear split of each deposit over four pixels.
    ix, iy = np.floor(xs - 0.5).astype(int), np.floor(ys - 0.5).astype(int)
    fx, fy = xs - 0.5 - ix, ys - 0.5 - iy
    for ddx, ddy, ww in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                         (1, 1, fx * fy)):
        jx, jy = ix + ddx, iy + ddy
        ok = (jx >= 0) & (jx < nx) & (jy >= 0) & (jy < ny)
        np.add.at(img, (jy[ok], jx[ok]), (ws * ww)[ok].astype(np.float32))
    return img


def _render_ccd(cfg, exp, iccd, ccd_center, rmax, sky, true_wcs, rng):
    """One CCD: (uint16 ADU image, weight, crmask, table of drawn sources)."""
    import warnings

    import galsim

    # Both profiles of a galaxy have hard edges (truncations): GalSim suggests real-space convolution,
    # which is 100x slower here; the FFT is accurate to its folding threshold.
    warnings.filterwarnings("ignore", message="Doing convolution of 2 objects, both with hard edges")
    nx, ny = cfg.nx, cfg.ny
    filt = exp["filter"]
    mag = sky["MAG_R"] if filt == "r" else sky["MAG_I"]
    # Candidate sources near this CCD, then exact pixel positions through the true WCS.
    x, y = true_wcs.wcs_world2pix(sky["RA"], sky["DEC"], 1)     # wcslib inverts TPV itself
    margin = 40
    sel = np.flatnonzero((x > -margin) & (x < nx + margin) & (y > -margin) & (y < ny + margin)
                         & np.isfinite(x) & np.isfinite(y))
    image = galsim.ImageF(nx, ny, scale=cfg.pixscale)   # galsim pixel (1,1) centre at (1.0, 1.0)
    sky_e = 10 ** (-0.4 * (SKY_MAG[filt] - ZP_E[filt])) * cfg.pixscale ** 2 * cfg.exptime
    sky_sigma_e = math.sqrt(sky_e + cfg.read_noise ** 2)
    fluxes = 10 ** (-0.4 * (mag[sel] - exp["zp_adu"])) * exp["gain"]   # e- in the exposure
    u = x[sel] - (nx + 1) / 2.0 + ccd_center[0]
    v = y[sel] - (ny + 1) / 2.0 + ccd_center[1]
    fwhm, g1, g2 = _psf_params(cfg, exp, u, v, rmax)
    beta = exp["beta"]
    gsp = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3, maximum_fft_size=8192)
    thr = 0.2 * sky_sigma_e
    # Profiles of unit size built once and dilated: GalSim caches its tables and maxk/stepk per object,
    # so a new Moffat or Sersic per source would recompute them every time.
    star_base = galsim.Moffat(beta=beta, fwhm=1.0)
    psf_t_base = galsim.Moffat(beta=beta, fwhm=1.0, trunc=6.0, gsparams=gsp)
    sersic_base = {}
    for j, idx in enumerate(sel):
        flux = float(fluxes[j])
        if flux < 0.5 * sky_sigma_e:
            continue
        fw = float(fwhm[j])
        shear = galsim.Shear(g1=float(g1[j]), g2=float(g2[j]))
        alpha = fw / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0)) / cfg.pixscale      # px
        peak = flux * (beta - 1.0) / (math.pi * alpha * alpha)
        rad = alpha * math.sqrt(max((peak / thr) ** (1.0 / beta) - 1.0, 1.0))
        if sky["TYPE"][idx] == 0:
            obj = star_base.dilate(fw).shear(shear).withFlux(flux)
            method = "no_pixel"           # the Moffat is the effective PSF (pixel response included)
        else:
            n = float(sky["SERSIC_N"][idx])
            hlr = float(sky["HLR_ARCSEC"][idx])
            if n not in sersic_base:
                sersic_base[n] = galsim.Sersic(n=n, half_light_radius=1.0, trunc=5.0, flux_untruncated=False,
                                               gsparams=gsp)
            gal = sersic_base[n].dilate(hlr).shear(q=float(sky["Q"][idx]),
                                                   beta=float(sky["PA"][idx]) * galsim.degrees)
            psf_t = psf_t_base.dilate(fw).shear(shear)
            obj = galsim.Convolve(gal.withFlux(flux), psf_t, real_space=False, gsparams=gsp)
            rad = max(rad, 4.0 * hlr / cfg.pixscale + 2.0 * fw / cfg.pixscale)
            rad = min(rad, 5.0 * hlr / cfg.pixscale + 6.0 * fw / cfg.pixscale)
            method = "no_pixel"
        half = int(min(max(rad, 6.0), 400.0))
        cx, cy = float(x[idx]), float(y[idx])
        ix, iy = int(round(cx)), int(round(cy))
        b = galsim.BoundsI(ix - half, ix + half, iy - half, iy + half)
        inter = b & image.bounds
        if not inter.isDefined():
            continue
        stamp = galsim.ImageF(b, scale=cfg.pixscale)
        obj.drawImage(image=stamp, method=method, offset=galsim.PositionD(cx - ix, cy - iy))
        image[inter] += stamp[inter]
    # Noise, cosmic rays, bad columns, saturation.
    flat = _flat(nx, ny, iccd, np.random.default_rng([cfg.seed, 77, iccd]))
    e_img = (image.array.astype(np.float64) + sky_e) * flat
    e_img = rng.poisson(e_img).astype(np.float64) + rng.normal(0.0, cfg.read_noise, e_img.shape)
    area_cm2 = nx * ny * PIXEL_CM ** 2
    ncr = rng.poisson(cfg.cr_rate * area_cm2 * cfg.exptime)
    cr = _cosmic_rays(rng, nx, ny, ncr, exp["gain"])
    e_img += cr
    crmask = ((cr > 0).astype(np.uint8) | ((cr > 5.0 * sky_sigma_e).astype(np.uint8) << 1))
    adu = e_img / exp["gain"] + cfg.pedestal
    weight = (flat / np.median(flat)).astype(np.float32)
    badcols = rng.choice(np.arange(8, nx - 8), cfg.nbadcol, replace=False) if cfg.nbadcol else []
    for c in badcols:
        y0 = int(rng.integers(0, ny // 2)) if rng.uniform() < 0.5 else 0
        if rng.uniform() < 0.5:
            adu[y0:, c] = rng.normal(5.0, 2.0, ny - y0)              # dead
        else:
            adu[y0:, c] += rng.uniform(2000, 8000)                   # hot
        weight[y0:, c] = 0.0
    adu = np.clip(np.rint(adu), 0, min(cfg.saturate, 65535)).astype(np.uint16)
    # Sources truth: only those whose centre falls on the CCD.
    on = (x[sel] >= 0.5) & (x[sel] < nx + 0.5) & (y[sel] >= 0.5) & (y[sel] < ny + 0.5)
    src = dict(ID=sky["ID"][sel][on], RA=sky["RA"][sel][on], DEC=sky["DEC"][sel][on],
               CCD=np.full(int(on.sum()), iccd, np.int16), X=x[sel][on], Y=y[sel][on],
               MAG=mag[sel][on], FLUX_ADU=fluxes[on] / exp["gain"], TYPE=sky["TYPE"][sel][on],
               SERSIC_N=sky["SERSIC_N"][sel][on], HLR_ARCSEC=sky["HLR_ARCSEC"][sel][on],
               FWHM_ARCSEC=fwhm[on])
    return adu, weight, crmask, src, sorted(int(c) for c in badcols)


def _flat(nx, ny, iccd, rng):
    """Smooth response of a CCD (gradient and vignetting, a few per cent), mean 1, the same in every
    exposure (one draw per CCD and survey): the true zero points are those of the mean response."""
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    a, b = rng.uniform(-0.02, 0.02, 2)
    flat = (1.0 + a * (xx / nx - 0.5) + b * (yy / ny - 0.5)
            - 0.02 * ((xx / nx - 0.5) ** 2 + (yy / ny - 0.5) ** 2)).astype(np.float64)
    return flat / flat.mean()


def _keywords(cfg, exp):
    ra_s, dec_s = _sexa(exp["ra_hdr"], exp["dec_hdr"])
    return [
        ("OBJECT", cfg.object, "target field"),
        ("RUNID", cfg.runid, "CFHT observing run"),
        ("QRUNID", cfg.qrunid, "CFHT queue run"),
        ("FILTER", f"{exp['filter']}.MP9601" if exp["filter"] == "r" else f"{exp['filter']}.MP9701",
         "filter"),
        ("EXPTIME", cfg.exptime, "integration time (s)"),
        ("AIRMASS", round(exp["airmass"], 4), "airmass at start"),
        ("MJD-OBS", round(exp["mjd"], 6), "modified Julian date at start"),
        ("DATE-OBS", _date_obs(exp["mjd"]), "UTC date at start"),
        ("EXPNUM", exp["expnum"], "exposure number"),
        ("RA", ra_s, "telescope right ascension"),
        ("DEC", dec_s, "telescope declination"),
        ("RA_DEG", round(exp["ra_hdr"], 7), "telescope right ascension (deg)"),
        ("DEC_DEG", round(exp["dec_hdr"], 7), "telescope declination (deg)"),
        ("EQUINOX", 2000.0, "equinox of RA, DEC"),
        ("GAIN", exp["gain"], "e-/ADU"),
        ("RDNOISE", cfg.read_noise / exp["gain"], "read noise (ADU)"),
        ("SATURATE", float(min(cfg.saturate, 65535)), "saturation level (ADU)"),
        ("PHOTFLAG", bool(exp["photometric"]), "photometric conditions"),
        ("PHOT_C", round(ZP_E[exp["filter"]] - 2.5 * math.log10(exp["gain"]), 4),
         "nominal zero point, 1 ADU/s at airmass 1"),
        ("PHOT_K", EXTINCTION[exp["filter"]], "extinction per airmass"),
        ("PIXSCAL1", cfg.pixscale, "nominal pixel scale (arcsec/px)"),
        ("PIXSCAL2", cfg.pixscale, "nominal pixel scale (arcsec/px)"),
    ]


def _render_exposure(args):
    cfg, exp, sky, outdir = args
    from astropy.io import fits
    from astropy.wcs import WCS

    outdir = Path(outdir)
    truthdir = outdir / "truth"
    rng = np.random.default_rng(exp["seed"])
    layout = megacam_layout(cfg.nccd, cfg.nx, cfg.ny)
    half = np.array([cfg.nx / 2.0, cfg.ny / 2.0])
    rmax = float(np.max(np.hypot(np.abs(layout[:, 0]) + half[0], np.abs(layout[:, 1]) + half[1])))
    k_dist = 0.0
    if cfg.distortion_arcsec:
        rdeg = rmax * cfg.pixscale * ARCSEC
        k_dist = cfg.distortion_arcsec * ARCSEC / rdeg ** 3
    cd_true = _cd(cfg.pixscale, 0.0)
    # Header: nominal layout, nominal scale, zero rotation, pointing off by the header error.  Truth: the
    # inverse of that error, so the header is "the truth seen through the telescope's errors".
    cosd = math.cos(math.radians(exp["dec_true"]))
    dx, dy = exp["header_offset_arcsec"]
    exp["ra_hdr"] = exp["ra_true"] + dx * ARCSEC / cosd
    exp["dec_hdr"] = exp["dec_true"] + dy * ARCSEC
    cd_hdr = _cd(cfg.pixscale * (1.0 + exp["header_scale_error"]), exp["header_rotation_deg"])
    kw = _keywords(cfg, exp)
    prim = fits.PrimaryHDU()
    for k, v, c in kw:
        prim.header[k] = (v, c)
    prim.header["NEXTEND"] = (cfg.nccd, "number of extensions")
    prim.header["ORIGIN"] = ("terapix_testdata.galsim_survey", "GalSim-rendered test exposure")
    hdus, whdus, mhdus = [prim], [fits.PrimaryHDU()], [fits.PrimaryHDU()]
    truth_cards = []
    sources = []
    jitter = cfg.ccd_jitter_arcsec / cfg.pixscale / math.sqrt(2.0)
    placement = np.random.default_rng([cfg.seed, 18]).normal(0.0, 1.0, (cfg.nccd, 2)) * jitter
    ccd_info = []
    for i in range(cfg.nccd):
        cx, cy = layout[i]
        crpix = np.array([(cfg.nx + 1) / 2.0 - cx, (cfg.ny + 1) / 2.0 - cy])
        h_true = _wcs_header((exp["ra_true"], exp["dec_true"]), crpix + placement[i], cd_true, k_dist)
        h_hdr = _wcs_header((exp["ra_hdr"], exp["dec_hdr"]), crpix, cd_hdr)
        w_true = WCS(h_true)
        adu, weight, crmask, src, badcols = _render_ccd(cfg, exp, i, (cx, cy), rmax, sky, w_true, rng)
        sources.append(src)
        ccd_info.append(dict(ccd=i, badcols=badcols, ncr_pixels=int((crmask > 0).sum())))
        ext = f"ccd{i:02d}"
        h = fits.Header()
        h["EXTNAME"] = ext
        h["CCDNAME"] = (ext, "CCD name")
        h["IMAGEID"] = (i, "CCD number in the mosaic")
        for k, v, c in kw:
            h[k] = (v, c)
        h.update(h_hdr)
        h["DETSEC"] = (f"[{int(crpix[0])}:{int(crpix[0]) + cfg.nx - 1},{int(crpix[1])}:"
                       f"{int(crpix[1]) + cfg.ny - 1}]", "nominal mosaic section")
        if cfg.compress:
            hdu = fits.CompImageHDU(data=adu, header=h, compression_type="RICE_1")
        else:
            hdu = fits.ImageHDU(data=adu, header=h, uint=True)
        hdus.append(hdu)
        if cfg.weights:
            wh = fits.Header()
            wh["EXTNAME"] = ext
            wh.update(h_hdr)
            whdus.append(fits.ImageHDU(data=weight, header=wh))
        mh = fits.Header()
        mh["EXTNAME"] = ext
        # one tile per CCD: astropy compresses row tiles (its default) one by one in Python, 5x slower here
        mhdus.append(fits.CompImageHDU(data=crmask, header=mh, compression_type="RICE_1", tile_shape=crmask.shape))
        th = fits.Header()
        th["EXTNAME"] = ext
        th.update(h_true)
        truth_cards.append(th.tostring(sep="\n", endcard=True, padding=False))
    suffix = ".fits.fz" if cfg.compress else ".fits"
    name = exp["name"]
    fits.HDUList(hdus).writeto(outdir / f"{name}{suffix}", overwrite=True)
    if cfg.weights:
        fits.HDUList(whdus).writeto(outdir / f"{name}.weight.fits", overwrite=True)
    fits.HDUList(mhdus).writeto(truthdir / f"{name}.crmask.fits", overwrite=True)
    (truthdir / f"{name}.truewcs.txt").write_text("\n".join(truth_cards) + "\n")
    cols = {k: np.concatenate([s[k] for s in sources]) for k in sources[0]}
    fits.BinTableHDU.from_columns([fits.Column(name=k, format=_tform(v), array=v) for k, v in cols.items()]
                                  ).writeto(truthdir / f"{name}.sources.fits", overwrite=True)
    exp["ccds"] = ccd_info
    exp["distortion_k"] = k_dist
    exp["file"] = f"{name}{suffix}"
    return exp


def _tform(v: np.ndarray) -> str:
    return {"f": "D", "i": "J" if v.dtype.itemsize <= 4 else "K", "u": "J"}[v.dtype.kind]


def _write_refcat(path: Path, cfg: SurveyConfig, sky, rng, epoch: float) -> int:
    """FITS_LDAC reference catalogue of the stars with r < refcat_maglim, positions with Gaussian noise of
    refcat_sigma_mas per axis."""
    from astropy.io import fits

    sel = (sky["TYPE"] == 0) & (sky["MAG_R"] < cfg.refcat_maglim)
    n = int(sel.sum())
    sig = cfg.refcat_sigma_mas / 1000.0 * ARCSEC
    dec = sky["DEC"][sel] + rng.normal(0, sig, n)
    ra = sky["RA"][sel] + rng.normal(0, sig, n) / np.cos(np.radians(sky["DEC"][sel]))
    magerr = 0.003 + 0.02 * 10 ** (0.4 * (sky["MAG_R"][sel] - 21.0))
    mag = sky["MAG_R"][sel] + rng.normal(0, 1, n) * magerr
    cols = [
        fits.Column(name="X_WORLD", format="1D", unit="deg", array=ra % 360.0),
        fits.Column(name="Y_WORLD", format="1D", unit="deg", array=dec),
        fits.Column(name="ERRA_WORLD", format="1E", unit="deg", array=np.full(n, sig)),
        fits.Column(name="ERRB_WORLD", format="1E", unit="deg", array=np.full(n, sig)),
        fits.Column(name="ERRTHETA_WORLD", format="1E", unit="deg", array=np.zeros(n)),
        fits.Column(name="MAG", format="1E", unit="mag", array=mag),
        fits.Column(name="MAGERR", format="1E", unit="mag", array=magerr),
        fits.Column(name="OBSDATE", format="1D", unit="yr", array=np.full(n, epoch)),
        fits.Column(name="SOURCE_ID", format="1K", array=sky["ID"][sel]),
    ]
    objects = fits.BinTableHDU.from_columns(cols)
    objects.header["EXTNAME"] = "LDAC_OBJECTS"
    head = fits.Header()
    head["ORIGIN"] = ("terapix_testdata.galsim_survey", "reference stars")
    head["REFBAND"] = ("r", "band of the MAG column")
    head["REFMAGLI"] = (cfg.refcat_maglim, "faintest magnitude included")
    cards = head.tostring(endcard=True, padding=False)
    ncard = len(cards) // 80
    imhead = fits.BinTableHDU.from_columns([fits.Column(
        name="Field Header Card", format=f"{80 * ncard}A", array=np.array([cards]))])
    imhead.header["TDIM1"] = f"(80, {ncard})"
    imhead.header["EXTNAME"] = "LDAC_IMHEAD"
    fits.HDUList([fits.PrimaryHDU(), imhead, objects]).writeto(path, overwrite=True)
    return n


def make_survey(outdir: str | Path, config: SurveyConfig | None = None, preset: str | None = None,
                **overrides) -> dict:
    """Render a survey into ``outdir`` (exposures, weights, reference.cat) and its truth into
    ``outdir/truth``.  Returns the truth summary (also in ``truth/survey.json``)."""
    if config is None:
        base = dict(PRESETS[preset]) if preset else {}
        base.update(overrides)
        config = SurveyConfig(**base)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    config.validate()
    outdir = Path(outdir)
    (outdir / "truth").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng([config.seed, 14])
    exps = _plan(config, rng)
    layout = megacam_layout(config.nccd, config.nx, config.ny)
    ext_x = (np.max(np.abs(layout[:, 0])) + config.nx / 2.0) * config.pixscale * ARCSEC
    ext_y = (np.max(np.abs(layout[:, 1])) + config.ny / 2.0) * config.pixscale * ARCSEC
    dither = max(math.hypot(*(np.array([e["ra_true"] - config.ra, e["dec_true"] - config.dec])))
                 for e in exps)
    radius = max(ext_x, ext_y) * (1.0 + 2.0 * config.distortion_arcsec / 3600.0) + dither + 60 * ARCSEC
    sky = _make_sky(config, rng, radius)
    epoch = 2000.0 + (config.mjd0 - 51544.5) / 365.25
    nref = _write_refcat(outdir / "reference.cat", config, sky, rng, epoch)
    jobs = [(config, e, sky, str(outdir)) for e in exps]
    if config.jobs > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(config.jobs, len(jobs))) as pool:
            exps = pool.map(_render_exposure, jobs)
    else:
        exps = [_render_exposure(j) for j in jobs]
    from astropy.io import fits

    fits.BinTableHDU.from_columns([fits.Column(name=k, format=_tform(v), array=v) for k, v in sky.items()]
                                  ).writeto(outdir / "truth" / "sky_sources.fits", overwrite=True)
    summary = dict(config=dataclasses.asdict(config), exposures=exps, reference_catalog="reference.cat",
                   n_reference=nref, layout_px=layout.tolist(), seconds=time.perf_counter() - t0)
    (outdir / "truth" / "survey.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    return summary


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m terapix_testdata.galsim_survey",
        description="Render a MegaCam-like survey with GalSim (raw 16-bit MEF exposures, weight maps, a "
                    "FITS_LDAC reference catalogue) with its truth kept under OUTDIR/truth.")
    p.add_argument("outdir")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset (small, full4, full36)")
    defaults = SurveyConfig()
    for f in dataclasses.fields(SurveyConfig):
        if f.name in ("extra", "filters", "photometric", "dim_range", "fwhm_range", "beta_range",
                      "star_mag_range", "galaxy_mag_range"):
            continue
        opt = "--" + f.name.replace("_", "-")
        val = getattr(defaults, f.name)
        if isinstance(val, bool):
            p.add_argument(opt, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            typ = float if isinstance(val, float) or val is None else type(val)
            p.add_argument(opt, dest=f.name, type=typ, default=None, help=f"default {val}")
    p.add_argument("--filters", default=None, help="comma-separated filters cycled over exposures (r,i)")
    p.add_argument("--photometric", default=None, help="comma-separated indices of photometric exposures")
    a = p.parse_args(argv)
    over = {f.name: getattr(a, f.name) for f in dataclasses.fields(SurveyConfig)
            if hasattr(a, f.name) and getattr(a, f.name) is not None and f.name not in ("filters",
                                                                                        "photometric")}
    if a.filters:
        over["filters"] = tuple(s.strip() for s in a.filters.split(","))
    if a.photometric:
        over["photometric"] = tuple(int(s) for s in a.photometric.split(","))
    try:
        s = make_survey(a.outdir, preset=a.preset, **over)
    except SurveyConfigError as exc:
        print(f"galsim_survey: {exc}", file=sys.stderr)
        return 2
    print(f"galsim_survey: {len(s['exposures'])} exposures x {s['config']['nccd']} CCDs of "
          f"{s['config']['nx']}x{s['config']['ny']} in {a.outdir} ({s['n_reference']} reference stars, "
          f"{s['seconds']:.1f} s); truth in {os.path.join(a.outdir, 'truth')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --------------------------------------------------------------------------------------------------
# Scoring a solution against the truth (tests and benchmarks)
# --------------------------------------------------------------------------------------------------

def _head_blocks(path: str | Path) -> list:
    from astropy.io import fits

    blocks, cur = [], []
    for line in Path(path).read_text(errors="replace").splitlines():
        if line[:8].strip() == "END":
            blocks.append(fits.Header.fromstring("\n".join(cur), sep="\n"))
            cur = []
        elif line.strip() and not line.startswith(("COMMENT", "HISTORY")):
            cur.append(line.ljust(80)[:80])
    return blocks


def _wcs_of(header):
    """astropy WCS of a header; TAN with PV1_/PV2_ distortion terms (SCAMP's convention) is read as TPV."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    h = header.copy()
    if str(h.get("CTYPE1", "")).endswith("TAN") and any(k.startswith("PV1_") for k in h.keys()):
        h["CTYPE1"] = "RA---TPV"
        h["CTYPE2"] = "DEC--TPV"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(h)


def wcs_errors(outdir: str | Path, name: str, head: str | Path, ngrid: tuple = (9, 17)) -> np.ndarray:
    """Angular distance (mas) between the WCS of a ``.head`` solution and the true WCS of exposure
    ``name``, on an ngrid grid of pixels over every CCD; shape (nccd, ny*nx)."""
    summary = json.loads((Path(outdir) / "truth" / "survey.json").read_text())
    cfg = summary["config"]
    truth = read_truewcs(Path(outdir) / "truth" / f"{name}.truewcs.txt")
    sol = _head_blocks(head)
    if len(sol) != len(truth):
        raise ValueError(f"{head}: {len(sol)} header blocks, the exposure has {len(truth)} CCDs")
    gx, gy = np.meshgrid(np.linspace(1, cfg["nx"], ngrid[0]), np.linspace(1, cfg["ny"], ngrid[1]))
    out = []
    for ht, hs in zip(truth, sol):
        rt, dt = _wcs_of(ht).wcs_pix2world(gx.ravel(), gy.ravel(), 1)
        rs, ds = _wcs_of(hs).wcs_pix2world(gx.ravel(), gy.ravel(), 1)
        dra = (rs - rt + 180.0) % 360.0 - 180.0
        out.append(np.hypot(dra * np.cos(np.radians(dt)), ds - dt) * 3.6e6)
    return np.array(out)


def header_wcs_errors(outdir: str | Path, name: str, ngrid: tuple = (9, 17)) -> np.ndarray:
    """Like :func:`wcs_errors` for the first-guess WCS in the raw exposure's own headers."""
    from astropy.io import fits

    summary = json.loads((Path(outdir) / "truth" / "survey.json").read_text())
    exp = next(e for e in summary["exposures"] if e["name"] == name)
    cfg = summary["config"]
    truth = read_truewcs(Path(outdir) / "truth" / f"{name}.truewcs.txt")
    gx, gy = np.meshgrid(np.linspace(1, cfg["nx"], ngrid[0]), np.linspace(1, cfg["ny"], ngrid[1]))
    out = []
    with fits.open(Path(outdir) / exp["file"]) as hdul:
        for ht, hdu in zip(truth, hdul[1:]):
            rt, dt = _wcs_of(ht).wcs_pix2world(gx.ravel(), gy.ravel(), 1)
            rs, ds = _wcs_of(hdu.header).wcs_pix2world(gx.ravel(), gy.ravel(), 1)
            dra = (rs - rt + 180.0) % 360.0 - 180.0
            out.append(np.hypot(dra * np.cos(np.radians(dt)), ds - dt) * 3.6e6)
    return np.array(out)


def zeropoint_error(outdir: str | Path, name: str, head: str | Path) -> float:
    """Zero point of a SCAMP ``.head`` (MAGZEROP - 2.5 log10 FLXSCALE: the magnitude of 1 ADU in the raw
    exposure) minus the true one (mag)."""
    summary = json.loads((Path(outdir) / "truth" / "survey.json").read_text())
    exp = next(e for e in summary["exposures"] if e["name"] == name)
    h = _head_blocks(head)[0]
    return float(h["MAGZEROP"] - 2.5 * math.log10(h["FLXSCALE"]) - exp["zp_adu"])


def score_heads(outdir: str | Path, heads: list) -> dict:
    """Accuracy of a set of ``<name>.head`` solutions against the truth: astrometric error rms and maximum
    over a grid on every CCD (mas, all exposures together and per exposure) and zero-point errors (mag)."""
    errs, zps, per = [], [], {}
    for head in heads:
        name = Path(head).name.split(".")[0]
        e = wcs_errors(outdir, name, head)
        z = zeropoint_error(outdir, name, head)
        errs.append(e.ravel())
        zps.append(z)
        per[name] = {"rms_mas": float(np.sqrt(np.mean(e ** 2))), "max_mas": float(e.max()), "dzp": z}
    allerr = np.concatenate(errs)
    zps = np.array(zps)
    return {"rms_mas": float(np.sqrt(np.mean(allerr ** 2))), "max_mas": float(allerr.max()),
            "zp_rms": float(np.sqrt(np.mean(zps ** 2))), "zp_max": float(np.abs(zps).max()), "exposures": per}
