"""Simulated exposures: determinism, headers, truth tables, true and first-guess WCS, calibration maps."""
from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from terapix_fw.sim import TRUTH_COLUMNS, ExposureSpec, simulate_exposure, small_focal_plane

FP = small_focal_plane(nccd=4, nx=256, ny=256)
PRIMARY_KEYS = ("OBJECT", "FILTER", "EXPTIME", "AIRMASS", "MJD-OBS", "DATE-OBS", "QRUNID", "RUNID", "PHOTFLAG",
                "REL_DATE", "MAGZP", "EXPNUM", "TELESCOP", "INSTRUME")
EXT_KEYS = ("EXTNAME", "GAIN", "RDNOISE", "SATURATE", "FILTER", "EXPTIME", "AIRMASS", "MJD-OBS", "DATE-OBS",
            "QRUNID", "RUNID", "PHOTFLAG", "REL_DATE", "OBJECT", "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2",
            "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "EQUINOX", "RADESYS")


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    return simulate_exposure(out, seed=11, focal_plane=FP, density=2.0, satellite=True, filter="g",
                             qrunid="03BQ02", runid="03BL01", object="W1+0+0", wcs_offset_arcsec=4.0,
                             wcs_rotation_deg=0.03, distortion_arcsec=3.0, mjd=52900.4, exptime=450.0)


def test_same_seed_same_bytes(tmp_path, exposure):
    kw = dict(seed=11, focal_plane=FP, density=2.0, satellite=True, filter="g", qrunid="03BQ02",
              runid="03BL01", object="W1+0+0", wcs_offset_arcsec=4.0, wcs_rotation_deg=0.03,
              distortion_arcsec=3.0, mjd=52900.4, exptime=450.0)
    again = simulate_exposure(tmp_path / "a", nthreads=1, **kw)  # thread count must not matter
    for a, b in ((exposure.path, again.path), (exposure.truth_path, again.truth_path),
                 (exposure.reference_catalog, again.reference_catalog), (exposure.true_wcs_path, again.true_wcs_path),
                 (exposure.flat_path, again.flat_path), (exposure.bpm_path, again.bpm_path)):
        assert a.read_bytes() == b.read_bytes(), a.name
    other = simulate_exposure(tmp_path / "b", **{**kw, "seed": 12})
    assert other.path.read_bytes() != exposure.path.read_bytes()


def test_headers_carry_every_keyword(exposure):
    with fits.open(exposure.path) as hdul:
        assert len(hdul) == 1 + FP.nccd
        prim = hdul[0].header
        for key in PRIMARY_KEYS:
            assert key in prim, key
        assert prim["FILTER"] == "g.MP9401"
        assert prim["EXPTIME"] == 450.0
        assert prim["QRUNID"] == "03BQ02" and prim["RUNID"] == "03BL01" and prim["OBJECT"] == "W1+0+0"
        assert prim["PHOTFLAG"] is True
        assert prim["DATE-OBS"].startswith("2003-09-")  # MJD 52900.4
        assert prim["REL_DATE"] > prim["DATE-OBS"][:10]
        ra_h, ra_m, ra_s = (float(v) for v in prim["RA"].split(":"))
        assert (ra_h + ra_m / 60 + ra_s / 3600) * 15 == pytest.approx(prim["RA_DEG"], abs=1e-5)
        assert prim["DEC"].startswith("-04:30")
        for i, hdu in enumerate(hdul[1:]):
            assert hdu.header["EXTNAME"] == f"ccd{i:02d}"
            for key in EXT_KEYS:
                assert key in hdu.header, (hdu.name, key)
            assert hdu.data.shape == (256, 256) and hdu.data.dtype.kind == "f"
            assert hdu.header["CTYPE1"] == "RA---TAN"
            assert not any(k.startswith("PV") for k in hdu.header)  # first guess: no distortion terms
            assert np.nanmax(hdu.data) <= hdu.header["SATURATE"]


def test_truth_table_columns_and_pixel_convention(exposure):
    t = Table.read(exposure.truth_path, hdu="TRUTH")
    assert list(t.colnames) == list(TRUTH_COLUMNS)
    assert len(t) == len(exposure.truth) > 50
    # FITS 1-based: every centre lies in [0.5, N + 0.5)
    assert t["X_IMAGE"].min() >= 0.5 and t["X_IMAGE"].max() < 256.5
    assert t["Y_IMAGE"].min() >= 0.5 and t["Y_IMAGE"].max() < 256.5
    assert set(np.unique(t["CCD"])) <= set(range(FP.nccd))
    np.testing.assert_array_equal(t["EXT"], t["CCD"] + 1)
    np.testing.assert_allclose(t["MAG"], exposure.zeropoint - 2.5 * np.log10(t["FLUX"]), atol=1e-9)
    assert t["IS_STAR"].any() and (~t["IS_STAR"]).any()
    gal = t[~t["IS_STAR"]]
    assert set(np.unique(gal["SERSIC_N"])) <= {1.0, 2.0, 4.0} and (gal["RE_ARCSEC"] > 0).all()
    assert (t[t["IS_STAR"]]["RE_ARCSEC"] == 0).all()


def test_true_wcs_headers_reproduce_truth_positions(exposure):
    """astropy/wcslib evaluating our TPV header must put every source at its true pixel position."""
    t = exposure.truth
    for ccd, hdr in enumerate(exposure.true_wcs):
        sel = t["CCD"] == ccd
        if not sel.any():
            continue
        assert hdr["CTYPE1"] == "RA---TPV" and "PV1_7" in hdr and "PV2_10" in hdr
        x, y = WCS(hdr).all_world2pix(t["RA"][sel], t["DEC"][sel], 1)
        np.testing.assert_allclose(x, t["X_IMAGE"][sel], atol=1e-4)
        np.testing.assert_allclose(y, t["Y_IMAGE"][sel], atol=1e-4)
    # the .head file holds the same headers, one END-terminated block per CCD
    text = exposure.true_wcs_path.read_text()
    blocks = [b for b in text.split("END" + " " * 77) if b.strip()]
    assert len(blocks) == FP.nccd
    h0 = fits.Header.fromstring(blocks[0], sep="\n")
    assert h0["CRPIX1"] == pytest.approx(exposure.true_wcs[0]["CRPIX1"])
    assert h0["PV1_7"] == pytest.approx(exposure.true_wcs[0]["PV1_7"])


def test_first_guess_is_off_by_the_configured_amount(exposure):
    for true_h, guess_h in zip(exposure.true_wcs, exposure.guess_wcs):
        # at the optical axis (CRPIX, no distortion there) the guess is off by the pointing offset
        crpix = (true_h["CRPIX1"], true_h["CRPIX2"])
        assert (guess_h["CRPIX1"], guess_h["CRPIX2"]) == crpix
        ra1, dec1 = WCS(true_h).all_pix2world([crpix[0]], [crpix[1]], 1)
        ra2, dec2 = WCS(guess_h).all_pix2world([crpix[0]], [crpix[1]], 1)
        sep = math.degrees(math.acos(min(1.0, math.sin(math.radians(dec1[0])) * math.sin(math.radians(dec2[0]))
                           + math.cos(math.radians(dec1[0])) * math.cos(math.radians(dec2[0]))
                           * math.cos(math.radians(ra1[0] - ra2[0]))))) * 3600
        assert sep == pytest.approx(4.0, abs=1e-3)
        # the CD matrices differ by a rotation of the configured angle
        a_true = math.degrees(math.atan2(true_h["CD2_1"], true_h["CD2_2"]))
        a_guess = math.degrees(math.atan2(guess_h["CD2_1"], guess_h["CD2_2"]))
        assert abs(a_guess - a_true) == pytest.approx(0.03, abs=1e-6)
    # the MEF carries the first guess
    with fits.open(exposure.path) as hdul:
        assert hdul[1].header["CRVAL1"] == pytest.approx(exposure.guess_wcs[0]["CRVAL1"])


def test_distortion_amplitude_at_the_corner(exposure):
    from terapix_fw.sim.wcs import tpv_forward
    h = exposure.true_wcs[0]
    pv1 = [h[f"PV1_{i}"] for i in range(11)]
    pv2 = [h[f"PV2_{i}"] for i in range(11)]
    r = FP.radius() * FP.pixscale / 3600 / math.sqrt(2)  # corner on the diagonal
    xi, eta = tpv_forward(np.array([r]), np.array([r]), pv1, pv2)
    shift = math.hypot(xi[0] - r, eta[0] - r) * 3600
    assert shift == pytest.approx(3.0, rel=0.3)  # configured 3", plus run and exposure terms


def test_calibration_maps_and_detrended_noise(exposure):
    with fits.open(exposure.flat_path) as flat, fits.open(exposure.bpm_path) as bpm, \
            fits.open(exposure.path) as img:
        assert [h.name.lower() for h in flat[1:]] == [f"ccd{i:02d}" for i in range(FP.nccd)]
        for i in range(1, FP.nccd + 1):
            f = flat[i].data
            assert f.mean() == pytest.approx(1.0, abs=1e-4) and 0.9 < f.min() and f.max() < 1.1
            b = bpm[i].data
            assert b.dtype == np.uint8 and b.shape == f.shape
        hot = np.argwhere(bpm[1].data & 2)
        if len(hot):
            j, k = hot[0]
            assert img[1].data[j, k] > np.median(img[1].data) + 300
        # a dead column reads ~0 against a sky of hundreds of ADU
        for i in range(1, FP.nccd + 1):
            dead = (bpm[i].data & 1) > 0
            if dead.any():
                assert np.median(img[i].data[dead]) < 0.1 * np.median(img[i].data[~dead])


def test_sky_and_noise_levels(tmp_path):
    res = simulate_exposure(tmp_path, seed=3, focal_plane=small_focal_plane(1, 256, 256), density=0.0,
                            cosmic_rays=False, defects=False, satellite=False, exptime=100.0, filter="r")
    img = fits.getdata(res.path, 1).astype(float)
    flat = fits.getdata(res.flat_path, 1).astype(float)
    hdr = fits.getheader(res.path, 1)
    sky = res.meta["sky_adu"]
    assert np.median(img) == pytest.approx(sky, rel=0.02)
    # detrended noise: variance (sky*flat*gain + rdnoise^2) / (gain*flat)^2
    g, rn = hdr["GAIN"], hdr["RDNOISE"]
    pred = (img.mean() * flat * g + rn ** 2) / (g * flat) ** 2
    chi2 = ((img - img.mean()) ** 2 / pred).mean()
    assert chi2 == pytest.approx(1.0, rel=0.05)


def test_nonphotometric_zeropoint_is_off(tmp_path):
    res = simulate_exposure(tmp_path, seed=4, focal_plane=small_focal_plane(1, 64, 64), density=0.1,
                            photometric=False)
    assert 0.05 <= res.header_zeropoint - res.zeropoint <= 0.3
    assert fits.getheader(res.path)["PHOTFLAG"] is False
    fixed = simulate_exposure(tmp_path / "c", seed=4, focal_plane=small_focal_plane(1, 64, 64), density=0.1,
                              photometric=False, cloud=0.2)
    assert fixed.header_zeropoint - fixed.zeropoint == pytest.approx(0.2)


def test_saturated_star_bleeds_along_columns(tmp_path):
    from terapix_fw.sim import StaticSky, make_sources
    fp = small_focal_plane(1, 128, 256)
    res = simulate_exposure(tmp_path, seed=2, focal_plane=fp, ra=10.0, dec=0.0, cosmic_rays=False,
                            defects=False, satellite=False,
                            sky=StaticSky(make_sources([10.0], [0.0], [12.5])))
    t = res.truth[0]
    assert t["SATURATED"]
    img = fits.getdata(res.path, 1)
    sat = fits.getheader(res.path, 1)["SATURATE"]
    jj, ii = np.nonzero(img >= sat)
    x0 = int(round(t["X_IMAGE"] - 1))
    # the trail is long along y (columns) and narrow along x
    assert np.ptp(jj) > 3 * max(np.ptp(ii), 1)
    assert abs(np.median(ii) - x0) <= 1


def test_compressed_output(tmp_path):
    res = simulate_exposure(tmp_path, seed=1, focal_plane=small_focal_plane(2, 128, 128), density=0.5,
                            compress=True)
    plain = simulate_exposure(tmp_path / "p", seed=1, focal_plane=small_focal_plane(2, 128, 128), density=0.5)
    with fits.open(res.path) as c, fits.open(plain.path) as p:
        assert isinstance(c[1], fits.CompImageHDU) and c[1].header["EXTNAME"] == "ccd00"
        assert c[1].header["FILTER"] == "r.MP9601"
        # lossy float quantisation at 1/16 of the noise
        diff = c[1].data - p[1].data
        assert np.abs(diff).max() < 0.5 * np.std(p[1].data)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match="seeng"):
        simulate_exposure(tmp_path, seeng=0.7)
    with pytest.raises(ValueError, match="filter 'q'"):
        ExposureSpec(filter="q")
    with pytest.raises(ValueError, match="exptime"):
        ExposureSpec(exptime=0)


def test_distortion_common_to_a_qrunid_with_small_exposure_changes(tmp_path):
    fp = small_focal_plane(1, 64, 64)
    kw = dict(focal_plane=fp, density=0.05, write_refcat=False, write_calibration=False, distortion_arcsec=4.0)
    a = simulate_exposure(tmp_path / "a", seed=1, name="a", expnum=1, qrunid="03AQ01", **kw).true_wcs[0]
    b = simulate_exposure(tmp_path / "b", seed=1, name="b", expnum=2, qrunid="03AQ01", **kw).true_wcs[0]
    c = simulate_exposure(tmp_path / "c", seed=1, name="c", expnum=3, qrunid="03BQ07", **kw).true_wcs[0]
    terms = [f"PV{ax}_{i}" for ax in (1, 2) for i in range(4, 11)]
    same = max(abs(a[k] - b[k]) for k in terms)
    other = max(abs(a[k] - c[k]) for k in terms)
    assert 0 < same < other / 2  # exposures of a run differ a little, runs differ more
    assert a["PV1_7"] == pytest.approx(c["PV1_7"], rel=0.3)  # both carry the camera's pincushion


def test_cosmic_rays_and_satellite_trail(tmp_path):
    fp = small_focal_plane(4, 256, 256)
    kw = dict(seed=6, focal_plane=fp, density=0.0, defects=False, write_refcat=False, write_calibration=False,
              exptime=600.0)
    clean = simulate_exposure(tmp_path / "clean", cosmic_rays=False, satellite=False, **kw)
    cr = simulate_exposure(tmp_path / "cr", cosmic_rays=True, satellite=False, cosmic_rate=2e-7, **kw)
    sat = simulate_exposure(tmp_path / "sat", cosmic_rays=False, satellite=True, **kw)
    assert sat.satellite and not clean.satellite
    with fits.open(clean.path) as c0, fits.open(cr.path) as c1, fits.open(sat.path) as c2:
        ncr, trail = 0, []
        for i in range(1, 5):
            d = c1[i].data - c0[i].data
            ncr += int((d > 100).sum())
            hit = np.argwhere(c2[i].data - c0[i].data > 20)
            if len(hit):
                ccd = fp.ccds[i - 1]
                u, v = ccd.pix_to_focal(hit[:, 1] + 1.0, hit[:, 0] + 1.0)
                trail.append(np.c_[u, v])
    # ~2e-7 per pixel per second x 256^2 px x 4 CCDs x 600 s = ~31 tracks of a few pixels
    assert 30 < ncr < 800
    # the trail pixels of all CCDs lie on one straight line in the focal plane
    pts = np.concatenate(trail)
    assert len(pts) > 50
    centred = pts - pts.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    assert sv[1] / sv[0] < 0.02


def test_sky_brightness_follows_the_filter(tmp_path):
    skies = {}
    for f in ("u", "g", "r", "i", "z"):
        res = simulate_exposure(tmp_path / f, seed=1, focal_plane=small_focal_plane(1, 32, 32), filter=f,
                                density=0.0, write_refcat=False, write_calibration=False)
        skies[f] = res.meta["sky_adu"]
        from terapix_fw.sim import filter_info
        name, phot_c, phot_k, sky_mag = filter_info(f)
        assert res.meta["sky_adu"] == pytest.approx(
            10 ** (-0.4 * (sky_mag - res.zeropoint)) * 0.186 ** 2)
    assert skies["u"] < skies["g"] < skies["r"] < skies["i"]  # dark sky is red


def test_calibration_maps_follow_the_seed(tmp_path):
    fp = small_focal_plane(1, 32, 32)
    kw = dict(focal_plane=fp, density=0.0, write_refcat=False)
    a = simulate_exposure(tmp_path, seed=1, **kw)
    first = a.flat_path.read_bytes()
    simulate_exposure(tmp_path, seed=1, name="again", **kw)
    assert a.flat_path.read_bytes() == first  # same seed and camera: kept
    b = simulate_exposure(tmp_path, seed=2, name="other", **kw)
    assert b.flat_path == a.flat_path and b.flat_path.read_bytes() != first  # other seed: rewritten
    assert fits.getheader(b.flat_path)["SIMKEY"].startswith("seed=2 ")
    assert fits.getheader(b.bpm_path)["SIMKEY"] == fits.getheader(b.flat_path)["SIMKEY"]


def test_flipped_megacam_ccds_keep_truth_and_wcs_consistent(tmp_path):
    """The upper MegaCam rows are rotated by 180 deg: truth positions, true WCS and the rendered light
    must agree there too."""
    from terapix_fw.sim import StaticSky, make_sources, megacam_focal_plane
    fp = megacam_focal_plane(nx=64, ny=144)
    ra0, dec0 = 36.5, -4.5
    # one bright star near the centre of ccd00 (upper left, flipped) and one of ccd27 (lower left)
    probe = simulate_exposure(tmp_path / "p", seed=1, focal_plane=fp, ra=ra0, dec=dec0, density=0.0,
                              write_refcat=False, write_calibration=False)
    w = WCS(probe.true_wcs[0])
    assert probe.true_wcs[0]["CD1_1"] > 0 and probe.true_wcs[27]["CD1_1"] < 0
    r0, d0 = w.all_pix2world([[30.3, 70.6]], 1)[0]
    r27, d27 = WCS(probe.true_wcs[27]).all_pix2world([[30.3, 70.6]], 1)[0]
    sky = StaticSky(make_sources([r0, r27], [d0, d27], [17.5, 17.5]))
    res = simulate_exposure(tmp_path / "s", seed=1, focal_plane=fp, ra=ra0, dec=dec0, sky=sky,
                            cosmic_rays=False, defects=False, satellite=False, write_refcat=False,
                            write_calibration=False)
    assert sorted(res.truth["CCD"]) == [0, 27]
    with fits.open(res.path) as hdul:
        for row in res.truth:
            assert row["X_IMAGE"] == pytest.approx(30.3, abs=1e-6) and row["Y_IMAGE"] == pytest.approx(70.6, abs=1e-6)
            img = hdul[int(row["EXT"])].data.astype(float)
            img -= np.median(img)
            yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
            win = np.exp(-0.5 * ((xx - 29.3) ** 2 + (yy - 69.6) ** 2) / 2.0 ** 2) * img
            assert (win * xx).sum() / win.sum() == pytest.approx(29.3, abs=0.1)
            assert (win * yy).sum() / win.sum() == pytest.approx(69.6, abs=0.1)


def test_subset_of_the_mosaic(tmp_path):
    """A focal plane made of some CCDs of MegaCam (as the benchmark does) keeps their numbers."""
    from terapix_fw.sim import FocalPlane, megacam_focal_plane
    full = megacam_focal_plane(nx=64, ny=144)
    fp = FocalPlane(full.ccds[12:14], full.pixscale, full.name)
    res = simulate_exposure(tmp_path, seed=1, focal_plane=fp, density=3.0, write_refcat=False)
    with fits.open(res.path) as hdul:
        assert [h.name.lower() for h in hdul[1:]] == ["ccd12", "ccd13"]
    assert set(res.truth["CCD"]) <= {12, 13} and len(res.truth) > 0
    np.testing.assert_array_equal(res.truth["EXT"], res.truth["CCD"] - 11)
