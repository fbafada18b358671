"""Tests of the scamp plugin on synthetic catalogues with a known truth (terapix_scamp.synth).

Tolerances: the simulated centroid noise (0.8 px / SNR, 0.02 px floor) and reference errors (30 mas)
give solutions good to ~10-15 mas rms against the truth with ~100 detections per CCD; 30 mas rms
leaves room for seeds while failing for any real error (the first guesses are off by 0.2" to 1').
Zero points: ~600 overlap links give ~3 mmag; 0.01 mag is the issue's target.
"""
from __future__ import annotations

import logging
import shutil
import subprocess

import numpy as np
import pytest

from terapix_fw.errors import ToolError
from terapix_fw.tool import StepContext
from terapix_scamp.synth import head_errors, make_survey
from terapix_scamp.tool import ScampTool

LOG = logging.getLogger("test_scamp")


def run_tool(truth, tmp_path, **overrides):
    """Run the tool as a drop-in would (outputs beside the catalogues) and return the context."""
    layer = [("ASTREF_CATALOG", "FILE", None), ("ASTREFCAT_NAME", str(truth.refcat), None),
             ("CHECKPLOT_DEV", "NULL", None)]
    layer += [(k, v, None) for k, v in overrides.items()]
    config = ScampTool.parameter_set().resolve(layer)
    ctx = StepContext(inputs=[e.path for e in truth.exposures], config=config, outdir=tmp_path, log=LOG,
                      confine_outputs=False)
    ScampTool().run(ctx)
    return ctx


def dzp_from_head(truth, k, head):
    e = truth.exposures[k]
    return -2.5 * np.log10(head["FLXSCALE"] * e.exptime) + head["MAGZEROP"] - truth.phot_c + truth.phot_k * (
        e.airmass - 1)


def test_recovers_distortion_and_zero_points(tmp_path):
    from terapix_fw.headfile import read_head_file

    truth = make_survey(tmp_path, nexp=5, nccd=4, nsources_per_arcmin2=40, seed=3, k_radial=6e-4,
                        clouds=[0.0, 0.12, 0.25, 0.05, 0.0], photflags=[True, False, False, False, True])
    ctx = run_tool(truth, tmp_path)
    for k, e in enumerate(truth.exposures):
        head_path = e.path.with_suffix(".head")
        assert head_path.exists()
        err = head_errors(truth, k, head_path)
        assert np.sqrt(np.mean(err ** 2)) < 30.0, (k, np.sqrt(np.mean(err ** 2)))
        assert err.max() < 100.0
        head = read_head_file(head_path)[0]
        # the header ZP correction undoes the simulated cloud extinction (truth: dZP = -cloud)
        assert dzp_from_head(truth, k, head) == pytest.approx(-e.cloud, abs=0.01)
        assert head["PHOTLINK"] is True
    # the distortion really is there: the first-guess (plain TAN) WCS is off by much more
    from terapix_fw.ldac import read_ldac

    first = tmp_path / "first.head"
    from terapix_fw.headfile import write_head_file

    write_head_file(first, [ext.header for ext in read_ldac(truth.exposures[2].path)])
    solved = np.sqrt(np.mean(head_errors(truth, 2, truth.exposures[2].path.with_suffix(".head")) ** 2))
    assert np.sqrt(np.mean(head_errors(truth, 2, first) ** 2)) > 3 * solved
    kinds = [kind for kind, _ in ctx.records]
    assert kinds.count("astrometry") == 5 and kinds.count("photometry") == 5 and "scamp_group" in kinds


@pytest.mark.parametrize("guess, flipped", [
    ({"shift": (45.0, -35.0)}, False),
    ({"angle": 4.5}, False),
    ({"scale": 1.18}, False),
    ({"scale": 0.85, "angle": -3.0, "shift": (-20.0, 30.0)}, False),
    ({"shift": (42.0, -42.0), "angle": 4.8, "scale": 1.19}, False),  # near the SCAMP default limits
    ({"flip": True}, True),
    ({"flip": True, "shift": (30.0, 30.0), "angle": 3.0, "scale": 1.15}, True),
])
def test_pattern_matching_wrong_first_guess(tmp_path, guess, flipped):
    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=40, seed=5, first_guess={1: guess})
    ctx = run_tool(truth, tmp_path, MATCH_FLIPPED="Y" if flipped else "N", SOLVE_PHOTOM="N")
    err = head_errors(truth, 1, truth.exposures[1].path.with_suffix(".head"))
    assert np.sqrt(np.mean(err ** 2)) < 30.0
    assert ctx.records  # astrometry records emitted


def test_flipped_axis_needs_match_flipped(tmp_path):
    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=40, seed=6, first_guess={1: {"flip": True}})
    with pytest.raises(ToolError, match="exp01.cat"):
        run_tool(truth, tmp_path, MATCH_FLIPPED="N")
    assert not list(tmp_path.glob("*.head"))


def test_head_round_trip_through_astropy(tmp_path):
    """The .head read back by astropy gives the sky positions of the solution itself."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    from terapix_fw.headfile import format_head, parse_head_text
    from terapix_scamp.output import chip_solution_grid, field_headers
    from terapix_scamp.pipeline import run_scamp
    from terapix_scamp.sky import angular_sep

    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=7, k_radial=1e-3)
    for mosaic in ("UNCHANGED", "SAME_CRVAL"):
        config = ScampTool.parameter_set().resolve([("ASTREF_CATALOG", "FILE", None),
                                                    ("ASTREFCAT_NAME", str(truth.refcat), None),
                                                    ("MOSAIC_TYPE", mosaic, None)])
        run = run_scamp([e.path for e in truth.exposures], config, LOG)
        for k in range(3):
            heads = parse_head_text(format_head(field_headers(run, k, LOG)))
            assert len(heads) == 4
            for c, head in enumerate(heads):
                assert head["CTYPE1"] == "RA---TAN" and "PV1_7" in head  # SCAMP's TAN + PV (TPV) convention
                px, py, ra, dec = chip_solution_grid(run, k, c, n=7)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FITSFixedWarning)
                    wra, wdec = WCS(head).all_pix2world(px, py, 1)
                assert np.max(angular_sep(ra, dec, wra, wdec)) * 3.6e6 < 0.5  # mas


def test_projection_type_tpv(tmp_path):
    from terapix_fw.headfile import read_head_file

    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=40, seed=8)
    run_tool(truth, tmp_path, PROJECTION_TYPE="TPV", SOLVE_PHOTOM="N")
    head = read_head_file(truth.exposures[0].path.with_suffix(".head"))[0]
    assert head["CTYPE1"] == "RA---TPV" and head["CTYPE2"] == "DEC--TPV"
    err = head_errors(truth, 0, truth.exposures[0].path.with_suffix(".head"))
    assert np.sqrt(np.mean(err ** 2)) < 30.0


def test_too_few_matches_is_an_error_and_writes_nothing(tmp_path):
    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=40, seed=9)
    # a reference catalogue of another sky area: nothing can match
    other = make_survey(tmp_path / "other", nexp=1, nccd=4, nsources_per_arcmin2=40, seed=10, center=(151.0, 2.0))
    truth.refcat = other.refcat
    with pytest.raises(ToolError, match="exp00.cat.*reference"):
        run_tool(truth, tmp_path)
    assert not list(tmp_path.glob("*.head"))
    assert not (tmp_path / "scamp.xml").exists()


def test_clipping_of_injected_outliers(tmp_path):
    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=11, outlier_fraction=0.06)
    run_tool(truth, tmp_path, SOLVE_PHOTOM="N")
    clipped = np.sqrt(np.mean(np.concatenate([head_errors(truth, k, e.path.with_suffix(".head"))
                                              for k, e in enumerate(truth.exposures)]) ** 2))
    run_tool(truth, tmp_path, SOLVE_PHOTOM="N", ASTRCLIP_NSIGMA="1000")
    unclipped = np.sqrt(np.mean(np.concatenate([head_errors(truth, k, e.path.with_suffix(".head"))
                                                for k, e in enumerate(truth.exposures)]) ** 2))
    assert clipped < 30.0
    assert unclipped > 1.5 * clipped


def test_groups_instruments_and_summary(tmp_path):
    """Two filters, two separate sky areas: groups, instruments, XML tables and check-plots."""
    from astropy.io.votable import parse

    from terapix_fw.headfile import read_head_file

    a = make_survey(tmp_path, nexp=4, nccd=4, nsources_per_arcmin2=40, seed=12, filters=("g", "r"), name="a")
    # another sky area, observed in another run: its optics (simulated with another seed) differ
    b = make_survey(tmp_path / "b", nexp=2, nccd=4, nsources_per_arcmin2=40, seed=13, center=(152.0, 3.0),
                    name="b", qrunid="08BQ02")
    # one reference file holding both areas
    from astropy.table import vstack

    from terapix_fw.ldac import LdacExtension, read_ldac, write_ldac

    ra, rb = read_ldac(a.refcat)[0], read_ldac(b.refcat)[0]
    write_ldac(tmp_path / "both.cat", [LdacExtension(ra.header, vstack([ra.objects, rb.objects]))])
    names = "fgroups,distortion,astr_interror2d,astr_interror1d,astr_referror2d,astr_referror1d,phot_error,zpcorr,zpcorr3d"
    types = ("FGROUPS,DISTORTION,ASTR_INTERROR2D,ASTR_INTERROR1D,ASTR_REFERROR2D,ASTR_REFERROR1D,PHOT_ERROR,"
             "PHOT_ZPCORR,PHOT_ZPCORR3D")
    config = ScampTool.parameter_set().resolve([("ASTREF_CATALOG", "FILE", None),
                                                ("ASTREFCAT_NAME", str(tmp_path / "both.cat"), None),
                                                ("CHECKPLOT_TYPE", types, None), ("CHECKPLOT_NAME", names, None)])
    inputs = [e.path for e in a.exposures] + [e.path for e in b.exposures]
    ctx = StepContext(inputs=inputs, config=config, outdir=tmp_path, log=LOG, confine_outputs=False)
    ScampTool().run(ctx)
    groups = [read_head_file(p.with_suffix(".head"))[0]["FGROUPNO"] for p in inputs]
    assert groups == [1, 1, 1, 1, 2, 2]
    phot = [read_head_file(p.with_suffix(".head"))[0]["PHOTINST"] for p in inputs]
    assert phot[0] != phot[1] and phot[0] == phot[2]  # g, r, g, r
    astr = [read_head_file(p.with_suffix(".head"))[0]["ASTINST"] for p in inputs]
    assert len(set(astr)) == 3  # (g, 08AQ01), (r, 08AQ01), (r, 08BQ02)
    vot = parse(str(tmp_path / "scamp.xml"))
    tables = {t.name: t.to_table() for t in vot.iter_tables()}
    assert {"Fields", "FGroups", "Astrometric_Instruments", "Photometric_Instruments"} <= set(tables)
    assert len(tables["Fields"]) == 6 and len(tables["FGroups"]) == 2
    sigma = np.asarray(tables["FGroups"]["AstromSigma_Internal"])
    assert np.all(sigma > 0) and np.all(sigma < 0.1)  # arcsec
    assert np.all(np.asarray(tables["FGroups"]["AstromNDets_Reference"]) > 100)
    for name in names.split(","):
        assert (tmp_path / f"{name}_1.png").stat().st_size > 1000, name
    for k in range(2):
        err = head_errors(b, k, b.exposures[k].path.with_suffix(".head"))
        assert np.sqrt(np.mean(err ** 2)) < 30.0


def test_fix_focalplane_repairs_ccd_jitter(tmp_path):
    # Elixir-like first guess: the CCDs of one exposure are misplaced by 5" rms; matching the exposure as
    # a whole fails, the median focal plane of the other exposures repairs it
    truth = make_survey(tmp_path, nexp=4, nccd=9, nx=320, ny=320, nsources_per_arcmin2=40, seed=14,
                        first_guess={3: {"jitter": 5.0}})
    with pytest.raises(ToolError, match="exp03.cat"):
        run_tool(truth, tmp_path, MOSAIC_TYPE="UNCHANGED", SOLVE_PHOTOM="N")
    run_tool(truth, tmp_path, MOSAIC_TYPE="FIX_FOCALPLANE", SOLVE_PHOTOM="N")
    err = head_errors(truth, 3, truth.exposures[3].path.with_suffix(".head"))
    assert np.sqrt(np.mean(err ** 2)) < 30.0


def test_reference_formats_and_proper_motions(tmp_path):
    """The same reference stars read from LDAC, a FITS table with other column names, VOTable and CSV;
    proper motions move them to the epoch of observation."""
    from astropy.table import Table

    from terapix_fw.ldac import read_ldac
    from terapix_scamp.refcat import read_reference

    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=15, pm_mas_per_yr=50.0)
    table = read_ldac(truth.refcat)[0].objects
    base = ScampTool.parameter_set()
    ref = read_reference(base.resolve([("ASTREFCAT_NAME", str(truth.refcat), None)]), LOG)
    other = Table({"ra": table["X_WORLD"], "dec": table["Y_WORLD"], "e_ra": table["ERRA_WORLD"],
                   "e_dec": table["ERRB_WORLD"], "gmag": table["MAG"], "pmra": table["PMALPHA_J2000"],
                   "pmdec": table["PMDELTA_J2000"], "epoch": table["OBSDATE"]})
    other.write(tmp_path / "ref.fits")
    other.write(tmp_path / "ref.xml", format="votable")
    other.write(tmp_path / "ref.csv", format="ascii.csv")
    keys = [("ASTREFCENT_KEYS", "ra,dec", None), ("ASTREFERR_KEYS", "e_ra,e_dec", None),
            ("ASTREFMAG_KEY", "gmag", None), ("ASTREFPROP_KEYS", "pmra,pmdec", None),
            ("ASTREFOBSDATE_KEY", "epoch", None)]
    for name in ("ref.fits", "ref.xml", "ref.csv"):
        got = read_reference(base.resolve(keys + [("ASTREFCAT_NAME", str(tmp_path / name), None)]), LOG)
        assert len(got) == len(ref)
        np.testing.assert_allclose(got.ra, ref.ra, atol=1e-9)
        np.testing.assert_allclose(got.mag, ref.mag, atol=1e-5)
        assert got.has_pm
    ra8, dec8 = ref.at_epoch(2008.0)
    expected = ref.dec + ref.pmdec * 8.0 / 3.6e6
    np.testing.assert_allclose(dec8, expected, atol=1e-12)
    assert np.max(np.abs(dec8 - ref.dec)) * 3.6e6 > 200  # 50 mas/yr over 8 years does move stars
    # missing column: the error names the file and the keyword to set
    with pytest.raises(ToolError, match="ASTREFCENT_KEYS"):
        read_reference(base.resolve([("ASTREFCAT_NAME", str(tmp_path / "ref.csv"), None)]), LOG)
    # and a run with moving stars stays accurate because the reference is propagated to the epoch of
    # observation (MJD-OBS); ignoring the proper motions (400 mas over 8 years) leaves residuals against
    # the reference 10x the expected errors: that solution is rejected, naming the fields
    run_tool(truth, tmp_path, SOLVE_PHOTOM="N")
    with_pm = np.sqrt(np.mean(head_errors(truth, 0, truth.exposures[0].path.with_suffix(".head")) ** 2))
    assert with_pm < 30.0
    with pytest.raises(ToolError, match=r"exp00\.cat: reference residuals 0\.[3-6]"):
        run_tool(truth, tmp_path, SOLVE_PHOTOM="N", ASTREFPROP_KEYS="NOPM1,NOPM2")


def test_drop_in_command_line(tmp_path, monkeypatch):
    from terapix_fw.dropin import run_tool_command

    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=40, seed=16)
    conf = tmp_path / "cfhtls.scamp"
    conf.write_text("ASTREF_CATALOG FILE\nASTREFCAT_NAME ref.cat\nMAGZERO_OUT 30.0  # CFHTLS\nCHECKPLOT_DEV NULL\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    code = run_tool_command("scamp", ["exp00.cat", "exp01.cat", "-c", str(conf), "-DISTORT_DEGREES", "2"])
    assert code == 0
    from terapix_fw.headfile import read_head_file

    head = read_head_file(tmp_path / "exp01.head")[0]
    assert head["MAGZEROP"] == 30.0
    assert "PV1_7" not in head and "PV1_4" in head  # degree 2
    assert (tmp_path / "scamp.xml").exists()
    assert np.sqrt(np.mean(head_errors(truth, 1, tmp_path / "exp01.head") ** 2)) < 40.0


@pytest.mark.skipif(shutil.which("source-extractor") is None, reason="source-extractor not installed")
def test_reads_real_sextractor_catalogue(tmp_path):
    """An LDAC written by the real SExtractor loads: columns, selection and first-guess WCS."""
    from astropy.io import fits

    from terapix_scamp.catalogs import load_fields
    from terapix_scamp.pipeline import _first_guess

    rng = np.random.default_rng(1)
    data = rng.normal(100, 5, (200, 200)).astype("f4")
    yy, xx = np.mgrid[:200, :200]
    for _ in range(25):
        x, y = rng.uniform(10, 190, 2)
        data += rng.uniform(300, 3000) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0)
    h = fits.Header()
    for key, value in (("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", 150.0), ("CRVAL2", 2.0),
                       ("CRPIX1", 100.0), ("CRPIX2", 100.0), ("CD1_1", -5e-5), ("CD2_2", 5e-5), ("FILTER", "r"),
                       ("EXPTIME", 30.0)):
        h[key] = value
    fits.writeto(tmp_path / "im.fits", data, h)
    (tmp_path / "p.param").write_text("\n".join(["XWIN_IMAGE", "YWIN_IMAGE", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE",
                                                 "ERRTHETAWIN_IMAGE", "FLUX_AUTO", "FLUXERR_AUTO", "FLAGS",
                                                 "FLUX_RADIUS", "ELONGATION"]) + "\n")
    subprocess.run(["source-extractor", "im.fits", "-CATALOG_TYPE", "FITS_LDAC", "-CATALOG_NAME", "se.cat",
                    "-PARAMETERS_NAME", "p.param", "-FILTER", "N", "-VERBOSE_TYPE", "QUIET"], cwd=tmp_path,
                   check=True)
    config = ScampTool.parameter_set().resolve([])
    field = load_fields([tmp_path / "se.cat"], config, LOG)[0]
    assert field.ndet >= 15 and field.exptime == 30.0 and field.astr_key.startswith("FILTER=r")
    ra, dec, *_ = _first_guess(field, LOG)
    assert np.all(np.abs(ra - 150.0) < 0.01) and np.all(np.abs(dec - 2.0) < 0.01)


@pytest.mark.skipif(shutil.which("SWarp") is None, reason="SWarp not installed")
def test_real_swarp_reads_the_head(tmp_path):
    """SWarp applies our .head to an image: its output centre is where our WCS puts the image centre."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from terapix_fw.headfile import read_head_file, write_head_file

    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=40, seed=17,
                        first_guess={"all": {"shift": (30.0, 20.0)}})
    run_tool(truth, tmp_path, SOLVE_PHOTOM="N")
    head = read_head_file(truth.exposures[1].path.with_suffix(".head"))[1]
    image = tmp_path / "img.fits"
    hdr = fits.Header()
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
    hdr["CRVAL1"], hdr["CRVAL2"], hdr["CRPIX1"], hdr["CRPIX2"] = 0.0, 0.0, 1.0, 1.0  # wrong on purpose
    hdr["CD1_1"], hdr["CD2_2"] = -5e-5, 5e-5
    fits.writeto(image, np.zeros((truth.ny, truth.nx), "f4"), hdr)
    write_head_file(tmp_path / "img.head", [head])
    subprocess.run(["SWarp", "img.fits", "-HEADER_ONLY", "Y", "-SUBTRACT_BACK", "N", "-PIXELSCALE_TYPE", "MANUAL",
                    "-PIXEL_SCALE", "0.186", "-WRITE_XML", "N", "-VERBOSE_TYPE", "QUIET", "-IMAGEOUT_NAME",
                    "out.fits", "-WEIGHTOUT_NAME", "out.weight.fits"], cwd=tmp_path, check=True)
    out = fits.Header.fromfile(tmp_path / "out.fits")  # HEADER_ONLY: a header without its data, on purpose
    full = head.copy()
    full["NAXIS"], full["NAXIS1"], full["NAXIS2"] = 2, truth.nx, truth.ny
    ra, dec = WCS(full).all_pix2world([[0.5 * (truth.nx + 1), 0.5 * (truth.ny + 1)]], 1)[0]
    # SWarp centres its output on the input footprint it computes through the .head (TAN+PV): within a
    # pixel of our image centre (the output size is rounded to whole pixels); the image's own header is
    # 2 degrees away, so ignoring the .head or its PV terms would fail
    assert abs(out["CRVAL1"] - ra) * 3600 * np.cos(np.deg2rad(dec)) < 0.4
    assert abs(out["CRVAL2"] - dec) * 3600 < 0.4


def test_ahead_overrides_a_broken_first_guess(tmp_path):
    """A catalogue whose header WCS is 10' off matches once an .ahead file gives the right pointing."""
    from terapix_fw.headfile import write_head_file
    from terapix_fw.ldac import read_ldac

    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=40, seed=18,
                        first_guess={1: {"shift": (600.0, 0.0)}})
    with pytest.raises(ToolError, match="exp01.cat"):
        run_tool(truth, tmp_path, SOLVE_PHOTOM="N")
    good = make_survey(tmp_path / "good", nexp=2, nccd=4, nsources_per_arcmin2=40, seed=18)
    headers = []
    for ext in read_ldac(good.exposures[1].path):
        headers.append(type(ext.header)([(k, ext.header[k]) for k in ("CRVAL1", "CRVAL2")]))
    write_head_file(truth.exposures[1].path.with_suffix(".ahead"), headers)
    run_tool(truth, tmp_path, SOLVE_PHOTOM="N")
    err = head_errors(truth, 1, truth.exposures[1].path.with_suffix(".head"))
    assert np.sqrt(np.mean(err ** 2)) < 30.0


@pytest.mark.parametrize("overrides", [
    {"STABILITY_TYPE": "EXPOSURE"},
    {"MOSAIC_TYPE": "LOOSE"},
    {"FOCDISTORT_DEGREE": "0"},
])
def test_model_variants(tmp_path, overrides):
    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=50, seed=19)
    run_tool(truth, tmp_path, SOLVE_PHOTOM="N", **overrides)
    for k, e in enumerate(truth.exposures):
        err = head_errors(truth, k, e.path.with_suffix(".head"))
        assert np.sqrt(np.mean(err ** 2)) < 40.0, (overrides, k)


def test_internal_only_solution_without_reference(tmp_path):
    """ASTREF_CATALOG NONE: exposures are aligned on each other (internal residuals small) while the
    absolute position stays that of the first guesses."""
    from astropy.io.votable import parse

    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=20)
    run_tool(truth, tmp_path, ASTREF_CATALOG="NONE", SOLVE_PHOTOM="N")
    groups = next(t for t in parse(str(tmp_path / "scamp.xml")).iter_tables() if t.name == "FGroups").to_table()
    assert np.all(np.asarray(groups["AstromSigma_Internal"][0]) < 0.03)
    assert groups["AstromNDets_Reference"][0] == 0


def test_catalogue_from_the_sextractor_plugin(tmp_path, monkeypatch):
    """End to end: an image measured by the sextractor plugin (FITS_LDAC) is calibrated against a reference
    catalogue of its true star positions, starting from a header WCS that is 20" off."""
    sx = pytest.importorskip("terapix_sextractor.synth")
    from astropy.io import fits
    from astropy.table import Table
    from astropy.wcs import WCS

    from terapix_fw.dropin import run_tool_command
    from terapix_fw.ldac import LdacExtension, write_ldac
    from terapix_scamp.sky import angular_sep

    sim = sx.make_image((512, 512), nstars=150, ngal=30, fwhm=3.0, seed=21, mag_range=(17.0, 22.0))
    true_header = sx.simple_wcs_header(sim.data.shape)
    wrong = true_header.copy()
    wrong["CRVAL1"] += 20.0 / 3600.0
    wrong["GAIN"], wrong["EXPTIME"], wrong["FILTER"] = sim.gain, 60.0, "r"
    fits.PrimaryHDU(sim.data, wrong).writeto(tmp_path / "img.fits")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    (tmp_path / "scamp.param").write_text("\n".join(["XWIN_IMAGE", "YWIN_IMAGE", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE",
                                                     "ERRTHETAWIN_IMAGE", "FLUX_AUTO", "FLUXERR_AUTO", "FLAGS",
                                                     "FLUX_RADIUS", "ELONGATION"]) + "\n")
    assert run_tool_command("sextractor", ["img.fits", "-PARAMETERS_NAME", "scamp.param", "-CATALOG_TYPE",
                                           "FITS_LDAC", "-CATALOG_NAME", "img.cat", "-VERBOSE_TYPE", "QUIET"]) == 0
    truth = sim.truth
    stars = np.asarray(truth["class"]) == 1 if "class" in truth else np.ones(len(truth["x"]), bool)
    true_wcs = WCS(true_header)
    ra, dec = true_wcs.all_pix2world(np.asarray(truth["x"])[stars], np.asarray(truth["y"])[stars], 1)
    ref = Table({"X_WORLD": ra, "Y_WORLD": dec, "ERRA_WORLD": np.full(len(ra), 1e-5),
                 "ERRB_WORLD": np.full(len(ra), 1e-5), "MAG": np.asarray(truth["mag"])[stars]})
    refhdr = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0)])
    write_ldac(tmp_path / "ref.cat", [LdacExtension(refhdr, ref)])
    assert run_tool_command("scamp", ["img.cat", "-ASTREF_CATALOG", "FILE", "-ASTREFCAT_NAME", "ref.cat",
                                      "-DISTORT_DEGREES", "1", "-SOLVE_PHOTOM", "N", "-CHECKPLOT_DEV", "NULL"]) == 0
    from terapix_fw.headfile import read_head_file

    head = read_head_file(tmp_path / "img.head")[0]
    head["NAXIS"], head["NAXIS1"], head["NAXIS2"] = 2, 512, 512
    gx, gy = np.meshgrid(np.linspace(1, 512, 9), np.linspace(1, 512, 9))
    sra, sdec = WCS(head).all_pix2world(gx.ravel(), gy.ravel(), 1)
    tra, tdec = true_wcs.all_pix2world(gx.ravel(), gy.ravel(), 1)
    err = angular_sep(sra, sdec, tra, tdec) * 3.6e6
    assert np.sqrt(np.mean(err ** 2)) < 60.0  # mas; the header started 20" off


def test_photometry_without_astrometric_solution(tmp_path):
    """SOLVE_ASTROM N keeps the (matched) first guess but still cross-identifies for the photometry."""
    from terapix_fw.headfile import read_head_file

    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=22, clouds=[0.0, 0.2, 0.1])
    run_tool(truth, tmp_path, SOLVE_ASTROM="N")
    for k, e in enumerate(truth.exposures):
        head = read_head_file(e.path.with_suffix(".head"))[0]
        assert dzp_from_head(truth, k, head) == pytest.approx(-e.cloud, abs=0.01)


def test_photflux_key_selects_an_aperture_of_a_vector_column(tmp_path, caplog):
    """PHOTFLUX_KEY FLUX_APER(2) is the second aperture (SCAMP's syntax; the remedy when FLUX_AUTO's
    aperture loss depends on the PSF); a catalogue without FLUX_AUTO is fine then; an aperture number
    beyond the vector falls back to the first, with a warning, as SCAMP does."""
    from terapix_fw.headfile import read_head_file
    from terapix_fw.ldac import LdacExtension, read_ldac, write_ldac

    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=25, clouds=[0.0, 0.2, 0.1])
    for e in truth.exposures:
        exts = read_ldac(e.path)
        for x in exts:
            t = x.objects
            # aperture 1 is off by a factor that differs between the exposures: only aperture 2 is right
            t["FLUX_APER"] = np.column_stack([t["FLUX_AUTO"] * (1.0 + 0.1 * e.cloud), t["FLUX_AUTO"]])
            t["FLUXERR_APER"] = np.column_stack([t["FLUXERR_AUTO"], t["FLUXERR_AUTO"]])
            t.remove_columns(["FLUX_AUTO", "FLUXERR_AUTO"])
        write_ldac(e.path, [LdacExtension(x.header, x.objects) for x in exts])

    def dzp_errors(**keys):
        run_tool(truth, tmp_path, SOLVE_ASTROM="N", **keys)
        return [dzp_from_head(truth, k, read_head_file(e.path.with_suffix(".head"))[0]) + e.cloud
                for k, e in enumerate(truth.exposures)]

    assert np.abs(dzp_errors(PHOTFLUX_KEY="FLUX_APER(2)", PHOTFLUXERR_KEY="FLUXERR_APER(2)")).max() < 0.01
    with caplog.at_level(logging.WARNING):
        errors = dzp_errors(PHOTFLUX_KEY="FLUX_APER[3]", PHOTFLUXERR_KEY="FLUXERR_APER(2)")
    assert "not enough apertures for FLUX_APER[3] (2): using the first" in caplog.text
    assert errors[1] == pytest.approx(2.5 * np.log10(1.02), abs=0.01)  # aperture 1's bias
    with pytest.raises(ToolError, match="lacks column.*FLUX_AUTO"):
        dzp_errors()


@pytest.mark.skipif(shutil.which("scamp") is None, reason="scamp not installed")
def test_real_scamp_default_configuration_is_accepted(tmp_path):
    """Every keyword of ``scamp -dd`` is declared, with the same default values."""
    from terapix_fw.config import parse_config_text

    text = subprocess.run(["scamp", "-dd"], capture_output=True, text=True, check=True).stdout
    entries = parse_config_text(text, "scamp -dd")
    params = ScampTool.parameter_set()
    config = params.resolve(entries)
    assert {k for k, _, _ in entries} <= {p.name for p in params}
    differ = {k: v for k, v in config.non_defaults().items()}
    assert differ == {}, differ


def test_chip_without_detections_keeps_its_first_guess(tmp_path):
    from terapix_fw.ldac import LdacExtension, read_ldac, write_ldac

    truth = make_survey(tmp_path, nexp=2, nccd=4, nsources_per_arcmin2=40, seed=23)
    for e in truth.exposures:
        exts = read_ldac(e.path)
        exts[2].objects["FLAGS"][:] = 0x10  # rejected by FLAGS_MASK 0x00f0
        write_ldac(e.path, [LdacExtension(x.header, x.objects) for x in exts])
    run_tool(truth, tmp_path, SOLVE_PHOTOM="N")
    err = head_errors(truth, 1, truth.exposures[1].path.with_suffix(".head"), n=10).reshape(4, -1)
    assert np.sqrt(np.mean(err[[0, 1, 3]] ** 2)) < 30.0
    assert np.max(err[2]) < 1500.0  # the plain-TAN first guess: sub-arcsecond, not garbage


def test_photometric_anchors_may_move_by_magzero_referr(tmp_path):
    """Two "photometric" exposures that disagree by 0.04 mag: the overlaps keep their true difference and
    the anchors share the disagreement (each moves by ~0.02, within a few MAGZERO_REFERR)."""
    from terapix_fw.headfile import read_head_file

    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=24, clouds=[0.0, 0.04, 0.15],
                        photflags=[True, True, False])
    run_tool(truth, tmp_path)
    dzp = [dzp_from_head(truth, k, read_head_file(e.path.with_suffix(".head"))[0])
           for k, e in enumerate(truth.exposures)]
    assert dzp[1] - dzp[0] == pytest.approx(-0.04, abs=0.01)
    assert dzp[2] - dzp[0] == pytest.approx(-0.15, abs=0.01)
    assert dzp[0] == pytest.approx(0.02, abs=0.01) and dzp[1] == pytest.approx(-0.02, abs=0.01)


def test_pipeline_mode_writes_into_the_step_directory(tmp_path):
    """In a pipeline run outputs are confined to the step's directory: the heads go there, named after
    the catalogues, and are declared as products of kind head."""
    truth = make_survey(tmp_path / "cats", nexp=2, nccd=4, nsources_per_arcmin2=40, seed=25)
    config = ScampTool.parameter_set().resolve([("ASTREF_CATALOG", "FILE", None),
                                                ("ASTREFCAT_NAME", str(truth.refcat), None),
                                                ("CHECKPLOT_DEV", "NULL", None)])
    out = tmp_path / "step"
    ctx = StepContext(inputs=[e.path for e in truth.exposures], config=config, outdir=out, log=LOG)
    ScampTool().run(ctx)
    heads = sorted(p.kind for p in ctx.products)
    assert heads.count("head") == 2 and "xml" in heads
    assert (out / "exp00.head").exists() and (out / "exp01.head").exists()
    assert not list((tmp_path / "cats").glob("*.head"))


def test_block_sparse_normal_equations_match_the_dense_solution(tmp_path):
    """Large systems keep the exposure part of the normal matrix block-sparse (scipy.sparse, SuperLU); on a
    small survey forced through that path (threshold 0 parameters) the solution equals the dense Cholesky
    one, including a chip whose degree is lowered (its terms held at zero in both storages)."""
    from terapix_scamp.pipeline import run_scamp

    truth = make_survey(tmp_path, nexp=4, nccd=4, nsources_per_arcmin2=40, seed=26, filters=("g", "r"))
    _keep_bottom_of_chip(truth, 2, 0.3)
    config = ScampTool.parameter_set().resolve([("ASTREF_CATALOG", "FILE", None),
                                                ("ASTREFCAT_NAME", str(truth.refcat), None),
                                                ("SOLVE_PHOTOM", "N", None)])
    paths = [e.path for e in truth.exposures]
    dense = run_scamp(paths, config, LOG).astrom
    sparse = run_scamp(paths, config, LOG, sparse_above=0).astrom
    assert sparse.model.nparam == dense.model.nparam > 0
    assert (dense.model.block_degree < 3).any()
    np.testing.assert_array_equal(sparse.model.block_degree, dense.model.block_degree)
    np.testing.assert_allclose(np.hypot(sparse.xi - dense.xi, sparse.eta - dense.eta) * 3.6e6, 0.0, atol=0.01)


def _keep_bottom_of_chip(truth, ext: int, fraction: float) -> None:
    """Drop the detections of extension ``ext`` above ``fraction`` of its height in every catalogue."""
    from terapix_fw.ldac import LdacExtension, read_ldac, write_ldac

    for e in truth.exposures:
        exts = read_ldac(e.path)
        objects = exts[ext].objects
        exts[ext] = LdacExtension(exts[ext].header, objects[objects["YWIN_IMAGE"] < fraction * truth.ny])
        write_ldac(e.path, [LdacExtension(x.header, x.objects) for x in exts])

def _xml_table(path, name):
    import warnings

    from astropy.io.votable import parse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return next(t for t in parse(str(path)).iter_tables() if t.name == name).to_table()


def test_under_constrained_chip_gets_a_lower_degree(tmp_path, monkeypatch):
    """DISTORT_DEGREES 3 on a chip whose detections all lie in its bottom 30%: a cubic is free to run away
    over the other 70% (several arcsec when forced), so that chip is solved with a lower degree (logged, in
    the XML and the warnings) and stays within 0.5" of the truth everywhere; well-sampled chips keep 3."""
    import terapix_scamp.astrom as astrom

    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=31)
    _keep_bottom_of_chip(truth, 2, 0.3)

    def chip_errors():
        return np.array([head_errors(truth, k, e.path.with_suffix(".head"), n=10).reshape(4, -1)
                         for k, e in enumerate(truth.exposures)]).transpose(1, 0, 2).reshape(4, -1)

    run_tool(truth, tmp_path, SOLVE_PHOTOM="N", DISTORT_DEGREES="3")
    err = chip_errors()
    chips = _xml_table(tmp_path / "scamp.xml", "Astrometric_Chips")
    assert chips["Distort_Degree"][2] < 3 and list(chips["Distort_Degree"][[0, 1, 3]]) == [3, 3, 3]
    warnings = list(_xml_table(tmp_path / "scamp.xml", "Warnings")["Text"])
    assert any("extension 3: distortion degree lowered from 3" in str(w) for w in warnings)
    assert err[2].max() < 500.0
    assert np.sqrt(np.mean(err[[0, 1, 3]] ** 2)) < 30.0
    # the same solution with every chip forced to degree 3 runs away on the under-sampled chip
    monkeypatch.setattr(astrom, "MAX_LEVERAGE", np.inf)
    monkeypatch.setattr(astrom, "MAX_JACOBIAN_CHANGE", np.inf)
    run_tool(truth, tmp_path, SOLVE_PHOTOM="N", DISTORT_DEGREES="3")
    assert list(_xml_table(tmp_path / "scamp.xml", "Astrometric_Chips")["Distort_Degree"]) == [3, 3, 3, 3]
    assert chip_errors()[2].max() > 4 * err[2].max()


def test_folding_polynomial_is_detected():
    """folded_blocks flags a chip polynomial whose Jacobian changes sign (a fold) or runs away on the chip,
    not a smooth distortion of a few parts per thousand."""
    from terapix_scamp.astrom import AstromModel, folded_blocks

    nt = 10
    model = AstromModel(3, -1, np.zeros((1, 2), np.int64), np.array([[512.0, 512.0]] * 2), np.full(1, -1),
                        np.zeros((1, 2)), np.ones(1), np.zeros((1, 2, 2, 3)))
    theta = np.zeros(model.npoly)
    for b in range(2):  # 0.05 deg per half chip, plus 0.2% of cubic terms
        theta[b * 2 * nt + 1] = theta[b * 2 * nt + nt + 2] = 0.05
        theta[b * 2 * nt + 7] = theta[b * 2 * nt + nt + 9] = 1e-4
    assert len(folded_blocks(model, theta)) == 0
    theta[2 * nt + 7] = 0.05  # block 1: d xi/dx = 0.05 (1 + 3 x^2): 4x the centre's at the edges
    assert list(folded_blocks(model, theta)) == [1]
    model.block_degree[1] = 1  # a linear block cannot fold: not flagged
    assert len(folded_blocks(model, theta)) == 0


def _phot_fields(dims, photflags):
    from types import SimpleNamespace

    return [SimpleNamespace(exptime=100.0, airmass=1.0, phot_c=25.0, phot_k=0.0, phot_key="r", photflag=p)
            for p in photflags]


def test_photometric_solution_uses_every_pair_and_clips_as_scamp():
    """SCAMP's photsolve on cross-identified detections: the dimmed exposures' corrections come back to
    within their statistical error, the photometric field stays at 0, and detections hit by an artefact
    (0.3-0.8 mag too faint, as a cosmic ray or a bad column would make them) are clipped by the internal
    rms (photclip) and do not move the solution; detections of the photometric field pull each source."""
    from types import SimpleNamespace

    from terapix_scamp.photom import solve_photometry

    rng = np.random.default_rng(7)
    dims = np.array([0.0, 0.12, 0.25, 0.05])
    nsrc, nfield = 600, len(dims)
    true_mag = rng.uniform(17.0, 22.0, nsrc)
    field = np.repeat(np.arange(nfield)[None, :], nsrc, 0).ravel()
    labels = np.repeat(np.arange(nsrc), nfield)
    sigma = 0.002 * 10 ** (0.2 * (true_mag - 17.0))  # photon noise, mag
    sig = np.repeat(sigma, nfield)
    mag = np.repeat(true_mag, nfield) + dims[field] + rng.normal(0.0, 1.0, len(field)) * sig
    bad = (field == 1) & (rng.random(len(field)) < 0.05)
    mag[bad] += rng.uniform(0.3, 0.8, int(bad.sum()))
    flux = 100.0 * 10 ** (-0.4 * (mag - 25.0))
    det = SimpleNamespace(field=field, flux=flux, fluxerr=flux * sig / 1.0857,
                          phot_ok=np.ones(len(field), bool))
    config = {"MAGZERO_INTERR": [0.01], "MAGZERO_REFERR": [0.03], "PHOTCLIP_NSIGMA": 3.0, "PHOT_ACCURACY": 1e-3}
    sol = solve_photometry(det, labels, _phot_fields(dims, [True, False, False, False]), config, LOG)
    assert np.abs(sol.dzp + dims).max() < 0.003, sol.dzp
    assert sol.linked.all()
    # the artefacts are clipped (every link touching one), and few good links with them
    touching = bad[sol.link_i] | bad[sol.link_j]
    assert not sol.link_ok[touching].any()
    assert (~sol.link_ok[~touching]).mean() < 0.02
    # without the photometric field, the set gets a dummy anchor (its first field) and PHOTLINK F
    sol = solve_photometry(det, labels, _phot_fields(dims, [False] * 4), config, LOG)
    assert not sol.linked.any() and abs(sol.dzp[0]) < 1e-4
    assert np.abs(sol.dzp - sol.dzp[0] + dims).max() < 0.003


def test_detections_with_weight_flags_stay_out_of_the_photometry(tmp_path):
    """A detection whose FLAGS_WEIGHT is non-zero (a bad column or a masked pixel in its footprint: its flux
    misses light) is kept by WEIGHTFLAGS_MASK 0 but is "truncated" for SCAMP, which PHOT_FLAGSMASK rejects:
    half the detections of an exposure with 30% of their flux missing and FLAGS_WEIGHT set do not bias its
    zero point."""
    from terapix_fw.headfile import read_head_file
    from terapix_fw.ldac import LdacExtension, read_ldac, write_ldac

    truth = make_survey(tmp_path, nexp=3, nccd=4, nsources_per_arcmin2=40, seed=27, clouds=[0.0, 0.2, 0.1])
    rng = np.random.default_rng(3)
    exts = read_ldac(truth.exposures[1].path)
    for x in exts:
        t = x.objects
        hit = rng.random(len(t)) < 0.5
        t["FLUX_AUTO"][hit] *= 0.7
        t["FLAGS_WEIGHT"] = np.where(hit, 2, 0).astype(np.int16)
    write_ldac(truth.exposures[1].path, [LdacExtension(x.header, x.objects) for x in exts])
    run_tool(truth, tmp_path, SOLVE_ASTROM="N", WEIGHTFLAGS_MASK="0")
    for k, e in enumerate(truth.exposures):
        head = read_head_file(e.path.with_suffix(".head"))[0]
        assert dzp_from_head(truth, k, head) == pytest.approx(-e.cloud, abs=0.01)
