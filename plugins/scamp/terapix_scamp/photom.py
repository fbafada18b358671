"""The photometric solution (SCAMP ``photsolve.c``): one zero-point correction per field.

Magnitudes ``m = -2.5 log10(F / EXPTIME) - PHOT_K (airmass - 1) + PHOT_C`` of overlapping detections of
the same photometric instrument must agree after correction: ``(m_i + dZP_fi) - (m_j + dZP_fj) = 0``,
weighted by ``1 / (e_i + e_j + MAGZERO_INTERR^2)`` with ``e = 1.0857 sigma_F / F`` used unsquared, a
quirk of SCAMP kept on purpose.  Photometric fields (PHOTFLAG T) are anchors, ``dZP = 0`` with error
MAGZERO_REFERR; a set of linked fields without any anchor gets its first field as a dummy anchor and
PHOTLINK F.  Outliers beyond PHOTCLIP_NSIGMA are clipped and the system solved again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .linking import chain_links

__all__ = ["PhotSolution", "solve_photometry", "flxscale"]


@dataclass
class PhotSolution:
    dzp: np.ndarray  # (nfield,) zero-point correction (mag), added to instrumental magnitudes
    dzp_err: np.ndarray
    linked: np.ndarray  # (nfield,) connected to a photometric field
    mag: np.ndarray  # per detection, instrumental magnitude
    link_i: np.ndarray
    link_j: np.ndarray
    link_ok: np.ndarray
    stats: dict = field(default_factory=dict)


def flxscale(magzero_out: float, phot_c: float, dzp: float, phot_k: float, airmass: float, exptime: float):
    """SCAMP's FLXSCALE: 10^(0.4 (MAGZERO_OUT - PHOT_C - dZP + k (airmass - 1))) / EXPTIME."""
    return 10 ** (0.4 * (magzero_out - phot_c - dzp + phot_k * (airmass - 1.0))) / exptime


def solve_photometry(det, labels, fields, config, log) -> PhotSolution:
    """Solve the zero-point corrections from the cross-identified detections ``labels``."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    nfield = len(fields)
    exptime = np.array([f.exptime for f in fields])
    airmass = np.array([f.airmass for f in fields])
    phot_c = np.array([f.phot_c for f in fields])
    phot_k = np.array([f.phot_k for f in fields])
    # per-field terms folded into one constant; float32 (1e-6 mag) keeps tens of millions of detections small
    const = (2.5 * np.log10(exptime) - phot_k * (airmass - 1) + phot_c).astype(np.float32)
    flux = np.asarray(det.flux, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.log10(flux)
        mag *= np.float32(-2.5)
        mag += const[det.field]
        err = np.float32(1.0857) * np.asarray(det.fluxerr, np.float32) / flux
    err = np.hypot(err, np.float32(1.0857 * config["PHOT_ACCURACY"]))
    inst_names = sorted({f.phot_key for f in fields})
    inst = np.array([inst_names.index(f.phot_key) for f in fields])
    ok = det.phot_ok & np.isfinite(mag)
    key = inst[det.field] * (nfield + 1) + det.field  # chains stay within a photometric instrument
    li, lj = chain_links(labels, key, ok, det.field)
    same = inst[det.field[li]] == inst[det.field[lj]]
    li, lj = li[same], lj[same]
    interr = config["MAGZERO_INTERR"][0]
    referr = config["MAGZERO_REFERR"][0]
    w = 1.0 / (err[li] + err[lj] + interr ** 2)  # SCAMP: magnitude errors enter unsquared
    # connectivity of fields through links, to find the sets without a photometric anchor
    graph = sparse.coo_matrix((np.ones(len(li)), (det.field[li], det.field[lj])), shape=(nfield, nfield))
    ncomp, comp = sparse.csgraph.connected_components(graph, directed=False)
    anchor = np.array([f.photflag for f in fields])
    linked = np.zeros(nfield, bool)
    anchors_w = np.where(anchor, 1.0 / referr ** 2, 0.0)
    for c in range(ncomp):
        members = np.nonzero(comp == c)[0]
        if anchor[members].any():
            linked[members] = True
        else:  # dummy anchor: the first field keeps its zero point
            anchors_w[members[0]] = 1.0 / interr ** 2
    link_ok = np.ones(len(li), bool)
    dzp = np.zeros(nfield)
    cov_diag = np.zeros(nfield)
    for it in range(3):
        fi, fj = det.field[li[link_ok]], det.field[lj[link_ok]]
        ww = w[link_ok]
        d = mag[li[link_ok]] - mag[lj[link_ok]]
        # normal equations of sum w (d + z_i - z_j)^2 + sum a z^2
        rows = np.concatenate([fi, fj, fi, fj])
        cols = np.concatenate([fi, fj, fj, fi])
        vals = np.concatenate([ww, ww, -ww, -ww])
        N = sparse.coo_matrix((vals, (rows, cols)), shape=(nfield, nfield)).tocsc()
        N = N + sparse.diags(anchors_w + 1e-12)
        rhs = -np.bincount(fi, ww * d, nfield) + np.bincount(fj, ww * d, nfield)
        dzp = spsolve(N.tocsc(), rhs) if nfield > 1 else np.array([rhs[0] / N[0, 0]])
        dzp = np.atleast_1d(dzp)
        cov_diag = 1.0 / np.asarray(N.diagonal()).ravel()
        res = mag[li] + dzp[det.field[li]] - mag[lj] - dzp[det.field[lj]]
        norm = res * np.sqrt(w)
        good = norm[link_ok]
        sigma = 1.4826 * np.median(np.abs(good - np.median(good))) if len(good) else 1.0
        new_ok = np.abs(norm) < config["PHOTCLIP_NSIGMA"] * max(sigma, 1e-6)
        if it > 0 and np.array_equal(new_ok, link_ok):
            break
        link_ok = new_ok
    log.info("photometric solution: %d fields, %d links (%d clipped), %d anchor(s)", nfield, len(li),
             int((~link_ok).sum()), int(anchor.sum()))
    return PhotSolution(dzp, np.sqrt(cov_diag), linked, mag, li, lj, link_ok)
