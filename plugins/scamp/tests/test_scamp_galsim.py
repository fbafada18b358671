"""The scamp drop-in against the real SCAMP on data neither was made with: GalSim-rendered MegaCam-like
exposures (terapix_testdata.galsim_survey), catalogued by the real SExtractor, both programs with issue 14's
configuration (ASTREF_CATALOG FILE, MOSAIC_TYPE UNCHANGED, DISTORT_DEGREES 3, ASTRINSTRU_KEY FILTER,QRUNID,
STABILITY_TYPE INSTRUMENT, SOLVE_PHOTOM Y, MAGZERO_OUT 30) on the same catalogues.

Tolerances (issue 14): astrometric rms against the true WCS <= SCAMP's + 1 mas; zero points of every
exposure within 0.01 mag of the truth.  With FLUX_AUTO that target is out of any solver's reach on these
data: the Kron aperture misses a share of the untruncated Moffat wings that depends on the exposure's PSF,
so on the stars both exposures use, FLUX_AUTO alone puts the seed-21 exposures 1700003p and 1700004p
-7..-12 and -17..-20 mmag off (``truth_fluxes.zero_point_floor``).  So the solver is tested where the
truth is known exactly (true total fluxes in the same catalogues: errors <= 1 mmag), the 0.01 mag target
with a flux that holds the whole PSF (PHOTFLUX_KEY FLUX_APER(1) of 40 px, 7.4"), and, with FLUX_AUTO, on
landing where the clean stars' fluxes put each zero point (SCAMP does not: saturated stars SExtractor
leaves unflagged survive its clip and move it by up to +20 mmag with FLUX_AUTO and +33 with the aperture).
Small CCDs (512x1024; 512x1152 for the 36-CCD mosaic) keep the tests short; full-size figures are in
benchmarks/bench_scamp_independent.py.  Timing is never asserted here.
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("galsim")

from terapix_testdata import galsim_survey as gs  # noqa: E402
from terapix_testdata import reference_runs as rr  # noqa: E402
from terapix_testdata import truth_fluxes as tf  # noqa: E402

#: zero-point error allowed on any exposure against the truth (issue 14), mag
ZP_MAX_ERROR = 0.01
#: statistical error of the median bias of a few hundred stars (scatter ~0.03 mag each), mag
FLOOR_TOLERANCE = 0.003


def require(name: str) -> None:
    """A missing reference program fails under CI=true (the comparison must not silently stop)."""
    if rr.program(name) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed; CI runs this regression test against it")
        pytest.skip(f"{name} not installed")


def _compare(tmp_path, preset="small", **survey):
    require("source-extractor")
    require("scamp")
    out = tmp_path / "survey"
    gs.make_survey(out, preset=preset, **survey)
    cats, _ = rr.sextractor_catalogs(out, tmp_path / "cats")
    ref = out / "reference.cat"
    # both programs at once, each in its own directory (SCAMP's matching is mostly one thread: on two cores
    # the drop-in's run costs no wall time beside it)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(rr.run_scamp, cats, ref, tmp_path / name, ours=mine)
                for name, mine in (("scamp", False), ("ours", True))]
        real, ours = (r.result() for r in runs)
    assert real["ok"], real["stderr"][-2000:]
    assert ours["ok"], (ours["stdout"] + ours["stderr"])[-2000:]
    return out, real, ours, gs.score_heads(out, real["heads"]), gs.score_heads(out, ours["heads"])


def assert_zero_points_follow_the_flux(out, cats, score, flux_key="FLUX_AUTO"):
    """Each dimmed exposure's zero-point error lies where the clean stars' fluxes put it: between the floor
    of the bright stars and that of all stars (``truth_fluxes.zero_point_floor``, the flux's own bias
    against the photometric exposure on the stars both use), give or take FLOOR_TOLERANCE; the photometric
    exposures stay at 0 within it."""
    floor = tf.zero_point_floor(out, cats, flux_key)
    for name, dzp in zp_errors(score).items():
        if name not in floor:
            assert abs(dzp) <= FLOOR_TOLERANCE, (name, zp_errors(score))
            continue
        ends = [v for v in (floor[name]["bright"], floor[name]["stars"]) if v == v]
        assert min(ends) - FLOOR_TOLERANCE <= dzp <= max(ends) + FLOOR_TOLERANCE, (name, dzp, floor[name])


def zp_errors(score: dict) -> dict:
    """Zero-point error (mag) of every exposure of a :func:`gs.score_heads` result."""
    return {name: e["dzp"] for name, e in score["exposures"].items()}


@pytest.fixture(scope="module")
def few_arcsec(tmp_path_factory):
    """Seed 21: header errors of a few arcsec; photometric r (beta 3.4) and i (3.3), dimmed r (3.0) and i
    (2.6).  Both programs run on the same SExtractor catalogues."""
    tmp_path = tmp_path_factory.mktemp("few_arcsec")
    return tmp_path, _compare(tmp_path, seed=21)


def test_header_errors_of_a_few_arcsec(few_arcsec):
    tmp_path, (out, real, ours, s_real, s_ours) = few_arcsec
    assert s_ours["rms_mas"] <= s_real["rms_mas"] + 1.0, (s_ours, s_real)
    assert s_ours["max_mas"] < 100.0
    # the XML gives residuals and matched counts per extension
    from astropy.io.votable import parse

    tables = {t.name: t.to_table() for t in parse(str(ours["xml"])).iter_tables()}
    chips = tables["Fields_Extensions"]
    assert len(chips) == 4 * 4 and min(chips["AstromNDets_Reference_HighSN"]) >= 10
    assert max(chips["AstromSigma_Reference_HighSN"].max(axis=1)) < 0.06
    # MATCH N on a first guess 3-6" off: cross-identification within 2" picks chance pairs; the drop-in
    # must refuse that solution and name the fields (SCAMP writes it)
    bad = rr.run_scamp(sorted(ours["heads"][0].parent.glob("*.cat")), out / "reference.cat", tmp_path / "nomatch",
                       ours=True, extra={"MATCH": "N"})
    assert not bad["ok"]
    # named with its residuals or with the reference stars it lost (the solution keeps few chance pairs)
    assert "astrometric solution rejected" in bad["stderr"]
    assert re.search(r"p\.cat: (reference residuals|\d+ reference matches for)", bad["stderr"]), bad["stderr"][-2000:]
    assert not any(h.exists() for h in bad["heads"])


def test_zero_points_of_every_exposure(few_arcsec):
    """The zero-point error of each exposure against the truth, with three fluxes of the same detections."""
    tmp_path, (out, real, ours, s_real, s_ours) = few_arcsec
    ref = out / "reference.cat"
    cats = sorted(ours["heads"][0].parent.glob("*.cat"))
    # FLUX_AUTO's own error here exceeds the 0.01 mag target (1700004p: -17 mmag on the bright stars, -20 on
    # all): the solver must land on it, not beside it (unflagged saturated stars put SCAMP at +2 there)
    assert_zero_points_follow_the_flux(out, cats, s_ours)
    # the same catalogues with each source's true total flux: nothing left but the solver's own error
    tcats, frac = tf.true_flux_catalogs(out, cats, tmp_path / "cats_trueflux")
    assert frac > 0.5
    exact = rr.run_scamp(tcats, ref, tmp_path / "ours_trueflux", ours=True)
    assert exact["ok"], (exact["stdout"] + exact["stderr"])[-2000:]
    s_exact = gs.score_heads(out, exact["heads"])
    assert s_exact["zp_max"] <= 0.001, zp_errors(s_exact)
    # a 40-pixel aperture (5-10 FWHM) holds all but a few mmag of any of these PSFs: issue 14's target;
    # its saturated stars (lighter in the dimmed exposures) must not pull the solution
    acats, _ = rr.sextractor_catalogs(out, tmp_path / "cats_aper40", extra_params=("FLUX_APER(1)", "FLUXERR_APER(1)"),
                                      extra_args=("-PHOT_APERTURES", "40"))
    aper = rr.run_scamp(acats, ref, tmp_path / "ours_aper40", ours=True,
                        extra={"PHOTFLUX_KEY": "FLUX_APER(1)", "PHOTFLUXERR_KEY": "FLUXERR_APER(1)"})
    assert aper["ok"], (aper["stdout"] + aper["stderr"])[-2000:]
    s_aper = gs.score_heads(out, aper["heads"])
    assert s_aper["zp_max"] <= ZP_MAX_ERROR, zp_errors(s_aper)
    assert_zero_points_follow_the_flux(out, acats, s_aper, "FLUX_APER")


def test_thirty_arcsec_half_degree_one_percent_with_distortion(tmp_path):
    out, real, ours, s_real, s_ours = _compare(
        tmp_path, seed=3, wcs_error_arcsec=20.0, wcs_error_max_arcsec=30.0, rotation_max_deg=0.5,
        scale_error_max=0.01, distortion_arcsec=4.0)
    summary = (out / "truth" / "survey.json").read_text()
    assert '"distortion_k": 0.0' not in summary
    assert s_ours["rms_mas"] <= s_real["rms_mas"] + 1.0, (s_ours, s_real)
    assert_zero_points_follow_the_flux(out, sorted(ours["heads"][0].parent.glob("*.cat")), s_ours)


#: MegaCam's 9x4 mosaic at the small36 preset's CCD size (512x1152, ~20-50 high-S/N reference matches per
#: CCD and exposure), two r exposures (one photometric, one dimmed by 0.19 mag); seed 93 is the first seed
#: whose plan puts one first guess at issue 14's three limits at once: 30.0" off, rotated by 0.47 deg, scale
#: off by -0.96% (the other one: 8.3").  With CCDs of 256x576 there are four times fewer stars per CCD:
#: SCAMP's per-chip cubics are then
#: poorly constrained on some CCDs (seed 5: 1.5" rms, 22" at the worst corner without distortion; 75 mas rms,
#: 0.63" with it), and "ours <= SCAMP + 1 mas" would test nothing.
MOSAIC36 = dict(preset="small36", nexp=2, filters=("r",), seed=93, wcs_error_arcsec=20.0, wcs_error_max_arcsec=30.0,
                rotation_max_deg=0.5, scale_error_max=0.01)
#: SCAMP's solution must hold on every CCD for the comparison to mean something: its worst grid point is
#: ~0.09" on these data, with and without distortion (seed 44: 0.11"; with CCDs of 384x864 0.32-0.62", with
#: 256x576 0.63-22"), mas
SCAMP_SOLVED_MAX_MAS = 300.0


def _distortion_k(out) -> list:
    """The true WCS's radial distortion coefficient of every exposure (0: pure TAN), from the truth."""
    summary = json.loads((out / "truth" / "survey.json").read_text())
    return [e["distortion_k"] for e in summary["exposures"]]


# 72 CCDs rendered by GalSim (~12 s), catalogued by SExtractor (~5 s), solved by both programs at once
# (SCAMP ~15 s, ours ~5 s): ~40 s of CPU
@pytest.mark.timeout(1800)
def test_thirty_arcsec_half_degree_one_percent_on_36_ccds(tmp_path):
    """MegaCam's 9x4 mosaic (:data:`MOSAIC36`), pure TAN true WCS: both programs on the same catalogues."""
    out, real, ours, s_real, s_ours = _compare(tmp_path, **MOSAIC36)
    assert _distortion_k(out) == [0.0, 0.0]
    assert len(ours["heads"]) == 2
    assert s_real["max_mas"] < SCAMP_SOLVED_MAX_MAS, s_real   # SCAMP solves every CCD: the comparison bites
    assert s_ours["rms_mas"] <= s_real["rms_mas"] + 1.0, (s_ours, s_real)
    assert_zero_points_follow_the_flux(out, sorted(ours["heads"][0].parent.glob("*.cat")), s_ours)


@pytest.mark.timeout(1800)
def test_thirty_arcsec_half_degree_one_percent_with_distortion_on_36_ccds(tmp_path):
    """The same survey with a radial distortion in the true WCS, 4" at the mosaic's corner (a cubic over the
    focal plane: up to 0.25" left on a corner CCD after the best per-chip affine fit), both
    programs with DISTORT_DEGREES 3 on the same catalogues; then MATCH N on the same catalogues, which must
    be refused."""
    out, real, ours, s_real, s_ours = _compare(tmp_path, distortion_arcsec=4.0, **MOSAIC36)
    assert all(k > 0.0 for k in _distortion_k(out))
    assert len(ours["heads"]) == 2
    assert s_real["max_mas"] < SCAMP_SOLVED_MAX_MAS, s_real
    assert s_ours["rms_mas"] <= s_real["rms_mas"] + 1.0, (s_ours, s_real)
    cats = sorted(ours["heads"][0].parent.glob("*.cat"))
    assert_zero_points_follow_the_flux(out, cats, s_ours)
    # the XML gives residuals and matched counts for each of the 72 extensions
    from astropy.io.votable import parse

    tables = {t.name: t.to_table() for t in parse(str(ours["xml"])).iter_tables()}
    chips = tables["Fields_Extensions"]
    assert len(chips) == 2 * 36 and min(chips["AstromNDets_Reference_HighSN"]) >= 10
    assert max(chips["AstromSigma_Reference_HighSN"].max(axis=1)) < 0.06
    # 151-221 matched detections per chip fix a cubic over all of it (worst leverage 2.05): the distortion
    # is fitted at DISTORT_DEGREES everywhere.  (Ours lowered extension 22 to degree 2 after a "fold"
    # here, 0.16" off at its corner, until the first pass weighted detections with the first guess's error:
    # a chance pair of stars 2" apart, S/N 600 and 2100, had bent that chip by arcseconds.)
    assert set(tables["Astrometric_Chips"]["Distort_Degree"]) == {3}, tables["Warnings"]
    # MATCH N on first guesses 8-30" off: cross-identification within CROSSID_RADIUS (2") can only pick
    # chance pairs.  SCAMP writes that solution (tens of arcsec off, worse than the first guess); the
    # drop-in must refuse it, name the fields and write no header.
    ref = out / "reference.cat"
    blind = rr.run_scamp(cats, ref, tmp_path / "scamp_nomatch", ours=False, extra={"MATCH": "N"})
    assert blind["ok"], blind["stderr"][-2000:]
    assert not gs.score_heads(out, blind["heads"])["rms_mas"] <= 5000.0  # (NaN: a TPV gone wild, as bad)
    bad = rr.run_scamp(cats, ref, tmp_path / "ours_nomatch", ours=True, extra={"MATCH": "N"})
    assert not bad["ok"]
    assert "astrometric solution rejected" in bad["stderr"]
    assert all(re.search(rf"{re.escape(c.name)}: (reference residuals|\d+ reference matches for)", bad["stderr"]) for c in cats), \
        bad["stderr"][-2000:]
    assert not any(h.exists() for h in bad["heads"])
