"""Small seeded synthetic CCDs with known defects for the weightwatcher tests."""
import numpy as np
import pytest


def moffat_stars(shape, xs, ys, fluxes, fwhm=3.7, beta=3.0, nsub=5, radius=15):
    """Pixel-integrated circular Moffat stars (0-based centres)."""
    ny, nx = shape
    img = np.zeros(shape)
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    sub = (np.arange(nsub) + 0.5) / nsub - 0.5
    for x0, y0, f in zip(xs, ys, fluxes):
        ix, iy = int(round(x0)), int(round(y0))
        jj, ii = np.mgrid[iy - radius:iy + radius + 1, ix - radius:ix + radius + 1]
        ok = (jj >= 0) & (jj < ny) & (ii >= 0) & (ii < nx)
        stamp = sum((1 + ((ii + sx - x0) ** 2 + (jj + sy - y0) ** 2) / alpha ** 2) ** (-beta)
                    for sy in sub for sx in sub)
        img[jj[ok], ii[ok]] += (stamp * f / stamp.sum())[ok]
    return img


@pytest.fixture
def defect_ccd():
    """A 400x600 CCD: sky 1000 ADU, gain 1.6, 120 stars, 50 cosmic rays, a hot column, a satellite trail and
    a saturated star.  Returns (image, truth masks dict, header)."""
    from astropy.io import fits

    rng = np.random.default_rng(7)
    ny, nx = 600, 400
    gain, sky = 1.6, 1000.0
    xs, ys = rng.uniform(15, nx - 15, 120), rng.uniform(15, ny - 15, 120)
    img = moffat_stars((ny, nx), xs, ys, 10 ** rng.uniform(3, 5.5, 120)) + sky
    # satellite trail: Gaussian cross-section sigma 1.5 px, peak 40 ADU (about 1.6 sigma of the sky noise)
    yy, xx = np.mgrid[0:ny, 0:nx]
    theta = np.deg2rad(30.0)
    dist = (xx - 50) * np.sin(theta) - (yy - 100) * np.cos(theta)
    img += 40.0 * np.exp(-0.5 * dist ** 2 / 1.5 ** 2)
    img = rng.poisson(img * gain) / gain + rng.normal(0, 3.0, img.shape)
    truth = {"trail": np.abs(dist) < 3.0}
    # saturated star with a bleed trail along its column
    img[300:340, 200] = 60000.0
    img[318:322, 199:202] = 60000.0
    truth["sat"] = img >= 60000.0
    # hot column over the upper half
    img[300:, 77] += 200.0
    truth["col"] = np.zeros(img.shape, bool)
    truth["col"][300:, 77] = True
    cr = np.zeros(img.shape, bool)
    for _ in range(50):
        x, y = rng.integers(10, nx - 10), rng.integers(10, ny - 10)
        dx, dy = [(1, 0), (0, 1), (1, 1), (1, -1)][rng.integers(0, 4)]
        amp = rng.uniform(400, 5000)
        for t in range(rng.integers(1, 6)):
            img[y + t * dy, x + t * dx] += amp
            cr[y + t * dy, x + t * dx] = True
    truth["cr"] = cr & ~truth["col"] & ~truth["sat"]
    header = fits.Header({"EXTNAME": "ccd00", "GAIN": gain, "SATURATE": 60000.0, "EXPTIME": 300.0,
                          "OBJECT": "test field"})
    return img.astype(np.float32), truth, header
