"""Phase 2: co-add the resampled inputs strip by strip (SWarp's ``coadd_fields``).

Memory design (the 1 deg^2 case: 19354 x 19354 output from 100 MegaCam exposures = 3600 CCDs):

* phase 1 resamples one CCD at a time onto its own rectangle of the output grid and writes it, with its
  weight, to RESAMPLE_DIR (as SWarp does).  In memory: the CCD's pixels and variances (the weight map is
  converted in place; SWarp too holds the image and its weight), plus for a moment either the boolean
  mask of the background estimate or the full-size rms map of RESCALE_WEIGHTS (the pixels are dropped
  and read again meanwhile); the background is subtracted by sep row by row, the variance's row maximum
  computed in place, and blocks of 256 output rows resampled and written at a time: ~2.3 x 38 MB for a
  2048 x 4612 CCD, plus the runtime (numpy, astropy, numba/LLVM: ~225 MB once a first kernel is loaded,
  ~255 MB for ``terapix tool``) and ~12 kB per input CCD (its WCS and a few header keywords);
* phase 2 creates the output image and weight at their final size (sparse files) and fills them strip
  by strip with ordinary writes, so neither is ever held in memory (a memmap's dirty pages would count
  in the resident size).  For a strip, the rows of every resampled input overlapping it are read and
  packed into pixel stacks of depth ``nmax`` (the maximum overlap, found as SWarp does from the maximal
  clique of the overlap graph); a strip holds ``h * width * nmax`` values and variances (and origins
  for CLIPPED), ``h`` being the largest height that fits in COMBINE_BUFSIZE megabytes (SWarp's rule)
  and in STRIP_MEMORY_MB (32), capped at MAX_STRIP_LINES (64).  With nmax ~ 100 and a 19354-pixel width,
  strips are 2 lines tall and phase 2 needs ~32 MB + the runtime;
* disk: the resampled CCDs take ~76 MB each (272 GB for 3600 CCDs).  When they would exceed
  RESAMPLE_DISKMAX (default half the free space of RESAMPLE_DIR) the output is made in bands of rows
  (:func:`plan_bands`, run by ``swarp._resample_coadd_bands``): for each band, phase 1 resamples only the
  inputs' rows in the band, phase 2 co-adds them into those rows of the output and the pieces are
  deleted.  An input cut by a band boundary is read again for the next band, its background mesh,
  RESCALE_WEIGHTS factor and mapping grid kept from the first, so its pixels are exactly those of a
  single pass (tested for every combine type).

So the peak memory is a few hundred MB whatever the output size, far below 24 GiB, and the disk used by
temporary files is bounded.  The result does not depend on the strip height or on the bands (tested);
benchmarks/bench_swarp.py and bench_swarp_deg2.py measure peak memory.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

from .combine import COMBINE_CODES, chi_bias, combine_stack, pack_rows
from .kernels import BIG
from .resample import Resampled

#: upper bounds of the strip height (lines) and of the strip buffers (MB, below SWarp's COMBINE_BUFSIZE
#: default of 256): see coadd_rows
MAX_STRIP_LINES = 64
STRIP_MEMORY_MB = 32

__all__ = ["MAX_STRIP_LINES", "STRIP_MEMORY_MB", "CoaddSummary", "max_clique", "coadd_resampled", "coadd_rows", "stack_summary",
           "plan_bands", "StripWriter"]


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
    bands: int = 1


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


def fits_header_bytes(header) -> bytes:
    """A float32 image header as FITS bytes (padded to 2880)."""
    header = header.copy()
    header["BITPIX"] = -32
    return header.tostring().encode("ascii")


class StripWriter:
    """A float32 FITS image created at its final size (a sparse file of zeros) and filled by blocks of full
    rows with ordinary writes, so that the output never sits in memory (a memmap's dirty pages would)."""

    def __init__(self, path: Path, header):
        head = fits_header_bytes(header)
        self.nx, self.ny = int(header["NAXIS1"]), int(header["NAXIS2"])
        nbytes = self.nx * self.ny * 4
        self.offset = len(head)
        self.fh = open(path, "wb")
        self.fh.write(head)
        self.fh.truncate(self.offset + nbytes + (-nbytes % 2880))

    def write_rows(self, y0: int, block: np.ndarray) -> None:
        """Write full-width rows starting at 1-based row ``y0``."""
        self.fh.seek(self.offset + (y0 - 1) * self.nx * 4)
        self.fh.write(np.ascontiguousarray(block, dtype=">f4").tobytes())

    def rewrite_header(self, header) -> None:
        """Replace the header by one of the same length (final keyword values known after the pixels)."""
        head = fits_header_bytes(header)
        if len(head) != self.offset:
            raise ToolError(f"{self.fh.name}: the final header ({len(head)} bytes) does not fit in the space of "
                            f"the provisional one ({self.offset} bytes)")
        self.fh.seek(0)
        self.fh.write(head)

    def close(self) -> None:
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_rows(path: Path, offset: int, width: int, y0: int, y1: int) -> np.ndarray:
    """Rows [y0, y1) (0-based) of a float32 FITS image whose pixels start at byte ``offset``, native order."""
    count = (y1 - y0) * width
    data = np.fromfile(path, dtype=">f4", count=count, offset=offset + y0 * width * 4)
    return data.astype(np.float32).reshape(y1 - y0, width)


def _levels(resampled: list[Resampled], weight_mode: bool):
    """Effective (flux-scaled) gain, background rms, background level and saturation of each input, as
    makeit.c before coadd_fields."""
    f = np.array([r.fscale for r in resampled], dtype=float)
    fgain = np.array([r.fgain for r in resampled], dtype=float)
    backsig = np.array([r.backsig for r in resampled], dtype=float)
    backmean = np.array([r.backmean for r in resampled], dtype=float)
    sat = np.array([r.saturation for r in resampled], dtype=float)
    if weight_mode:
        return fgain * f * f, backsig / (f * f), backmean / (f * f), sat / (f * f)
    return fgain / f, backsig * f, backmean * f, sat * f


def stack_summary(resampled: list[Resampled], ctype_name: str) -> CoaddSummary:
    """EXPTIME, GAIN and SATURATE of the stack and the maximum overlap, from the rectangles of the inputs
    (their full rectangles when the output is made in bands)."""
    weight_mode = ctype_name in ("WEIGHTED_WEIGHT", "MEDIAN_WEIGHT")
    boxes = np.array([[r.xmin, r.xmax, r.ymin, r.ymax] for r in resampled], dtype=int).reshape(-1, 4)
    clique = max_clique(boxes)
    nmax = max(1, len(clique))
    fgain, fbacksig, fbackmean, fsat = _levels(resampled, weight_mode)
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
    return CoaddSummary(exptime=exptime, gain=gain, saturation=saturation, nmax=nmax, nfiles_max=nfiles_max,
                        strips=0, strip_height=0, nclipped=0)


def check_combine_type(ctype_name: str) -> int:
    if ctype_name not in COMBINE_CODES:
        raise ToolError(f"COMBINE_TYPE {ctype_name} is not supported (flag-map types AND/NAND/OR/NOR need "
                        "integer inputs)")
    return COMBINE_CODES[ctype_name]


def coadd_resampled(resampled: list[Resampled], out_header, config, image_path: Path, weight_path: Path,
                    header_fn=None, log=None, clip_log_path: Path | None = None) -> CoaddSummary:
    """Co-add ``resampled`` into ``image_path``/``weight_path`` (float32 FITS).

    ``header_fn(summary, weight=False|True)`` returns the header of each output once EXPTIME, GAIN and
    SATURATE are known (default: ``out_header`` as is).
    """
    check_combine_type(config["COMBINE_TYPE"])
    summary = stack_summary(resampled, config["COMBINE_TYPE"])
    with output_writers(config, image_path, weight_path, clip_log_path,
                        header_fn(summary, False) if header_fn else out_header,
                        header_fn(summary, True) if header_fn else out_header) as (img, wgt, logfh):
        coadd_rows(resampled, config, img, wgt, summary, log=log, clip_log=logfh)
    return summary


@contextlib.contextmanager
def output_writers(config, image_path: Path, weight_path: Path, clip_log_path: Path | None, header, wheader):
    """The image and weight :class:`StripWriter` and the CLIPPED log file (None unless CLIP_WRITELOG)."""
    writelog = config["COMBINE_TYPE"] == "CLIPPED" and bool(config["CLIP_WRITELOG"])
    with StripWriter(image_path, header) as img, StripWriter(weight_path, wheader) as wgt, \
            (open(clip_log_path, "w") if (writelog and clip_log_path) else contextlib.nullcontext()) as logfh:
        yield img, wgt, logfh


def coadd_rows(resampled: list[Resampled], config, img: "StripWriter", wgt: "StripWriter", summary: CoaddSummary,
               log=None, clip_log=None, ids=None) -> None:
    """Co-add ``resampled`` strip by strip into the output rows they cover (all of them, or one band of
    the output when they are the pieces of the inputs in that band); adds to ``summary.strips`` and
    ``summary.nclipped``, sets ``summary.strip_height`` to the largest strip height used.  ``ids``: the
    input number of each entry in the CLIPPED log (default: its index)."""
    ctype_name = config["COMBINE_TYPE"]
    ctype = check_combine_type(ctype_name)
    weight_mode = ctype_name in ("WEIGHTED_WEIGHT", "MEDIAN_WEIGHT")
    width, height = img.nx, img.ny
    if not resampled:
        return
    boxes = np.array([[r.xmin, r.xmax, r.ymin, r.ymax] for r in resampled], dtype=int).reshape(-1, 4)
    nmax = max(1, len(max_clique(boxes)))
    gains = _levels(resampled, weight_mode)[0].astype(np.float64)
    if ids is not None:  # the gains are looked up by origin
        full = np.zeros(max(ids) + 1)
        full[np.asarray(ids)] = gains
        gains = full
    # the area actually covered
    bx0 = max(1, int(boxes[:, 0].min()))
    bx1 = min(width, int(boxes[:, 1].max()))
    by0 = max(1, int(boxes[:, 2].min()))
    by1 = min(height, int(boxes[:, 3].max()))
    cwidth = max(0, bx1 - bx0 + 1)
    clipped = ctype_name == "CLIPPED"
    writelog = clipped and bool(config["CLIP_WRITELOG"])
    # bytes per strip line: values + variances (+ origins, clipping deviations) per stack entry, counts,
    # combined value and variance, and the full-width output line
    per_line = cwidth * (nmax * (8 + (4 if clipped else 0) + (4 if writelog else 0)) + 12) + 4 * width + 1
    # at most COMBINE_BUFSIZE MB (SWarp's rule), STRIP_MEMORY_MB and MAX_STRIP_LINES lines: taller strips
    # only cost memory and cache misses (3 exposures of 36 CCDs: 1385-line strips 42 s and 557 MB, 346-line
    # strips 35 s and 308 MB), while the per-strip overhead (one read per overlapping input) stays small
    budget = min(config["COMBINE_BUFSIZE"], STRIP_MEMORY_MB) * 1024 * 1024
    strip_h = int(max(1, min(max(1, by1 - by0 + 1), budget // per_line, MAX_STRIP_LINES)))
    summary.strip_height = max(summary.strip_height, strip_h)
    bias = chi_bias(nmax)
    nstrips = 0
    # strip buffers, allocated once; only the first counts[y, x] entries of a pixel stack are ever read
    vals = np.empty((strip_h, cwidth, nmax), dtype=np.float32)
    vars_ = np.empty((strip_h, cwidth, nmax), dtype=np.float32)
    origin = np.empty((strip_h, cwidth, nmax) if clipped else (1, 1, 1), dtype=np.int32)
    clipdev = np.empty((strip_h, cwidth, nmax) if writelog else (1, 1, 1), dtype=np.float32)
    counts = np.empty((strip_h, cwidth), dtype=np.int32)
    out = np.empty((strip_h, cwidth), dtype=np.float32)
    outvar = np.empty((strip_h, cwidth), dtype=np.float32)
    block = np.zeros((strip_h, width), dtype=np.float32)
    for y0 in range(by0, by1 + 1, strip_h):
        y1 = min(by1, y0 + strip_h - 1)
        h = y1 - y0 + 1
        counts[:h] = 0
        for i, r in enumerate(resampled):
            if r.ymax < y0 or r.ymin > y1:
                continue
            ca, cb = max(bx0, r.xmin), min(bx1, r.xmax)
            if ca > cb:
                continue
            ra, rb = max(y0, r.ymin), min(y1, r.ymax)
            data = _read_rows(r.image, r.image_offset, r.nx, ra - r.ymin, rb - r.ymin + 1)
            weight = _read_rows(r.weight, r.weight_offset, r.nx, ra - r.ymin, rb - r.ymin + 1)
            if ca != r.xmin or cb != r.xmax:  # clip columns to the covered area
                data = np.ascontiguousarray(data[:, ca - r.xmin: cb - r.xmin + 1])
                weight = np.ascontiguousarray(weight[:, ca - r.xmin: cb - r.xmin + 1])
            pack_rows(vals, vars_, counts, origin, data, weight, ra - y0, ca - bx0, i if ids is None else ids[i],
                      float(r.fscale),
                      weight_mode, clipped)
        combine_stack(vals[:h], vars_[:h], counts[:h], origin, ctype, gains, bias,
                      float(config["CLIP_SIGMA"]), float(config["CLIP_AMPFRAC"]),
                      bool(config["BLANK_BADPIXELS"]), out[:h], outvar[:h], clipdev, writelog)
        if writelog:
            jj, ii, kk = np.nonzero(np.isfinite(clipdev[:h]))
            summary.nclipped += len(jj)
            if clip_log is not None:
                clip_log.writelines(f"{origin[j, i, k]:4d} {i + bx0:6d} {j + y0:6d} {clipdev[j, i, k]:+10g}\n"
                                    for j, i, k in zip(jj, ii, kk))
        block[:h, bx0 - 1:bx1] = out[:h]
        img.write_rows(y0, block[:h])
        with np.errstate(divide="ignore"):
            block[:h, bx0 - 1:bx1] = np.where(outvar[:h] < BIG, 1.0 / outvar[:h], 0.0)
        wgt.write_rows(y0, block[:h])
        nstrips += 1
        summary.strips += 1
        if log and (nstrips == 1 or y1 == by1 or nstrips % 10 == 0):
            log.info("  co-adding line %d / %d (%.0f%%)", y1, height, 100.0 * y1 / height)


def plan_bands(boxes: np.ndarray, height: int, budget: float) -> list[tuple[int, int]]:
    """Split the output rows 1..height into bands whose resampled pieces (float32 image and weight of the
    rectangles ``(xmin, xmax, ymin, ymax)`` crossing the band) take at most ``budget`` bytes, each boundary
    placed where the fewest rectangles are cut within the upper half of the allowed range (a cut
    rectangle is read again for the next band).  One band when everything fits."""
    per_row = np.zeros(height + 2)
    cont = np.zeros(height + 2, dtype=np.int64)
    for x0, x1, y0, y1 in boxes:
        per_row[y0] += 8.0 * (x1 - x0 + 1)
        per_row[y1 + 1] -= 8.0 * (x1 - x0 + 1)
        cont[y0] += 1  # rectangle continues past rows y0 .. y1-1
        cont[y1] -= 1
    cum = np.cumsum(np.cumsum(per_row))  # cum[r]: bytes of rows 1..r
    cont = np.cumsum(cont)
    bands = []
    s = 1
    while s <= height:
        e_max = int(np.searchsorted(cum, cum[s - 1] + budget, side="right")) - 1
        e_max = max(s, min(height, e_max))
        if e_max == height:
            bands.append((s, height))
            break
        lo = s + (e_max - s) // 2
        e = e_max - int(np.argmin(cont[lo:e_max + 1][::-1]))
        bands.append((s, e))
        s = e + 1
    return bands
