"""numba kernels of the swarp plugin: interpolation (SWarp's ``interpolate.c``) and resampling of one image
onto a rectangle of the output grid (``resample.c``).

Conventions, as in SWarp:

* positions are FITS 1-based pixel coordinates (the centre of the first pixel is 1.0);
* the kernels are separable; Lanczos taps are ``sinc(pi x) sinc(pi x / a)`` normalised to sum 1, and at an
  integer position (|dx| < 1e-5) the kernel is an exact delta;
* a bad input pixel contributes nothing to the value, and the variance of an interpolated pixel is the
  MAXIMUM of the input variances over the kernel footprint (``interpolate.c``; not the sum of k^2 sigma^2
  of the manual), so one bad pixel (variance BIG) zeroes the weight of the output pixels whose footprint
  covers it;
* a footprint that crosses the input border gives a bad output pixel (about a kernel half-width is lost);
* the kernels are compiled with fastmath (2.5x faster: the 6x6 multiply-adds vectorise); results differ
  from strict IEEE order by float32 rounding (~1e-7 relative); bad pixels are zeroed beforehand and
  "bad" is the finite BIG, so no NaN/inf ever reaches them;
* the resampled value is multiplied by the pixel-area ratio ``area`` (output / input) so that fluxes are
  conserved; the weight is ``1 / (variance * area^2)``; with oversampling the sub-samples are averaged and
  the weight is ``n / sum(variance * area^2) * max(1, out/in area)``.
"""
from __future__ import annotations

import functools
import math

import numba
import numpy as np

__all__ = ["BIG", "INTERP_CODES", "KERNEL_WIDTH", "resample_rect", "mapping_rows", "kernel_table", "row_max"]

#: SWarp's "BIG" (define.h); variances >= BIG mark bad pixels.
BIG = 1e30
#: interpolation type codes and kernel widths (interp_kernwidth in interpolate.h)
INTERP_CODES = {"NEAREST": 0, "BILINEAR": 1, "LANCZOS2": 2, "LANCZOS3": 3, "LANCZOS4": 4}
KERNEL_WIDTH = {0: 1, 1: 2, 2: 4, 3: 6, 4: 8}
KW = np.array([1, 2, 4, 6, 8], dtype=np.int64)
_COS_STEP = np.array([1.0, 1.0] + [math.cos(math.pi / a) for a in (2, 3, 4)])
_SIN_STEP = np.array([0.0, 0.0] + [math.sin(math.pi / a) for a in (2, 3, 4)])


#: phases per pixel of the tabulated Lanczos kernels (linear interpolation between phases: < 1e-8 error)
NPHASE = 4096


@functools.lru_cache(maxsize=8)
def kernel_table(interp: int) -> np.ndarray:
    """Normalised taps at NPHASE+1 fractional positions in [0, 1] (rows), computed with SWarp's formula.

    The resampling kernel interpolates linearly between two rows, which keeps the taps normalised and
    differs from the direct formula by less than 1e-8; the exact delta below |dx| = 1e-5 is kept."""
    table = np.zeros((NPHASE + 1, 8))
    kern = np.empty(8)
    for p in range(NPHASE + 1):
        _make_kernel(p / NPHASE if p < NPHASE else 1.0 - 1e-12, interp, kern)
        table[p] = kern
    if interp >= 2:
        table[NPHASE] = 0.0
        table[NPHASE, interp] = 1.0  # pos -> 1 is the delta on the next tap
    return table


def row_max(var: np.ndarray, width: int, block: int = 256) -> np.ndarray:
    """In place: ``var[j, s] = max(var[j, s:s + width])`` for s < nx - width + 1 (the later columns are left
    as they are and never read): the kernel footprint's maximum variance then needs only one value per
    kernel row.  Returns ``var``.  Works by blocks of rows, so that the extra memory is one block."""
    ny, nx = var.shape
    n = nx - width + 1
    if n <= 0:
        var[:] = BIG
        return var
    for j0 in range(0, ny, block):
        rows = var[j0:j0 + block]
        out = np.array(rows[:, :n], dtype=np.float32)
        for k in range(1, width):
            np.maximum(out, rows[:, k:k + n], out=out)
        rows[:, :n] = out
    return var


@numba.njit(cache=True, inline="always", fastmath=True)
def _make_kernel(pos, interp, kernel):
    """Fill ``kernel`` with the taps for fractional position ``pos`` (0 <= pos < 1); return its width."""
    if interp == 0:
        kernel[0] = 1.0
        return 1
    if interp == 1:
        kernel[0] = 1.0 - pos
        kernel[1] = pos
        return 2
    a = interp  # LANCZOS2/3/4 codes equal their order
    width = 2 * a
    if -1e-5 < pos < 1e-5:
        for i in range(width):
            kernel[i] = 0.0
        kernel[a - 1] = 1.0
        return width
    # one sin/cos pair per axis, as SWarp's make_kernel: sin(pi d) alternates in sign from tap to tap and
    # sin(pi d / a) follows a rotation by -pi/a
    sp = math.sin(math.pi * pos)
    if (a - 1) & 1:
        sp = -sp
    theta = math.pi * (pos + a - 1) / a
    s = math.sin(theta)
    c = math.cos(theta)
    cd = _COS_STEP[a]
    sd = _SIN_STEP[a]
    total = 0.0
    for i in range(width):
        d = math.pi * (pos + (a - 1) - i)
        val = a * sp * s / (d * d)
        kernel[i] = val
        total += val
        sp = -sp
        s, c = s * cd - c * sd, c * cd + s * sd
    for i in range(width):
        kernel[i] /= total
    return width


@numba.njit(cache=True, inline="always", fastmath=True)
def _taps(pos, interp, ktab, kernel):
    """Taps for fractional position ``pos``: exact for NEAREST/BILINEAR and at |pos| < 1e-5 (SWarp's
    delta), else interpolated in the Lanczos table."""
    if interp <= 1 or pos < 1e-5:
        _make_kernel(pos, interp, kernel)
        return
    u = pos * NPHASE
    p = int(u)
    t = u - p
    for i in range(2 * interp):
        a = ktab[p, i]
        kernel[i] = a + t * (ktab[p + 1, i] - a)


@numba.njit(cache=True, fastmath=True)
def _interpolate(data, vmaxx, xpos, ypos, interp, ktab, kx, ky):
    """Interpolate ``data`` at 1-based (xpos, ypos); return (value, variance); variance >= BIG if bad.

    ``data`` must be 0 wherever the variance is BIG (bad pixels); ``vmaxx`` is :func:`row_max` of the
    variance map for this kernel width."""
    ny, nx = data.shape
    kw = KW[interp]
    if interp == 0:
        ix = int(xpos - 0.50001)
        iy = int(ypos - 0.50001)
    else:
        ix = int(xpos)
        iy = int(ypos)
    dx = xpos - ix
    dy = ypos - iy
    sx = ix - kw // 2
    sy = iy - kw // 2
    if sx < 0 or sx + kw > nx or sy < 0 or sy + kw > ny:
        return 0.0, BIG
    _taps(dx, interp, ktab, kx)
    _taps(dy, interp, ktab, ky)
    val = 0.0
    vmax = 0.0
    for j in range(kw):
        row = 0.0
        for i in range(kw):
            row += kx[i] * data[sy + j, sx + i]
        val += ky[j] * row
        v = vmaxx[sy + j, sx]
        vmax = v if v > vmax else vmax
    return val, vmax


@numba.njit(cache=True, inline="always", fastmath=True)
def _lagrange4(t, w):
    """4-point cubic Lagrange weights for a position t in [0, 1) between nodes 1 and 2 of 0..3."""
    w[0] = -t * (t - 1.0) * (t - 2.0) / 6.0
    w[1] = (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0
    w[2] = -(t + 1.0) * t * (t - 2.0) / 2.0
    w[3] = (t + 1.0) * t * (t - 1.0) / 6.0


@numba.njit(cache=True, fastmath=True)
def _row_nodes(gx, gy, y, y0, step, out_x, out_y):
    """Interpolate the node grids along y at output ordinate ``y``: one value per node column."""
    nny = gx.shape[0]
    u = (y - y0) / step
    j = int(math.floor(u)) - 1
    if j < 0:
        j = 0
    if j > nny - 4:
        j = nny - 4
    t = u - (j + 1)
    w = np.empty(4)
    _lagrange4(t, w)
    for i in range(gx.shape[1]):
        out_x[i] = w[0] * gx[j, i] + w[1] * gx[j + 1, i] + w[2] * gx[j + 2, i] + w[3] * gx[j + 3, i]
        out_y[i] = w[0] * gy[j, i] + w[1] * gy[j + 1, i] + w[2] * gy[j + 2, i] + w[3] * gy[j + 3, i]


@numba.njit(cache=True, inline="always", fastmath=True)
def _eval_row(rx, ry, x, x0, step, w):
    nnx = rx.shape[0]
    u = (x - x0) / step
    i = int(math.floor(u)) - 1
    if i < 0:
        i = 0
    if i > nnx - 4:
        i = nnx - 4
    t = u - (i + 1)
    _lagrange4(t, w)
    xi = w[0] * rx[i] + w[1] * rx[i + 1] + w[2] * rx[i + 2] + w[3] * rx[i + 3]
    yi = w[0] * ry[i] + w[1] * ry[i + 1] + w[2] * ry[i + 2] + w[3] * ry[i + 3]
    return xi, yi


@numba.njit(cache=True)
def mapping_rows(gx, gy, x0, y0, step, xs, ys):
    """Evaluate the interpolated mapping at every (xs[i], ys[j]); returns two (len(ys), len(xs)) arrays.

    Used to check the approximation error against exact WCS transformations.
    """
    nnx = gx.shape[1]
    outx = np.empty((ys.shape[0], xs.shape[0]))
    outy = np.empty((ys.shape[0], xs.shape[0]))
    rx = np.empty(nnx)
    ry = np.empty(nnx)
    w = np.empty(4)
    for j in range(ys.shape[0]):
        _row_nodes(gx, gy, ys[j], y0, step, rx, ry)
        for i in range(xs.shape[0]):
            a, b = _eval_row(rx, ry, xs[i], x0, step, w)
            outx[j, i] = a
            outy[j, i] = b
    return outx, outy


@numba.njit(cache=True, parallel=True, fastmath=True)
def resample_rect(data, vmaxx, ktab, gx, gy, garea, gx0, gy0, gstep, xmin, ymin, out, outw,
                  interp, ovx, ovy, area_const, variable_area, ascale):
    """Resample ``data`` onto the output rectangle whose first pixel is (xmin, ymin) (1-based).

    ``vmaxx`` is ``row_max(variance, kernel width)`` and ``ktab`` the ``kernel_table(interp)``.

    ``gx``, ``gy`` hold the input pixel position of the output node grid (node (j, i) is at output
    position (gx0 + i * gstep, gy0 + j * gstep)); ``garea`` the local area ratio (only used when
    ``variable_area``).  Rows are independent, so the outer loop is parallel over output rows; each
    row first interpolates the node grid along y, then every pixel needs only 4 multiply-adds per axis.
    """
    ny, nx = out.shape
    nnx = gx.shape[1]
    for row in numba.prange(ny):
        kx = np.empty(8)
        ky = np.empty(8)
        w4 = np.empty(4)
        rx = np.empty(nnx)
        ry = np.empty(nnx)
        ra = np.empty(nnx)
        rdummy = np.empty(nnx)
        sumv = np.zeros(nx)
        sumw = np.zeros(nx)
        count = np.zeros(nx, dtype=np.int32)
        for oy in range(ovy):
            y = ymin + row - 0.5 + (oy + 0.5) / ovy
            _row_nodes(gx, gy, y, gy0, gstep, rx, ry)
            if variable_area:
                _row_nodes(garea, garea, y, gy0, gstep, ra, rdummy)
            for col in range(nx):
                for ox in range(ovx):
                    x = xmin + col - 0.5 + (ox + 0.5) / ovx
                    xi, yi = _eval_row(rx, ry, x, gx0, gstep, w4)
                    if variable_area:
                        area, _ = _eval_row(ra, ra, x, gx0, gstep, w4)
                    else:
                        area = area_const
                    val, v = _interpolate(data, vmaxx, xi, yi, interp, ktab, kx, ky)
                    if v < BIG:
                        sumv[col] += area * val
                        sumw[col] += v * area * area
                        count[col] += 1
        nsub = ovx * ovy
        for col in range(nx):
            n = count[col]
            if nsub == 1:
                if n:
                    out[row, col] = sumv[col]
                    outw[row, col] = 1.0 / sumw[col] if sumw[col] > 0 else 0.0
                else:
                    out[row, col] = 0.0
                    outw[row, col] = 0.0
            elif n:
                out[row, col] = sumv[col] / n
                outw[row, col] = (n / sumw[col]) * ascale if sumw[col] > 0 else 0.0
            else:
                out[row, col] = 0.0
                outw[row, col] = 0.0


#: WEIGHT_TYPE codes of :func:`variance_map`
WEIGHT_CODES = {"NONE": 0, "BACKGROUND": 1, "MAP_WEIGHT": 2, "MAP_VARIANCE": 3, "MAP_RMS": 4}


# memory-bound single passes: serial (threads buy nothing and wait for cores on a busy machine)
@numba.njit(cache=True)
def variance_map(data, weight, rms, wcode, thresh, has_thresh, const_var, out):
    """Fill ``out`` with the input variance (BIG for bad pixels: non-finite data, weight <= thresh for
    MAP_WEIGHT, non-positive or >= thresh variance/rms).  One pass instead of a chain of numpy masks."""
    ny, nx = data.shape
    for j in range(ny):
        for i in range(nx):
            d = data[j, i]
            v = BIG
            if math.isfinite(d):
                if wcode == 0:
                    v = const_var
                elif wcode == 1:
                    r = rms[j, i]
                    if not (has_thresh and r >= thresh):
                        v = r * r
                elif wcode == 2:
                    w = weight[j, i]
                    if w > thresh:
                        v = 1.0 / w
                elif wcode == 3:
                    w = weight[j, i]
                    if w > 0 and not (has_thresh and w >= thresh):
                        v = w
                else:
                    w = weight[j, i]
                    if w > 0 and not (has_thresh and w >= thresh):
                        v = w * w
            out[j, i] = v


@numba.njit(cache=True)
def finish_pixels(data, var, var_scale):
    """In place: zero the bad pixels (so that they contribute nothing to interpolation) and multiply good
    variances by ``var_scale`` (sigfac^2)."""
    ny, nx = data.shape
    for j in range(ny):
        for i in range(nx):
            if var[j, i] >= BIG or not math.isfinite(data[j, i]):
                data[j, i] = 0.0
                var[j, i] = BIG
            else:
                var[j, i] *= var_scale


@numba.njit(cache=True)
def mesh_variance(var, bw, bh):
    """Per background mesh (bw x bh pixels, partial at the edges): sum of the good variances, their
    number, and the number of pixels (for RESCALE_WEIGHTS)."""
    ny, nx = var.shape
    my = (ny + bh - 1) // bh
    mx = (nx + bw - 1) // bw
    total = np.zeros((my, mx))
    ngood = np.zeros((my, mx), dtype=np.int64)
    npix = np.zeros((my, mx), dtype=np.int64)
    for j in range(ny):
        for i in range(nx):
            m, k = j // bh, i // bw
            npix[m, k] += 1
            v = var[j, i]
            if v < BIG:
                total[m, k] += v
                ngood[m, k] += 1
    return total, ngood, npix
