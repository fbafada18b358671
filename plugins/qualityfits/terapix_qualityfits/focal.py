"""Astrometric header sanity: are the CCDs placed, by their WCS headers, where the focal plane says?

Each CCD centre is projected from its header WCS onto the tangent plane of the exposure (arcsec).  The
expected layout (focal-plane positions of the CCD centres) comes from a reference exposure or ``.head`` file
(FOCALPLANE_REF), or, for the simulator's cameras, from :mod:`terapix_fw.sim.focalplane`.  A similarity
transform (scale, rotation, optional flip, offset) from the expected to the observed positions is fitted by
least median of squares over all pairs of CCDs, so one misplaced CCD cannot drag the fit; a CCD whose
residual exceeds MAX_CCD_OFFSET is misplaced (grade D in the seeds' criteria).
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np

__all__ = ["ccd_centres", "expected_layout", "check_layout"]


def _wcs(header):
    """The celestial WCS, or None when the header has none or a broken one (latitude outside [-90, 90],
    singular CD matrix, unknown projection: counted in n_ccd_nowcs, which grades D)."""
    from astropy.wcs import WCS, FITSFixedWarning

    from terapix_fw.wcsutil import wcs_problem

    if wcs_problem(header):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            w = WCS(header)
        except Exception:  # noqa: BLE001 - any broken WCS is reported as "no WCS"
            return None
    return w if w.has_celestial else None


def ccd_centres(headers):
    """(ra, dec) in degrees of each CCD centre from its header WCS; NaN where the WCS is unusable."""
    out = np.full((len(headers), 2), np.nan)
    for k, h in enumerate(headers):
        w = _wcs(h)
        if w is None:
            continue
        nx, ny = h.get("NAXIS1", h.get("ZNAXIS1", 0)), h.get("NAXIS2", h.get("ZNAXIS2", 0))
        try:
            ra, dec = w.all_pix2world([(nx + 1) / 2.0], [(ny + 1) / 2.0], 1)
        except Exception:  # noqa: BLE001
            continue
        out[k] = ra[0], dec[0]
    return out


def tangent(ra, dec, ra0, dec0):
    """Gnomonic projection (arcsec) of (ra, dec) about (ra0, dec0)."""
    ra, dec, ra0, dec0 = map(np.radians, (ra, dec, ra0, dec0))
    cosc = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cosc
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cosc
    return np.degrees(xi) * 3600.0, np.degrees(eta) * 3600.0


def expected_layout(headers, primary=None, reference=None):
    """Expected focal-plane positions (pixels or arcsec, any consistent unit) of the CCD centres, or None.

    ``reference``: a FITS MEF or ``.head`` file of a good exposure with the same CCDs (positions of its
    CCD centres on its own tangent plane).  Without one, the simulator's camera named by DETECTOR.
    """
    if reference:
        from pathlib import Path

        if Path(reference).suffix in (".head", ".ahead"):
            from terapix_fw.headfile import read_head_file

            ref_headers = read_head_file(reference)
            for rh, h in zip(ref_headers, headers):  # .head files hold only the WCS: add the sizes
                for key in ("NAXIS1", "NAXIS2"):
                    if key not in rh and key in h:
                        rh[key] = h[key]
        else:
            from terapix_fw.fitsimage import FitsImage

            with FitsImage(reference, "FOCALPLANE_REF") as img:
                ref_headers = [img.header(h.index) for h in img.images]
        if len(ref_headers) != len(headers):
            from terapix_fw.errors import ToolError

            raise ToolError(f"FOCALPLANE_REF {reference}: {len(ref_headers)} CCDs, the exposure has {len(headers)}")
        c = ccd_centres(ref_headers)
        ra0, dec0 = np.nanmedian(c[:, 0]), np.nanmedian(c[:, 1])
        return np.column_stack(tangent(c[:, 0], c[:, 1], ra0, dec0))
    detector = str((primary or {}).get("DETECTOR", "")).strip()
    fp = None
    try:
        from terapix_fw.sim.focalplane import megacam_focal_plane, small_focal_plane
    except ImportError:  # pragma: no cover
        return None
    nx, ny = headers[0].get("NAXIS1", 0), headers[0].get("NAXIS2", 0)
    if detector == "MegaCam" and len(headers) == 36:
        fp = megacam_focal_plane(nx=nx, ny=ny)
    elif detector.startswith("small") and detector[5:].isdigit() and int(detector[5:]) == len(headers):
        fp = small_focal_plane(nccd=len(headers), nx=nx, ny=ny)
    if fp is None:
        return None
    return np.array([fp.ccds[k].pix_to_focal((c.nx + 1) / 2.0, (c.ny + 1) / 2.0)
                     for k, c in enumerate(fp.ccds)], float)


def check_layout(headers, expected, max_offset: float = 10.0):
    """Residual (arcsec) of each CCD centre after the best similarity transform from ``expected``.

    Returns ``{"offset_arcsec": array, "misplaced": bool array, "nowcs": bool array, "scale": ...}``.
    """
    c = ccd_centres(headers)
    nowcs = ~np.isfinite(c[:, 0])
    n = len(headers)
    result = {"offset_arcsec": np.zeros(n), "misplaced": np.zeros(n, bool), "nowcs": nowcs}
    good = ~nowcs
    if expected is None or good.sum() < 3:
        return result
    ra0, dec0 = np.nanmedian(c[good, 0]), np.nanmedian(c[good, 1])
    xi, eta = tangent(c[:, 0], c[:, 1], ra0, dec0)
    obs = xi + 1j * eta
    best = None
    for flip in (False, True):
        exp = expected[:, 0] + 1j * (-expected[:, 1] if flip else expected[:, 1])
        idx = np.nonzero(good)[0]
        for i, j in itertools.combinations(idx, 2):
            if exp[i] == exp[j]:
                continue
            a = (obs[i] - obs[j]) / (exp[i] - exp[j])
            b = obs[i] - a * exp[i]
            res = np.abs(obs[good] - (a * exp[good] + b))
            score = np.median(res)
            if best is None or score < best[0]:
                best = (score, a, b, exp)
    _, a, b, exp = best
    resid = np.abs(obs - (a * exp + b))
    # refine on the CCDs that agree (least squares), then measure everyone against it
    ok = good & (resid < max_offset)
    if ok.sum() >= 3:
        A = np.column_stack([exp[ok], np.ones(ok.sum())])
        sol = np.linalg.lstsq(A, obs[ok], rcond=None)[0]
        resid = np.abs(obs - (sol[0] * exp + sol[1]))
    resid[nowcs] = np.inf
    result["offset_arcsec"] = resid
    result["misplaced"] = good & (resid > max_offset)
    return result
