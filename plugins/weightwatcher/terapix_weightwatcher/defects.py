"""Detection of image defects on one CCD: cosmic rays, saturation and bleed trails, bad columns,
satellite trails and dead CCDs.  Every detector returns a boolean mask (0-based numpy ``[y, x]``).

Cosmic rays follow L.A.Cosmic (van Dokkum 2001, PASP 113, 1420): the Laplacian of the 2x subsampled
image, clipped at zero and rebinned, divided by the noise model, minus its 5x5 median, must exceed
``sigclip`` (4.5), and be ``objlim`` times sharper than the fine-structure image ``med3 - med7(med3)``
(which is what separates a cosmic ray from the core of an unresolved star); neighbours above ``sigfrac *
sigclip`` (0.3) are grown into the hit.  The medians are only computed around candidate pixels, which
are a tiny fraction of a CCD, so each pass is one numba scan of the image.  As L.A.Cosmic and
astroscrappy, the detection is repeated (``niter`` 4) on the image cleaned of the hits found so far (a
track two or three pixels wide shows only its sharpest pixels to the first pass), then the hits are grown
into neighbours standing 3 sigma above the median of their non-CR 5x5 box (the faint edges of tracks and
worms).  ``objlim`` is 1.5, L.A.Cosmic's range for well-sampled ground-based PSFs (astroscrappy's 5 is
for undersampled HST images).  On the independent GalSim generator's exposures (issue 14; tracks and
worms two pixels wide) 98.6% of the cosmic-ray pixels whose deposit exceeds 5 sigma are flagged, with
0.026% of the clean pixels (tested in qualityfits' ``test_cosmic_rays_independent.py``); objlim 5 and a
single pass flagged 61%.  Pixels within 8 px of saturated ones are not candidates (``maps.py``: the walls
around a masked saturated core are sharp).

Satellite trails are found with a Radon (line-integral Hough) transform of the binned, clipped image:
a faint straight trail across the CCD sums coherently along one (rho, theta) cell while stars, clipped
at 3 sigma, do not.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["cosmic_rays", "grow_mask", "saturated", "bad_columns", "satellite_trails", "is_dead", "count_groups"]


@njit(cache=True)
def _median(buf, n):
    tmp = np.sort(buf[:n])
    if n % 2 == 1:
        return tmp[n // 2]
    return 0.5 * (tmp[n // 2 - 1] + tmp[n // 2])


@njit(cache=True)
def _lplus(img, y, x):
    """Rebinned, zero-clipped Laplacian of the 2x subsampled image at pixel (y, x) (van Dokkum eq. 8)."""
    c = 2.0 * img[y, x]
    u, d, l, r = img[y - 1, x], img[y + 1, x], img[y, x - 1], img[y, x + 1]
    return 0.25 * (max(c - u - l, 0.0) + max(c - u - r, 0.0) + max(c - d - l, 0.0) + max(c - d - r, 0.0))


@njit(cache=True)
def _noise(img, back, y, x, rms2, gain, buf):
    # noise model from the 5x5 median (so the hit itself does not inflate its own noise)
    n = 0
    for j in range(y - 2, y + 3):
        for i in range(x - 2, x + 3):
            buf[n] = img[j, i]
            n += 1
    med = _median(buf, n) - back[y, x]
    var = rms2 + (med / gain if (gain > 0 and med > 0) else 0.0)
    return np.sqrt(var)


@njit(cache=True)
def _sprime(img, back, y, x, rms2, gain, buf, buf2):
    # S' = S - med5(S): S = L+ / (2 N)
    n = 0
    s0 = 0.0
    for j in range(y - 2, y + 3):
        for i in range(x - 2, x + 3):
            s = _lplus(img, j, i) / (2.0 * _noise(img, back, j, i, rms2, gain, buf2))
            if j == y and i == x:
                s0 = s
            buf[n] = s
            n += 1
    return s0 - _median(buf, n)


@njit(cache=True)
def _fine(img, y, x, buf, buf2):
    # fine-structure image F = med3(I) - med7(med3(I)) at (y, x)
    n2 = 0
    centre = 0.0
    for j in range(y - 3, y + 4):
        for i in range(x - 3, x + 4):
            n = 0
            for jj in range(j - 1, j + 2):
                for ii in range(i - 1, i + 2):
                    buf[n] = img[jj, ii]
                    n += 1
            m3 = _median(buf, 9)
            if j == y and i == x:
                centre = m3
            buf2[n2] = m3
            n2 += 1
    return centre - _median(buf2, n2)


@njit(cache=True, nogil=True)
def _cosmics(img, back, rms, gain, sigclip, sigfrac, objlim, niter_grow):
    ny, nx = img.shape
    mask = np.zeros((ny, nx), np.bool_)
    rms2 = rms * rms
    buf = np.empty(64)
    buf2 = np.empty(64)
    buf3 = np.empty(64)
    m = 6  # margin needed by the 7x7 median of 3x3 medians
    # pass 1: candidates; the noise with source flux is >= rms so L+/(2 rms) bounds S from above
    cand_y = []
    cand_x = []
    for y in range(m, ny - m):
        for x in range(m, nx - m):
            if _lplus(img, y, x) > 2.0 * rms * sigclip:
                cand_y.append(y)
                cand_x.append(x)
    for k in range(len(cand_y)):
        y, x = cand_y[k], cand_x[k]
        noise = _noise(img, back, y, x, rms2, gain, buf2)
        sp = _sprime(img, back, y, x, rms2, gain, buf, buf2)
        if sp <= sigclip:
            continue
        f = _fine(img, y, x, buf, buf3) / noise
        if f < 0.01:
            f = 0.01
        if sp / f > objlim:
            mask[y, x] = True
    # growth: neighbours with S' above sigfrac * sigclip join the hit
    lim = sigfrac * sigclip
    for _ in range(niter_grow):
        add_y = []
        add_x = []
        for y in range(m, ny - m):
            for x in range(m, nx - m):
                if not mask[y, x]:
                    continue
                for j in range(y - 1, y + 2):
                    for i in range(x - 1, x + 2):
                        if j < m or j >= ny - m or i < m or i >= nx - m or mask[j, i]:
                            continue
                        if _sprime(img, back, j, i, rms2, gain, buf, buf2) > lim:
                            add_y.append(j)
                            add_x.append(i)
        if len(add_y) == 0:
            break
        for k in range(len(add_y)):
            mask[add_y[k], add_x[k]] = True
    return mask


@njit(cache=True, nogil=True)
def _clean_hits(img, mask, new, buf):
    """Replace the newly found cosmic-ray pixels by the median of the pixels of their 5x5 box that are not
    cosmic rays (L.A.Cosmic's cleaning between iterations), so that the next pass sees the rest of a hit:
    the pixels of a track two or three pixels wide, hidden by their brighter neighbours."""
    ny, nx = img.shape
    ys, xs = np.nonzero(new)
    vals = np.empty(len(ys), np.float32)
    for k in range(len(ys)):
        y, x = ys[k], xs[k]
        n = 0
        for j in range(max(y - 2, 0), min(y + 3, ny)):
            for i in range(max(x - 2, 0), min(x + 3, nx)):
                if not mask[j, i]:
                    buf[n] = img[j, i]
                    n += 1
        vals[k] = _median(buf, n) if n > 0 else img[y, x]
    for k in range(len(ys)):
        img[ys[k], xs[k]] = vals[k]


#: growth steps along a hit (each adds the pixels next to the mask standing out of their surroundings)
GROW_NITER = 6


@njit(cache=True, nogil=True)
def _grow_excess(orig, img, mask, back, rms2, gain, nsig, buf):
    """One growth step: the pixels next to a hit that stand ``nsig`` noise above the median of their 5x5
    box of pixels that are not cosmic rays (on the cleaned image): the faint edges of a track, which
    have their sharp neighbour's Laplacian but not their own.  Returns the number of pixels added."""
    ny, nx = img.shape
    add_y = []
    add_x = []
    for y in range(ny):
        for x in range(nx):
            if mask[y, x]:
                continue
            near = False
            for j in range(max(y - 1, 0), min(y + 2, ny)):
                for i in range(max(x - 1, 0), min(x + 2, nx)):
                    if mask[j, i]:
                        near = True
            if not near:
                continue
            n = 0
            for j in range(max(y - 2, 0), min(y + 3, ny)):
                for i in range(max(x - 2, 0), min(x + 3, nx)):
                    if not mask[j, i] and not (j == y and i == x):
                        buf[n] = img[j, i]
                        n += 1
            if n < 5:
                continue
            local = _median(buf, n)
            above = local - back[y, x]
            noise = np.sqrt(rms2 + (above / gain if (gain > 0 and above > 0) else 0.0))
            if orig[y, x] - local > nsig * noise:
                add_y.append(y)
                add_x.append(x)
    for k in range(len(add_y)):
        mask[add_y[k], add_x[k]] = True
    return len(add_y)


def cosmic_rays(data, back, rms: float, gain: float, sigclip: float = 4.5, sigfrac: float = 0.3,
                objlim: float = 5.0, ngrow: int = 2, niter: int = 4, grow_nsig: float = 3.0):
    """Boolean mask of detected cosmic-ray pixels (L.A.Cosmic criteria, see the module docstring).

    ``back`` is the background map (or a scalar), ``rms`` the background noise in ADU, ``gain`` in
    e-/ADU (0 ignores the source photon noise).  As L.A.Cosmic (and astroscrappy, ``niter`` 4), the
    detection is repeated up to ``niter`` times on the image cleaned of the hits found so far: a track
    or worm two or three pixels wide shows only its sharpest pixels to the first pass.
    """
    img = np.array(data, dtype=np.float32)
    if not np.isfinite(img).all():
        img = np.where(np.isfinite(img), img, np.float32(0))
    bk = np.ascontiguousarray(np.broadcast_to(np.asarray(back, dtype=np.float32), img.shape))
    mask = np.zeros(img.shape, bool)
    buf = np.empty(32, np.float32)
    for _ in range(max(1, int(niter))):
        new = _cosmics(img, bk, float(max(rms, 1e-12)), float(gain), float(sigclip), float(sigfrac),
                       float(objlim), int(ngrow))
        new &= ~mask
        if not new.any():
            break
        mask |= new
        _clean_hits(img, mask, new, buf)
    if grow_nsig > 0 and mask.any():
        orig = np.ascontiguousarray(data, dtype=np.float32)
        for _ in range(GROW_NITER):
            before = mask.copy()
            if not _grow_excess(orig, img, mask, bk, float(max(rms, 1e-12)) ** 2, float(gain), float(grow_nsig), buf):
                break
            _clean_hits(img, mask, mask & ~before, buf)
    return mask


def grow_mask(mask, half: int):
    """``mask`` dilated by a (2 half + 1)-pixel square box (separable running maximum along each axis)."""
    out = np.asarray(mask, bool)
    if half <= 0 or not out.any():
        return out.copy()
    for axis in (0, 1):
        c = np.cumsum(out, axis=axis, dtype=np.int32)
        n = out.shape[axis]
        hi = np.take(c, np.minimum(np.arange(n) + half, n - 1), axis=axis)
        lo_idx = np.arange(n) - half - 1
        lo = np.where((lo_idx >= 0).reshape((-1, 1) if axis == 0 else (1, -1)),
                      np.take(c, np.maximum(lo_idx, 0), axis=axis), 0)
        out = (hi - lo) > 0
    return out


@njit(cache=True, nogil=True)
def _bleed(img, back, satur, fraction):
    """Saturated pixels and their bleed trails: runs along the column above back + fraction (satur - back)."""
    ny, nx = img.shape
    out = np.zeros((ny, nx), np.bool_)
    for y in range(ny):
        for x in range(nx):
            if img[y, x] < satur:
                continue
            out[y, x] = True
            for step in (-1, 1):
                j = y + step
                while 0 <= j < ny and not out[j, x] and img[j, x] < satur and \
                        img[j, x] > back[j, x] + fraction * (satur - back[j, x]):
                    out[j, x] = True
                    j += step
    return out


@njit(cache=True, nogil=True)
def _dilate8(mask):
    """3x3 binary dilation visiting only the set pixels (saturation masks are sparse)."""
    ny, nx = mask.shape
    out = mask.copy()
    for y in range(ny):
        for x in range(nx):
            if mask[y, x]:
                for j in range(max(0, y - 1), min(ny, y + 2)):
                    for i in range(max(0, x - 1), min(nx, x + 2)):
                        out[j, i] = True
    return out


def saturated(data, back, satur_level: float, bleed_fraction: float = 0.3):
    """Saturated pixels, their bleed trails and a one-pixel border.

    A bleed trail continues along the column (the CCD readout direction) while the pixel stays above
    ``back + bleed_fraction * (satur_level - back)``.
    """
    img = np.ascontiguousarray(data, dtype=np.float32)
    bk = np.ascontiguousarray(np.broadcast_to(np.asarray(back, dtype=np.float32), img.shape))
    mask = _bleed(img, bk, np.float32(satur_level), np.float32(bleed_fraction))
    return _dilate8(mask)


def bad_columns(data, back, rms: float, nsigma: float = 5.0, segment: int = 256):
    """Columns (in segments of ``segment`` rows) whose median departs from the neighbouring columns.

    Hot or dead columns shift the median of a whole column segment; stars and cosmic rays do not.  The
    deviation of each segment's column median from the running median of its neighbours is compared with
    the robust scatter of those deviations across the CCD.
    """
    from scipy.ndimage import median_filter

    img = np.asarray(data, dtype=np.float32) - np.asarray(back, dtype=np.float32)
    ny, nx = img.shape
    mask = np.zeros(img.shape, bool)
    for y0 in range(0, ny, segment):
        y1 = min(ny, y0 + segment)
        if y1 - y0 < segment // 4:
            y0 = max(0, y1 - segment)
        colmed = np.median(img[y0:y1], axis=0)
        # "mirror" keeps an edge column out of its own reference (with "nearest" it is 5 of the 9 values)
        dev = colmed - median_filter(colmed, size=9, mode="mirror")
        mad = 1.4826 * np.median(np.abs(dev - np.median(dev)))
        # the floor keeps a noiseless image from flagging rounding noise
        sigma = max(mad, 1.2533 * rms / np.sqrt(y1 - y0), 1e-6)
        bad = np.abs(dev) > nsigma * sigma
        mask[y0:y1, bad] = True
    # a defect that starts inside a segment shifts its median only when it covers most of it: extend every
    # flagged run along its column while pixels stay closer to the defect's level than to the sky
    for x in np.nonzero(mask.any(axis=0))[0]:
        col = img[:, x]
        flagged = mask[:, x]
        level = float(np.median(col[flagged]))
        looks_bad = np.abs(col - level) < np.abs(col)
        for direction in (1, -1):
            edges = np.nonzero(flagged[:-1] != flagged[1:])[0]
            for e in edges:
                start = e + 1 if direction == 1 else e
                if flagged[start] or (direction == 1 and not flagged[e]) or (direction == -1 and not flagged[e + 1]):
                    continue
                y, misses = start, 0
                while 0 <= y < ny and not flagged[y] and misses < 3:
                    misses = 0 if looks_bad[y] else misses + 1
                    y += direction
                stop = y - direction * (misses + 1)
                lo, hi = sorted((start, stop))
                if (hi - lo) >= 0 and (direction == 1 and stop >= start or direction == -1 and stop <= start):
                    mask[lo:hi + 1, x] = True
            flagged = mask[:, x]
        # and trim the ends of each run that only rode along with their segment
        runs = np.flatnonzero(np.diff(np.concatenate([[0], flagged.astype(np.int8), [0]])))
        for a, b in zip(runs[::2], runs[1::2]):
            seg = looks_bad[a:b]
            if seg.size < 3:
                continue
            triple = seg[:-2] & seg[1:-1] & seg[2:]
            if not triple.any():
                continue
            first = int(np.argmax(triple))
            last = int(len(triple) - 1 - np.argmax(triple[::-1])) + 2
            mask[a:a + first, x] = False
            mask[a + last + 1:b, x] = False
    return mask


@njit(cache=True, nogil=True)
def _radon(img, ntheta, nrho, rho0, drho):
    acc = np.zeros((ntheta, nrho))
    cnt = np.zeros((ntheta, nrho))
    ny, nx = img.shape
    cs = np.cos(np.arange(ntheta) * np.pi / ntheta)
    sn = np.sin(np.arange(ntheta) * np.pi / ntheta)
    for y in range(ny):
        for x in range(nx):
            v = img[y, x]
            for t in range(ntheta):
                r = int((x * cs[t] + y * sn[t] - rho0) / drho + 0.5)
                if 0 <= r < nrho:
                    acc[t, r] += v
                    cnt[t, r] += 1.0
    return acc, cnt


def satellite_trails(data, back, rms: float, exclude=None, binning: int = 8, nsigma: float = 8.0,
                     min_length: float = 300.0, max_trails: int = 4):
    """Straight trails across the CCD.  Returns ``(mask, trails)``, ``trails`` a list of dicts with the
    line (``rho``, ``theta`` in full-resolution 0-based pixels and radians), ``width`` and significance.
    """
    img = np.asarray(data, dtype=np.float32) - np.asarray(back, dtype=np.float32)
    if exclude is not None:
        img = np.where(exclude, 0.0, img)
    img = np.where(np.isfinite(img), img, 0.0)
    ny, nx = img.shape
    by, bx = ny // binning, nx // binning
    mask = np.zeros((ny, nx), bool)
    if by < 8 or bx < 8:
        return mask, []
    small = img[:by * binning, :bx * binning].reshape(by, binning, bx, binning).mean(axis=(1, 3))
    sig = rms / binning
    # clipping at 3 sigma keeps stars from dominating a line integral
    clipped = np.clip(small / sig, -3.0, 3.0)
    clipped -= np.median(clipped)
    ntheta = 180
    diag = np.hypot(bx, by)
    nrho = int(2 * diag) + 1
    minpix = min_length / binning
    trails = []
    xs = np.arange(nx, dtype=np.float32)
    ys = np.arange(ny, dtype=np.float32)
    zmed = zsig = None
    for _ in range(max_trails):
        # the transform is recomputed after each trail is blanked out, so that a wide trail cannot be
        # found twice at neighbouring (rho, theta)
        acc, cnt = _radon(np.ascontiguousarray(clipped), ntheta, nrho, -diag, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(cnt >= minpix, acc / np.sqrt(np.maximum(cnt, 1)), 0.0)
        if zmed is None:  # noise statistics of the transform from the first pass
            good = z[cnt >= minpix]
            if good.size == 0:
                return mask, []
            zmed = np.median(good)
            zsig = 1.4826 * np.median(np.abs(good - zmed))
        t, r = np.unravel_index(np.argmax(z), z.shape)
        score = (z[t, r] - zmed) / max(zsig, 1e-6)
        if score < nsigma:
            break
        theta = t * np.pi / ntheta
        rho_b = -diag + r
        # back to full resolution: a binned pixel centre (i + 0.5) * b - 0.5
        rho = rho_b * binning + (binning - 1) / 2.0 * (np.cos(theta) + np.sin(theta))
        dist = xs[None, :] * np.float32(np.cos(theta)) + (ys[:, None] * np.float32(np.sin(theta)) - np.float32(rho))
        width = _trail_width(img, dist, rms)
        band = np.abs(dist) <= width
        mask |= band
        trails.append({"rho": float(rho), "theta": float(theta), "width": float(width), "score": float(score)})
        # blank the trail (and a binned pixel around it) in the binned image
        bdist = (np.arange(bx)[None, :] * np.cos(theta) + np.arange(by)[:, None] * np.sin(theta)) - rho_b
        clipped[np.abs(bdist) <= width / binning + 1.5] = 0.0
    return mask, trails


def _trail_width(img, dist, rms, maxdist: int = 30):
    """Half-width of a trail: extent of the median perpendicular profile above 3 sigma, plus a margin."""
    sel = np.abs(dist) <= maxdist
    d = np.round(dist[sel]).astype(int) + maxdist
    v = img[sel]
    order = np.argsort(d, kind="stable")
    d, v = d[order], v[order]
    edges = np.searchsorted(d, np.arange(2 * maxdist + 2))
    prof = np.array([np.median(v[edges[i]:edges[i + 1]]) if edges[i + 1] > edges[i] else 0.0
                     for i in range(2 * maxdist + 1)])
    counts = np.diff(edges)[: 2 * maxdist + 1]
    noise = 1.2533 * rms / np.sqrt(np.maximum(counts, 1))
    above = prof > 3 * noise
    c = maxdist
    lo, hi = c, c
    while lo - 1 >= 0 and above[lo - 1]:
        lo -= 1
    while hi + 1 <= 2 * maxdist and above[hi + 1]:
        hi += 1
    return float(max(c - lo, hi - c) + 2.0)


def is_dead(data) -> bool:
    """A dead CCD: no finite pixel, or no variation at all (read out as a constant)."""
    arr = np.asarray(data)
    finite = np.isfinite(arr)
    if finite.mean() < 0.5:
        return True
    sample = arr[finite][:: max(1, finite.sum() // 200000)]
    return float(np.median(np.abs(sample - np.median(sample)))) == 0.0


def count_groups(mask) -> int:
    """Number of 8-connected groups of true pixels (e.g. cosmic-ray hits)."""
    from scipy.ndimage import label

    if not np.any(mask):
        return 0
    return int(label(mask, structure=np.ones((3, 3), bool))[1])
