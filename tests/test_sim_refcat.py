"""The astrometric reference catalogue: SCAMP's FITS_LDAC layout, realistic errors, the same stars as the
images; and (where ``scamp`` is installed) a real SCAMP run accepts it and recovers the true WCS from the
first-guess headers."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from terapix_fw.ldac import read_ldac
from terapix_fw.sim import SkyModel, simulate_exposure, small_focal_plane, write_truth_ldac
from terapix_fw.sim.refcat import reference_errors


@pytest.fixture(scope="module")
def starry(tmp_path_factory):
    """4 CCDs of 512x512 in a star-rich field (30x high-latitude star counts) so SCAMP has ~100 stars."""
    out = tmp_path_factory.mktemp("ref")
    sky = SkyModel(21, maglim=23.0, density=1.0, star_density=30.0)
    return simulate_exposure(out, seed=21, focal_plane=small_focal_plane(4, 512, 512), sky=sky,
                             wcs_offset_arcsec=3.0, wcs_rotation_deg=0.02, distortion_arcsec=2.0,
                             cosmic_rays=False, satellite=False)


def test_refcat_layout_is_scamps(starry):
    with fits.open(starry.reference_catalog) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "LDAC_IMHEAD", "LDAC_OBJECTS"]
        assert hdul[1].columns[0].name == "Field Header Card"
        cols = hdul[2].columns
        for name in ("X_WORLD", "Y_WORLD", "ERRA_WORLD", "ERRB_WORLD", "ERRTHETA_WORLD", "MAG", "MAGERR",
                     "OBSDATE"):
            assert name in cols.names, name
        assert cols["X_WORLD"].unit == "deg" and cols["ERRA_WORLD"].unit == "deg"
    ext = read_ldac(starry.reference_catalog)  # the core reader accepts it as FITS_LDAC
    assert len(ext) == 1 and ext[0].header["REFBAND"] == "r"


def test_refcat_holds_the_image_stars_with_realistic_errors(starry):
    ref = Table.read(starry.reference_catalog, hdu="LDAC_OBJECTS")
    truth = starry.truth
    assert len(ref) > 50
    assert ref["MAG"].max() < 21.0 + 5 * ref["MAGERR"].max()
    stars = truth[truth["IS_STAR"] & (truth["MAG"] <= 20.5)]
    common = np.intersect1d(stars["ID"], ref["SOURCE_ID"])
    assert len(common) >= 0.95 * len(stars)  # every bright star of the images is in the catalogue
    assert not np.isin(truth[~truth["IS_STAR"]]["ID"], ref["SOURCE_ID"]).any()  # and no galaxy
    r = ref[np.searchsorted(ref["SOURCE_ID"], common)]
    t = truth[np.isin(truth["ID"], common)]
    t = t[np.argsort(t["ID"])]
    dra = (r["X_WORLD"] - t["RA"]) * np.cos(np.radians(t["DEC"]))
    ddec = r["Y_WORLD"] - t["DEC"]
    chi = np.r_[dra / r["ERRA_WORLD"], ddec / r["ERRB_WORLD"]]
    assert 0.7 < np.std(chi) < 1.3  # errors are honest
    sig, _ = reference_errors(np.array([16.0, 21.0]))
    assert sig[0] < 0.03 and 0.1 < sig[1] < 0.15  # arcsec: Gaia/SDSS-like


def test_truth_ldac_catalogue(starry, tmp_path):
    cat = write_truth_ldac(starry, tmp_path / "t.cat", maglim=22.0, pos_err=0.05, seed=3)
    exts = read_ldac(cat)
    assert len(exts) == 4
    truth = starry.truth
    for i, ext in enumerate(exts):
        assert ext.header["EXTNAME"] == f"ccd{i:02d}" and ext.header["CTYPE1"] == "RA---TAN"  # first guess
        obj = ext.objects
        want = truth[(truth["CCD"] == i) & (truth["MAG"] < 22.0) & ~truth["SATURATED"]]
        np.testing.assert_array_equal(obj["ID"], want["ID"])
        dx = np.asarray(obj["XWIN_IMAGE"]) - np.asarray(want["X_IMAGE"])
        assert len(obj) < 5 or 0.02 < np.std(dx) < 0.1  # perturbed by pos_err, in FITS 1-based pixels
        assert {"YWIN_IMAGE", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE", "FLUX_AUTO", "FLUXERR_AUTO",
                "FLAGS"} <= set(obj.colnames)
        assert (obj["FLUX_AUTO"] / obj["FLUXERR_AUTO"] > 5).all()  # mag < 22: S/N well above 5


@pytest.mark.skipif(shutil.which("scamp") is None, reason="scamp not installed")
def test_real_scamp_accepts_refcat_and_recovers_true_wcs(starry, tmp_path):
    cat = tmp_path / "exp.cat"
    write_truth_ldac(starry, cat, maglim=22.5)  # the bright objects, first-guess headers
    assert len(read_ldac(cat)) == 4
    shutil.copy(starry.reference_catalog, tmp_path / "ref.fits")
    cmd = ["scamp", cat.name, "-ASTREF_CATALOG", "FILE", "-ASTREFCAT_NAME", "ref.fits",
           "-CHECKPLOT_TYPE", "NONE", "-WRITE_XML", "N", "-SOLVE_PHOTOM", "N", "-DISTORT_DEGREES", "2",
           "-MOSAIC_TYPE", "UNCHANGED", "-VERBOSE_TYPE", "NORMAL", "-NTHREADS", "1",
           "-PIXSCALE_MAXERR", "1.1", "-POSANGLE_MAXERR", "1.0", "-POSITION_MAXERR", "0.5"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    blocks, lines = [], []
    for line in (tmp_path / "exp.head").read_text(errors="replace").splitlines():
        if line.strip() == "END":
            blocks.append("\n".join(lines))
            lines = []
        else:
            lines.append(line)
    assert len(blocks) == 4
    # SCAMP's solution puts the objects within ~0.1" of their true positions (the reference stars carry
    # 20-100 mas errors; the first guess was off by 3" and 0.02 deg)
    errs = []
    with fits.open(starry.path) as hdul:
        for i, block in enumerate(blocks):
            h = hdul[i + 1].header.copy()
            for line in block.splitlines():
                card = fits.Card.fromstring(line.ljust(80)[:80])
                if card.keyword not in ("COMMENT", "HISTORY", ""):
                    h[card.keyword] = card.value
            t = starry.truth[(starry.truth["CCD"] == i) & (starry.truth["MAG"] < 22.5)]
            ra, dec = WCS(h).all_pix2world(t["X_IMAGE"], t["Y_IMAGE"], 1)
            errs.append(np.hypot((ra - t["RA"]) * np.cos(np.radians(dec)), dec - t["DEC"]) * 3600)
    errs = np.concatenate(errs)
    assert np.median(errs) < 0.1, proc.stderr[-2000:]
