"""Pixel stacks and their combination (SWarp's ``coadd.c``), in numba.

The resampled inputs that overlap a strip of output rows are "packed": for every output pixel, up to
``nmax`` (value, variance, origin) triplets.  :func:`combine_stack` then reduces each pixel stack with
COMBINE_TYPE; variances are SWarp's (output weight = 1 / variance):

==============  =============================  =====================================================
type            value                          variance
==============  =============================  =====================================================
WEIGHTED        sum(f/s2) / sum(1/s2)          1 / sum(1/s2)
AVERAGE         mean(f)                        sum(s2) / n^2
MEDIAN          median(f)                      pi n^2 / (2 (sum 1/s)^2 (n + c)), c = pi/2-1 (n odd),
                                               pi-2 (n even) for n > 2; sum(s2)/n^2 otherwise
SUM             sum(f)                         sum(s2)
MIN, MAX        min(f), max(f)                 1
CLIPPED         Gruen et al. (2014), below     1 / sum(1/s2) over kept values
CHI-OLD         sqrt(sum(f^2/s2) / n)          1
CHI-MODE        (sqrt(y) - sqrt(n-1)) / sqrt(n - mu_n^2)   1     (y = sum f^2/s2)
CHI-MEAN        (sqrt(y) - mu_n) / sqrt(n - mu_n^2)        1     (mu_n = sqrt2 G((n+1)/2) / G(n/2))
WEIGHTED_WEIGHT combination of weight maps     (inputs are weights)
MEDIAN_WEIGHT   combination of weight maps     (inputs are weights)
==============  =============================  =====================================================

CLIPPED: with two values, keep their weighted mean if ``|f1-f2| <= CLIP_SIGMA sqrt(s1^2+s2^2+|fm|(1/g1+1/g2))
+ CLIP_AMPFRAC |fm|`` else drop both; with three or more, drop value i if ``|fi-med| > CLIP_SIGMA
sqrt(si^2+|med|/gi) + CLIP_AMPFRAC |med|`` and take the weighted mean of the rest.  A gain of 0 means an
infinite 1/g term, so that, exactly as in SWarp, nothing is clipped without a gain.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .kernels import BIG

__all__ = ["COMBINE_CODES", "combine_stack", "pack_rows", "chi_bias"]

COMBINE_CODES = {"WEIGHTED": 0, "AVERAGE": 1, "MEDIAN": 2, "SUM": 3, "MIN": 4, "MAX": 5, "CLIPPED": 6,
                 "CHI-OLD": 7, "CHI-MODE": 8, "CHI-MEAN": 9, "WEIGHTED_WEIGHT": 10, "MEDIAN_WEIGHT": 11}


def chi_bias(n: int) -> np.ndarray:
    """mu_k = sqrt(2) Gamma((k+1)/2) / Gamma(k/2), the mean of a chi distribution with k dof, k = 1..n."""
    k = np.arange(1, max(n, 1) + 1, dtype=float)
    from scipy.special import gammaln

    return np.sqrt(2.0) * np.exp(gammaln((k + 1) / 2) - gammaln(k / 2))


@numba.njit(cache=True)
def pack_rows(vals, vars_, counts, origin, data, weight, row0, col0, origin_id, fscale, weight_mode,
              store_origin):
    """Append one resampled input (rows of ``data``/``weight``, placed at strip row ``row0`` and column
    ``col0``) to the pixel stacks.  Weights become variances ``fscale^2 / w`` (BIG where w <= 0) and
    values are multiplied by ``fscale`` (divided by fscale^2 for weight-map combinations)."""
    h, w = data.shape
    nmax = vals.shape[2]
    f2 = fscale * fscale
    for j in range(h):  # a memory-bound copy: serial
        r = row0 + j
        for i in range(w):
            c = col0 + i
            k = counts[r, c]
            if k >= nmax:
                continue
            wt = weight[j, i]
            if weight_mode:
                vals[r, c, k] = data[j, i] / f2
            else:
                vals[r, c, k] = data[j, i] * fscale
            vars_[r, c, k] = f2 / wt if wt > 0 else BIG
            if store_origin:
                origin[r, c, k] = origin_id
            counts[r, c] = k + 1


@numba.njit(cache=True, inline="always")
def _median(buf, n):
    # insertion sort of a short stack; SWarp's fast_median averages the two central values for even n
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v
    if n & 1:
        return buf[n // 2]
    return 0.5 * (buf[n // 2 - 1] + buf[n // 2])


@numba.njit(cache=True, inline="always")
def _inv_gain(g):
    return 1.0 / g if g > 0 else np.inf


@numba.njit(cache=True, parallel=True)
def combine_stack(vals, vars_, counts, origin, ctype, gains, bias, clip_sigma, clip_ampfrac, blank,
                  out, outvar, clipdev, writelog):
    """Combine the pixel stacks into ``out`` (values) and ``outvar`` (variances, BIG = no data).

    ``clipdev`` (same shape as the stack, used when ``writelog``) receives the signed normalised deviation
    of every value CLIPPED rejected, NaN elsewhere.
    """
    h, w, nmax = vals.shape
    for r in numba.prange(h):
        good = np.empty(max(nmax, 1))
        goodv = np.empty(max(nmax, 1))
        goodo = np.empty(max(nmax, 1), dtype=np.int64)
        goodk = np.empty(max(nmax, 1), dtype=np.int64)
        badv = np.empty(max(nmax, 1))
        buf = np.empty(max(nmax, 1))
        for c in range(w):
            n = counts[r, c]
            ng = 0
            nb = 0
            for k in range(n):
                v = vals[r, c, k]
                s2 = vars_[r, c, k]
                if s2 < BIG and v > -BIG / 2:
                    good[ng] = v
                    goodv[ng] = s2
                    goodo[ng] = origin[r, c, k] if ctype == 6 else 0
                    goodk[ng] = k
                    ng += 1
                else:
                    badv[nb] = v
                    nb += 1
            if writelog:
                for k in range(nmax):
                    clipdev[r, c, k] = np.nan
            if ng == 0:
                outvar[r, c] = BIG
                if blank or n == 0:
                    out[r, c] = 0.0
                elif ctype in (0, 1, 2, 8, 9):
                    out[r, c] = _median(badv, nb)
                elif ctype == 7:
                    for k in range(nb):
                        badv[k] = badv[k] * badv[k]
                    out[r, c] = math.sqrt(_median(badv, nb))
                elif ctype == 4:
                    m = badv[0]
                    for k in range(nb):
                        m = min(m, badv[k])
                    out[r, c] = m
                elif ctype == 5:
                    m = badv[0]
                    for k in range(nb):
                        m = max(m, badv[k])
                    out[r, c] = m
                elif ctype == 6:
                    out[r, c] = vals[r, c, n - 1]
                else:
                    out[r, c] = 0.0
                continue
            if ctype == 0:  # WEIGHTED
                sw = 0.0
                sv = 0.0
                for k in range(ng):
                    iw = 1.0 / goodv[k]
                    sw += iw
                    sv += good[k] * iw
                outvar[r, c] = 1.0 / sw
                out[r, c] = sv / sw
            elif ctype == 1:  # AVERAGE
                sv = 0.0
                s2 = 0.0
                for k in range(ng):
                    sv += good[k]
                    s2 += goodv[k]
                out[r, c] = sv / ng
                outvar[r, c] = s2 / (ng * ng)
            elif ctype == 2:  # MEDIAN
                sw = 0.0
                s2 = 0.0
                for k in range(ng):
                    buf[k] = good[k]
                    sw += 1.0 / math.sqrt(goodv[k])
                    s2 += goodv[k]
                out[r, c] = _median(buf, ng)
                if ng > 2:
                    cst = (math.pi / 2 - 1) if (ng & 1) else (math.pi - 2)
                    outvar[r, c] = math.pi * ng * ng / (2 * sw * sw * (ng + cst))
                else:
                    outvar[r, c] = s2 / (ng * ng)
            elif ctype == 3:  # SUM
                sv = 0.0
                s2 = 0.0
                for k in range(ng):
                    sv += good[k]
                    s2 += goodv[k]
                out[r, c] = sv
                outvar[r, c] = s2
            elif ctype == 4 or ctype == 5:  # MIN / MAX
                m = good[0]
                for k in range(ng):
                    m = min(m, good[k]) if ctype == 4 else max(m, good[k])
                out[r, c] = m
                outvar[r, c] = 1.0
            elif ctype == 6:  # CLIPPED
                if ng == 1:
                    out[r, c] = good[0]
                    outvar[r, c] = goodv[0]
                elif ng == 2:
                    fm = abs(good[0] + good[1]) / 2.0
                    sumw = goodv[0] + goodv[1]
                    gterm = _inv_gain(gains[goodo[0]]) + _inv_gain(gains[goodo[1]])
                    extra = fm * gterm if fm > 0 else 0.0
                    sig = math.sqrt(sumw + extra)
                    d = good[0] - good[1]
                    if abs(d) <= clip_sigma * sig + clip_ampfrac * fm:
                        out[r, c] = (good[0] * goodv[1] + good[1] * goodv[0]) / sumw
                        outvar[r, c] = goodv[0] * goodv[1] / sumw
                    else:
                        out[r, c] = 0.0
                        outvar[r, c] = BIG
                        if writelog:
                            mu = (1.0 if d > 0 else -1.0) * (abs(d) - clip_ampfrac * fm) / sig
                            clipdev[r, c, goodk[0]] = mu
                            clipdev[r, c, goodk[1]] = -mu
                else:
                    for k in range(ng):
                        buf[k] = good[k]
                    med = _median(buf, ng)
                    amu = abs(med)
                    sw = 0.0
                    sv = 0.0
                    for k in range(ng):
                        extra = amu * _inv_gain(gains[goodo[k]]) if amu > 0 else 0.0
                        sig = math.sqrt(goodv[k] + extra)
                        dev = good[k] - med
                        if abs(dev) <= clip_sigma * sig + clip_ampfrac * amu:
                            iw = 1.0 / goodv[k]
                            sw += iw
                            sv += iw * good[k]
                        elif writelog:
                            clipdev[r, c, goodk[k]] = ((1.0 if dev > 0 else -1.0)
                                                       * abs(abs(dev) - clip_ampfrac * amu) / sig)
                    if sw > 0:
                        outvar[r, c] = 1.0 / sw
                        out[r, c] = sv / sw
                    else:
                        outvar[r, c] = BIG
                        out[r, c] = 0.0
            elif ctype == 7:  # CHI-OLD
                y = 0.0
                for k in range(ng):
                    y += good[k] * good[k] / goodv[k]
                out[r, c] = math.sqrt(y / ng)
                outvar[r, c] = 1.0
            elif ctype == 8 or ctype == 9:  # CHI-MODE / CHI-MEAN
                y = 0.0
                for k in range(ng):
                    y += good[k] * good[k] / goodv[k]
                if ng > 1:
                    mu = bias[ng - 1]
                    centre = math.sqrt(ng - 1.0) if ctype == 8 else mu
                    out[r, c] = (math.sqrt(y) - centre) / math.sqrt(ng - mu * mu)
                else:
                    out[r, c] = good[0] / math.sqrt(goodv[0])
                outvar[r, c] = 1.0
            elif ctype == 10:  # WEIGHTED_WEIGHT: values are weights
                sw = 0.0
                sv = 0.0
                for k in range(ng):
                    fv = 1.0 / good[k] if good[k] > 1.0 / BIG else BIG
                    iw = 1.0 / goodv[k]
                    sw += iw
                    sv += fv * iw * iw
                wv = 1.0 / sw
                outvar[r, c] = wv
                sv *= wv * wv
                out[r, c] = 1.0 / sv if sv < BIG / 1000.0 else 0.0
            else:  # MEDIAN_WEIGHT
                sv = 0.0
                sv3 = 0.0
                sw = 0.0
                sw3 = 0.0
                for k in range(ng):
                    fv = 1.0 / good[k] if good[k] > 1.0 / BIG else BIG
                    sv += 1.0 / math.sqrt(fv)
                    sv3 += fv
                    sw += 1.0 / math.sqrt(goodv[k])
                    sw3 += goodv[k]
                if ng > 2:
                    cst = (math.pi / 2 - 1) if (ng & 1) else (math.pi - 2)
                    val = math.pi * ng * ng / (2 * sv * sv * (ng + cst))
                    outvar[r, c] = math.pi * ng * ng / (2 * sw * sw * (ng + cst))
                else:
                    val = sv3 / (ng * ng)
                    outvar[r, c] = sw3 / (ng * ng)
                out[r, c] = 1.0 / val if val < BIG / 1000.0 else 0.0
