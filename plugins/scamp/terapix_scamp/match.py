"""Pattern matching of a field against the reference catalogue (SCAMP ``match_findas``/``match_findxy``).

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


def _fit_poly(src, dst, degree, center, norm, weights=None):
    terms = poly_terms((src[:, 0] - center[0]) / norm, (src[:, 1] - center[1]) / norm, degree).T
    w = np.ones(len(src)) if weights is None else weights
    coeffs = []
    for axis in range(2):
        sol, *_ = np.linalg.lstsq(terms * w[:, None], dst[:, axis] * w, rcond=None)
        coeffs.append(sol)
    return np.array(coeffs)


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
    log.info("%s: pattern matching %s angle %+.3f deg, scale %.4f, shift %+.2f\" %+.2f\", contrasts %.1f/%.1f, "
             "%d matches, rms %.3f\"", label, "(flipped) " if flip else "", np.rad2deg(angle), np.exp(lscale),
             shift[0] * 3600, shift[1] * 3600, as_contrast, xy_contrast, nmatch, rms)
    return MatchResult(flip, float(np.rad2deg(angle)), float(np.exp(lscale)), (shift[0], shift[1]), as_contrast,
                       xy_contrast, coeffs, degree, src_center, norm, nmatch, rms)
