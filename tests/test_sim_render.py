"""Rendering accuracy of the simulator: stamps conserve flux and centroid; a rendered high-S/N star in a
full simulated exposure has the truth's centroid (0.02 px), flux (1%) and FWHM."""
from __future__ import annotations

import math

import numpy as np
import pytest

from terapix_fw.sim import StaticSky, make_sources, simulate_exposure, small_focal_plane
from terapix_fw.sim.render import moffat_mixture, render_mixtures, render_moffat_stars, sersic_mixture


def _moments(img, x0, y0, r):
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    m = np.hypot(xx - x0, yy - y0) <= r
    w = img * m
    s = w.sum()
    return s, (w * xx).sum() / s, (w * yy).sum() / s


def _fit_moffat_fwhm(img, x0, y0, beta, half=15):
    """FWHM (px, geometric mean of the axes) of an elliptical Moffat of fixed beta fitted to a cutout."""
    from scipy.optimize import least_squares
    ix, iy = int(round(x0)), int(round(y0))
    cut = img[iy - half: iy + half + 1, ix - half: ix + half + 1]
    yy, xx = np.mgrid[iy - half: iy + half + 1, ix - half: ix + half + 1]

    def model(p):
        amp, x, y, a, q, th = p
        c, s = math.cos(th), math.sin(th)
        dx, dy = xx - x, yy - y
        u, v = c * dx + s * dy, -s * dx + c * dy
        return amp * (1 + u * u * q / a ** 2 + v * v / (q * a ** 2)) ** (-beta)

    p0 = [cut.max(), x0, y0, 3.0, 0.9, 0.1]
    fit = least_squares(lambda p: (model(p) - cut).ravel(), p0,
                        bounds=([0, x0 - 2, y0 - 2, 0.5, 0.3, -4], [np.inf, x0 + 2, y0 + 2, 20, 1.0, 4]))
    return 2 * fit.x[3] * math.sqrt(2 ** (1 / beta) - 1)


def _windowed_centroid(img, x, y, sigma, niter=30):
    """XWIN-like Gaussian-windowed centroid (0-based), unbiased for point-symmetric profiles."""
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    for _ in range(niter):
        w = np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma ** 2) * img
        nx, ny = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        if abs(nx - x) < 1e-6 and abs(ny - y) < 1e-6:
            break
        x, y = nx, ny
    return x, y


@pytest.mark.parametrize("q,theta", [(1.0, 0.0), (0.8, 0.7)])
def test_moffat_stamp_conserves_flux_and_centroid(q, theta):
    img = np.zeros((100, 100))
    x0, y0, flux = 49.37, 50.81, 1.0e5
    render_moffat_stars(img, np.array([x0]), np.array([y0]), np.array([flux]), np.array([5.0]), 3.0,
                        np.array([q]), np.array([theta]), np.array([45.0]))
    total, cx, cy = _moments(img, x0, y0, 60)
    assert total == pytest.approx(flux, rel=1e-9)
    assert abs(cx - x0) < 2e-3 and abs(cy - y0) < 2e-3
    # FWHM of a Moffat of alpha 5, beta 3: FWHM = 2 alpha sqrt(2^(1/3) - 1)
    fwhm = 2 * 5.0 * math.sqrt(2 ** (1 / 3) - 1)
    # fitted at pixel centres: pixel integration widens the profile by ~1/12 px^2 (< 2% here)
    assert _fit_moffat_fwhm(img, x0, y0, 3.0) == pytest.approx(fwhm, rel=0.03)


def test_star_clipped_by_ccd_edge_keeps_only_its_part():
    args = (np.array([1000.0]), np.array([2.0]), 3.0, np.array([1.0]), np.array([0.0]), np.array([20.0]))
    img = np.zeros((50, 50))
    render_moffat_stars(img, np.array([0.0]), np.array([25.0]), *args)
    # the same star on a wider CCD: the clipped CCD holds exactly the columns x >= 0 of it
    wide = np.zeros((50, 100))
    render_moffat_stars(wide, np.array([50.0]), np.array([25.0]), *args)
    assert wide.sum() == pytest.approx(1000.0)
    np.testing.assert_allclose(img, wide[:, 50:], rtol=1e-12, atol=1e-12)


def test_galaxy_mixture_flux_and_shape():
    w, v = sersic_mixture(1.0)
    pw, pv = moffat_mixture(3.0)
    assert w.sum() == pytest.approx(1.0) and pw.sum() == pytest.approx(1.0)
    # the mixture reproduces the half-light radius of the exponential profile (r_e = 1)
    enc = lambda rr: (w * (1 - np.exp(-0.5 * rr ** 2 / v))).sum()
    assert enc(1.0) == pytest.approx(0.5, abs=0.01)
    img = np.zeros((101, 101))
    re = 6.0
    cxx = (re ** 2 * v).reshape(1, -1)
    cyy = (0.25 * re ** 2 * v).reshape(1, -1)  # q = 0.5 along y
    render_mixtures(img, np.array([50.3]), np.array([49.6]), np.array([5000.0]), cxx, np.zeros_like(cxx),
                    cyy, w.reshape(1, -1).copy(), np.array([50.0]))
    total, cx, cy = _moments(img, 50.3, 49.6, 60)
    assert total == pytest.approx(5000.0, rel=1e-9)
    assert abs(cx - 50.3) < 0.01 and abs(cy - 49.6) < 0.01
    yy, xx = np.mgrid[:101, :101]
    sxx = (img * (xx - cx) ** 2).sum() / total
    syy = (img * (yy - cy) ** 2).sum() / total
    assert math.sqrt(syy / sxx) == pytest.approx(0.5, rel=0.05)


@pytest.fixture(scope="module")
def bright_star(tmp_path_factory):
    """One r=18 star (high S/N, unsaturated) on an otherwise empty 1-CCD exposure, no defects or CRs."""
    fp = small_focal_plane(nccd=1, nx=200, ny=200)
    ra, dec = 150.0, 2.2
    sky = StaticSky(make_sources([ra + 0.0011], [dec - 0.0007], [18.0]))
    res = simulate_exposure(tmp_path_factory.mktemp("star"), seed=5, focal_plane=fp, sky=sky, ra=ra, dec=dec,
                            seeing=0.8, cosmic_rays=False, defects=False, satellite=False, exptime=300.0,
                            psf_ellipticity=0.05)
    return res


def test_rendered_star_matches_truth(bright_star):
    from astropy.io import fits
    res = bright_star
    assert len(res.truth) == 1
    t = res.truth[0]
    assert not t["SATURATED"]
    img = fits.getdata(res.path, 1).astype(float)
    x0, y0 = t["X_IMAGE"] - 1.0, t["Y_IMAGE"] - 1.0  # FITS 1-based -> array
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    r = np.hypot(xx - x0, yy - y0)
    sky = np.median(img[(r > 45) & (r < 70)])
    data = img - sky
    fwhm_px = t["FWHM_PSF"] / res.focal_plane.pixscale
    cx, cy = _windowed_centroid(data, x0 + 0.3, y0 - 0.2, fwhm_px / 2.355)
    assert abs(cx - x0) < 0.02 and abs(cy - y0) < 0.02
    flux = data[r < 40].sum()
    assert flux == pytest.approx(t["FLUX"], rel=0.01)
    assert t["MAG"] == pytest.approx(res.zeropoint - 2.5 * math.log10(t["FLUX"]), abs=1e-9)
    assert _fit_moffat_fwhm(data, x0, y0, res.spec.beta) == pytest.approx(fwhm_px, rel=0.03)
    assert t["FWHM_PSF"] == pytest.approx(0.8, rel=0.11)  # the seeing, grown < 10% towards the edge


def test_measured_flux_gives_true_zeropoint(bright_star):
    res = bright_star
    t = res.truth[0]
    assert res.photometric and res.zeropoint == pytest.approx(res.header_zeropoint)
    from astropy.io import fits
    assert fits.getheader(res.path, 0)["MAGZP"] == pytest.approx(res.zeropoint, abs=1e-4)
    assert t["MAG"] == pytest.approx(18.0)  # zero colours: r mag in the r filter


def test_rendered_galaxy_size_shape_and_orientation(tmp_path):
    """A bright exponential disc: half-light radius, axis ratio and position angle (east of north, with
    east to the left on an unflipped CCD) as in the truth; flux conserved."""
    from astropy.io import fits
    fp = small_focal_plane(nccd=1, nx=300, ny=300)
    ra, dec = 150.0, 2.2
    sky = StaticSky(make_sources([ra], [dec], [16.5], is_star=False, re=3.0, n=1.0, q=0.5, pa=30.0))
    res = simulate_exposure(tmp_path, seed=9, focal_plane=fp, sky=sky, ra=ra, dec=dec, seeing=0.5,
                            cosmic_rays=False, defects=False, satellite=False, psf_ellipticity=0.0)
    t = res.truth[0]
    assert not t["IS_STAR"] and t["RE_ARCSEC"] == 3.0 and t["THETA_WORLD"] == 30.0
    img = fits.getdata(res.path, 1).astype(float)
    x0, y0 = t["X_IMAGE"] - 1, t["Y_IMAGE"] - 1
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    r = np.hypot(xx - x0, yy - y0)
    data = img - np.median(img[r > 140])
    inside = r < 120
    assert data[inside].sum() == pytest.approx(t["FLUX"], rel=0.02)
    # second moments of the light (PSF 0.5" << r_e 3"): orientation and axis ratio
    w = data * (r < 80)
    mxx = (w * (xx - x0) ** 2).sum() / w.sum()
    myy = (w * (yy - y0) ** 2).sum() / w.sum()
    mxy = (w * (xx - x0) * (yy - y0)).sum() / w.sum()
    angle = math.degrees(0.5 * math.atan2(2 * mxy, mxx - myy)) % 180.0
    # PA 30 deg E of N: the major axis points to (east, north) = (sin 30, cos 30) = pixel (-0.5, +0.87)
    assert angle == pytest.approx(120.0, abs=2.0)
    lam = np.linalg.eigvalsh([[mxx, mxy], [mxy, myy]])
    assert math.sqrt(lam[0] / lam[1]) == pytest.approx(0.5, abs=0.05)
    # half-light "radius" of the elliptical profile: the circularised r_e = re * sqrt(q)
    order = np.argsort(r[inside])
    cum = np.cumsum(data[inside][order])
    r_half = r[inside][order][np.searchsorted(cum, 0.5 * cum[-1])] * fp.pixscale
    # circular apertures on an ellipse and the PSF make it ~7% larger
    assert r_half == pytest.approx(3.0 * math.sqrt(0.5), rel=0.12)
