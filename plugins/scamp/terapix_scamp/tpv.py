"""TPV distortion terms (the ``PVi_m`` SCAMP writes) fitted to a solution sampled on a pixel grid.

TPV: ``(u, v) = CD (p - CRPIX)``; ``xi = sum_m PV1_m u^a v^b``, ``eta = sum_m PV2_m v^a u^b`` with the term
order 0:1, 1:u, 2:v, 3:r, 4:u^2, 5:uv, 6:v^2, 7:u^3, 8:u^2v, 9:uv^2, 10:v^3, 11:r^3, 12-16: degree 4, ...
(radial terms unused, as SCAMP leaves them out).  CD is the linear part at CRPIX so PV1_1 = PV2_1 = 1.
"""
from __future__ import annotations

import numpy as np

__all__ = ["tpv_terms", "fit_tpv", "eval_tpv"]

_DEGREE_START = {0: 0, 1: 1, 2: 4, 3: 7, 4: 12, 5: 17, 6: 24, 7: 31}


def tpv_terms(degree: int) -> list[tuple[int, int, int]]:
    """(PV index m, power of u, power of v) for every non-radial term up to ``degree`` (<= 7)."""
    out = []
    for d in range(degree + 1):
        for b in range(d + 1):
            out.append((_DEGREE_START[d] + b, d - b, b))
    return out


def eval_tpv(pv1: dict, pv2: dict, u, v):
    """Evaluate TPV polynomials (dicts m -> coefficient) at intermediate coordinates (u, v) in degrees."""
    xi = np.zeros_like(np.asarray(u, float))
    eta = np.zeros_like(xi)
    for m, a, b in tpv_terms(7):
        if m in pv1:
            xi = xi + pv1[m] * u ** a * v ** b
        if m in pv2:
            eta = eta + pv2[m] * v ** a * u ** b
    return xi, eta


def fit_tpv(px, py, xi, eta, crpix: tuple[float, float], degree: int):
    """Fit CD and TPV terms so that pixels (px, py) map to standard coordinates (xi, eta) (deg).

    Returns ``(cd, pv1, pv2, maxerr)``: the 2x2 CD matrix, dicts of PV terms and the largest fit residual
    (deg) on the sample.  ``degree`` 1 gives a pure linear (TAN) solution.
    """
    P = np.asarray(px, float) - crpix[0]
    Q = np.asarray(py, float) - crpix[1]
    s = max(np.max(np.abs(P)), np.max(np.abs(Q)), 1.0)
    terms = tpv_terms(degree)
    design = np.stack([(P / s) ** a * (Q / s) ** b for _, a, b in terms], axis=1)
    cx, *_ = np.linalg.lstsq(design, xi, rcond=None)
    cy, *_ = np.linalg.lstsq(design, eta, rcond=None)
    # linear part at CRPIX: coefficients of P and Q (terms 1 and 2)
    cd = np.array([[cx[1], cx[2]], [cy[1], cy[2]]]) / s
    u = cd[0, 0] * P + cd[0, 1] * Q
    v = cd[1, 0] * P + cd[1, 1] * Q
    t = max(np.max(np.abs(u)), np.max(np.abs(v)), 1e-12)
    dx = np.stack([(u / t) ** a * (v / t) ** b for _, a, b in terms], axis=1)
    dy = np.stack([(v / t) ** a * (u / t) ** b for _, a, b in terms], axis=1)
    c1, *_ = np.linalg.lstsq(dx, xi, rcond=None)
    c2, *_ = np.linalg.lstsq(dy, eta, rcond=None)
    # c_norm (u/t)^a (v/t)^b = (c_norm / t^(a+b)) u^a v^b
    pv1 = {m: float(c / t ** (a + b)) for (m, a, b), c in zip(terms, c1)}
    pv2 = {m: float(c / t ** (a + b)) for (m, a, b), c in zip(terms, c2)}
    fx, fy = eval_tpv(pv1, pv2, u, v)
    maxerr = float(np.max(np.hypot(fx - xi, fy - eta))) if len(xi) else 0.0
    return cd, pv1, pv2, maxerr
