"""Internal and external statistics of a run, per field, field group and instrument, for all detections
and for the high-S/N ones (S/N > SN_THRESHOLDS[1]), as in SCAMP's XML summary.

Astrometric residuals are in arcsec on the group's tangent plane (axis 1 ~ RA, axis 2 ~ Dec).  Internal
residuals are those of overlap links; a link's residual combines two detections, so the per-detection
dispersion is its rms divided by sqrt(2), which is what ASTIRMS reports.
"""
from __future__ import annotations

import numpy as np

__all__ = ["compute_stats", "summarise"]


def summarise(res, sig2, per_detection: bool) -> dict:
    """sigma (2 axes), offset (2 axes), chi2/dof and count for residuals ``res`` (n, 2) in arcsec."""
    n = len(res)
    if n == 0:
        return {"sigma": [0.0, 0.0], "offset": [0.0, 0.0], "chi2": 0.0, "ndets": 0}
    factor = np.sqrt(2.0) if per_detection else 1.0
    sigma = np.sqrt(np.mean(res ** 2, axis=0)) / factor
    chi2 = float(np.sum(res ** 2 / sig2[:, None]) / max(2 * n - 1, 1))
    return {"sigma": [float(sigma[0]), float(sigma[1])], "offset": [float(v) for v in np.mean(res, axis=0)],
            "chi2": chi2, "ndets": int(n)}


def compute_stats(run) -> dict:
    det = run.det
    a = run.astrom
    high = run.config["SN_THRESHOLDS"][1]
    out = {"fields": [], "groups": [], "astr_inst": {}, "phot_inst": {}}
    li, lj = a.link_i[a.link_ok], a.link_j[a.link_ok]
    lres = np.column_stack([a.gx[li] - a.gx[lj], a.gy[li] - a.gy[lj]]) * 3600.0
    lsig2 = (det.sig[li] ** 2 + det.sig[lj] ** 2) * 3600.0 ** 2
    lhigh = (det.snr[li] > high) & (det.snr[lj] > high)
    ri = np.nonzero(a.ref_ok)[0]
    rres = a.ref_res[ri] * 3600.0
    rsig2 = _ref_sig2(run, ri)
    rhigh = det.snr[ri] > high
    if run.photom is not None:
        p = run.photom
        pi, pj = p.link_i[p.link_ok], p.link_j[p.link_ok]
        pres = (p.mag[pi] + p.dzp[det.field[pi]] - p.mag[pj] - p.dzp[det.field[pj]])
        with np.errstate(divide="ignore", invalid="ignore"):
            perr2 = (1.0857 * det.fluxerr[pi] / det.flux[pi]) ** 2 + (1.0857 * det.fluxerr[pj] / det.flux[pj]) ** 2
        phigh = (det.snr[pi] > high) & (det.snr[pj] > high)
    for k, f in enumerate(run.fields):
        touch = (det.field[li] == k) | (det.field[lj] == k)
        rsel = det.field[ri] == k
        entry = {
            "internal": summarise(lres[touch], lsig2[touch], True),
            "internal_high": summarise(lres[touch & lhigh], lsig2[touch & lhigh], True),
            "reference": summarise(rres[rsel], rsig2[rsel], False),
            "reference_high": summarise(rres[rsel & rhigh], rsig2[rsel & rhigh], False),
        }
        if run.photom is not None:
            ptouch = (det.field[pi] == k) | (det.field[pj] == k)
            entry["phot"] = _phot_summary(pres[ptouch], perr2[ptouch])
            entry["phot_high"] = _phot_summary(pres[ptouch & phigh], perr2[ptouch & phigh])
        out["fields"].append(entry)
    for g in range(len(run.group_tp)):
        gl = det.group[li] == g
        gr = det.group[ri] == g
        entry = {
            "internal": summarise(lres[gl], lsig2[gl], True),
            "internal_high": summarise(lres[gl & lhigh], lsig2[gl & lhigh], True),
            "reference": summarise(rres[gr], rsig2[gr], False),
            "reference_high": summarise(rres[gr & rhigh], rsig2[gr & rhigh], False),
        }
        if run.photom is not None:
            gp = det.group[pi] == g
            entry["phot"] = _phot_summary(pres[gp], perr2[gp])
            entry["phot_high"] = _phot_summary(pres[gp & phigh], perr2[gp & phigh])
        out["groups"].append(entry)
    for name in run.phot_inst:
        if run.photom is None:
            break
        members = np.array([f.phot_key == name for f in run.fields])
        sel = members[det.field[pi]]
        out["phot_inst"][name] = {"phot": _phot_summary(pres[sel], perr2[sel]),
                                  "phot_high": _phot_summary(pres[sel & phigh], perr2[sel & phigh])}
    return out


def _ref_sig2(run, ri):
    det, a = run.det, run.astrom
    out = det.sig[ri] ** 2
    for g in np.unique(det.group[ri]):
        m = det.group[ri] == g
        out[m] += run.refs[g][2][a.ref_idx[ri][m]] ** 2
    return out * 3600.0 ** 2


def _phot_summary(res, err2):
    n = len(res)
    if n == 0:
        return {"sigma": 0.0, "chi2": 0.0, "ndets": 0}
    return {"sigma": float(np.sqrt(np.mean(res ** 2) / 2)),
            "chi2": float(np.sum(res ** 2 / np.clip(err2, 1e-12, None)) / max(n - 1, 1)), "ndets": int(n)}
