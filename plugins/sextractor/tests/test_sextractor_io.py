"""Catalogue formats, check images, dual-image mode, weight and flag maps, MEF runs, the drop-in command,
and acceptance of our FITS_LDAC catalogues by the real SCAMP and PSFEx."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from scipy.spatial import cKDTree

from terapix_fw.ldac import read_ldac
from terapix_sextractor.extraction import extract, extract_results
from terapix_sextractor.synth import gaussian_image, make_image, simple_wcs_header, write_fits

PARAMS = ["NUMBER", "X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE", "ALPHA_J2000", "DELTA_J2000",
          "FLUX_AUTO", "FLUXERR_AUTO", "MAG_AUTO", "MAG_APER(2)", "FLUX_RADIUS(2)", "FLAGS", "FLAGS_WEIGHT",
          "CLASS_STAR", "VIGNET(9,7)", "ISOAREAF_IMAGE"]


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    sim = make_image((300, 280), nstars=30, ngal=20, fwhm=3.0, seed=7, satur=60000)
    hdr = simple_wcs_header(sim.data.shape)
    hdr["GAIN"] = sim.gain
    path = d / "img.fits"
    fits.PrimaryHDU(sim.data, hdr).writeto(path)
    return path, sim


def run_cli(args, cwd):
    from terapix_fw.dropin import run_tool_command

    import os
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return run_tool_command("sextractor", [str(a) for a in args])
    finally:
        os.chdir(old)


def test_ldac_round_trip_through_astropy(tmp_path, sim_file, monkeypatch):
    path, sim = sim_file
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    param = tmp_path / "p.param"
    param.write_text("\n".join(PARAMS) + "\n")
    rc = run_cli([path, "-PARAMETERS_NAME", param, "-CATALOG_TYPE", "FITS_LDAC", "-CATALOG_NAME", "cat.ldac",
                  "-PHOT_APERTURES", "5,10", "-PHOT_FLUXFRAC", "0.5,0.9", "-VERBOSE_TYPE", "QUIET"], tmp_path)
    assert rc == 0
    with fits.open(tmp_path / "cat.ldac") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "LDAC_IMHEAD", "LDAC_OBJECTS"]
        assert hdul[1].header["TDIM1"].startswith("(80,")
        cols = hdul[2].columns
        assert cols.names == [p.split("(")[0] for p in PARAMS]
        assert cols["XWIN_IMAGE"].format == "D" and cols["FLAGS"].format == "I" and cols["NUMBER"].format == "J"
        assert cols["MAG_APER"].format == "2E" and cols["VIGNET"].dim == "(9, 7)"
        assert cols["X_IMAGE"].unit == "pixel" and cols["ALPHA_J2000"].unit == "deg"
        assert hdul[2].data["VIGNET"].shape[1:] == (7, 9)
    ext = read_ldac(tmp_path / "cat.ldac")
    assert len(ext) == 1
    h = ext[0].header
    for key in ("SEXBKGND", "SEXBKDEV", "SEXTHLD", "SEXGAIN", "SEXSATLV", "SEXPXSCL", "SEXSFWHM", "SEXMGZPT",
                "SEXAPED1", "SEXAPED2", "SEXNDET", "SEXNFIN"):
        assert key in h, key
    assert h["SEXGAIN"] == pytest.approx(sim.gain)  # from the GAIN header keyword
    assert h["SEXBKGND"] == pytest.approx(sim.sky, rel=0.01)
    assert h["SEXBKDEV"] == pytest.approx(sim.noise, rel=0.05)
    assert h["SEXNFIN"] == len(ext[0].objects)
    assert h["CTYPE1"] == "RA---TAN"  # the image header travels with the catalogue
    # the table read back equals the Python API's
    api = extract(path, params=PARAMS, PHOT_APERTURES=[5, 10], PHOT_FLUXFRAC=[0.5, 0.9])[0]
    assert np.allclose(ext[0].objects["XWIN_IMAGE"], api["XWIN_IMAGE"])
    assert np.allclose(ext[0].objects["MAG_APER"], api["MAG_APER"])
    # world coordinates follow the WCS: 1-based pixels through astropy
    from astropy.wcs import WCS
    ra, dec = WCS(h).all_pix2world(api["X_IMAGE"], api["Y_IMAGE"], 1)
    assert np.allclose(api["ALPHA_J2000"], ra) and np.allclose(api["DELTA_J2000"], dec)


def test_other_catalogue_formats(tmp_path, sim_file, monkeypatch):
    path, _ = sim_file
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    param = tmp_path / "p.param"
    param.write_text("NUMBER\nX_IMAGE\nY_IMAGE\nMAG_APER(2)\nFLAGS\n")
    common = ["-PARAMETERS_NAME", param, "-PHOT_APERTURES", "5,10", "-VERBOSE_TYPE", "QUIET"]
    for ctype, name in [("ASCII_HEAD", "c.cat"), ("ASCII", "c.txt"), ("FITS_1.0", "c.fits"),
                        ("ASCII_VOTABLE", "c.xml")]:
        assert run_cli([path, "-CATALOG_TYPE", ctype, "-CATALOG_NAME", name] + common, tmp_path) == 0
    head = (tmp_path / "c.cat").read_text().splitlines()
    assert head[0].startswith("#   1 NUMBER") and head[3].startswith("#   4 MAG_APER") and "[mag]" in head[3]
    assert head[4].startswith("#   6 FLAGS")  # vector columns take as many indices as values
    rows = np.loadtxt(tmp_path / "c.cat")
    plain = np.loadtxt(tmp_path / "c.txt")
    assert rows.shape[1] == 6 and np.array_equal(rows, plain)
    with fits.open(tmp_path / "c.fits") as f1:
        assert f1[1].name == "OBJECTS" and len(f1[1].data) == len(rows)
    from astropy.table import Table
    vo = Table.read(tmp_path / "c.xml", format="votable")
    assert len(vo) == len(rows) and np.allclose(vo["X_IMAGE"], rows[:, 1], atol=1e-3)


def test_check_images(tmp_path, sim_file):
    path, sim = sim_file
    res = extract_results(path, params=["NUMBER", "X_IMAGE", "Y_IMAGE", "ISOAREAF_IMAGE"],
                          CHECKIMAGE_TYPE=["SEGMENTATION", "BACKGROUND", "-BACKGROUND", "OBJECTS", "APERTURES",
                                           "BACKGROUND_RMS", "-OBJECTS"],
                          CHECKIMAGE_NAME=[str(tmp_path / f"c{i}.fits") for i in range(7)])[0]
    seg = res.checks["SEGMENTATION"]
    counts = np.bincount(seg.ravel(), minlength=len(res.table) + 1)[1:]
    assert np.array_equal(counts, res.table["ISOAREAF_IMAGE"])
    assert np.allclose(res.checks["BACKGROUND"].mean(), sim.sky, rtol=0.01)
    assert abs(np.median(res.checks["-BACKGROUND"])) < 0.5 * sim.noise
    obj, nobj = res.checks["OBJECTS"], res.checks["-OBJECTS"]
    assert np.allclose(obj + nobj, res.checks["-BACKGROUND"])
    assert np.median(res.checks["BACKGROUND_RMS"]) == pytest.approx(sim.noise, rel=0.05)
    # written through the tool as FITS files
    from terapix_sextractor.catalog import write_check_image
    write_check_image(tmp_path / "seg.fits", [res], "SEGMENTATION")
    assert np.array_equal(fits.getdata(tmp_path / "seg.fits"), seg)


def test_dual_image_mode(tmp_path, monkeypatch):
    """Detect on one image, measure on another: positions and footprints come from the detection image,
    fluxes from the measurement image (here 3x brighter, plus a source absent from the detection)."""
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    src = [(40, 40, 3e4, 2, 2, 0), (100, 60, 2e4, 2.5, 1.5, 20), (60, 110, 1e4, 2, 2, 0)]
    det = gaussian_image((150, 150), src, sky=0, noise=1.0, seed=1)
    meas = gaussian_image((150, 150), [(x, y, 3 * f, a, b, t) for x, y, f, a, b, t in src]
                          + [(120, 120, 5e4, 2, 2, 0)], sky=0, noise=1.0, seed=2)
    write_fits(tmp_path / "det.fits", det)
    write_fits(tmp_path / "meas.fits", meas)
    params = ["NUMBER", "X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "FLUX_ISO", "ISOAREAF_IMAGE", "FLUX_APER"]
    single = extract(tmp_path / "det.fits", params=params)[0]
    dual = extract(tmp_path / "meas.fits", params=params, detection_path=tmp_path / "det.fits")[0]
    assert len(single) == 3 and len(dual) == 3  # the 4th source exists only in the measurement image
    order = np.argsort(single["X_IMAGE"])
    dorder = np.argsort(dual["X_IMAGE"])
    assert np.allclose(single["ISOAREAF_IMAGE"][order], dual["ISOAREAF_IMAGE"][dorder])
    assert np.allclose(dual["FLUX_AUTO"][dorder] / single["FLUX_AUTO"][order], 3.0, rtol=0.02)
    assert np.allclose(dual["FLUX_APER"][dorder] / single["FLUX_APER"][order], 3.0, rtol=0.02)
    assert np.allclose(dual["X_IMAGE"][dorder], single["X_IMAGE"][order], atol=0.05)
    # and through the drop-in command with SExtractor's comma form
    param = tmp_path / "d.param"
    param.write_text("\n".join(params) + "\n")
    assert run_cli([f"{tmp_path / 'det.fits'},{tmp_path / 'meas.fits'}", "-PARAMETERS_NAME", param,
                    "-CATALOG_TYPE", "FITS_LDAC", "-CATALOG_NAME", "dual.ldac", "-VERBOSE_TYPE", "QUIET"],
                   tmp_path) == 0
    cat = read_ldac(tmp_path / "dual.ldac")[0].objects
    assert len(cat) == 3 and np.allclose(np.sort(cat["FLUX_AUTO"]), np.sort(dual["FLUX_AUTO"]))


def test_weight_map_changes_detection_errors_and_flags(tmp_path):
    src = [(40, 40, 2e4, 2, 2, 0), (110, 40, 2e4, 2, 2, 0), (75, 110, 2e4, 2, 2, 0)]
    img = gaussian_image((150, 150), src, sky=50, noise=2.0, seed=3)
    write_fits(tmp_path / "img.fits", img)
    weight = np.ones_like(img)
    weight[20:60, 90:130] = 0.0          # second source entirely in a dead region
    weight[100:150, :] = 0.25            # third source in a noisier (lower weight) region
    weight[110, 73:78] = 0.0             # ... with dead pixels touching it
    write_fits(tmp_path / "w.fits", weight)
    params = ["X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "FLUXERR_AUTO", "FLAGS_WEIGHT", "SNR_WIN"]
    plain = extract(tmp_path / "img.fits", params=params)[0]
    wt = extract(tmp_path / "img.fits", params=params, WEIGHT_TYPE="MAP_WEIGHT",
                 WEIGHT_IMAGE=str(tmp_path / "w.fits"))[0]
    assert len(plain) == 3 and len(wt) == 2
    t = cKDTree(np.c_[wt["X_IMAGE"], wt["Y_IMAGE"]])
    d, j = t.query([[41, 41], [76, 111]])
    assert (d < 1).all()
    tp = cKDTree(np.c_[plain["X_IMAGE"], plain["Y_IMAGE"]])
    _, jp = tp.query([[41, 41], [76, 111]])
    # weight 0.25 = 4x the variance: the flux error (background-dominated) doubles; weight 1 keeps it
    ratio = wt["FLUXERR_AUTO"][j] / plain["FLUXERR_AUTO"][jp]
    assert ratio[0] == pytest.approx(1.0, rel=0.1)
    assert ratio[1] > 1.5
    assert wt["FLAGS_WEIGHT"][j[1]] & 2 and wt["FLAGS_WEIGHT"][j[0]] == 0
    # MAP_RMS of sqrt(1/w) is the same weighting
    rms = np.where(weight > 0, 1 / np.sqrt(np.maximum(weight, 1e-12)), 1e31).astype(np.float32)
    write_fits(tmp_path / "rms.fits", rms)
    wr = extract(tmp_path / "img.fits", params=params, WEIGHT_TYPE="MAP_RMS", WEIGHT_IMAGE=str(tmp_path / "rms.fits"))[0]
    assert len(wr) == 2 and np.allclose(np.sort(wr["FLUXERR_AUTO"]), np.sort(wt["FLUXERR_AUTO"]), rtol=1e-3)
    # MAP_VAR of 1/w too
    var = np.where(weight > 0, 1 / np.maximum(weight, 1e-12), 1e31).astype(np.float32)
    write_fits(tmp_path / "var.fits", var)
    wv = extract(tmp_path / "img.fits", params=params, WEIGHT_TYPE="MAP_VAR", WEIGHT_IMAGE=str(tmp_path / "var.fits"))[0]
    assert len(wv) == 2 and np.allclose(np.sort(wv["FLUXERR_AUTO"]), np.sort(wt["FLUXERR_AUTO"]), rtol=1e-3)
    # BACKGROUND: the variance is the background rms map; with uniform noise the errors are unchanged
    wb = extract(tmp_path / "img.fits", params=params, WEIGHT_TYPE="BACKGROUND")[0]
    assert len(wb) == 3 and np.allclose(np.sort(wb["FLUXERR_AUTO"]), np.sort(plain["FLUXERR_AUTO"]), rtol=0.05)


def test_weight_image_extension_selector(tmp_path):
    """WEIGHT_IMAGE ``weights.fits[2]`` takes that extension, as SExtractor does, for a single-CCD image
    (the form a script uses on one CCD of a MEF and its weight MEF); a selector past the file is one
    error naming it."""
    src = [(40, 40, 2e4, 2, 2, 0), (110, 40, 2e4, 2, 2, 0)]
    img = gaussian_image((150, 150), src, sky=50, noise=2.0, seed=3)
    write_fits(tmp_path / "img.fits", img)
    dead = np.ones_like(img)
    dead[20:60, 90:130] = 0.0  # the second source in a dead region
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(np.ones_like(img)), fits.ImageHDU(dead)]
    fits.HDUList(hdus).writeto(tmp_path / "weights.fits")
    params = ["X_IMAGE", "Y_IMAGE", "FLUX_AUTO"]
    first = extract(tmp_path / "img.fits", params=params, WEIGHT_TYPE="MAP_WEIGHT",
                    WEIGHT_IMAGE=f"{tmp_path / 'weights.fits'}[1]")[0]
    second = extract(tmp_path / "img.fits", params=params, WEIGHT_TYPE="MAP_WEIGHT",
                     WEIGHT_IMAGE=f"{tmp_path / 'weights.fits'}[2]")[0]
    assert len(first) == 2 and len(second) == 1
    from terapix_fw.errors import TerapixError
    with pytest.raises(TerapixError, match=r"weights.fits: no image extension 3 \(it has 2\)"):
        extract(tmp_path / "img.fits", params=params, WEIGHT_TYPE="MAP_WEIGHT",
                WEIGHT_IMAGE=f"{tmp_path / 'weights.fits'}[3]")


def test_flag_map_sets_imaflags_iso(tmp_path):
    src = [(40, 40, 2e4, 2, 2, 0), (110, 40, 2e4, 2, 2, 0), (75, 110, 2e4, 2, 2, 0)]
    img = gaussian_image((150, 150), src, sky=50, noise=2.0, seed=3)
    write_fits(tmp_path / "img.fits", img)
    flags = np.zeros(img.shape, dtype=np.int16)
    flags[38:43, 38:43] = 4
    flags[40, 40] = 1
    flags[108:113, 108:113] = 8            # no source there
    flags[20:61, 90:131] = 2               # the whole footprint of the second source...
    flags[40, 110] = 3                     # ... and its central pixel
    write_fits(tmp_path / "f.fits", flags)
    params = ["X_IMAGE", "Y_IMAGE", "IMAFLAGS_ISO", "NIMAFLAGS_ISO"]
    out = {}
    for ftype in ("OR", "MAX", "MIN", "MOST"):
        t = extract(tmp_path / "img.fits", params=params, FLAG_IMAGE=str(tmp_path / "f.fits"), FLAG_TYPE=ftype)[0]
        j = cKDTree(np.c_[t["X_IMAGE"], t["Y_IMAGE"]]).query([[41, 41], [111, 41], [76, 111]])[1]
        out[ftype] = np.asarray(t["IMAFLAGS_ISO"])[j]
        nflag = np.asarray(t["NIMAFLAGS_ISO"])[j]
    assert list(out["OR"]) == [5, 3, 0]
    assert list(out["MAX"]) == [4, 3, 0]
    assert list(out["MIN"]) == [0, 2, 0]   # minimum over the footprint: 0 unless all of it is flagged
    assert list(out["MOST"]) == [4, 2, 0]  # most frequent non-zero value
    assert nflag[0] == 25 and nflag[2] == 0


def test_mef_extensions_in_parallel_equal_serial(tmp_path):
    hdus = [fits.PrimaryHDU()]
    for k in range(3):
        sim = make_image((200, 180), nstars=15, ngal=10, fwhm=3.0, seed=20 + k)
        h = simple_wcs_header(sim.data.shape, ra=150 + 0.02 * k)
        h["EXTNAME"] = f"ccd{k:02d}"
        hdus.append(fits.ImageHDU(sim.data, h))
    fits.HDUList(hdus).writeto(tmp_path / "mef.fits")
    params = ["NUMBER", "XWIN_IMAGE", "YWIN_IMAGE", "FLUX_AUTO", "ALPHA_J2000", "EXT_NUMBER"]
    serial = extract_results(tmp_path / "mef.fits", params=params, nthreads=1)
    parallel = extract_results(tmp_path / "mef.fits", params=params, nthreads=2)
    assert len(serial) == len(parallel) == 3
    for s, p in zip(serial, parallel):
        assert len(s.table) == len(p.table) > 10
        assert np.array_equal(np.asarray(s.table["XWIN_IMAGE"]), np.asarray(p.table["XWIN_IMAGE"]))
        assert s.header["EXTNAME"] == p.header["EXTNAME"]
    assert [r.header["FITSEXT"] for r in serial] == [1, 2, 3]
    assert list(np.unique(serial[2].table["EXT_NUMBER"])) == [3]
    # the RA of the third CCD is offset as its WCS says
    assert np.median(serial[2].table["ALPHA_J2000"]) > np.median(serial[0].table["ALPHA_J2000"]) + 0.03


def test_memory_limit_is_a_clear_error(tmp_path, monkeypatch):
    import terapix_sextractor.reading as ex  # memory planning
    from terapix_fw.errors import ToolError

    write_fits(tmp_path / "big.fits", np.zeros((64, 64), np.float32))
    monkeypatch.setattr(ex, "BYTES_PER_PIXEL", 10 ** 15)
    with pytest.raises(ToolError, match=r"big.fits.*64x64.*GiB.*strips"):
        extract(tmp_path / "big.fits", params=["X_IMAGE"])


def test_image_too_large_for_memory_is_processed_by_strips(tmp_path, monkeypatch):
    """With too little memory for the whole image, strips give the same catalogue (sources near strip
    edges included once, pixel and world coordinates in the full image)."""
    import terapix_sextractor.reading as ex  # memory planning

    rng = np.random.default_rng(4)
    xs, ys = rng.uniform(10, 190, 60), rng.uniform(10, 1190, 60)
    img = gaussian_image((1200, 200), [(x, y, 2e4, 2, 2, 0) for x, y in zip(xs, ys)], sky=100, noise=2, seed=5)
    fits.PrimaryHDU(img, simple_wcs_header(img.shape)).writeto(tmp_path / "tall.fits")
    params = ["NUMBER", "X_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE", "ALPHA_J2000", "DELTA_J2000", "FLUX_AUTO",
              "YPEAK_IMAGE", "FLAGS"]
    whole = extract(tmp_path / "tall.fits", params=params, BACK_SIZE=64)[0]
    # memory for 900 rows: strips of 192 core rows plus 256-row margins
    monkeypatch.setattr(ex, "_available_memory", lambda: 900 * 200 * ex.BYTES_PER_PIXEL)
    strips = extract(tmp_path / "tall.fits", params=params, BACK_SIZE=64)[0]
    assert strips.meta["IMHEAD"]["SEXSTRIP"] > 0
    assert len(strips) == len(whole) and list(strips["NUMBER"]) == list(range(1, len(whole) + 1))
    d, j = cKDTree(np.c_[strips["XWIN_IMAGE"], strips["YWIN_IMAGE"]]).query(np.c_[whole["XWIN_IMAGE"],
                                                                                   whole["YWIN_IMAGE"]])
    # identical but for a blended pair whose deblending sees a slightly different (per-strip) background
    assert np.all(d < 0.01) and np.mean(d < 1e-4) > 0.9
    assert np.allclose(strips["FLUX_AUTO"][j], whole["FLUX_AUTO"], rtol=2e-3)
    assert np.allclose(strips["DELTA_J2000"][j], whole["DELTA_J2000"], atol=1e-9)
    assert np.array_equal(strips["YPEAK_IMAGE"][j], whole["YPEAK_IMAGE"])


def test_cli_errors_name_keyword_and_file(tmp_path, sim_file, monkeypatch, capsys):
    path, _ = sim_file
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    sex = tmp_path / "my.sex"
    sex.write_text("CATALOG_TYPE FITS_LDAC\nBACK_SIZE 128\nFOO_BAR 3\n")
    from terapix_fw.errors import ConfigError
    with pytest.raises(ConfigError, match=r"my.sex:3.*FOO_BAR"):
        run_cli([path, "-c", sex], tmp_path)
    param = tmp_path / "q.param"
    param.write_text("X_IMAGE\nMAG_APER(3)\n")
    rc = run_cli([path, "-PARAMETERS_NAME", param, "-CATALOG_NAME", "x.cat", "-VERBOSE_TYPE", "QUIET"], tmp_path)
    assert rc == 0
    # MAG_APER(3) with one aperture: the extra columns stay blank (99), as SExtractor does
    rows = np.loadtxt(tmp_path / "x.cat")
    assert np.all(rows[:, 2:] == 99.0) and np.all(rows[:, 1] < 99)


def _sim_exposure(tmp_path):
    from terapix_fw.sim import simulate_exposure, small_focal_plane

    return simulate_exposure(tmp_path / "sim", seed=5, focal_plane=small_focal_plane(nccd=2, nx=1024, ny=1024),
                             density=4.0, star_density=3.0, nthreads=1)


@pytest.mark.skipif(shutil.which("scamp") is None or shutil.which("psfex") is None,
                    reason="scamp and psfex are not installed")
def test_real_scamp_and_psfex_accept_our_catalogues(tmp_path, monkeypatch):
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    res = _sim_exposure(tmp_path)
    param = tmp_path / "scamp_psfex.param"
    param.write_text("XWIN_IMAGE\nYWIN_IMAGE\nERRAWIN_IMAGE\nERRBWIN_IMAGE\nERRTHETAWIN_IMAGE\nX_IMAGE\nY_IMAGE\n"
                     "FLUX_AUTO\nFLUXERR_AUTO\nMAG_AUTO\nFLUX_APER(1)\nFLUXERR_APER(1)\nFLUX_RADIUS\nELONGATION\n"
                     "FLAGS\nFLAGS_WEIGHT\nSNR_WIN\nVIGNET(35,35)\n")
    assert run_cli([res.path, "-PARAMETERS_NAME", param, "-CATALOG_TYPE", "FITS_LDAC", "-CATALOG_NAME",
                    "exp.ldac", "-PHOT_APERTURES", "10", "-VERBOSE_TYPE", "QUIET"], tmp_path) == 0
    scamp = subprocess.run(["scamp", "exp.ldac", "-ASTREF_CATALOG", "FILE", "-ASTREFCAT_NAME",
                            str(res.reference_catalog), "-CHECKPLOT_TYPE", "NONE", "-SOLVE_PHOTOM", "N",
                            "-WRITE_XML", "N", "-VERBOSE_TYPE", "NORMAL"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert scamp.returncode == 0, scamp.stderr[-2000:]
    head = (tmp_path / "exp.head").read_text(errors="replace")
    assert head.count("END") == 2 and "PV1_1" in head  # one solved header per extension
    # the external astrometric residuals are at the 0.1" level: our XWIN/YWIN and errors are usable
    import re
    m = re.search(r'Group  1:\s+([\d.]+)"\s+([\d.]+)"', scamp.stderr)
    assert m and float(m.group(1)) < 0.1 and float(m.group(2)) < 0.1
    psfex = subprocess.run(["psfex", "exp.ldac", "-CHECKPLOT_TYPE", "NONE", "-CHECKIMAGE_TYPE", "NONE",
                            "-WRITE_XML", "N"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert psfex.returncode == 0, psfex.stderr[-2000:]
    psf = fits.getheader(tmp_path / "exp.psf", 1)
    # PSFEx selects most bright stars from our FLUX_RADIUS/SNR_WIN/ELONGATION and fits our VIGNETs well
    assert psf["ACCEPTED"] > 20
    assert psf["ACCEPTED"] > 0.8 * psf["LOADED"]
    assert psf["CHI2"] < 2.0


def test_pipeline_unit_per_extension_names_and_records(tmp_path):
    """As the runner calls it: one unit per image extension, outputs confined to the work directory,
    default names made unique per image and extension, a catalog record for RDBix."""
    import logging

    from terapix_fw.tool import StepContext
    from terapix_sextractor.tool import SExtractorTool

    hdus = [fits.PrimaryHDU()]
    for k in range(2):
        sim = make_image((150, 150), nstars=8, ngal=4, fwhm=3.0, seed=40 + k)
        hdus.append(fits.ImageHDU(sim.data, simple_wcs_header(sim.data.shape)))
    fits.HDUList(hdus).writeto(tmp_path / "exp.fits")
    (tmp_path / "p.param").write_text("X_IMAGE\nY_IMAGE\nFLUX_AUTO\n")
    cfg = SExtractorTool.parameter_set().resolve([("CATALOG_TYPE", "FITS_LDAC", "x.xml"),
                                                  ("PARAMETERS_NAME", str(tmp_path / "p.param"), "x.xml")])
    out = tmp_path / "out"
    for ext in (1, 2):
        ctx = StepContext(inputs=[tmp_path / "exp.fits"], config=cfg, outdir=out, log=logging.getLogger("t"),
                          extension=ext, nthreads=1)
        SExtractorTool().run(ctx)
        assert [p.kind for p in ctx.products] == ["catalog"]
        assert ctx.products[0].path.endswith(f"exp_{ext}.cat")
        kind, rec = ctx.records[0]
        assert kind == "catalog" and rec["nobjects"] > 5 and rec["nextensions"] == 1
        cat = read_ldac(ctx.products[0].path)
        assert len(cat) == 1 and cat[0].header["EXTNAME" if "EXTNAME" in cat[0].header else "FITSEXT"]
    from terapix_fw.errors import ToolError
    ctx = StepContext(inputs=[tmp_path / "exp.fits"], config=cfg, outdir=out, log=logging.getLogger("t"),
                      extension=3, nthreads=1)
    with pytest.raises(ToolError, match="no image extension 3"):
        SExtractorTool().run(ctx)


def test_blank_image_gives_an_empty_valid_catalogue(tmp_path, monkeypatch):
    """A CCD without sources (dead or blank) still yields a well-formed catalogue, as SExtractor does."""
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    write_fits(tmp_path / "blank.fits", np.random.default_rng(0).normal(100, 5, (64, 64)).astype(np.float32))
    param = tmp_path / "all.param"
    param.write_text("\n".join(PARAMS + ["FLUX_PETRO", "PETRO_RADIUS", "SNR_WIN", "ISO3", "FWHM_IMAGE",
                                         "ERRAWIN_IMAGE", "KRON_RADIUS"]) + "\n")
    assert run_cli([tmp_path / "blank.fits", "-PARAMETERS_NAME", param, "-CATALOG_TYPE", "FITS_LDAC",
                    "-CATALOG_NAME", "blank.ldac", "-DETECT_THRESH", "50", "-VERBOSE_TYPE", "QUIET"], tmp_path) == 0
    cat = read_ldac(tmp_path / "blank.ldac")[0]
    assert len(cat.objects) == 0 and cat.header["SEXNFIN"] == 0
    assert "VIGNET" in cat.objects.colnames and "XWIN_IMAGE" in cat.objects.colnames


def test_column_descriptions_fit_their_cards(tmp_path, sim_file):
    """Each TTYPEn carries the parameter's description as its comment, cut to fit 80 columns (astropy
    pads the value to column 30 once there is a comment): no card is truncated with a warning."""
    import warnings

    from terapix_sextractor.catalog import write_catalog
    from terapix_sextractor.paramdefs import BY_NAME

    path, _ = sim_file
    names = ["NUMBER", "FLUX_PETRO", "ISOAREAF_IMAGE", "ERRTHETAWIN_IMAGE", "X_IMAGE"]
    results = extract_results(path, params=names)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_catalog(tmp_path / "c.ldac", results, "FITS_LDAC")
    header = fits.getheader(tmp_path / "c.ldac", 2)
    for i, name in enumerate(names, start=1):
        card = header.cards[f"TTYPE{i}"]
        assert len(card.image.rstrip()) <= 80
        assert card.comment and BY_NAME[name][4].startswith(card.comment), (name, card.comment)
    assert len(header.cards["TTYPE3"].comment) > 30  # long descriptions are cut, not dropped
