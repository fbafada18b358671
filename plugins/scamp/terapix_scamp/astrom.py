"""The global astrometric solution (SCAMP ``astrsolve.c``).

Model, per detection ``i`` of chip ``c`` in field (exposure) ``f`` of astrometric instrument ``I``::

    xi_i  = sum_t A[I, c, t] phi_t(x, y) + sum_k a[f, k] psi_k(X, Y)
    eta_i = sum_t B[I, c, t] phi_t(x, y) + sum_k b[f, k] psi_k(X, Y)

``(xi, eta)`` are standard coordinates on the field's tangent plane, ``phi_t`` the monomials of degree
<= DISTORT_DEGREES in the chip's pixel coordinates rescaled to [-1, 1] (one polynomial per chip per
instrument, shared by its exposures: STABILITY_TYPE INSTRUMENT), ``psi_k`` the terms of degree
<= FOCDISTORT_DEGREE in focal-plane coordinates, for every exposure but the first of each instrument.

Constraints: pairs of overlapping detections (chained, see :mod:`.linking`) and detection/reference
pairs, compared on the tangent plane of their field group.  The map from a field's plane to its group's
plane is linearised around the current solution (Gauss-Newton), so each iteration is one weighted
linear least-squares problem over all fields at once.  Its normal equations are accumulated by a numba
kernel (per pair, the 2x2 Jacobians factor out of the basis outer product; the design matrix is never
built) and solved by Cholesky (LAPACK, as SCAMP's ``dposv``) up to SPARSE_ABOVE parameters; above, the
exposure part is stored block-sparse (diagonal blocks and the pairs of overlapping exposures) and the
system solved with scipy.sparse.  Flow: solve -> cross-identify -> clip -> solve.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from terapix_fw.errors import ToolError

from .linking import chain_links, friends_of_friends, match_reference
from .sky import reproject_jacobian

__all__ = ["Detections", "AstromModel", "AstromSolution", "solve_astrometry", "accumulate_normal", "evaluate_model"]


@dataclass
class Detections:
    """All selected detections of all fields, concatenated field after field (``field`` is sorted)."""

    field: np.ndarray
    chip: np.ndarray
    x: np.ndarray
    y: np.ndarray
    sig: np.ndarray  # deg, centroid error with the ASTR_ACCURACY floor
    snr: np.ndarray
    astr_ok: np.ndarray
    phot_ok: np.ndarray
    flux: np.ndarray
    fluxerr: np.ndarray
    xi0: np.ndarray  # corrected first guess, deg, field plane
    eta0: np.ndarray
    group: np.ndarray

    #: storage types: 60 million detections (2,000 MegaCam exposures) must fit in memory; indices are small
    #: and errors, S/N and fluxes need no more than float32, positions stay float64
    DTYPES = {"field": np.int32, "chip": np.int16, "group": np.int32, "sig": np.float32, "snr": np.float32,
              "flux": np.float32, "fluxerr": np.float32}

    def __post_init__(self):
        for name, dtype in self.DTYPES.items():
            value = np.asarray(getattr(self, name))
            if value.dtype != dtype:
                setattr(self, name, value.astype(dtype))

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class AstromModel:
    """Parameter layout: chip-polynomial blocks then per-field linear blocks."""

    degree: int
    focdeg: int
    block_of: np.ndarray  # (nfield, nchip_max) polynomial block of each field's chip, -1 unused
    chip_size: np.ndarray  # (nblock, 2) nx, ny of each polynomial block
    lin_of: np.ndarray  # (nfield,) index of the field's linear block or -1
    field_center: np.ndarray  # (nfield, 2) focal-plane normalisation centre (deg)
    field_norm: np.ndarray  # (nfield,) focal-plane normalisation radius (deg)
    focal_affine: np.ndarray  # (nfield, nchip_max, 2, 3) affine first guess pixel -> field plane (deg)
    block_ndet: np.ndarray = None  # (nblock,) usable detections constraining each polynomial block
    block_degree: np.ndarray = None  # (nblock,) degree actually solved for (<= degree, see choose_degrees)
    block_lever: np.ndarray = None  # (nblock,) worst leverage on the chip grid at that degree
    block_keys: list = None  # (nblock,) (astrometric instrument, 0-based extension) of each block
    block_nmatch: np.ndarray = None  # (nblock,) matched detections (overlaps, reference) on each block

    def __post_init__(self):
        if self.block_degree is None:
            self.block_degree = np.full(len(self.chip_size), self.degree, np.int64)

    @property
    def nterm(self) -> int:
        return (self.degree + 1) * (self.degree + 2) // 2

    def block_name(self, b: int) -> str:
        if self.block_keys is None:
            return f"polynomial block {b}"
        inst, ext = self.block_keys[b]
        return f"instrument {inst} extension {ext + 1}"

    def fixed_params(self) -> np.ndarray:
        """Indices of the polynomial terms above each block's own degree: held at zero in the solution
        (SCAMP drops them from the normal equations: ``shrink_mat``)."""
        nt = self.nterm
        out = []
        for b, d in enumerate(self.block_degree):
            keep = _nterm(d)
            if keep < nt:
                extra = np.arange(keep, nt)
                out.extend([b * 2 * nt + extra, b * 2 * nt + nt + extra])
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    @property
    def nfoc(self) -> int:
        return 0 if self.focdeg < 0 else (self.focdeg + 1) * (self.focdeg + 2) // 2

    @property
    def npoly(self) -> int:
        return len(self.chip_size) * 2 * self.nterm

    @property
    def nparam(self) -> int:
        return self.npoly + int((self.lin_of >= 0).sum()) * 2 * self.nfoc

    def design(self, field, chip, x, y):
        """Compact description of detections at pixels (x, y) of ``chip`` in ``field`` (arrays):
        ``coords`` (n, 4) = chip coordinates rescaled to [-1, 1] and focal-plane coordinates rescaled
        by the field radius, ``pbase`` the first parameter of the chip polynomial block, ``lbase`` that
        of the field's linear block (-1: none).  48 bytes per detection; the basis values themselves
        are computed on the fly by the numba kernels (memory matters at 60 million detections): coords
        are float32 (1e-7 of a chip: 0.03 mas on a MegaCam CCD), the bases int32 (24 bytes per detection)."""
        field = np.asarray(field)
        chip = np.asarray(chip)
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        n = len(x)
        coords = np.empty((n, 4), np.float32)
        pbase = np.empty(n, np.int32)
        lbase = np.empty(n, np.int32)
        step = 1 << 20  # in chunks: the per-detection temporaries (affine maps: 48 bytes) stay small
        for a in range(0, n, step):
            b = min(a + step, n)
            fa, xa, ya = field[a:b], x[a:b], y[a:b]
            block = self.block_of[fa, chip[a:b]]
            size = self.chip_size[block]
            coords[a:b, 0] = (xa - 0.5 * (size[:, 0] + 1)) / (0.5 * size[:, 0])
            coords[a:b, 1] = (ya - 0.5 * (size[:, 1] + 1)) / (0.5 * size[:, 1])
            aff = self.focal_affine[fa, chip[a:b]]  # (n, 2, 3): first-guess pixel -> field plane
            norm = self.field_norm[fa]
            for axis in range(2):
                coords[a:b, 2 + axis] = (aff[:, axis, 0] * xa + aff[:, axis, 1] * ya + aff[:, axis, 2]
                                         - self.field_center[fa, axis]) / norm
            pbase[a:b] = block * 2 * self.nterm
            lin = self.lin_of[fa]
            lbase[a:b] = np.where((lin >= 0) & (self.nfoc > 0), self.npoly + lin * 2 * self.nfoc, -1)
        return coords, pbase, lbase

    def evaluate_at(self, theta, field, chip, x, y):
        """Model standard coordinates (deg, field plane) at pixels of chips."""
        coords, pbase, lbase = self.design(field, chip, x, y)
        return evaluate_model(theta, coords, pbase, lbase, self.degree, self.focdeg)


@njit(cache=True, inline="always")
def _basis(coords, s, degree, focdeg, nt, u):
    # monomials x^a y^b, a + b <= degree, by total degree (the order of match.poly_terms)
    x = np.float64(coords[s, 0])
    y = np.float64(coords[s, 1])
    k = 0
    for total in range(degree + 1):
        for b in range(total + 1):
            u[k] = x ** (total - b) * y ** b
            k += 1
    if focdeg >= 0:
        x = np.float64(coords[s, 2])
        y = np.float64(coords[s, 3])
        for total in range(focdeg + 1):
            for b in range(total + 1):
                u[k] = x ** (total - b) * y ** b
                k += 1


@njit(cache=True, inline="always")
def _indices(pbase, lbase, s, nt, nf, idx):
    for k in range(nt):
        idx[0, k] = pbase[s] + k
        idx[1, k] = pbase[s] + nt + k
    for k in range(nf):
        if lbase[s] >= 0:
            idx[0, nt + k] = lbase[s] + k
            idx[1, nt + k] = lbase[s] + nf + k
        else:
            idx[0, nt + k] = -1
            idx[1, nt + k] = -1


@njit(cache=True)
def evaluate_model(theta, coords, pbase, lbase, degree, focdeg):
    """xi, eta (deg) of the model for every detection."""
    nt = (degree + 1) * (degree + 2) // 2
    nf = 0 if focdeg < 0 else (focdeg + 1) * (focdeg + 2) // 2
    n = coords.shape[0]
    xi = np.zeros(n)
    eta = np.zeros(n)
    u = np.empty(nt + nf)
    idx = np.empty((2, nt + nf), np.int64)
    for s in range(n):
        _basis(coords, s, degree, focdeg, nt, u)
        _indices(pbase, lbase, s, nt, nf, idx)
        for k in range(nt + nf):
            if idx[0, k] >= 0:
                xi[s] += u[k] * theta[idx[0, k]]
                eta[s] += u[k] * theta[idx[1, k]]
    return xi, eta


@njit(cache=True, inline="always")
def _add(system, p, q, v):
    # the normal matrix as (dense polynomial block PP, dense PP-exposure block PE, exposure diagonal blocks
    # ED, exposure pair blocks EO keyed by pkeys): with P = nparam everything lands in the dense PP
    NPP, NPE, ED, EO, pkeys, P, m, nlin = system
    if q < P:
        NPP[p, q] += v
    elif p < P:
        NPE[p, q - P] += v
    else:
        e1 = (p - P) // m
        e2 = (q - P) // m
        if e1 == e2:
            ED[e1, (p - P) % m, (q - P) % m] += v
        else:
            slot = np.searchsorted(pkeys, e1 * nlin + e2)
            EO[slot, (p - P) % m, (q - P) % m] += v


@njit(cache=True)
def accumulate_normal(N, rhs, obs_i, obs_j, w, target, coords, pbase, lbase, degree, focdeg, J, C):
    """Add weighted observations to the normal equations ``N theta = rhs``.

    Observation ``o`` says ``(J_i m_i + C_i) - (J_j m_j + C_j) = target_o`` (``obs_j = -1``: no second
    detection), ``m_s[a] = sum_k u_s[k] theta[idx_s[a, k]]`` the model of detection s.  The block of the
    normal matrix between detections s and t is (J_s^T J_t)[a, b] u_s[k] u_t[l]: the 2x2 Jacobian
    product is computed once per pair and axis pair, so the inner loop is a plain rank-1 update.
    """
    nt = (degree + 1) * (degree + 2) // 2
    nf = 0 if focdeg < 0 else (focdeg + 1) * (focdeg + 2) // 2
    L = nt + nf
    U = np.empty((2, L))
    IDX = np.empty((2, 2, L), np.int64)
    who = np.empty(2, np.int64)
    for o in range(len(obs_i)):
        i = obs_i[o]
        j = obs_j[o]
        d0 = target[o, 0] - C[i, 0]
        d1 = target[o, 1] - C[i, 1]
        ns = 1
        who[0] = i
        _basis(coords, i, degree, focdeg, nt, U[0])
        _indices(pbase, lbase, i, nt, nf, IDX[0])
        if j >= 0:
            d0 += C[j, 0]
            d1 += C[j, 1]
            ns = 2
            who[1] = j
            _basis(coords, j, degree, focdeg, nt, U[1])
            _indices(pbase, lbase, j, nt, nf, IDX[1])
        wo = w[o]
        for sa in range(ns):
            s = who[sa]
            sgs = 1.0 if sa == 0 else -1.0
            for a in range(2):
                ga = sgs * wo * (J[s, 0, a] * d0 + J[s, 1, a] * d1)
                for k in range(L):
                    p = IDX[sa, a, k]
                    if p >= 0:
                        rhs[p] += ga * U[sa, k]
            for sb in range(ns):
                t = who[sb]
                sgt = 1.0 if sb == 0 else -1.0
                for a in range(2):
                    for b in range(2):
                        m = sgs * sgt * wo * (J[s, 0, a] * J[t, 0, b] + J[s, 1, a] * J[t, 1, b])
                        if m == 0.0:
                            continue
                        for k in range(L):
                            p = IDX[sa, a, k]
                            if p < 0:
                                continue
                            mk = m * U[sa, k]
                            for l in range(L):
                                q = IDX[sb, b, l]
                                if q >= p:  # upper triangle only; see symmetrize()
                                    N[p, q] += mk * U[sb, l]


@njit(cache=True)
def accumulate_blocks(N, rhs, obs_i, obs_j, w, target, coords, pbase, lbase, degree, focdeg, J, C):
    """:func:`accumulate_normal` for the block-sparse storage of :func:`_add` (``N`` is its tuple).

    The loop is the dense kernel's with the write dispatched by block: kept separate because the
    dispatch makes the dense case several times slower (numba does not hoist it out of the inner loop).

    Observation ``o`` says ``(J_i m_i + C_i) - (J_j m_j + C_j) = target_o`` (``obs_j = -1``: no second
    detection), ``m_s[a] = sum_k u_s[k] theta[idx_s[a, k]]`` the model of detection s.  The block of the
    normal matrix between detections s and t is (J_s^T J_t)[a, b] u_s[k] u_t[l]: the 2x2 Jacobian
    product is computed once per pair and axis pair, so the inner loop is a plain rank-1 update.
    """
    nt = (degree + 1) * (degree + 2) // 2
    nf = 0 if focdeg < 0 else (focdeg + 1) * (focdeg + 2) // 2
    L = nt + nf
    U = np.empty((2, L))
    IDX = np.empty((2, 2, L), np.int64)
    who = np.empty(2, np.int64)
    for o in range(len(obs_i)):
        i = obs_i[o]
        j = obs_j[o]
        d0 = target[o, 0] - C[i, 0]
        d1 = target[o, 1] - C[i, 1]
        ns = 1
        who[0] = i
        _basis(coords, i, degree, focdeg, nt, U[0])
        _indices(pbase, lbase, i, nt, nf, IDX[0])
        if j >= 0:
            d0 += C[j, 0]
            d1 += C[j, 1]
            ns = 2
            who[1] = j
            _basis(coords, j, degree, focdeg, nt, U[1])
            _indices(pbase, lbase, j, nt, nf, IDX[1])
        wo = w[o]
        for sa in range(ns):
            s = who[sa]
            sgs = 1.0 if sa == 0 else -1.0
            for a in range(2):
                ga = sgs * wo * (J[s, 0, a] * d0 + J[s, 1, a] * d1)
                for k in range(L):
                    p = IDX[sa, a, k]
                    if p >= 0:
                        rhs[p] += ga * U[sa, k]
            for sb in range(ns):
                t = who[sb]
                sgt = 1.0 if sb == 0 else -1.0
                for a in range(2):
                    for b in range(2):
                        m = sgs * sgt * wo * (J[s, 0, a] * J[t, 0, b] + J[s, 1, a] * J[t, 1, b])
                        if m == 0.0:
                            continue
                        for k in range(L):
                            p = IDX[sa, a, k]
                            if p < 0:
                                continue
                            mk = m * U[sa, k]
                            for l in range(L):
                                q = IDX[sb, b, l]
                                if q >= p:  # upper triangle only; see symmetrize()
                                    _add(N, p, q, mk * U[sb, l])


@njit(cache=True)
def symmetrize(N):
    """Copy the upper triangle accumulated by :func:`accumulate_normal` into the lower one, in place."""
    n = N.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            N[j, i] = N[i, j]


def _nterm(degree: int) -> int:
    return (int(degree) + 1) * (int(degree) + 2) // 2


#: a degree is kept for a chip when the polynomial fitted to its matched detections is known everywhere on
#: the chip (grid below) about as well as one detection: worst leverage u^T (sum_i u_i u_i^T)^-1 u <= 3.  A
#: uniform sample of n detections has ~70/n for degree 3, ~26/n for 2, ~7/n for 1 (at the corners).  On the
#: demo survey (small CCDs, few stars) 3 gave the lowest errors against the truth of 1, 3 and 10.
MAX_LEVERAGE = 3.0
#: a solved chip polynomial "folds" when its Jacobian somewhere on the chip grid differs from the one at the
#: chip centre by more than this fraction (real optics: well below 1% across a CCD; a fold needs 100%)
MAX_JACOBIAN_CHANGE = 0.1
_GRID = 9  # points per axis of the grid over each chip (normalised coordinates [-1, 1])


def _chip_grid_basis(degree: int, n: int = _GRID):
    """Monomials (order of :func:`_basis`) and their x and y derivatives on an n x n grid over [-1, 1]^2."""
    g = np.linspace(-1.0, 1.0, n)
    x, y = (a.ravel() for a in np.meshgrid(g, g))
    powers = [(total - b, b) for total in range(degree + 1) for b in range(total + 1)]
    V = np.stack([x ** a * y ** b for a, b in powers], 1)
    Dx = np.stack([a * x ** max(a - 1, 0) * y ** b for a, b in powers], 1)
    Dy = np.stack([b * x ** a * y ** max(b - 1, 0) for a, b in powers], 1)
    return V, Dx, Dy


@njit(cache=True)
def block_gram(coords, pbase, sel, degree, nblock):
    """Per polynomial block, the Gram matrix of the chip basis over the detections ``sel`` and their count."""
    nt = (degree + 1) * (degree + 2) // 2
    G = np.zeros((nblock, nt, nt))
    count = np.zeros(nblock, np.int64)
    u = np.empty(nt)
    for s in sel:
        _basis(coords, s, degree, -1, nt, u)
        b = pbase[s] // (2 * nt)
        count[b] += 1
        for k in range(nt):
            for m in range(nt):
                G[b, k, m] += u[k] * u[m]
    return G, count


def leverage(Gb, count: int, d: int, V=None) -> float:
    """Worst leverage ``v_g^T G_d^-1 v_g`` over the chip grid of a degree-``d`` fit with Gram matrix ``Gb``
    (of a basis of degree >= d): the variance of the fitted polynomial there in units of one detection's
    variance; large where the chip is not sampled (corners of a chip with detections in a band only),
    infinite when the detections cannot separate the terms."""
    t = _nterm(d)
    if V is None:
        V = _chip_grid_basis(d)[0]
    if count < t:
        return np.inf
    Gd = Gb[:t, :t]
    scale = np.sqrt(np.diag(Gd))
    if np.any(scale <= 0):
        return np.inf
    try:
        inv = np.linalg.inv(Gd / np.outer(scale, scale)) / np.outer(scale, scale)
    except np.linalg.LinAlgError:
        return np.inf
    h = np.einsum("gi,ij,gj->g", V[:, :t], inv, V[:, :t])
    return float(h.max()) if np.all(np.isfinite(h)) and np.all(h > -1e-9) else np.inf


def choose_degrees(G, count, degree: int, max_leverage):
    """Highest degree <= ``degree`` (at least 1) whose worst :func:`leverage` on the chip is at most
    ``max_leverage`` (scalar or per block), for each block, and that leverage."""
    max_leverage = np.broadcast_to(np.asarray(max_leverage, float), (len(count),))
    V, _, _ = _chip_grid_basis(degree)
    nb = len(count)
    out = np.ones(nb, np.int64)
    lever = np.full(nb, np.inf)
    for b in range(nb):
        for d in range(degree, 0, -1):
            h = leverage(G[b], count[b], d, V)
            if d == 1 or h <= max_leverage[b]:
                out[b] = d
                lever[b] = h
                break
    return out, lever


def folded_blocks(model: "AstromModel", theta, tol: float | None = None) -> np.ndarray:
    """Blocks (degree >= 2) whose chip polynomial's Jacobian on the chip grid departs from the one at the
    chip centre by more than ``tol`` (relative Frobenius norm): folds, wiggles, runaway extrapolation."""
    tol = MAX_JACOBIAN_CHANGE if tol is None else tol
    nt = model.nterm
    _, Dx, Dy = _chip_grid_basis(model.degree)
    nb = len(model.chip_size)
    A = theta[: model.npoly].reshape(nb, 2, nt)  # (block, axis, term)
    jx = np.einsum("gt,bat->bga", Dx, A)  # d(xi, eta)/dx on the grid
    jy = np.einsum("gt,bat->bga", Dy, A)
    j0 = np.stack([A[:, :, 1], A[:, :, 2]], -1)  # (b, axis, x/y) at the centre
    diff = np.sqrt(np.sum((jx - j0[:, None, :, 0]) ** 2 + (jy - j0[:, None, :, 1]) ** 2, -1))
    norm = np.sqrt(np.sum(j0 ** 2, (1, 2)))
    bad = np.max(diff, 1) > tol * np.maximum(norm, 1e-300)
    return np.nonzero(bad & (model.block_degree >= 2))[0]


def _fix_params(system, rhs, fixed) -> None:
    """Hold the parameters ``fixed`` (polynomial terms) at zero: identity rows and columns in the normal
    matrix (dense upper triangle or the polynomial blocks of the block-sparse storage), zero right-hand side."""
    if len(fixed) == 0:
        return
    N = system[0]
    big = max(float(np.max(np.abs(np.diag(N)))), 1.0)  # the ridge of _solve_normal is then negligible
    N[fixed, :] = 0.0
    N[:, fixed] = 0.0
    N[fixed, fixed] = big
    if system[5] < len(rhs):
        system[1][fixed, :] = 0.0
    rhs[fixed] = 0.0


@dataclass
class AstromSolution:
    model: AstromModel
    theta: np.ndarray
    xi: np.ndarray  # final standard coordinates of every detection (field plane, deg)
    eta: np.ndarray
    gx: np.ndarray  # final group-plane coordinates (deg)
    gy: np.ndarray
    labels: np.ndarray  # source label of every detection (cross-identification)
    link_i: np.ndarray
    link_j: np.ndarray
    link_ok: np.ndarray  # links kept after clipping
    ref_idx: np.ndarray  # per detection: matched reference star (group list index) or -1
    ref_ok: np.ndarray
    ref_res: np.ndarray  # (n, 2) detection - reference residuals (deg, group plane), nan when unmatched
    stats: dict = field(default_factory=dict)


#: above this many parameters the exposure part of the normal matrix is stored block-sparse and the
#: system solved with scipy.sparse (SuperLU); below, one dense Cholesky (LAPACK, as SCAMP's dposv)
SPARSE_ABOVE = 16_000


def _new_system(nparam: int, npoly: int, m: int, nlin: int, pkeys=None, sparse: bool = False):
    """Storage for the normal matrix (see :func:`_add`)."""
    if not sparse:
        return (np.zeros((nparam, nparam)), np.zeros((1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1, 1)),
                np.zeros(1, np.int64), nparam, 1, 1)
    pkeys = np.zeros(1, np.int64) if pkeys is None or len(pkeys) == 0 else pkeys
    return (np.zeros((npoly, npoly)), np.zeros((npoly, nparam - npoly)), np.zeros((max(nlin, 1), m, m)),
            np.zeros((len(pkeys), m, m)), pkeys, npoly, m, max(nlin, 1))


def _sparse_matrix(system, nparam):
    """The symmetric scipy.sparse CSR matrix of a block-sparse system."""
    from scipy import sparse

    NPP, NPE, ED, EO, pkeys, P, m, nlin = system
    rows, cols, vals = [], [], []

    def add(r, c, v):
        keep = v != 0
        r, c, v = r[keep], c[keep], v[keep]
        rows.extend([r, c[r != c]])
        cols.extend([c, r[r != c]])
        vals.extend([v, v[r != c]])

    i, j = np.triu_indices(P)
    add(i, j, NPP[i, j])
    i, j = np.nonzero(NPE)
    add(i, j + P, NPE[i, j])
    e, a, b = np.nonzero(ED)
    keep = b >= a
    add(P + e[keep] * m + a[keep], P + e[keep] * m + b[keep], ED[e[keep], a[keep], b[keep]])
    k, a, b = np.nonzero(EO)
    add(P + (pkeys[k] // nlin) * m + a, P + (pkeys[k] % nlin) * m + b, EO[k, a, b])
    return sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(nparam, nparam)).tocsc()


def _solve_normal(system, rhs, theta_prev, log, nthreads: int = 1):
    """Cholesky (dense) or SuperLU (block-sparse) solution, with a tiny ridge towards the previous
    solution for unconstrained directions."""
    from scipy import linalg

    if system[5] < len(rhs):  # block-sparse storage
        from scipy import sparse
        from scipy.sparse.linalg import spsolve

        N = _sparse_matrix(system, len(rhs))
        diag = N.diagonal()
        scale = np.mean(diag[diag > 0]) if np.any(diag > 0) else 1.0
        ridge = np.where(diag > 0, 1e-9 * diag + 1e-12 * scale, 1.0 * scale)
        return spsolve((N + sparse.diags(ridge)).tocsc(), rhs + ridge * theta_prev)
    N = system[0]
    symmetrize(N)
    diag = np.diag(N).copy()
    scale = np.mean(diag[diag > 0]) if np.any(diag > 0) else 1.0
    ridge = np.where(diag > 0, 1e-9 * diag + 1e-12 * scale, 1.0 * scale)
    N[np.diag_indices_from(N)] += ridge
    rhs = rhs + ridge * theta_prev
    from threadpoolctl import threadpool_limits

    try:
        # threads only pay for large systems (hundreds of exposures)
        with threadpool_limits(limits=nthreads if len(N) > 3000 else 1, user_api="blas"):
            factor = linalg.cho_factor(N, lower=False, overwrite_a=True, check_finite=False)
            return linalg.cho_solve(factor, rhs, check_finite=False)
    except linalg.LinAlgError:
        log.warning("astrometric normal matrix not positive definite; falling back to least squares")
        return linalg.lstsq(N, rhs)[0]


def _group_coords(det, xi, eta, field_tp, group_tp):
    """Group-plane coordinates and Jacobians d(group)/d(field plane) of every detection.

    Detections are stored field by field (see :class:`Detections`), so each field is a slice."""
    n = len(xi)
    gx = np.empty(n)
    gy = np.empty(n)
    J = np.empty((n, 2, 2), np.float32)  # C is computed from the same J, so float32 only affects the step
    bounds = np.searchsorted(det.field, np.arange(len(field_tp) + 1))
    for f in range(len(field_tp)):
        a, b = bounds[f], bounds[f + 1]
        if b > a:
            g = det.group[a]
            gx[a:b], gy[a:b], J[a:b] = reproject_jacobian(xi[a:b], eta[a:b], tuple(field_tp[f]), tuple(group_tp[g]))
    return gx, gy, J


def _robust_rms(values, nmax: int = 2_000_000):
    values = values[np.isfinite(values)]
    if len(values) > nmax:  # a large random subsample is as good and bounds the sorting cost
        values = np.random.default_rng(0).choice(values, nmax, replace=False)
    if len(values) == 0:
        return np.nan
    return 1.4826 * np.median(np.abs(values - np.median(values)))


def solve_astrometry(det: Detections, model: AstromModel, field_tp, group_tp, refs, config, log,
                     niter: int = 3, nthreads: int = 1, sparse_above: int | None = None) -> AstromSolution:
    """Run the global astrometric solution.

    ``field_tp``/``group_tp``: (n, 2) tangent points (deg) of fields and groups; ``refs``: per group a
    tuple (gx, gy, sig) of reference stars on the group plane (deg), or None.  ``sparse_above``: number of
    parameters above which the block-sparse normal equations are used (default :data:`SPARSE_ABOVE`).

    Each chip's polynomial gets the highest degree <= DISTORT_DEGREES its matched detections constrain over
    the whole chip (:func:`choose_degrees`, decided after the first cross-identification), and a solution
    whose chip polynomial folds (:func:`folded_blocks`) is redone with that chip's degree lowered.
    """
    n = len(det)
    nparam = model.nparam
    coords, pbase, lbase = model.design(det.field, det.chip, det.x, det.y)
    deg, fdeg = model.degree, model.focdeg
    ok = det.astr_ok
    # 0) initial parameters: the model fitted to the (pattern-matched) first guess
    sparse = nparam > (SPARSE_ABOVE if sparse_above is None else sparse_above)
    m, nlin = 2 * model.nfoc, int((model.lin_of >= 0).sum())
    N = _new_system(nparam, model.npoly, m, nlin, None, sparse)

    def accumulate(system, *args):
        if sparse:
            accumulate_blocks(system, *args)
        else:
            accumulate_normal(system[0], *args)

    rhs = np.zeros(nparam)
    # identity Jacobians and zero offsets as zero-stride views: no per-detection memory
    J_id = np.broadcast_to(np.eye(2), (n, 2, 2))
    C0 = np.broadcast_to(np.zeros(2), (n, 2))
    target = np.column_stack([det.xi0, det.eta0])
    accumulate(N, rhs, np.arange(n, dtype=np.int32), np.broadcast_to(np.int32(-1), (n,)),
               np.broadcast_to(np.ones(1), (n,)), target, coords, pbase, lbase, deg, fdeg, J_id, C0)
    del target
    _fix_params(N, rhs, model.fixed_params())
    theta = _solve_normal(N, rhs, np.zeros(nparam), log, nthreads)
    del N
    # groups without reference stars (ASTREF_CATALOG NONE): the first guess itself is a weak prior
    # (1" per detection) that pins the global position, scale and distortion modes the overlaps leave free
    prior = np.nonzero(ok & np.isin(det.group, [g for g in range(len(refs)) if refs[g] is None]))[0]
    if len(prior):
        px0, py0, _ = _group_coords(det, det.xi0, det.eta0, field_tp, group_tp)
        prior_target = np.column_stack([px0[prior], py0[prior]])
    crossid = config["CROSSID_RADIUS"] / 3600.0
    nsig = config["ASTRCLIP_NSIGMA"]
    weight_ref = config["ASTREF_WEIGHT"][0]
    link_i = link_j = np.zeros(0, np.int64)
    link_ok = np.zeros(0, bool)
    ref_idx = np.full(n, -1, np.int32)
    ref_ok = np.zeros(n, bool)
    labels = np.arange(n)
    for it in range(niter + 1):
        xi, eta = evaluate_model(theta, coords, pbase, lbase, deg, fdeg)
        gx, gy, J = _group_coords(det, xi, eta, field_tp, group_tp)
        # cross-identification on the group planes (first pass and after the first solution)
        if it <= 1:
            labels = np.empty(n, np.int32 if n < 2 ** 31 else np.int64)
            groups = np.unique(det.group)
            for g in groups:
                if len(groups) == 1:  # one group: no copies
                    labels[:] = friends_of_friends(gx, gy, det.field, crossid)
                    break
                sel = np.nonzero(det.group == g)[0]
                lab = friends_of_friends(gx[sel], gy[sel], det.field[sel], crossid)
                labels[sel] = sel[lab]
            link_i, link_j = chain_links(labels, det.field, ok, det.field)
            ref_idx[:] = -1
            for g in np.unique(det.group):
                if refs[g] is None:
                    continue
                sel = np.nonzero(ok & (det.group == g))[0]
                ref_idx[sel] = match_reference(gx[sel], gy[sel], refs[g][0], refs[g][1], crossid, det.field[sel])
            link_ok = np.ones(len(link_i), bool)
            ref_ok = ref_idx >= 0
        if it == niter:  # final positions (and, with SOLVE_ASTROM N, the cross-identification only)
            break
        C = np.empty((n, 2))  # group plane = J (field plane) + C, linearised (no per-detection temporaries)
        for axis, gpos in ((0, gx), (1, gy)):
            np.multiply(J[:, axis, 0], xi, out=C[:, axis])
            C[:, axis] += J[:, axis, 1] * eta
            np.subtract(gpos, C[:, axis], out=C[:, axis])
        del xi, eta  # evaluated again at the start of the next pass
        # clipping against the current solution
        dl = np.column_stack([gx[link_i] - gx[link_j], gy[link_i] - gy[link_j]])
        if it >= 1 and len(link_i):
            sig2 = det.sig[link_i] ** 2 + det.sig[link_j] ** 2
            chi = np.sqrt(np.sum(dl ** 2, 1) / sig2 / 2)
            norm = np.concatenate([dl[:, 0] / np.sqrt(sig2), dl[:, 1] / np.sqrt(sig2)])
            link_ok = chi < nsig * max(_robust_rms(norm), 1e-3)
        del dl
        rsel = np.nonzero(ref_ok | (ref_idx >= 0))[0]
        if it >= 1 and len(rsel):
            rr = _ref_residuals(gx, gy, ref_idx, det.group, refs, rsel)
            rs2 = det.sig[rsel] ** 2 + _ref_sig(ref_idx, det.group, refs, rsel) ** 2
            norm = np.concatenate([rr[:, 0] / np.sqrt(rs2), rr[:, 1] / np.sqrt(rs2)])
            chi = np.sqrt(np.sum(rr ** 2, 1) / rs2 / 2)
            ref_ok[:] = False
            ref_ok[rsel] = chi < nsig * max(_robust_rms(norm), 1e-3)
        nlinks = int(link_ok.sum())
        nrefs = int(ref_ok.sum())
        if nrefs == 0 and nlinks == 0:
            raise ToolError("no overlapping detection and no reference star matched within CROSSID_RADIUS "
                            f"{config['CROSSID_RADIUS']}\"; cannot solve the astrometry")
        if it == 0 and deg >= 2:
            _set_block_degrees(model, coords, pbase, link_i[link_ok], link_j[link_ok], ref_ok, log)
        # The first solution rests on the first cross-identification, made with the first guess, and is not
        # clipped: a chance pair there (two stars 2" apart whose partners the flags removed) joined by a
        # link of S/N > 500 would bend its chip's polynomial by arcseconds, the next cross-identification
        # would then lose that chip's matches and the polynomial fold.  So every detection's position is
        # given the first guess's own error (robust rms of its reference residuals) on the first pass.
        extra_var = _first_guess_variance(gx, gy, ref_idx, ref_ok, det.group, refs) if it == 0 else 0.0
        li, lj = link_i[link_ok], link_j[link_ok]
        while True:
            theta = _assemble_and_solve(model, det, theta, li, lj, ref_ok, ref_idx, refs, prior,
                                        prior_target if len(prior) else None, coords, pbase, lbase, gx, gy, J, C,
                                        weight_ref, sparse, log, nthreads, extra_var)
            folded = folded_blocks(model, theta)
            if len(folded) == 0:
                break
            for b in folded:  # a lower degree and the solution again (SCAMP users' remedy, done per chip)
                log.warning("astrometric solution folds on %s with degree %d: degree lowered to %d",
                            model.block_name(b), model.block_degree[b], model.block_degree[b] - 1)
                model.block_degree[b] -= 1
        del C
        log.info("astrometric iteration %d: %d overlap links, %d reference matches, %d parameters", it + 1,
                 nlinks, nrefs, nparam)
    ref_res = np.full((n, 2), np.nan)
    rsel = np.nonzero(ref_idx >= 0)[0]
    if len(rsel):
        ref_res[rsel] = _ref_residuals(gx, gy, ref_idx, det.group, refs, rsel)
    # xi, eta: the final pass breaks out of the loop before its `del` (it == niter), so they are bound here
    return AstromSolution(model, theta, xi, eta, gx, gy, labels, link_i, link_j, link_ok,  # noqa: F821
                          ref_idx, ref_ok, ref_res)


def _set_block_degrees(model, coords, pbase, li, lj, ref_ok, log) -> None:
    """Per chip (and astrometric instrument), the DISTORT_DEGREES its matched detections support
    (:func:`choose_degrees`, :data:`MAX_LEVERAGE`); lowered degrees are logged and kept in
    ``model.block_degree``."""
    used = np.zeros(len(pbase), bool)
    used[li] = True
    used[lj] = True
    used |= ref_ok
    G, count = block_gram(coords, pbase, np.nonzero(used)[0], model.degree, len(model.chip_size))
    degrees, lever = choose_degrees(G, count, model.degree, MAX_LEVERAGE)
    model.block_lever = lever
    model.block_nmatch = count
    for b in np.nonzero(degrees < model.block_degree)[0]:
        log.warning("%s: %d matched detections do not constrain a degree-%d polynomial over the chip "
                    "(worst leverage on the chip %.3g > %.3g): degree %d", model.block_name(b), count[b],
                    model.degree, leverage(G[b], count[b], model.degree), MAX_LEVERAGE, degrees[b])
    model.block_degree = np.minimum(model.block_degree, degrees)


def _assemble_and_solve(model, det, theta, li, lj, ref_ok, ref_idx, refs, prior, prior_target, coords, pbase,
                        lbase, gx, gy, J, C, weight_ref, sparse, log, nthreads, extra_var: float = 0.0):
    """One Gauss-Newton step: the normal equations of the kept links, reference matches and prior, solved
    with the polynomial terms above each chip's degree held at zero.  ``extra_var`` (deg^2) is added to
    the variance of every detection's position (the first solution's: see :func:`solve_astrometry`)."""
    nparam = model.nparam
    deg, fdeg = model.degree, model.focdeg
    m, nlin = 2 * model.nfoc, int((model.lin_of >= 0).sum())
    pkeys = None
    if sparse:  # the exposure pairs linked by overlaps: the only off-diagonal exposure blocks
        e1, e2 = model.lin_of[det.field[li]], model.lin_of[det.field[lj]]
        both = (e1 >= 0) & (e2 >= 0) & (e1 != e2)
        pkeys = np.unique(np.minimum(e1, e2)[both] * max(nlin, 1) + np.maximum(e1, e2)[both])
    N = _new_system(nparam, model.npoly, m, nlin, pkeys, sparse)
    rhs = np.zeros(nparam)
    accumulate = accumulate_blocks if sparse else (lambda system, *a: accumulate_normal(system[0], *a))
    # observations sorted by the parameter blocks they touch: consecutive updates of the normal matrix
    # then hit the same rows (cache), which matters once it holds thousands of exposures
    order = np.lexsort((pbase[lj], det.field[lj], pbase[li], det.field[li]))
    li, lj = li[order], lj[order]
    del order
    w = 1.0 / (det.sig[li] ** 2 + det.sig[lj] ** 2 + 2.0 * extra_var)
    accumulate(N, rhs, li, lj, w, np.broadcast_to(np.zeros(2), (len(li), 2)), coords, pbase, lbase, deg, fdeg, J, C)
    del li, lj, w
    ri = np.nonzero(ref_ok)[0]
    ri = ri[np.lexsort((pbase[ri], det.field[ri]))]
    if len(ri):
        rpos = np.column_stack([gx[ri], gy[ri]]) - _ref_residuals(gx, gy, ref_idx, det.group, refs, ri)
        rw = weight_ref / (det.sig[ri] ** 2 + _ref_sig(ref_idx, det.group, refs, ri) ** 2 + extra_var)
        accumulate(N, rhs, ri, np.full(len(ri), -1, np.int64), rw, rpos, coords, pbase, lbase, deg, fdeg, J, C)
    if len(prior):
        accumulate(N, rhs, prior, np.full(len(prior), -1, np.int64), np.full(len(prior), 3600.0 ** 2),
                   prior_target, coords, pbase, lbase, deg, fdeg, J, C)
    _fix_params(N, rhs, model.fixed_params())
    return _solve_normal(N, rhs, theta, log, nthreads)


def _first_guess_variance(gx, gy, ref_idx, ref_ok, group, refs) -> float:
    """Variance (deg^2, per axis) of the first guess's positions: the squared robust rms of the residuals
    of the reference matches ``ref_ok`` (0 without reference matches)."""
    sel = np.nonzero(ref_ok)[0]
    if len(sel) == 0:
        return 0.0
    rms = _robust_rms(_ref_residuals(gx, gy, ref_idx, group, refs, sel).ravel())
    return float(rms * rms) if np.isfinite(rms) else 0.0


def _ref_residuals(gx, gy, ref_idx, group, refs, sel):
    out = np.empty((len(sel), 2))
    for g in np.unique(group[sel]):
        m = group[sel] == g
        k = ref_idx[sel][m]
        out[m, 0] = gx[sel][m] - refs[g][0][k]
        out[m, 1] = gy[sel][m] - refs[g][1][k]
    return out


def _ref_sig(ref_idx, group, refs, sel):
    out = np.empty(len(sel))
    for g in np.unique(group[sel]):
        m = group[sel] == g
        out[m] = refs[g][2][ref_idx[sel][m]]
    return out
