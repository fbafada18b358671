"""Pattern matching of a field against the reference catalogue (SCAMP ``match_findas``/``match_findxy``).

0. First, the search SCAMP does not do: a Hough vote over the small rotations and scale errors real telescope
   headers have (up to POSANGLE_MAXERR and PIXSCALE_MAXERR, capped at 1 deg and 2 %).  For each
   hypothesis, every detection-reference pair within POSITION_MAXERR votes for the shift it implies; the
   hypothesis with the highest, Poisson-significant shift peak wins.  It needs no pattern in the
   brightest sources (galaxies, cosmic rays and saturated stars dilute the pair histograms below), only
   that the reference stars are among the detections.  When it finds no significant peak (larger
   rotations or scale errors), SCAMP's pattern matching follows:
1. Histograms of pairs of the brightest sources in (position angle mod pi, ln separation), weighted by
   (F_j F_k)^0.125 for detections and 10^(-0.05 (m_j + m_k)) for reference stars, smoothed.
2. Their FFT cross-correlation gives rotation and scale: the peak within POSANGLE_MAXERR and
   PIXSCALE_MAXERR (and the mirror image when MATCH_FLIPPED is Y).
3. A histogram of reference-minus-detection offsets within POSITION_MAXERR gives the shift.
4. Iterative cross-identification and least-squares refinement (affine, then a cubic in the field plane)
   absorb shear and first-guess distortion.

All coordinates are standard coordinates (degrees) on the field's tangent plane.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MatchResult", "MatchError", "match_field", "poly_terms", "apply_correction"]


#: correlation peak over mean (absolute) correlation below which a match is rejected: the shift peak of
#: true matches is 15-40 and of unrelated patterns 1-3; the angle/scale peak is weaker on real catalogues
#: (galaxies, saturated stars: 3-40) so it gets a lower bar, the shift peak deciding
MIN_CONTRAST = 4.0
MIN_AS_CONTRAST = 2.5


class MatchError(Exception):
    """Pattern matching found no convincing solution."""


@dataclass
class MatchResult:
    """The correction from first-guess to matched standard coordinates and its diagnostics."""

    flip: bool
    angle: float  # deg, rotation applied to the first guess
    scale: float  # factor applied to the first guess
    shift: tuple[float, float]  # deg
    as_contrast: float  # angle/scale correlation peak contrast
    xy_contrast: float  # shift correlation peak contrast
    coeffs: np.ndarray  # (2, nterms) polynomial of the final correction (see apply_correction)
    degree: int
    center: tuple[float, float]
    norm: float
    nmatch: int
    rms: float  # arcsec, of the last refinement


def poly_terms(x, y, degree: int) -> np.ndarray:
    """Monomials x^a y^b with a + b <= degree, ordered by total degree (shape (nterms, n))."""
    out = []
    for total in range(degree + 1):
        for b in range(total + 1):
            out.append(x ** (total - b) * y ** b)
    return np.array(out)


def apply_correction(result: MatchResult, xi, eta):
    """Apply a :class:`MatchResult` to first-guess standard coordinates."""
    xi = np.asarray(xi, float)
    eta = np.asarray(eta, float)
    if result.flip:
        xi = -xi
    terms = poly_terms((xi - result.center[0]) / result.norm, (eta - result.center[1]) / result.norm,
                       result.degree)
    return result.coeffs[0] @ terms, result.coeffs[1] @ terms


def _pair_hist(x, y, w, nang, lmin, lmax, nl, maxpairs=400_000):
    """Weighted 2-D histogram of pairs in (angle mod pi, ln separation)."""
    n = len(x)
    i, j = np.triu_indices(n, 1)
    if len(i) > maxpairs:
        keep = np.random.default_rng(1).choice(len(i), maxpairs, replace=False)
        i, j = i[keep], j[keep]
    dx = x[j] - x[i]
    dy = y[j] - y[i]
    sep = np.hypot(dx, dy)
    ok = sep > 0
    ang = np.mod(np.arctan2(dy[ok], dx[ok]), np.pi)
    lsep = np.log(sep[ok])
    weight = (w[i] * w[j])[ok]
    hist, _, _ = np.histogram2d(ang, lsep, bins=(nang, nl), range=((0, np.pi), (lmin, lmax)), weights=weight)
    return hist


def _whiten(hist):
    """Gaussian splats (~0.2 deg in angle, ~0.8% in separation, for first-guess distortions and shear),
    then removal of the angle-averaged pair-separation profile and per-row noise normalisation: the smooth
    distribution of separations otherwise dominates the correlation and biases the scale."""
    from scipy import ndimage

    hist = ndimage.gaussian_filter(hist, (2.0, 2.0), mode=("wrap", "constant"))
    mean = hist.mean(axis=0, keepdims=True)
    return (hist - mean) / np.sqrt(mean + 1e-3 * mean.mean() + 1e-30)


def _find_rotation_scale(det, wdet, ref, wref, config, log):
    """Rotation (rad) and ln(scale) that take the detection pattern onto the reference pattern."""
    from scipy import fft

    nang = 1800  # 0.1 deg bins
    allxy = np.concatenate([det, ref])
    extent = np.hypot(*(allxy.max(0) - allxy.min(0)))
    lmax = np.log(extent * 1.3)
    lmin = lmax - np.log(200.0)  # separations from 1/200 of the field size
    dl = 0.004
    nl = int((lmax - lmin) / dl)
    hd = _pair_hist(det[:, 0], det[:, 1], wdet, nang, lmin, lmax, nl)
    hr = _pair_hist(ref[:, 0], ref[:, 1], wref, nang, lmin, lmax, nl)
    hd = _whiten(hd)
    hr = _whiten(hr)
    pad = int(np.ceil(np.log(config["PIXSCALE_MAXERR"]) / dl)) + 4
    shape = (nang, nl + 2 * pad)
    fd = fft.rfft2(np.pad(hd, ((0, 0), (pad, pad))), shape)
    fr = fft.rfft2(np.pad(hr, ((0, 0), (pad, pad))), shape)
    corr = fft.irfft2(fr * np.conj(fd), shape)  # corr[s] = sum hd(p) hr(p + s)
    sa = np.fft.fftfreq(nang, 1.0 / nang).astype(int)  # angle shift in bins
    sl = np.fft.fftfreq(shape[1], 1.0 / shape[1]).astype(int)
    amax = int(np.ceil(np.deg2rad(config["POSANGLE_MAXERR"]) / (np.pi / nang)))
    lmaxbin = int(np.ceil(np.log(config["PIXSCALE_MAXERR"]) / dl))
    mask = (np.abs(sa)[:, None] <= amax) & (np.abs(sl)[None, :] <= lmaxbin)
    sub = np.where(mask, corr, -np.inf)
    ia, il = np.unravel_index(np.argmax(sub), sub.shape)
    peak = corr[ia, il]
    inside = corr[mask]
    contrast = float(peak / max(np.mean(np.abs(inside)), 1e-300))

    def parabolic(m, c, p):
        denom = m - 2 * c + p
        return 0.0 if denom == 0 else 0.5 * (m - p) / denom

    da = parabolic(corr[(ia - 1) % nang, il], peak, corr[(ia + 1) % nang, il])
    dlb = parabolic(corr[ia, (il - 1) % shape[1]], peak, corr[ia, (il + 1) % shape[1]])
    angle = (sa[ia] + da) * np.pi / nang
    lscale = (sl[il] + dlb) * dl
    return angle, lscale, contrast


def _find_shift(det, ref, maxerr, resol):
    """Offset (ref - det) maximising the number of coincidences within ``maxerr`` (histogram peak)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    tree = cKDTree(ref)
    lists = tree.query_ball_point(det, maxerr * 1.05)
    counts = np.fromiter((len(v) for v in lists), int, len(lists))
    if counts.sum() == 0:
        raise MatchError("no reference star within POSITION_MAXERR of any detection")
    di = np.repeat(np.arange(len(det)), counts)
    ri = np.fromiter((k for v in lists for k in v), int, counts.sum())
    d = ref[ri] - det[di]
    nb = int(np.ceil(2 * maxerr / resol)) + 1
    hist, ex, ey = np.histogram2d(d[:, 0], d[:, 1], bins=nb, range=((-maxerr, maxerr), (-maxerr, maxerr)))
    hist = ndimage.gaussian_filter(hist, 1.0)
    ix, iy = np.unravel_index(np.argmax(hist), hist.shape)
    contrast = float(hist[ix, iy] / max(hist.mean(), 1e-300))
    cx = 0.5 * (ex[ix] + ex[ix + 1])
    cy = 0.5 * (ey[iy] + ey[iy + 1])
    # refine: mean offset of the coincidences near the peak
    near = np.hypot(d[:, 0] - cx, d[:, 1] - cy) < 1.5 * resol
    if near.sum() >= 3:
        cx, cy = np.median(d[near, 0]), np.median(d[near, 1])
    return (float(cx), float(cy)), contrast


def _similarity_vote(det, ref, maxerr, rot_max, scale_max, binsize):
    """Hough search of (rotation, scale, shift) taking ``det`` onto ``ref`` (standard coordinates, deg).

    ref ~ c + t + (1 + s) R(theta) (det - c), c the detections' centre.  Coarse grid of (theta, s) with bins
    of 4 ``binsize``, then a fine grid around the best cell.  Returns (theta rad, s, t (2,), peak count,
    significance), the significance being (peak - background) / sqrt(background + 1) for the 3x3-bin cell,
    against the mean background of the shift plane.
    """
    from scipy.spatial import cKDTree

    c = det.mean(0)
    p = det - c
    rf = float(np.max(np.hypot(p[:, 0], p[:, 1]))) if len(p) else 0.0
    reach = maxerr + rf * (rot_max + scale_max) * 1.05
    lists = cKDTree(ref).query_ball_point(det, reach)
    counts = np.fromiter((len(v) for v in lists), int, len(lists))
    if counts.sum() == 0:
        return None
    di = np.repeat(np.arange(len(det)), counts)
    ri = np.fromiter((k for v in lists for k in v), int, counts.sum())
    d = ref[ri] - det[di]
    pp = p[di]

    def scan(thetas, scales, b):
        nb = int(np.ceil(2 * maxerr / b)) + 3
        best = (-1.0, 0.0, 0.0, None, 0.0)
        for th in thetas:
            ct, st = np.cos(th), np.sin(th)
            rx = ct * pp[:, 0] - st * pp[:, 1]
            ry = st * pp[:, 0] + ct * pp[:, 1]
            for sc in scales:
                ex = d[:, 0] - ((1 + sc) * rx - pp[:, 0])
                ey = d[:, 1] - ((1 + sc) * ry - pp[:, 1])
                ix = np.floor((ex + maxerr) / b).astype(np.int64) + 1
                iy = np.floor((ey + maxerr) / b).astype(np.int64) + 1
                ok = (ix >= 1) & (ix < nb - 1) & (iy >= 1) & (iy < nb - 1)
                h = np.bincount(ix[ok] * nb + iy[ok], minlength=nb * nb).reshape(nb, nb)
                # 2x2 cells: a peak split over a bin edge still counts whole
                h2 = h[:-1, :-1] + h[1:, :-1] + h[:-1, 1:] + h[1:, 1:]
                k = int(np.argmax(h2))
                if h2.flat[k] > best[0]:
                    best = (float(h2.flat[k]), th, sc, divmod(k, nb - 1), float(ok.sum()))
        peak, th, sc, (kx, ky), nin = best
        background = 4.0 * nin / float((nb - 2) ** 2)
        return peak, th, sc, ((kx + 0.0) * b - maxerr, (ky + 0.0) * b - maxerr), background

    coarse = 4.0 * binsize
    step = coarse / max(rf, 1e-9)
    nth = min(int(np.ceil(rot_max / step)), 30)
    nsc = min(int(np.ceil(scale_max / step)), 30)
    thetas = np.linspace(-rot_max, rot_max, 2 * nth + 1) if nth else np.zeros(1)
    scales = np.linspace(-scale_max, scale_max, 2 * nsc + 1) if nsc else np.zeros(1)
    peak, th, sc, t0, bg = scan(thetas, scales, coarse)
    dth = thetas[1] - thetas[0] if len(thetas) > 1 else 0.0
    dsc = scales[1] - scales[0] if len(scales) > 1 else 0.0
    fine_th = th + np.linspace(-dth, dth, 9) if dth else np.array([th])
    fine_sc = sc + np.linspace(-dsc, dsc, 9) if dsc else np.array([sc])
    peak, th, sc, _, bg = scan(fine_th, fine_sc, binsize)
    # shift: median offset of the pairs agreeing with the best hypothesis within 2 bins of the peak
    ct, st = np.cos(th), np.sin(th)
    model = np.column_stack([(1 + sc) * (ct * pp[:, 0] - st * pp[:, 1]) - pp[:, 0],
                             (1 + sc) * (st * pp[:, 0] + ct * pp[:, 1]) - pp[:, 1]])
    e = d - model
    nb = int(np.ceil(2 * maxerr / binsize))
    h, ex, ey = np.histogram2d(e[:, 0], e[:, 1], bins=nb, range=((-maxerr, maxerr), (-maxerr, maxerr)))
    kx, ky = np.unravel_index(np.argmax(h), h.shape)
    cx, cy = 0.5 * (ex[kx] + ex[kx + 1]), 0.5 * (ey[ky] + ey[ky + 1])
    near = np.hypot(e[:, 0] - cx, e[:, 1] - cy) < 2 * binsize
    t = np.median(e[near], axis=0) if near.sum() >= 3 else np.array([cx, cy])
    signif = (peak - bg) / np.sqrt(bg + 1.0)
    return th, sc, t, c, peak, signif


def _fit_poly(src, dst, degree, center, norm, weights=None):
    terms = poly_terms((src[:, 0] - center[0]) / norm, (src[:, 1] - center[1]) / norm, degree).T
    w = np.ones(len(src)) if weights is None else weights
    coeffs = []
    for axis in range(2):
        sol, *_ = np.linalg.lstsq(terms * w[:, None], dst[:, axis] * w, rcond=None)
        coeffs.append(sol)
    return np.array(coeffs)


#: significance ((peak - background) / sqrt(background + 1)) a Hough vote needs: unrelated catalogues give
#: 3-6 over the ~10^4 hypotheses x shifts searched, true matches 15-100
MIN_VOTE_SIGNIFICANCE = 9.0


#: the vote uses the brightest reference stars and detections (pairs, hence time, grow as their product;
#: bright reference stars are detected whatever the catalogue's depth)
VOTE_NREF = 3000
VOTE_NDET = 8000


def _vote(det, flux, ref, flips, maxerr, resol, config):
    """The Hough vote on the brightest detections; None when no hypothesis is significant."""
    rot_max = np.deg2rad(min(config["POSANGLE_MAXERR"], 1.0))
    scale_max = min(config["PIXSCALE_MAXERR"] - 1.0, 0.02)
    binsize = float(np.clip(resol, 1.0 / 3600, 3.0 / 3600))
    nd = int(min(len(det), max(5 * len(ref), 300), VOTE_NDET))
    order = np.argsort(-flux)[:nd]
    best = None
    for flip in flips:
        src = det[order] * ([-1.0, 1.0] if flip else [1.0, 1.0])
        found = _similarity_vote(src, ref, maxerr, rot_max, scale_max, binsize)
        if found is None:
            continue
        th, sc, t, c, peak, signif = found
        if best is None or signif > best[-1]:
            best = (flip, th, sc, t, c, peak, signif)
    if best is None or best[-1] < MIN_VOTE_SIGNIFICANCE or best[5] < 8:
        return None
    flip, th, sc, t, c, peak, signif = best
    allsrc = det * ([-1.0, 1.0] if flip else [1.0, 1.0])
    ct, st = np.cos(th), np.sin(th)
    rel = allsrc - c
    moved = c + t + (1.0 + sc) * np.column_stack([ct * rel[:, 0] - st * rel[:, 1], st * rel[:, 0] + ct * rel[:, 1]])
    return flip, th, np.log1p(sc), (float(t[0]), float(t[1])), float(signif), moved


def match_field(det, flux, ref, refmag, config, log, label: str = "field", min_matches: int = 10) -> MatchResult:
    """Match detections ``det`` (n, 2; first-guess standard coordinates, deg) with reference stars ``ref``
    (m, 2) and return the correction.  Raises :class:`MatchError` when no solution is convincing."""
    from scipy.spatial import cKDTree

    if len(det) < min_matches or len(ref) < min_matches:
        raise MatchError(f"{label}: {len(det)} detections and {len(ref)} reference stars; need at least "
                         f"{min_matches} of each")
    maxerr = config["POSITION_MAXERR"] / 60.0
    lo = det.min(0) - maxerr
    hi = det.max(0) + maxerr
    inside = np.all((ref >= lo) & (ref <= hi), axis=1)
    ref, refmag = ref[inside], refmag[inside]
    if len(ref) < min_matches:
        raise MatchError(f"{label}: only {len(ref)} reference stars overlap the field; need {min_matches}")
    nmax = config["MATCH_NMAX"] or 600
    order_d = np.argsort(-flux)[:nmax]
    order_r = np.argsort(refmag)[:nmax]
    dsel, rsel = det[order_d], ref[order_r]
    wd = np.clip(flux[order_d], 1e-30, None) ** 0.125
    wr = 10 ** (-0.05 * (refmag[order_r] - np.nanmin(refmag[order_r])))
    norm = float(max(np.ptp(det[:, 0]), np.ptp(det[:, 1]), 1e-6) / 2)
    resol = config["MATCH_RESOL"] / 3600.0 if config["MATCH_RESOL"] > 0 else None
    if resol is None:  # automatic: a small fraction of the mean distance between detections
        area = max(np.ptp(det[:, 0]) * np.ptp(det[:, 1]), 1e-12)
        resol = float(np.clip(0.1 * np.sqrt(area / len(det)), 1.0 / 3600, 5.0 / 3600))
    flips = [False, True] if config["MATCH_FLIPPED"] else [False]
    method = "vote"
    vote = _vote(det, flux, ref[np.argsort(refmag)[:VOTE_NREF]], flips, maxerr, resol, config)
    if vote is not None:
        flip, angle, lscale, shift, as_contrast, moved = vote
        xy_contrast = as_contrast
        allsrc = det * ([-1.0, 1.0] if flip else [1.0, 1.0])
    else:
        method = "pattern"
        best = None
        for flip in ([False, True] if config["MATCH_FLIPPED"] else [False]):
            src = dsel * ([-1.0, 1.0] if flip else [1.0, 1.0])
            angle, lscale, contrast = _find_rotation_scale(src - np.mean(src, 0), wd, rsel - np.mean(src, 0), wr,
                                                           config, log)
            if best is None or contrast > best[3]:
                best = (flip, angle, lscale, contrast)
        flip, angle, lscale, as_contrast = best
        c, s = np.cos(angle), np.sin(angle)
        rot = np.exp(lscale) * np.array([[c, -s], [s, c]])
        allsrc = det * ([-1.0, 1.0] if flip else [1.0, 1.0])
        centre_src = np.mean(allsrc, 0)

        def linear(points):
            return (points - centre_src) @ rot.T + centre_src

        shift, xy_contrast = _find_shift(linear(dsel * ([-1.0, 1.0] if flip else [1.0, 1.0])), rsel, maxerr, resol)
        if as_contrast < MIN_AS_CONTRAST or xy_contrast < MIN_CONTRAST:
            raise MatchError(f"{label}: no convincing match with the reference catalogue (angle/scale contrast "
                             f"{as_contrast:.1f}, need {MIN_AS_CONTRAST}; shift contrast {xy_contrast:.1f}, need "
                             f"{MIN_CONTRAST}); check the "
                             "first-guess WCS, POSITION_MAXERR, POSANGLE_MAXERR, PIXSCALE_MAXERR, MATCH_FLIPPED")
        moved = linear(allsrc) + shift
    # iterative refinement: cross-identify within a shrinking radius, fit affine then cubic
    tree = cKDTree(ref)
    src_center = tuple(np.mean(allsrc, 0))
    coeffs = None
    radius = max(4 * resol, 3 * config["CROSSID_RADIUS"] / 3600.0)
    nmatch, rms, degree = 0, np.inf, 1
    current = moved
    for step, (deg, rad) in enumerate([(1, radius), (1, radius / 2), (1, config["CROSSID_RADIUS"] / 3600.0),
                                       (3, config["CROSSID_RADIUS"] / 3600.0),
                                       (3, config["CROSSID_RADIUS"] / 3600.0)]):
        dist, idx = tree.query(current, distance_upper_bound=rad)
        ok = np.isfinite(dist)
        if ok.sum() < max(min_matches, 3 * (deg + 1) * (deg + 2) // 2):
            if step < 3:
                raise MatchError(f"{label}: {int(ok.sum())} detections matched the reference within "
                                 f"{rad * 3600:.1f}\" after pattern matching; need at least {min_matches} "
                                 "(check the first-guess WCS, POSITION_MAXERR, POSANGLE_MAXERR, PIXSCALE_MAXERR, "
                                 "MATCH_FLIPPED)")
            break
        coeffs = _fit_poly(allsrc[ok], ref[idx[ok]], deg, src_center, norm)
        degree = deg
        terms = poly_terms((allsrc[:, 0] - src_center[0]) / norm, (allsrc[:, 1] - src_center[1]) / norm, deg)
        current = np.stack([coeffs[0] @ terms, coeffs[1] @ terms], axis=1)
        resid = current[ok] - ref[idx[ok]]
        nmatch = int(ok.sum())
        rms = float(np.sqrt(np.mean(np.sum(resid ** 2, 1)) / 2) * 3600)
    if coeffs is not None:  # report the refined linear part (the search grid is coarser than the result)
        jac = coeffs[:, 1:3] / norm
        angle = float(np.arctan2(jac[1, 0] - jac[0, 1], jac[0, 0] + jac[1, 1]))
        lscale = float(0.5 * np.log(abs(np.linalg.det(jac))))
        shift = (float(coeffs[0, 0] - src_center[0]), float(coeffs[1, 0] - src_center[1]))
    log.info("%s: %s matching %s angle %+.3f deg, scale %.4f, shift %+.2f\" %+.2f\", contrasts %.1f/%.1f, "
             "%d matches, rms %.3f\"", label, method, "(flipped) " if flip else "", np.rad2deg(angle), np.exp(lscale),
             shift[0] * 3600, shift[1] * 3600, as_contrast, xy_contrast, nmatch, rms)
    return MatchResult(flip, float(np.rad2deg(angle)), float(np.exp(lscale)), (shift[0], shift[1]), as_contrast,
                       xy_contrast, coeffs, degree, src_center, norm, nmatch, rms)
