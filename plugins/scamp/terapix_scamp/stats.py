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
    nf = len(run.fields)
    fi, fj, fr = det.field[li], det.field[lj], det.field[ri]
    internal = _grouped(np.concatenate([fi, fj]), np.vstack([lres, lres]), np.concatenate([lsig2, lsig2]), nf, True)
    hi2 = np.concatenate([lhigh, lhigh])
    internal_high = _grouped(np.concatenate([fi, fj])[hi2], np.vstack([lres, lres])[hi2],
                             np.concatenate([lsig2, lsig2])[hi2], nf, True)
    reference = _grouped(fr, rres, rsig2, nf, False)
    reference_high = _grouped(fr[rhigh], rres[rhigh], rsig2[rhigh], nf, False)
    if run.photom is not None:
        pfi, pfj = det.field[pi], det.field[pj]
        phot = _grouped_phot(np.concatenate([pfi, pfj]), np.concatenate([pres, pres]),
                             np.concatenate([perr2, perr2]), nf)
        ph2 = np.concatenate([phigh, phigh])
        phot_high = _grouped_phot(np.concatenate([pfi, pfj])[ph2], np.concatenate([pres, pres])[ph2],
                                  np.concatenate([perr2, perr2])[ph2], nf)
    for k in range(nf):
        entry = {"internal": internal[k], "internal_high": internal_high[k], "reference": reference[k],
                 "reference_high": reference_high[k]}
        if run.photom is not None:
            entry["phot"] = phot[k]
            entry["phot_high"] = phot_high[k]
        out["fields"].append(entry)
    # per field and chip (extension): what a bad chip placement or a wrong match shows first
    nchip = int(det.chip.max()) + 1 if len(det) else 1
    ci, cj, cr = fi * nchip + det.chip[li], fj * nchip + det.chip[lj], fr * nchip + det.chip[ri]
    c_int = _grouped(np.concatenate([ci, cj])[hi2], np.vstack([lres, lres])[hi2],
                     np.concatenate([lsig2, lsig2])[hi2], nf * nchip, True)
    c_ref = _grouped(cr[rhigh], rres[rhigh], rsig2[rhigh], nf * nchip, False)
    c_ref_all = _grouped(cr, rres, rsig2, nf * nchip, False)
    nsel = np.bincount(det.field[det.astr_ok] * nchip + det.chip[det.astr_ok], minlength=nf * nchip)
    out["chips"] = [[{"extension": c + 1, "ndets": int(nsel[k * nchip + c]),
                      "internal_high": c_int[k * nchip + c], "reference_high": c_ref[k * nchip + c],
                      "reference": c_ref_all[k * nchip + c]}
                     for c in range(len(run.fields[k].chips))] for k in range(nf)]
    # the errors the residuals should have (per axis, arcsec): medians of the detections' and reference
    # stars' errors over the high-S/N pairs
    out["expected"] = {"internal": float(np.sqrt(np.median(lsig2[lhigh]) / 2)) if lhigh.any() else 0.0,
                       "reference": float(np.sqrt(np.median(rsig2[rhigh]))) if rhigh.any() else 0.0}
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


def _grouped(keys, res, sig2, n, per_detection):
    """:func:`summarise` for every value of ``keys`` at once (bincount sums, linear in the residuals)."""
    count = np.bincount(keys, minlength=n)
    safe = np.maximum(count, 1)
    factor = np.sqrt(2.0) if per_detection else 1.0
    sx = np.sqrt(np.bincount(keys, res[:, 0] ** 2, n) / safe) / factor
    sy = np.sqrt(np.bincount(keys, res[:, 1] ** 2, n) / safe) / factor
    ox = np.bincount(keys, res[:, 0], n) / safe
    oy = np.bincount(keys, res[:, 1], n) / safe
    chi = np.bincount(keys, np.sum(res ** 2, axis=1) / sig2, n) / np.maximum(2 * count - 1, 1)
    return [{"sigma": [float(sx[k]), float(sy[k])], "offset": [float(ox[k]), float(oy[k])], "chi2": float(chi[k]),
             "ndets": int(count[k])} for k in range(n)]


def _grouped_phot(keys, res, err2, n):
    count = np.bincount(keys, minlength=n)
    safe = np.maximum(count, 1)
    sigma = np.sqrt(np.bincount(keys, res ** 2, n) / safe / 2)
    chi = np.bincount(keys, res ** 2 / np.clip(err2, 1e-12, None), n) / np.maximum(count - 1, 1)
    return [{"sigma": float(sigma[k]), "chi2": float(chi[k]), "ndets": int(count[k])} for k in range(n)]
