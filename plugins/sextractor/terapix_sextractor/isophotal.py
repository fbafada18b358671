"""Isophotal statistics and moment ellipses, vectorised numpy (no numba: the detecting process of
:func:`terapix_sextractor.extraction._overlapped_job` computes them without loading it).

* :func:`segment_stats` — per-object quantities over the isophotal footprint: the 8 isophotal areas
  (``ISO0..ISO7``, thresholds ``t * (peak / t) ** (k / 8)``), the isophotal variance sum, the
  SExtractor FWHM fit (log I versus r^2 for pixels above max(peak/5, threshold)), and the flag-map
  combination (IMAFLAGS_ISO).
* :func:`ellipse_from_moments` — a, b, theta of second moments.
"""
from __future__ import annotations

import numpy as np

__all__ = ["segment_stats", "segment_pixels", "ellipse_from_moments"]

def segment_pixels(segmap):
    """(flat indices, 0-based object indices, rows, columns) of the labelled pixels of ``segmap``."""
    # numpy's nonzero of a boolean map is five times faster than of the int32 labels (same indices)
    flat = np.flatnonzero(segmap != 0)
    ids = segmap.ravel()[flat].astype(np.int64) - 1
    ys, xs = np.divmod(flat, segmap.shape[1])
    return flat, ids, ys, xs


def ellipse_from_moments(x2, y2, xy):
    """(a, b, theta in degrees) of second moments, as SExtractor (theta = pi/4 when x2 == y2)."""
    x2, y2, xy = (np.asarray(v, dtype=np.float64) for v in (x2, y2, xy))
    diff = x2 - y2
    theta = np.where(np.abs(diff) > 0, 0.5 * np.arctan2(2 * xy, diff), np.pi / 4)
    temp = np.sqrt(0.25 * diff * diff + xy * xy)
    mean = 0.5 * (x2 + y2)
    a = np.sqrt(np.maximum(mean + temp, 0))
    b = np.sqrt(np.maximum(mean - temp, 0))
    return a, b, np.degrees(theta)


def segment_stats(segmap, image, nobj, thresh, peak, mx, my, a, b, satur, flagmap=None, flag_type="OR",
                  want_fwhm=True, want_iso=True, varmap=None, footprint=None, pixels=None):
    """Per-object statistics over the isophotal footprint (pixels with ``segmap == id``).

    ``thresh`` and ``peak`` are per-object (background-subtracted) analysis threshold and peak;
    ``mx, my`` 0-based barycentres; ``satur`` the saturation level above background per object.
    ``footprint`` (optional) is a label map used for the flag map instead of ``segmap`` (it also covers
    zero-weight pixels next to the object).  Returns a dict with ``iso`` (n, 8), ``area`` (pixels above
    threshold in the measurement image), ``fwhm``, ``imaflags``, ``nimaflags``, ``varsum``.
    ``pixels`` is :func:`segment_pixels` of ``segmap`` when already known.
    """
    out = {}
    flat, ids, ys, xs = segment_pixels(segmap) if pixels is None else pixels
    vals = image.ravel()[flat].astype(np.float64)
    t = thresh[ids]
    out["area"] = np.bincount(ids, weights=(vals > t), minlength=nobj).astype(np.int32)
    if varmap is not None:
        out["varsum"] = np.bincount(ids, weights=varmap.ravel()[flat].astype(np.float64), minlength=nobj)
    if want_iso:
        pk = peak[ids]
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = (pk > 0) & (t > 0)
            lev = np.where(ok & (vals > t), np.log(np.maximum(vals, 1e-30) / t) / np.log(pk / t) * 8, -1)
        # pixel counts in ISOk: value > t * (peak/t)**(k/8)  <=>  lev > k
        iso = np.zeros((nobj, 8), dtype=np.int32)
        for k in range(8):
            iso[:, k] = np.bincount(ids, weights=(lev > k), minlength=nobj)
        out["iso"] = iso
    if want_fwhm:
        thresh0 = np.maximum(peak / 5.0, thresh)[ids]
        use = (vals > thresh0) & (vals < satur[ids]) & (thresh0 > 0)
        dx = xs - mx[ids]
        dy = ys - my[ids]
        d2 = dx * dx + dy * dy
        lpix = np.log(np.where(use, vals, 1.0))
        w = np.where(use, vals * vals, 0.0)
        s = np.bincount(ids, w, nobj)
        sx = np.bincount(ids, d2 * w, nobj)
        sxx = np.bincount(ids, d2 * d2 * w, nobj)
        sy = np.bincount(ids, lpix * w, nobj)
        sxy = np.bincount(ids, lpix * d2 * w, nobj)
        d = s * sxx - sx * sx
        with np.errstate(divide="ignore", invalid="ignore"):
            bcoef = -(s * sxy - sx * sy) / d
            bmax = 1.0 / (13 * a * b)
            bcoef = np.where(bcoef < bmax, bmax, bcoef)
            fwhm = 1.6651 / np.sqrt(bcoef)
            fwhm = np.where(fwhm > 0, fwhm - 1 / (4 * fwhm), fwhm)
        out["fwhm"] = np.where((np.abs(d) > 0) & np.isfinite(fwhm), fwhm, 0.0).astype(np.float32)
    if flagmap is not None:
        lab = segmap if footprint is None else footprint
        fsel = lab > 0
        fids = lab[fsel].astype(np.int64) - 1
        fvals = flagmap[fsel].astype(np.int64)
        out["nimaflags"] = np.bincount(fids, weights=(fvals != 0), minlength=nobj).astype(np.int32)
        res = np.zeros(nobj, dtype=np.int64)
        ft = flag_type.upper()
        if ft == "OR":
            np.bitwise_or.at(res, fids, fvals)
        elif ft == "AND":
            res[:] = -1
            np.bitwise_and.at(res, fids, fvals)
            res[out["nimaflags"] == 0] = 0
            res[np.bincount(fids, minlength=nobj) == 0] = 0
        elif ft == "MIN":
            res[:] = np.iinfo(np.int64).max
            np.minimum.at(res, fids, fvals)
            res[res == np.iinfo(np.int64).max] = 0
        elif ft == "MAX":
            np.maximum.at(res, fids, fvals)
        elif ft == "MOST":
            # most frequent non-zero value in the footprint
            nz = fvals != 0
            if nz.any():
                pairs = np.stack([fids[nz], fvals[nz]], axis=1)
                uniq, counts = np.unique(pairs, axis=0, return_counts=True)
                order = np.lexsort((-counts, uniq[:, 0]))
                uniq, counts = uniq[order], counts[order]
                first = np.r_[True, uniq[1:, 0] != uniq[:-1, 0]]
                res[uniq[first, 0]] = uniq[first, 1]
        out["imaflags"] = res.astype(np.int32)
    return out
