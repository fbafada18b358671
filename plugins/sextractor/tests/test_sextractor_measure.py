"""Measurements against truth or analytic expectations on small simulated images."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from terapix_sextractor.synth import gaussian_image
from terapix_sextractor.extraction import ImageSpec, extract_image, resolve_config, resolve_params

PARAMS = ["NUMBER", "X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE", "A_IMAGE", "B_IMAGE", "THETA_IMAGE",
          "FLUX_AUTO", "FLUXERR_AUTO", "MAG_AUTO", "FLUX_ISO", "FLUX_APER(2)", "FLUX_PETRO", "KRON_RADIUS",
          "FLUX_RADIUS", "FLAGS", "FLUX_MAX", "ISOAREA_IMAGE", "ELONGATION", "ELLIPTICITY", "FWHM_IMAGE",
          "SNR_WIN", "ERRAWIN_IMAGE", "XPEAK_IMAGE", "YPEAK_IMAGE", "CLASS_STAR", "X2_IMAGE", "Y2_IMAGE",
          "XY_IMAGE", "FLUX_WIN", "BACKGROUND", "THRESHOLD"]


def run(data, params=PARAMS, header=None, **kw):
    cfg = resolve_config(None, **kw)
    return extract_image(ImageSpec(data, header), cfg, resolve_params(params, cfg)).table


def match(table, x, y, radius=1.0):
    """Index in ``table`` of the detection nearest each truth position (1-based), -1 if none."""
    d, j = cKDTree(np.c_[table["X_IMAGE"], table["Y_IMAGE"]]).query(np.c_[x, y])
    return np.where(d < radius, j, -1)


@pytest.fixture(scope="module")
def grid():
    """Isolated circular Gaussian stars on a grid, fluxes spanning 100x, known sub-pixel centres."""
    rng = np.random.default_rng(3)
    xs, ys = np.meshgrid(np.arange(25, 240, 30.0), np.arange(25, 240, 30.0))
    xs = xs.ravel() + rng.uniform(-0.5, 0.5, xs.size)
    ys = ys.ravel() + rng.uniform(-0.5, 0.5, ys.size)
    flux = np.geomspace(2e3, 2e5, xs.size)
    sigma = 1.5
    data = gaussian_image((256, 256), [(x, y, f, sigma, sigma, 0) for x, y, f in zip(xs, ys, flux)],
                          sky=100, noise=2.0, seed=1)
    return data, xs + 1, ys + 1, flux, sigma


def test_positions_fluxes_and_radii_vs_truth(grid):
    data, xs, ys, flux, sigma = grid
    t = run(data, PHOT_APERTURES=[5, 20], BACK_SIZE=64)
    j = match(t, xs, ys)
    assert (j >= 0).all(), "every star is detected"
    m = t[j]
    bright = m["SNR_WIN"] > 100
    assert bright.sum() > 20
    # windowed centroids: unbiased, within the reported error (ERRAWIN) at every S/N
    dx, dy = m["XWIN_IMAGE"] - xs, m["YWIN_IMAGE"] - ys
    assert np.median(np.abs(dx[bright])) < 0.01 and np.median(np.abs(dy[bright])) < 0.01
    assert np.all(np.hypot(dx, dy) < 5 * m["ERRAWIN_IMAGE"] + 0.002)
    pull = np.concatenate([dx, dy]) / np.concatenate([m["ERRAWIN_IMAGE"]] * 2)
    assert 0.5 < np.std(pull) < 1.5  # the errors are realistic
    # isophotal barycentres are noisier but unbiased
    assert np.median(np.abs(m["X_IMAGE"] - xs)) < 0.05
    # a 20-pixel aperture holds all of a sigma=1.5 Gaussian; AUTO misses 1 - exp(-r^2/2) of it
    fa = np.asarray(m["FLUX_APER"])[:, 1]
    assert np.median(fa[bright] / flux[bright]) == pytest.approx(1.0, abs=0.01)
    assert np.median(m["FLUX_AUTO"][bright] / flux[bright]) == pytest.approx(1.0, abs=0.03)
    # half-light radius of a Gaussian, normalised by FLUX_AUTO (a fraction frac of the total):
    # sigma_eff * sqrt(-2 ln(1 - frac/2)), where pixel integration and the growth curve's uniform-pixel
    # sub-sampling each add a box of variance 1/12
    frac = np.median(m["FLUX_AUTO"][bright] / flux[bright])
    sigma_eff = np.sqrt(sigma ** 2 + 2 / 12)
    expected_r50 = sigma_eff * np.sqrt(-2 * np.log(1 - 0.5 * frac))
    assert np.median(m["FLUX_RADIUS"][bright]) == pytest.approx(expected_r50, rel=0.03)
    # circular sources: for the brightest (isophote far out), A = B = sqrt(sigma^2 + 1/12 + 1/2): as in
    # SExtractor, the isophotal moments are taken on the filtered image, and default.conv (a binomial
    # [1 2 1] kernel) has a variance of 1/2 per axis; pixel integration adds 1/12
    top = np.argsort(flux)[-8:]
    a_expected = np.sqrt(sigma ** 2 + 1 / 12 + 0.5)
    assert np.median(m["A_IMAGE"][top]) == pytest.approx(a_expected, rel=0.01)
    assert np.median(m["B_IMAGE"][top]) == pytest.approx(a_expected, rel=0.01)
    assert np.median(m["ELONGATION"][bright]) < 1.05
    # Gaussian FWHM = 2.3548 sigma (SExtractor's log-profile fit, corrected for pixelation)
    assert np.median(m["FWHM_IMAGE"][bright]) == pytest.approx(2.3548 * sigma, rel=0.1)
    # errors: SNR_WIN grows with flux, MAG_AUTO = ZP - 2.5 log10(FLUX_AUTO)
    assert np.corrcoef(np.log(flux), np.log(m["SNR_WIN"]))[0, 1] > 0.95
    assert np.allclose(m["MAG_AUTO"], -2.5 * np.log10(m["FLUX_AUTO"]), atol=1e-4)
    # peak pixel is the one containing the centre; background is the sky level
    assert np.all(np.abs(m["XPEAK_IMAGE"] - np.rint(xs)) <= 1)
    assert np.median(m["BACKGROUND"]) == pytest.approx(100, abs=0.2)


def test_kron_radius_and_auto_flux_analytic():
    """A bright circular Gaussian: r1 = sqrt(pi/2) sigma, so KRON_RADIUS = 2.5 * 1.2533 = 3.133 (A units)
    when the minimum radius is lowered, and FLUX_AUTO = F (1 - exp(-KRON^2 / 2))."""
    sigma, flux = 2.0, 1e6
    data = gaussian_image((128, 128), [(63.3, 64.6, flux, sigma, sigma, 0)], sky=0, noise=0.5, seed=2)
    # unfiltered moments, so that A is the source's own sigma (sqrt(sigma^2 + 1/12) with the pixels)
    t = run(data, PHOT_AUTOPARAMS=[2.5, 0.1], FILTER=False, DETECT_THRESH=5)
    assert len(t) == 1
    assert t["KRON_RADIUS"][0] == pytest.approx(2.5 * np.sqrt(np.pi / 2), rel=0.02)
    expected = flux * (1 - np.exp(-t["KRON_RADIUS"][0] ** 2 / 2))
    assert t["FLUX_AUTO"][0] == pytest.approx(expected, rel=0.01)
    # default minimum radius 3.5
    t2 = run(data, FILTER=False, DETECT_THRESH=5)
    assert t2["KRON_RADIUS"][0] == pytest.approx(3.5)


def test_ellipse_parameters_of_an_elliptical_source():
    sx, sy, theta = 4.0, 2.0, 30.0
    data = gaussian_image((160, 160), [(80.2, 79.7, 5e5, sx, sy, theta)], sky=0, noise=0.3, seed=4)
    t = run(data, FILTER=False, DETECT_THRESH=5)  # unfiltered: the moments are the source's own
    assert len(t) == 1
    # pixel integration adds 1/12 to the second moments along x and y
    assert t["A_IMAGE"][0] == pytest.approx(np.sqrt(sx ** 2 + 1 / 12), rel=0.01)
    assert t["B_IMAGE"][0] == pytest.approx(np.sqrt(sy ** 2 + 1 / 12), rel=0.01)
    assert t["THETA_IMAGE"][0] == pytest.approx(theta, abs=0.5)
    c, s = np.cos(np.radians(theta)), np.sin(np.radians(theta))
    assert t["X2_IMAGE"][0] == pytest.approx(sx ** 2 * c * c + sy ** 2 * s * s + 1 / 12, rel=0.01)
    assert t["XY_IMAGE"][0] == pytest.approx((sx ** 2 - sy ** 2) * s * c, rel=0.03)
    assert t["ELLIPTICITY"][0] == pytest.approx(1 - sy / sx, abs=0.01)
    tf = run(data)  # with default.conv the moments grow by its variance, 1/2 per axis
    assert tf["X2_IMAGE"][0] == pytest.approx(t["X2_IMAGE"][0] + 0.5, rel=0.005)
    assert tf["THETA_IMAGE"][0] == pytest.approx(theta, abs=0.5)
    assert t["XWIN_IMAGE"][0] == pytest.approx(81.2, abs=0.01)
    assert t["YWIN_IMAGE"][0] == pytest.approx(80.7, abs=0.01)


def test_flags_saturated_truncated_blended():
    sources = [(60, 60, 3e5, 2, 2, 0),                 # saturated once clipped
               (1.5, 100, 5e4, 2, 2, 0),               # truncated by the left edge
               (140, 140, 5e4, 2, 2, 0), (146, 141, 4e4, 2, 2, 0),  # a blended pair
               (100, 30, 5e4, 2, 2, 0)]                # isolated, clean
    data = gaussian_image((200, 200), sources, sky=100, noise=2, seed=5)
    data = np.minimum(data, 5000).astype(np.float32)
    t = run(data, SATUR_LEVEL=5000)
    j = match(t, [61, 2.5, 141, 147, 101], [61, 101, 141, 142, 31], radius=2.0)
    assert (j >= 0).all()
    f = np.asarray(t["FLAGS"])[j]
    assert f[0] & 4 and not f[4] & 4
    assert f[1] & 8 and not f[0] & 8
    assert f[2] & 2 and f[3] & 2 and not f[4] & 2
    assert f[4] == 0
    # the SATURATE header keyword overrides SATUR_LEVEL, as in SExtractor
    from astropy.io import fits
    t2 = run(data, header=fits.Header({"SATURATE": 1e6}), SATUR_LEVEL=5000)
    k = match(t2, [61], [61], radius=2)[0]
    assert not t2["FLAGS"][k] & 4


def test_class_star_separates_stars_from_galaxies():
    from terapix_sextractor.synth import make_image

    sim = make_image((400, 400), nstars=25, ngal=25, fwhm=4.3, seed=11, mag_range=(17, 19.5),
                     galaxy_re=(3.0, 6.0))
    t = run(sim.data, SEEING_FWHM=0.8, PIXEL_SCALE=0.186, GAIN=2.0)
    j = match(t, sim.truth["x"], sim.truth["y"], radius=1.5)
    ok = j >= 0
    cs = np.asarray(t["CLASS_STAR"])[j[ok]]
    star = sim.truth["star"][ok]
    assert np.median(cs[star]) > 0.8
    assert np.median(cs[~star]) < 0.2
    # the wrong seeing (sources twice as sharp as they are) pushes stars toward galaxies
    t_bad = run(sim.data, SEEING_FWHM=0.4, PIXEL_SCALE=0.186, GAIN=2.0)
    jb = match(t_bad, sim.truth["x"], sim.truth["y"], radius=1.5)
    okb = (jb >= 0) & sim.truth["star"]
    assert np.median(np.asarray(t_bad["CLASS_STAR"])[jb[okb]]) < np.median(cs[star])


def test_thresholds_absolute_relative_and_manual_background(grid):
    data = grid[0]
    rel = run(data, params=["NUMBER", "THRESHOLD", "BACKGROUND", "X_IMAGE", "Y_IMAGE"], DETECT_THRESH=5)
    ab = run(data, params=["NUMBER", "THRESHOLD", "X_IMAGE", "Y_IMAGE"], THRESH_TYPE="ABSOLUTE", DETECT_THRESH=10)
    assert rel["THRESHOLD"][0] == pytest.approx(5 * 2.0, rel=0.05)  # 5 sigma of a noise of 2 ADU
    assert ab["THRESHOLD"][0] == pytest.approx(10.0)
    man = run(data, params=["NUMBER", "BACKGROUND", "X_IMAGE", "Y_IMAGE"], BACK_TYPE="MANUAL", BACK_VALUE=90)
    assert np.allclose(man["BACKGROUND"], 90)
    assert np.median(rel["BACKGROUND"]) == pytest.approx(100, abs=0.3)


def test_aperture_units_arcsec(grid):
    data = grid[0]
    pix = run(data, params=["X_IMAGE", "Y_IMAGE", "FLUX_APER"], PHOT_APERTURES=[6.0])
    arc = run(data, params=["X_IMAGE", "Y_IMAGE", "FLUX_APER"], PHOT_APERTURES=[1.2], PHOT_APERUNIT="ARCSEC",
              PIXEL_SCALE=0.2)
    assert np.allclose(pix["FLUX_APER"], arc["FLUX_APER"], rtol=1e-6)


def test_local_background_photometry():
    # a source on a background step: the local annulus picks the step up, the global map is smoother
    sources = [(64, 64, 5e4, 2, 2, 0)]
    data = gaussian_image((128, 128), sources, sky=100, noise=1, seed=8)
    g = run(data, params=["X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "BACKGROUND"])
    data2 = data + 5.0  # constant offset not seen by a MANUAL background: LOCAL removes it
    # (an absolute threshold, since the 5 ADU offset is above 1.5 sigma everywhere)
    kw = dict(BACK_TYPE="MANUAL", BACK_VALUE=100, THRESH_TYPE="ABSOLUTE", DETECT_THRESH=20)
    l = run(data2, params=["X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "BACKGROUND"], BACKPHOTO_TYPE="LOCAL",
            BACKPHOTO_THICK=12, **kw)
    m = run(data2, params=["X_IMAGE", "Y_IMAGE", "FLUX_AUTO"], **kw)
    assert len(l) == len(m) == 1
    assert l["BACKGROUND"][0] == pytest.approx(105, abs=0.5)
    assert l["FLUX_AUTO"][0] == pytest.approx(g["FLUX_AUTO"][0], rel=0.01)
    assert m["FLUX_AUTO"][0] > g["FLUX_AUTO"][0] * 1.01  # the offset over the Kron ellipse


def test_neighbours_are_corrected_by_symmetry():
    """MASK_TYPE CORRECT: a neighbour's pixels inside the aperture are replaced by the pixels mirrored
    through the centre, so the flux of a source next to a brighter one is that of the isolated source;
    MASK_TYPE NONE includes the neighbour's light."""
    main = (60.0, 60.0, 2e4, 2.0, 2.0, 0)
    neighbour = (69.0, 60.0, 8e4, 2.0, 2.0, 0)
    alone = gaussian_image((120, 120), [main], sky=0, noise=1.0, seed=9)
    pair = gaussian_image((120, 120), [main, neighbour], sky=0, noise=1.0, seed=9)
    params = ["X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "FLUX_APER", "FLUX_RADIUS", "FLAGS"]
    kw = dict(PHOT_APERTURES=[12.0], BACK_TYPE="MANUAL", BACK_VALUE=0.0, THRESH_TYPE="ABSOLUTE", DETECT_THRESH=5)
    ref = run(alone, params=params, **kw)
    cor = run(pair, params=params, **kw)
    raw = run(pair, params=params, MASK_TYPE="NONE", **kw)
    i_ref = match(ref, [61], [61])[0]
    i_cor, i_raw = match(cor, [61], [61])[0], match(raw, [61], [61])[0]
    assert min(i_ref, i_cor, i_raw) >= 0 and len(cor) == 2
    assert cor["FLAGS"][i_cor] & 2  # deblended from its neighbour
    for col in ("FLUX_AUTO", "FLUX_APER"):
        assert cor[col][i_cor] == pytest.approx(ref[col][i_ref], rel=0.02), col
        assert raw[col][i_raw] > 1.1 * ref[col][i_ref], col
    assert cor["FLUX_RADIUS"][i_cor] == pytest.approx(ref["FLUX_RADIUS"][i_ref], rel=0.05)


def test_world_columns_without_wcs_follow_sextractor(grid):
    """No celestial WCS: SExtractor's unit linear frame (world = pixel - 1), sky coordinates and angles 0,
    world shapes equal to the image ones."""
    t = run(grid[0], params=["X_IMAGE", "Y_IMAGE", "X_WORLD", "Y_WORLD", "ALPHA_J2000", "A_IMAGE", "A_WORLD",
                             "THETA_IMAGE", "THETA_WORLD", "THETA_J2000"])
    assert np.allclose(t["X_WORLD"], t["X_IMAGE"] - 1, atol=1e-4)
    assert np.allclose(t["Y_WORLD"], t["Y_IMAGE"] - 1, atol=1e-4)
    assert np.all(t["ALPHA_J2000"] == 0) and np.all(t["THETA_J2000"] == 0)
    assert np.allclose(t["A_WORLD"], t["A_IMAGE"], rtol=1e-5)
    assert np.allclose(t["THETA_WORLD"], t["THETA_IMAGE"], atol=1e-3)


def _growth_reference(image, x, y, rlim, fluxnorm, frac):
    """growth.c written out directly (every pixel, 5x5 sub-pixels near bin boundaries; no neighbours)."""
    nstep, over = 64, 5
    stepdens = nstep / rlim
    step = 1.0 / stepdens
    raper = rlim + 1.5
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    box = ((xx >= int(x - raper + 0.499999)) & (xx < int(x + raper + 1.499999))
           & (yy >= int(y - raper + 0.499999)) & (yy < int(y + raper + 1.499999)))
    dx, dy = xx - x, yy - y
    r = np.sqrt(dx * dx + dy * dy)
    use = box & (r < raper)
    d = r % step
    sub = use & ((d < 0.75) | (d > step - 0.75))
    whole = use & ~sub
    growth = np.zeros(nstep)
    growth += np.bincount(np.minimum((r[whole] * stepdens).astype(int), nstep), image[whole], nstep + 1)[:nstep]
    offs = (np.arange(over) + 0.5) / over - 0.5
    for oy in offs:
        for ox in offs:
            rs = np.sqrt((dx[sub] + ox) ** 2 + (dy[sub] + oy) ** 2)
            growth += np.bincount(np.minimum((rs * stepdens).astype(int), nstep), image[sub] / over ** 2,
                                  nstep + 1)[:nstep]
    cum = np.cumsum(growth)
    tv = frac * fluxnorm
    k = 0
    while k < nstep - 1 and cum[k] < tv:
        k += 1
    return step * (k + (tv - cum[k - 1]) / (cum[k] - cum[k - 1])) if k > 0 else step * tv / cum[0]


def test_flux_radius_kernel_matches_the_full_growth_curve():
    """flux_radius builds the sub-sampled curve only out to where it crosses the fractions (falling back to
    the whole curve beyond): the radii are those of growth.c's full curve, for small and large sources."""
    from terapix_sextractor.measure import flux_radius

    srcs = [(40.3, 41.7, 5e4, 1.2, 1.2, 0), (120.6, 60.2, 8e4, 6.0, 3.0, 0.5)]
    img = gaussian_image((160, 160), srcs, sky=0, noise=1.0, seed=4).astype(np.float32)
    x, y = np.array([40.3, 120.6]), np.array([41.7, 60.2])
    a = np.array([1.3, 5.5])
    norm = np.array([5e4, 8e4])
    fracs = np.linspace(0.02, 0.999, 60)
    fr, _ = flux_radius(img, x, y, a, norm, fracs, np.zeros(img.shape, bool))
    for i in range(2):
        for j, frac in enumerate(fracs):
            ref = _growth_reference(img.astype(np.float64), x[i], y[i], 6.0 * a[i], norm[i], frac)
            assert fr[i, j] == pytest.approx(ref, rel=1e-9, abs=1e-9), (i, frac)


def _winpos_reference(image, x, y, sig, niter=16):
    """winpos.c written out directly: Gaussian weight per pixel, 11x11 sub-sampling of the window edge."""
    raper = 4.0 * sig
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(float)
    offs = (np.arange(11) + 0.5) / 11 - 0.5
    for _ in range(niter):
        dx, dy = xx - x, yy - y
        r2 = dx * dx + dy * dy
        inside = r2 < (raper + 0.75) ** 2
        edge = inside & (r2 > max(raper - 0.75, 0) ** 2)
        area = np.where(inside, 1.0, 0.0)
        cover = np.zeros(edge.sum())
        for oy in offs:
            for ox in offs:
                cover += ((dx[edge] + ox) ** 2 + (dy[edge] + oy) ** 2 < raper * raper) / 121.0
        area[edge] = cover
        wpix = area * np.exp(-r2 / (2 * sig * sig)) * image
        tv = wpix.sum()
        ddx, ddy = (wpix * dx).sum() / tv, (wpix * dy).sum() / tv
        x, y = x + 2 * ddx, y + 2 * ddy
        if ddx * ddx + ddy * ddy < 2e-4 ** 2:
            break
    return x, y, tv


def test_windowed_kernel_matches_the_direct_formula():
    """The separable Gaussian weights and per-row window limits of winpos give winpos.c's positions and
    windowed flux."""
    from terapix_sextractor.measure import winpos

    srcs = [(30.4, 33.8, 2e4, 1.5, 1.5, 0), (80.7, 70.1, 5e4, 3.0, 2.0, 0.3)]
    img = gaussian_image((110, 110), srcs, sky=0, noise=0.5, seed=2).astype(np.float32)
    x0, y0 = np.array([30.0, 81.2]), np.array([34.1, 69.6])
    sig = np.array([1.6, 2.9])
    res = winpos(img, x0, y0, sig, 0.25, np.zeros(img.shape, bool))
    for i in range(2):
        xr, yr, tv = _winpos_reference(img.astype(np.float64), x0[i], y0[i], sig[i])
        assert res["xwin"][i] == pytest.approx(xr, abs=1e-7)
        assert res["ywin"][i] == pytest.approx(yr, abs=1e-7)
        assert res["flux"][i] == pytest.approx(tv, rel=1e-7)


def test_flux_radius_and_half_light_radius_limits():
    """growth.c: FLUX_RADIUS never exceeds the integration radius (6 A), even when the normalising flux is
    never reached (a noise-free source: the extrapolation past the flat curve is huge and positive); the
    windows' half-light radius is |r| within [0.5, 6 A]."""
    from terapix_sextractor.measure import flux_radius, half_light_radius

    img = gaussian_image((60, 60), [(30.0, 30.0, 1e4, 1.5, 1.5, 0)], sky=0, noise=0.0, seed=3).astype(np.float32)
    fr, _ = flux_radius(img, np.array([30.0]), np.array([30.0]), np.array([1.5]), np.array([1e9]), [0.5],
                        np.zeros(img.shape, bool))
    assert fr[0, 0] == pytest.approx(9.0)
    np.testing.assert_allclose(half_light_radius(np.array([-3.0, 0.1, 100.0, np.nan]), np.array([1.0] * 4)),
                               [3.0, 0.5, 6.0, 0.5])


def test_vignets_cut_around_the_nearest_pixel_and_pad_off_the_image():
    """VIGNET(w,h) (copyimage): the pixels around the nearest pixel to the centroid, bad pixels and pixels
    off the image at -1e30."""
    from terapix_sextractor.extraction import _vignets

    img = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    bad = np.zeros(img.shape, bool)
    bad[10, 10] = True
    x, y = np.array([10.4, 0.2, 28.6]), np.array([10.6, 1.0, 18.5])
    v = _vignets(img, bad, x, y, (5, 3))
    assert v.shape == (3, 3, 5)
    # object 0: nearest pixel (x 10, y 11): rows 10-12, columns 8-12, the bad pixel blanked
    expect = img[10:13, 8:13].copy()
    expect[0, 2] = -1e30
    np.testing.assert_array_equal(v[0], expect)
    # object 1: (0, 1): columns -2..2, the first two off the image
    np.testing.assert_array_equal(v[1][:, :2], np.full((3, 2), -1e30, np.float32))
    np.testing.assert_array_equal(v[1][:, 2:], img[0:3, 0:3])
    # object 2: (29, 18): rows 17-19, columns 27..31, the last two off the image
    np.testing.assert_array_equal(v[2][:, :3], img[17:20, 27:30])
    np.testing.assert_array_equal(v[2][:, 3:], np.full((3, 2), -1e30, np.float32))


def test_blanked_pixels_are_detections_too_small_to_be_objects():
    """SExtractor blanks every detected pixel: above the threshold in the filtered image, pieces that are
    no object (here a 2-pixel blob) are blanked; an object's own pixels and those connected to it are
    not; a relative threshold uses the variance map."""
    from terapix_sextractor.measure import blanked_pixels

    img = np.zeros((40, 40), np.float32)
    img[10:15, 10:15] = 10.0  # the object
    img[15, 15] = 6.0  # above threshold, touching the object's footprint diagonally: merged into it
    img[30, 5:7] = 8.0  # a 2-pixel detection: blanked
    seg = np.zeros(img.shape, np.int32)
    seg[10:15, 10:15] = 1
    blank = blanked_pixels(img, seg, None, 5.0)
    assert set(zip(*np.nonzero(blank))) == {(30, 5), (30, 6)}
    # filtered: the 3x3 mean of the blob is below 5, nothing is blanked; a lower threshold finds it again
    box = np.ones((3, 3)) / 9.0
    assert blanked_pixels(img, seg, box, 5.0) is None
    assert blanked_pixels(img, seg, box, 1.0)[30, 5:7].all()
    # relative threshold: 1 sigma of a variance map that is high on the right half
    var = np.ones(img.shape, np.float32)
    var[:, 20:] = 100.0
    img[5, 30] = 8.0
    blank = blanked_pixels(img, seg, None, 1.0, var, threads=2)
    assert blank[30, 5] and not blank[5, 30]  # 8 > 1 sigma on the left, < 1 sigma (10) on the right


def test_objects_clean_merged_into_another_are_not_blanked():
    """A detection of DETECT_MINAREA pixels or more that is not in the catalogue and does not touch the
    object that swallowed it was merged by CLEAN: SExtractor merges its pixels into the survivor's
    (found on GalSim data: a 16-pixel island 8-11 px from a galaxy; blanking it took 5% of the galaxy's
    21-pixel aperture flux and moved its windowed position by 1 px); a smaller piece is still blanked."""
    from terapix_sextractor.measure import blanked_pixels

    img = np.zeros((40, 40), np.float32)
    img[10:15, 10:15] = 10.0  # the object
    img[20:24, 20:24] = 8.0  # 16 pixels, apart from it: an object CLEAN merged into it
    img[30, 5:7] = 8.0  # a 2-pixel detection
    seg = np.zeros(img.shape, np.int32)
    seg[10:15, 10:15] = 1
    everything = blanked_pixels(img, seg, None, 5.0)
    assert everything[20:24, 20:24].all() and everything[30, 5:7].all()
    blank = blanked_pixels(img, seg, None, 5.0, minarea=5)
    assert set(zip(*np.nonzero(blank))) == {(30, 5), (30, 6)}
    assert blanked_pixels(img, seg, None, 5.0, minarea=2) is None


def test_candidate_positions_are_those_of_the_value_in_row_major_order():
    """blanked_pixels reads its map 8 pixels at a time: every pixel of the value is found, in the order of
    np.flatnonzero, whatever the map's size (not a multiple of 8 here: a tail read pixel by pixel) and
    whatever the other non-zero values in the same words."""
    from terapix_sextractor.measure import _positions

    rng = np.random.default_rng(3)
    for shape in [(1, 1), (3, 5), (7, 13), (40, 64)]:
        out = rng.choice(np.array([0, 0, 0, 0, 1, 2], np.uint8), size=shape)
        out[-1, -1] = 1  # in the tail when the size is not a multiple of 8
        expect = np.flatnonzero(out == 1)
        np.testing.assert_array_equal(_positions(out, 1, len(expect)), expect)
        np.testing.assert_array_equal(_positions(out, 2, out.size), np.flatnonzero(out == 2))
