"""The independent GalSim survey generator (testkit/terapix_testdata/galsim_survey.py): formats, headers,
truth kept apart, the first-guess WCS errors as requested, and a truth that matches the pixels."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("galsim")  # the testkit[galsim] extra, installed by scripts/setup.sh

from terapix_testdata import galsim_survey as gs  # noqa: E402

TINY = dict(nccd=4, nx=256, ny=512, nexp=2, star_density=40.0, galaxy_density=20.0, seed=5,
            star_mag_range=(13.0, 24.0), wcs_error_arcsec=10.0, wcs_error_max_arcsec=20.0,
            rotation_max_deg=0.3, scale_error_max=0.005)


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    out = tmp_path_factory.mktemp("gs")
    summary = gs.make_survey(out, **TINY)
    return out, summary


def test_raw_format_and_headers(survey):
    from astropy.io import fits

    out, summary = survey
    assert len(summary["exposures"]) == 2
    for exp in summary["exposures"]:
        path = out / exp["file"]
        raw = path.read_bytes()
        # raw 16-bit unsigned as telescopes write it: BITPIX 16 with BZERO 32768, read back as uint16
        second = raw[2880:2880 * 2].decode("ascii")
        assert "BITPIX  =                   16" in second and "BZERO   =                32768" in second
        with fits.open(path) as hdul:
            assert hdul[0].header["NAXIS"] == 0 and hdul[0].data is None
            assert len(hdul) == 5
            for hdu in [hdul[0]] + list(hdul[1:]):
                for key in ("FILTER", "QRUNID", "RUNID", "EXPTIME", "AIRMASS", "MJD-OBS", "DATE-OBS", "OBJECT",
                            "GAIN", "SATURATE", "RA", "DEC"):
                    assert key in hdu.header, (path, hdu.name, key)
            for hdu in hdul[1:]:
                h = hdu.header
                assert h["CTYPE1"] == "RA---TAN" and h["CTYPE2"] == "DEC--TAN"
                assert not any(k.startswith("PV") for k in h), "first guess has no distortion terms"
                assert hdu.data.dtype == np.uint16 and hdu.data.shape == (512, 256)
                assert hdu.data.max() <= 65535 and h["SATURATE"] == 65535
            # stars brighter than 15th magnitude saturate: the clip at 65535 is there
            src = fits.getdata(out / "truth" / f"{exp['name']}.sources.fits")
            for c in range(4):
                if ((src["CCD"] == c) & (src["MAG"] < 15.0) & (src["TYPE"] == 0)).any():
                    assert (hdul[c + 1].data == 65535).sum() > 0
            assert hdul[1].header["FILTER"].startswith(exp["filter"])


def test_weights_zero_on_bad_columns(survey):
    from astropy.io import fits

    out, summary = survey
    exp = summary["exposures"][0]
    with fits.open(out / f"{exp['name']}.weight.fits") as w:
        for ccd in exp["ccds"]:
            weight = w[ccd["ccd"] + 1].data
            assert weight.dtype.kind == "f" and weight.dtype.itemsize == 4
            assert 0.9 < np.median(weight) < 1.1
            cols = np.nonzero((weight == 0).any(axis=0))[0]
            assert sorted(cols) == ccd["badcols"] and len(cols) == 3


def test_truth_kept_apart(survey):
    out, summary = survey
    # nothing a tool would pick up by default beside the raw images: no .head, no .ahead, no truth
    beside = sorted(p.name for p in out.iterdir() if p.is_file())
    assert not [n for n in beside if n.endswith((".head", ".ahead"))]
    names = [e["name"] for e in summary["exposures"]]
    assert beside == sorted([f"{n}.fits" for n in names] + [f"{n}.weight.fits" for n in names] + ["reference.cat"])
    truth = sorted(p.name for p in (out / "truth").iterdir())
    for n in names:
        assert f"{n}.truewcs.txt" in truth and f"{n}.sources.fits" in truth and f"{n}.crmask.fits" in truth
    assert not [n for n in truth if n.endswith((".head", ".ahead", ".cat"))]
    saved = json.loads((out / "truth" / "survey.json").read_text())
    assert saved["exposures"][0]["zp_adu"] == pytest.approx(summary["exposures"][0]["zp_adu"])


def test_reference_catalogue(survey):
    from astropy.io import fits

    out, summary = survey
    with fits.open(out / "reference.cat") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "LDAC_IMHEAD", "LDAC_OBJECTS"]
        t = hdul["LDAC_OBJECTS"].data
        for col in ("X_WORLD", "Y_WORLD", "ERRA_WORLD", "ERRB_WORLD", "MAG", "MAGERR"):
            assert col in t.columns.names
    sky = fits.getdata(out / "truth" / "sky_sources.fits")
    idx = {int(i): k for k, i in enumerate(sky["ID"])}
    k = np.array([idx[int(i)] for i in t["SOURCE_ID"]])
    assert np.all(sky["TYPE"][k] == 0) and np.all(sky["MAG_R"][k] < 21.0)
    assert len(t) == int(((sky["TYPE"] == 0) & (sky["MAG_R"] < 21.0)).sum())
    # positions carry the requested 20 mas noise per axis
    dd = (t["Y_WORLD"] - sky["DEC"][k]) * 3.6e6
    assert 15.0 < np.std(dd) < 25.0 and np.allclose(t["ERRA_WORLD"] * 3.6e6, 20.0, rtol=1e-3)


def test_truth_matches_the_pixels(survey):
    """Windowed centroids of bright, isolated, unsaturated stars fall on the true positions (FITS pixels)."""
    from astropy.io import fits

    out, summary = survey
    exp = summary["exposures"][1]
    src = fits.getdata(out / "truth" / f"{exp['name']}.sources.fits")
    offsets = []
    with fits.open(out / exp["file"]) as hdul:
        for c in range(4):
            img = hdul[c + 1].data.astype(float)
            sky = np.median(img)
            s = src[src["CCD"] == c]
            for j in np.nonzero((s["TYPE"] == 0) & (s["MAG"] > 17.0) & (s["MAG"] < 21.0))[0]:
                x, y = s["X"][j], s["Y"][j]
                others = np.hypot(s["X"] - x, s["Y"] - y)
                if np.sort(others)[1] < 15 or not (12 < x < 244 and 12 < y < 500):
                    continue
                ix, iy = int(round(x)), int(round(y))
                cut = img[iy - 1 - 8:iy - 1 + 9, ix - 1 - 8:ix - 1 + 9] - sky
                yy, xx = np.mgrid[iy - 8:iy + 9, ix - 8:ix + 9]
                cx, cy = float(ix), float(iy)
                for _ in range(20):  # Gaussian-windowed centroid (SExtractor's XWIN idea)
                    w = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 2.0 ** 2)) * cut
                    cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
                offsets.append((cx - x, cy - y))
    offsets = np.array(offsets)
    assert len(offsets) >= 8
    assert np.all(np.abs(np.median(offsets, axis=0)) < 0.05), np.median(offsets, axis=0)


def test_header_wcs_errors_as_requested(survey):
    """The header WCS differs from the truth by the recorded pointing offset, rotation and scale; over many
    exposures the offsets have the requested rms and never exceed the maximum."""
    out, summary = survey
    for exp in summary["exposures"]:
        truth = gs.read_truewcs(out / "truth" / f"{exp['name']}.truewcs.txt")
        from astropy.io import fits

        with fits.open(out / exp["file"]) as hdul:
            h = hdul[1].header
        t = truth[0]
        dx = (h["CRVAL1"] - t["CRVAL1"]) * np.cos(np.radians(t["CRVAL2"])) * 3600
        dy = (h["CRVAL2"] - t["CRVAL2"]) * 3600
        assert (dx, dy) == pytest.approx(tuple(exp["header_offset_arcsec"]), abs=1e-3)
        cd_h = np.array([[h["CD1_1"], h["CD1_2"]], [h["CD2_1"], h["CD2_2"]]])
        cd_t = np.array([[t["CD1_1"], t["CD1_2"]], [t["CD2_1"], t["CD2_2"]]])
        scale = np.sqrt(abs(np.linalg.det(cd_h)) / abs(np.linalg.det(cd_t)))
        assert scale - 1 == pytest.approx(exp["header_scale_error"], abs=1e-9)
        # rotation of the pixel grid on the sky (east left): -CD2_1 / CD2_2 = tan(angle)
        rot = np.degrees(np.arctan2(-cd_h[1, 0], cd_h[1, 1]) - np.arctan2(-cd_t[1, 0], cd_t[1, 1]))
        assert rot == pytest.approx(exp["header_rotation_deg"], abs=1e-6)
        err = gs.header_wcs_errors(out, exp["name"])
        assert 0.2 * np.hypot(dx, dy) * 1000 < np.median(err) < 20000 + 3 * np.hypot(dx, dy) * 1000
    # the distribution over many exposures (planning only, no rendering)
    cfg = gs.SurveyConfig(nexp=600, wcs_error_arcsec=12.0, wcs_error_max_arcsec=30.0, rotation_max_deg=0.5,
                          scale_error_max=0.01, seed=9)
    plan = gs._plan(cfg, np.random.default_rng(3))
    r = np.array([np.hypot(*e["header_offset_arcsec"]) for e in plan])
    assert r.max() <= 30.0 and np.sqrt(np.mean(r ** 2)) == pytest.approx(12.0, rel=0.1)
    rot = np.array([e["header_rotation_deg"] for e in plan])
    scl = np.array([e["header_scale_error"] for e in plan])
    assert np.abs(rot).max() <= 0.5 and np.abs(rot).max() > 0.45
    assert np.abs(scl).max() <= 0.01 and np.abs(scl).max() > 0.009
    dims = np.array([e["dim_mag"] for e in plan if not e["photometric"]])
    assert dims.min() >= 0.05 and dims.max() <= 0.30


def test_cosmic_ray_mask(survey):
    from astropy.io import fits

    out, summary = survey
    exp = summary["exposures"][0]
    with fits.open(out / "truth" / f"{exp['name']}.crmask.fits") as m, fits.open(out / exp["file"]) as im:
        strong = [(m[c + 1].data & 2) > 0 for c in range(4)]
        assert sum(int(s.sum()) for s in strong) > 20
        for c in range(4):
            img = im[c + 1].data.astype(float)
            sky = np.median(img)
            sig = 1.4826 * np.median(np.abs(img - sky))
            if strong[c].any():
                # pixels hit hard stand out of the sky (most are not on stars)
                assert np.median(img[strong[c]]) > sky + 4 * sig


def test_compressed_output_is_the_same_data(tmp_path, survey):
    from astropy.io import fits

    out, summary = survey
    small = dict(TINY, nexp=1, nccd=1)
    a = gs.make_survey(tmp_path / "a", **small)
    b = gs.make_survey(tmp_path / "b", compress=True, **small)
    assert b["exposures"][0]["file"].endswith(".fits.fz")
    with fits.open(tmp_path / "a" / a["exposures"][0]["file"]) as ha, \
            fits.open(tmp_path / "b" / b["exposures"][0]["file"]) as hb:
        assert isinstance(hb[1], fits.CompImageHDU)
        np.testing.assert_array_equal(ha[1].data, hb[1].data)
    with fits.open(tmp_path / "b" / b["exposures"][0]["file"], disable_image_compression=True) as raw:
        assert raw[1].header["ZCMPTYPE"] == "RICE_1" and raw[1].header["ZBITPIX"] == 16


def test_distortion_in_truth_only(tmp_path):
    s = gs.make_survey(tmp_path, **dict(TINY, nexp=1, distortion_arcsec=3.0, galaxy_density=2.0,
                                        star_density=5.0))
    truth = gs.read_truewcs(tmp_path / "truth" / f"{s['exposures'][0]['name']}.truewcs.txt")
    assert truth[0]["CTYPE1"] == "RA---TPV" and truth[0]["PV1_7"] > 0


def test_cli(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "terapix_testdata.galsim_survey", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "--wcs-error-arcsec" in help_text and "--preset" in help_text
    bad = subprocess.run([sys.executable, "-m", "terapix_testdata.galsim_survey", str(tmp_path / "x"),
                          "--wcs-error-max-arcsec", "45"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "wcs_error_max_arcsec=45" in bad.stderr
