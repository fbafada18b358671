"""The simulated sky (counts, colours, sizes, determinism by cell, RA wrap) and the PSF model."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from terapix_fw.sim import ExposureSpec, SkyModel, megacam_focal_plane, simulate_exposure, small_focal_plane
from terapix_fw.sim.exposure import psf_at


def test_overlapping_queries_return_identical_sources():
    sky = SkyModel(7, maglim=24.0)
    a = sky.sources(10.00, 10.25, 1.00, 1.25)
    b = sky.sources(10.15, 10.40, 1.10, 1.35)
    ia, ib = np.intersect1d(a.id, b.id, return_indices=True)[1:]
    inside = (a.ra >= 10.15) & (a.ra <= 10.25) & (a.dec >= 1.10) & (a.dec <= 1.25)
    assert len(ia) == inside.sum() > 100
    for name in ("ra", "dec", "mag_r", "re", "q", "n", "pa"):
        np.testing.assert_array_equal(getattr(a, name)[ia], getattr(b, name)[ib])
    other = SkyModel(8, maglim=24.0).sources(10.00, 10.25, 1.00, 1.25)
    assert not np.array_equal(other.ra[:10], a.ra[:10])


def test_number_counts_and_colours():
    src = SkyModel(3).sources(150.0, 150.5, 2.0, 2.5)
    area = 0.5 * 0.5 * math.cos(math.radians(2.25))
    gal = src.kind == 1
    star = ~gal
    # ~1.2e5 galaxies per deg^2 to r = 26, a few thousand stars (high galactic latitude)
    assert 1.0e5 < gal.sum() / area < 1.45e5
    assert 2.5e3 < star.sum() / area < 7e3
    # counts rise with magnitude: galaxies steeply (0.33 dex/mag), stars slowly
    g22, g25 = [(gal & (src.mag_r >= m) & (src.mag_r < m + 1)).sum() for m in (22, 25)]
    assert 3 * 0.33 - 0.1 < math.log10(g25 / g22) < 3 * 0.33 + 0.1
    assert src.mag_r.max() <= 26.0 and src.mag_r[star].min() >= 13.5
    # colours: stars follow a locus (u-g grows with g-r), galaxies are bimodal in g-r
    ug, gr = src.colors[star, 0], src.colors[star, 1]
    assert np.corrcoef(ug, gr)[0, 1] > 0.9 and -0.31 <= gr.min() and gr.max() <= 1.71
    ggr = src.colors[gal, 1]
    assert (ggr > 0.85).mean() > 0.25 and (ggr < 0.6).mean() > 0.4
    np.testing.assert_allclose(src.mag("g") - src.mag("r"), src.colors[:, 1])
    np.testing.assert_allclose(src.mag("i.MP9701"), src.mag_r - src.colors[:, 2])
    # sizes shrink with magnitude; discs and spheroids both present
    re = src.re[gal]
    m = src.mag_r[gal]
    assert np.median(re[m < 21]) > 2 * np.median(re[m > 25])
    assert set(np.unique(src.n[gal])) == {1.0, 2.0, 4.0}
    assert 0.1 <= src.q[gal].min() and src.q[gal].max() <= 1.0


def test_exposure_across_ra_zero(tmp_path):
    res = simulate_exposure(tmp_path, seed=2, focal_plane=small_focal_plane(4, 256, 256), ra=0.005, dec=10.0,
                            density=2.0, write_refcat=False, write_calibration=False)
    ra = np.asarray(res.truth["RA"])
    assert (ra > 359.9).any() and (ra < 0.1).any()
    # positions stay continuous across the wrap: x decreases with RA (east left)
    one = res.truth[res.truth["CCD"] == 0]
    wrapped = ((np.asarray(one["RA"]) + 180) % 360) - 180
    assert np.corrcoef(wrapped, one["X_IMAGE"])[0, 1] < -0.95


def test_psf_variation_and_ellipticity_across_the_field():
    fp = megacam_focal_plane()
    spec = ExposureSpec(seeing=0.7, psf_variation=0.1, psf_ellipticity=0.0)
    r = fp.radius()
    fwhm, q, theta = psf_at(spec, fp, np.array([0.0, r / math.sqrt(2), 0.0]), np.array([0.0, r / math.sqrt(2), r]))
    assert fwhm[0] * fp.pixscale == pytest.approx(0.7)
    assert fwhm[1] * fp.pixscale == pytest.approx(0.77)  # +10% at the corner
    assert q[0] == pytest.approx(1.0) and q[1] == pytest.approx(0.95)  # radial ellipticity 0.05 at the edge
    assert theta[1] == pytest.approx(math.pi / 4) and abs(theta[2]) == pytest.approx(math.pi / 2)
    # a constant component adds to it
    fwhm2, q2, _ = psf_at(ExposureSpec(seeing=0.7, psf_ellipticity=0.04), fp, np.array([0.0]), np.array([0.0]))
    assert q2[0] == pytest.approx(0.96)


AHEAD = "/usr/share/scamp/megacam.ahead"


@pytest.mark.skipif(not __import__("os").path.exists(AHEAD), reason="SCAMP's megacam.ahead not installed")
def test_megacam_layout_matches_scamps_megacam_ahead():
    """Orientation (CD signs) and CCD positions (CRPIX of the optical axis) of every CCD agree with the
    real MegaCam focal plane SCAMP ships (a raw-frame model: 2112x4644 px with overscan, hence ~100 px)."""
    from astropy.io import fits
    from terapix_fw.sim.wcs import ExposureWCS, qrun_distortion
    blocks = [b for b in Path(AHEAD).read_text().split("END") if "CRPIX1" in b]
    assert len(blocks) == 36
    fp = megacam_focal_plane()
    wcs = ExposureWCS(fp, 36.5, -4.5, qrun_distortion(1, "03AQ01", 0.7))
    for ccd, block in zip(fp.ccds, blocks):
        ref = fits.Header.fromstring(block.strip(), sep="\n")
        ours = wcs.header(ccd)
        assert np.sign(ours["CD1_1"]) == np.sign(ref["CD1_1"]), ccd.extname
        assert np.sign(ours["CD2_2"]) == np.sign(ref["CD2_2"]), ccd.extname
        assert abs(ours["CRPIX1"] - ref["CRPIX1"]) < 150 and abs(ours["CRPIX2"] - ref["CRPIX2"]) < 150, \
            (ccd.extname, ours["CRPIX1"], ref["CRPIX1"], ours["CRPIX2"], ref["CRPIX2"])
