"""Phase 2: co-add the resampled inputs strip by strip (SWarp's ``coadd_fields``).

Memory design.  The output image and weight are written through ``numpy.memmap`` into FITS files created
at their final size, so neither is ever held in memory.  The output is processed in strips of full-width
rows; for a strip, every resampled input overlapping it is read (only those rows) and packed into pixel
stacks of depth ``nmax`` (the maximum overlap, found as SWarp does with the maximal clique of the
overlap graph: for rectangles, the deepest point).  A strip holds ``h * width * nmax`` values, variances
(and origins for CLIPPED); ``h`` is chosen so that this fits in COMBINE_BUFSIZE megabytes, exactly
SWarp's rule, so the peak memory is bounded by COMBINE_BUFSIZE plus one resampled input in phase 1,
whatever the output size: a 19354 x 19354 stack of 100 MegaCam exposures (nmax ~ 100) uses ~16-row
strips with the default 256 MB.  The result does not depend on the strip height (tested).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

from .combine import COMBINE_CODES, chi_bias, combine_stack, pack_rows
from .kernels import BIG
from .resample import Resampled

__all__ = ["CoaddSummary", "max_clique", "coadd_resampled", "create_fits_memmap"]


@dataclass
class CoaddSummary:
    exptime: float
    gain: float
    saturation: float
    nmax: int
    nfiles_max: int
    strips: int
    strip_height: int
    nclipped: int


def _overlap_graph(boxes: np.ndarray) -> np.ndarray:
    """Adjacency (self included) of rectangles ``(xmin, xmax, ymin, ymax)`` that overlap."""
    x0, x1, y0, y1 = (boxes[:, k] for k in range(4))
    return ((x0[:, None] <= x1[None, :]) & (x1[:, None] >= x0[None, :])
            & (y0[:, None] <= y1[None, :]) & (y1[:, None] >= y0[None, :]))


def _bron_kerbosch(adj, old, ne, ce, compsub, best):
    """SWarp's ``max_clique_recur``: Bron & Kerbosch (1973, CACM 16, 575) algorithm 457, version 2, with
    the same candidate order, so that the same maximal clique is found first."""
    old = list(old)
    sub = ~adj[np.ix_(old[:ce], old[ne:ce])]
    counts = sub.sum(axis=1)
    minnod, nod, fixp, s = ce, 0, 0, 0
    for i in range(ce):
        if minnod == 0:
            break
        if counts[i] < minnod:
            fixp = old[i]
            minnod = int(counts[i])
            if i < ne:
                hits = np.nonzero(sub[i])[0]
                s = ne + int(hits[-1]) if len(hits) else s  # count 0 ends the search anyway
            else:
                s = i
                nod = 1
    nod += minnod
    while nod >= 1:
        sel = old[s]
        old[s] = old[ne]
        old[ne] = sel
        row = adj[sel]
        new_not = [v for v in old[:ne] if row[v]]
        new_cand = [v for v in old[ne + 1:ce] if row[v]]
        compsub.append(sel)
        if not new_not and not new_cand:
            if len(best) < len(compsub):  # a larger maximal clique
                best[:] = compsub
        elif new_cand:
            _bron_kerbosch(adj, new_not + new_cand, len(new_not), len(new_not) + len(new_cand), compsub, best)
        compsub.pop()
        ne += 1
        if nod > 1:
            s = ne
            while adj[fixp, old[s]]:
                s += 1
        nod -= 1


def max_clique(boxes: np.ndarray) -> np.ndarray:
    """Indices of the maximal clique of the overlap graph of rectangles ``(xmin, xmax, ymin, ymax)``.

    Up to 600 rectangles, SWarp's own Bron-Kerbosch search (same clique, hence the same EXPTIME and GAIN
    when several cliques are maximal); beyond, the rectangles covering the deepest point, found by a sweep
    over the lower edges (for axis-parallel rectangles a maximal clique has a common point, Helly).
    """
    import sys

    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n <= 600:
        adj = _overlap_graph(boxes)
        best: list[int] = []
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 4 * n + 100))
        try:
            _bron_kerbosch(adj, list(range(n)), 0, n, [], best)
        finally:
            sys.setrecursionlimit(limit)
        return np.array(best, dtype=int)
    best_depth, best_pt = -1, (0, 0)
    for y in np.unique(boxes[:, 2]):
        act = np.nonzero((boxes[:, 2] <= y) & (boxes[:, 3] >= y))[0]
        pos = np.concatenate([boxes[act, 0], boxes[act, 1] + 1])
        delta = np.concatenate([np.ones(len(act), int), -np.ones(len(act), int)])
        order = np.lexsort((delta, pos))
        depth = np.cumsum(delta[order])
        k = int(np.argmax(depth))
        if depth[k] > best_depth:
            best_depth, best_pt = int(depth[k]), (int(pos[order][k]), int(y))
    x, y = best_pt
    return np.nonzero((boxes[:, 0] <= x) & (boxes[:, 1] >= x) & (boxes[:, 2] <= y) & (boxes[:, 3] >= y))[0]


def create_fits_memmap(path: Path, header) -> np.memmap:
    """Create a float32 FITS image of the header's size without writing its pixels (a sparse file of
    zeros), and return a writable memmap of its data."""
    header = header.copy()
    header["BITPIX"] = -32
    head = header.tostring().encode("ascii")
    nx, ny = int(header["NAXIS1"]), int(header["NAXIS2"])
    nbytes = nx * ny * 4
    padded = -(-nbytes // 2880) * 2880
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + padded)
    return np.memmap(path, dtype=">f4", mode="r+", offset=len(head), shape=(ny, nx))


def _read_rows(path: Path, y0: int, y1: int) -> np.ndarray:
    """Rows [y0, y1) (0-based) of a resampled image as native float32."""
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdul:
        return np.ascontiguousarray(hdul[0].section[y0:y1, :], dtype=np.float32)


def coadd_resampled(resampled: list[Resampled], out_header, config, image_path: Path, weight_path: Path,
                    header_fn=None, log=None, clip_log_path: Path | None = None) -> CoaddSummary:
    """Co-add ``resampled`` into ``image_path``/``weight_path`` (float32 FITS).

    ``header_fn(summary, weight=False|True)`` returns the header of each output once EXPTIME, GAIN and
    SATURATE are known (default: ``out_header`` as is).
    """
    ctype_name = config["COMBINE_TYPE"]
    if ctype_name not in COMBINE_CODES:
        raise ToolError(f"COMBINE_TYPE {ctype_name} is not supported (flag-map types AND/NAND/OR/NOR need "
                        "integer inputs)")
    ctype = COMBINE_CODES[ctype_name]
    weight_mode = ctype_name in ("WEIGHTED_WEIGHT", "MEDIAN_WEIGHT")
    width, height = int(out_header["NAXIS1"]), int(out_header["NAXIS2"])
    boxes = np.array([[r.xmin, r.xmax, r.ymin, r.ymax] for r in resampled], dtype=int).reshape(-1, 4)
    clique = max_clique(boxes)
    nmax = max(1, len(clique))

    # effective (flux-scaled) levels, as makeit.c before coadd_fields
    f = np.array([r.fscale for r in resampled], dtype=float)
    if weight_mode:
        fgain = np.array([r.fgain for r in resampled]) * f * f
        fbacksig = np.array([r.backsig for r in resampled]) / (f * f)
        fbackmean = np.array([r.backmean for r in resampled]) / (f * f)
        fsat = np.array([r.saturation for r in resampled]) / (f * f)
    else:
        fgain = np.array([r.fgain for r in resampled]) / f
        fbacksig = np.array([r.backsig for r in resampled]) * f
        fbackmean = np.array([r.backmean for r in resampled]) * f
        fsat = np.array([r.saturation for r in resampled]) * f
    # EXPTIME and gain from the maximal clique, one extension per file
    exptime = w1 = w2 = mw = 0.0
    seen: set[int] = set()
    for i in clique:
        r = resampled[i]
        if r.fileno in seen:
            continue
        seen.add(r.fileno)
        exptime += r.exptime
        w = (1.0 / fbacksig[i] ** 2 if ctype_name in ("WEIGHTED", "CLIPPED") and fbacksig[i] > 0 else 1.0)
        w1 += w
        if fgain[i] > 0:
            w2 += w * w / fgain[i]
            mw += fgain[i]
    nfiles_max = max(1, len(seen))
    gain = 0.0
    if ctype_name in ("WEIGHTED", "AVERAGE", "CLIPPED"):
        gain = w1 * w1 / w2 if w2 > 0 else 0.0
    elif ctype_name == "MEDIAN":
        gain = w1 * w1 / w2 if w2 > 0 else 0.0
        if nfiles_max > 2:
            gain /= math.pi
    elif ctype_name == "SUM":
        gain = w1 * w1 / w2 / nfiles_max if w2 > 0 else 0.0
    else:
        gain = mw / nfiles_max
    # SATURATE: the minimum effective level, lowered by the subtracted background.  (SWarp 2.41 indexes its
    # per-file SUBTRACT_BACK flags by field number here, so in MEF runs only the first <number of files>
    # fields get the subtraction; we subtract it for every field with SUBTRACT_BACK Y.)
    sats = [fsat[i] - fbackmean[i] if (r.subback and fsat[i] > fbackmean[i]) else fsat[i]
            for i, r in enumerate(resampled)]
    saturation = float(min(sats)) if sats else BIG

    # the area actually covered
    if len(resampled):
        bx0 = max(1, int(boxes[:, 0].min()))
        bx1 = min(width, int(boxes[:, 1].max()))
        by0 = max(1, int(boxes[:, 2].min()))
        by1 = min(height, int(boxes[:, 3].max()))
    else:
        bx0, bx1, by0, by1 = 1, 0, 1, 0
    cwidth = max(0, bx1 - bx0 + 1)
    clipped = ctype_name == "CLIPPED"
    writelog = clipped and bool(config["CLIP_WRITELOG"])
    per_line = cwidth * (nmax * (4 + 4 + (8 if clipped else 0) + (4 if writelog else 0)) + 4 + 8) + 1
    budget = config["COMBINE_BUFSIZE"] * 1024 * 1024
    strip_h = int(max(1, min(max(1, by1 - by0 + 1), budget // per_line)))

    gains = fgain.astype(np.float64)
    bias = chi_bias(nmax)
    summary = CoaddSummary(exptime=exptime, gain=gain, saturation=saturation, nmax=nmax, nfiles_max=nfiles_max,
                           strips=0, strip_height=strip_h, nclipped=0)
    img = create_fits_memmap(image_path, header_fn(summary, False) if header_fn else out_header)
    wgt = create_fits_memmap(weight_path, header_fn(summary, True) if header_fn else out_header)
    nstrips = 0
    nclipped = 0
    logfh = open(clip_log_path, "w") if (writelog and clip_log_path) else None
    try:
        for y0 in range(by0, by1 + 1, strip_h):
            y1 = min(by1, y0 + strip_h - 1)
            h = y1 - y0 + 1
            vals = np.zeros((h, cwidth, nmax), dtype=np.float32)
            vars_ = np.full((h, cwidth, nmax), BIG, dtype=np.float32)
            counts = np.zeros((h, cwidth), dtype=np.int32)
            origin = np.zeros((h, cwidth, nmax if clipped else 1), dtype=np.int32)
            origin_pack = origin if clipped else np.zeros((h, cwidth, nmax), dtype=np.int32)
            for i, r in enumerate(resampled):
                if r.ymax < y0 or r.ymin > y1:
                    continue
                ra, rb = max(y0, r.ymin), min(y1, r.ymax)
                data = _read_rows(r.image, ra - r.ymin, rb - r.ymin + 1)
                weight = _read_rows(r.weight, ra - r.ymin, rb - r.ymin + 1)
                # clip columns to the covered area
                ca, cb = max(bx0, r.xmin), min(bx1, r.xmax)
                if ca > cb:
                    continue
                data = np.ascontiguousarray(data[:, ca - r.xmin: cb - r.xmin + 1])
                weight = np.ascontiguousarray(weight[:, ca - r.xmin: cb - r.xmin + 1])
                pack_rows(vals, vars_, counts, origin_pack, data, weight, ra - y0, ca - bx0, i,
                          float(r.fscale), weight_mode)
            out = np.zeros((h, cwidth), dtype=np.float32)
            outvar = np.zeros((h, cwidth), dtype=np.float32)
            clipdev = np.zeros((h, cwidth, nmax) if writelog else (1, 1, 1), dtype=np.float32)
            combine_stack(vals, vars_, counts, origin_pack, ctype, gains, bias, float(config["CLIP_SIGMA"]),
                          float(config["CLIP_AMPFRAC"]), bool(config["BLANK_BADPIXELS"]), out, outvar,
                          clipdev, writelog)
            if writelog:
                jj, ii, kk = np.nonzero(np.isfinite(clipdev))
                nclipped += len(jj)
                if logfh is not None:
                    lines = [f"{origin_pack[j, i, k]:4d} {i + bx0:6d} {j + y0:6d} {clipdev[j, i, k]:+10g}\n"
                             for j, i, k in zip(jj, ii, kk)]
                    logfh.writelines(lines)
            img[y0 - 1:y1, bx0 - 1:bx1] = out
            with np.errstate(divide="ignore"):
                wgt[y0 - 1:y1, bx0 - 1:bx1] = np.where(outvar < BIG, 1.0 / outvar, 0.0)
            nstrips += 1
            if log and (nstrips == 1 or y1 == by1 or nstrips % 10 == 0):
                log.info("  co-adding line %d / %d (%.0f%%)", y1, height, 100.0 * (y1 - by0 + 1) /
                         max(1, by1 - by0 + 1))
    finally:
        if logfh is not None:
            logfh.close()
        img.flush()
        wgt.flush()
        del img, wgt
    summary.strips = nstrips
    summary.nclipped = nclipped
    return summary
