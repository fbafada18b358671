"""The scamp drop-in against the real SCAMP on data neither was made with: GalSim-rendered MegaCam-like
exposures (terapix_testdata.galsim_survey), catalogued by the real SExtractor, both programs with issue 14's
configuration (ASTREF_CATALOG FILE, MOSAIC_TYPE UNCHANGED, DISTORT_DEGREES 3, ASTRINSTRU_KEY FILTER,QRUNID,
STABILITY_TYPE INSTRUMENT, SOLVE_PHOTOM Y, MAGZERO_OUT 30) on the same catalogues.

Tolerances (issue 14): astrometric rms against the true WCS <= SCAMP's + 1 mas; zero points of every
exposure within 0.01 mag of the truth.  With FLUX_AUTO that target is out of any solver's reach on these
data: the Kron aperture misses a share of the untruncated Moffat wings that depends on the exposure's PSF
(beta 2.6 against 3.3 here: 11 mmag more on the brightest unsaturated stars, 16-40 on fainter ones; ours
is off by 18 mmag on that exposure, SCAMP by 17 on another, through saturated stars SExtractor leaves
unflagged).  So the solver is tested where the truth is known exactly (true total fluxes in the same
catalogues: errors <= 1 mmag), the 0.01 mag target with a flux that holds the whole PSF (PHOTFLUX_KEY
FLUX_APER(1) of 40 px, 7.4"), and FLUX_AUTO within 0.02 mag.  Small CCDs (512x1024) keep the tests near
two minutes; full-size figures are in benchmarks/bench_scamp_independent.py.  Timing is never asserted
here.
"""
from __future__ import annotations

import os

import pytest

pytest.importorskip("galsim")

from terapix_testdata import galsim_survey as gs  # noqa: E402
from terapix_testdata import reference_runs as rr  # noqa: E402
from terapix_testdata import truth_fluxes as tf  # noqa: E402

#: zero-point error allowed on any exposure against the truth (issue 14), mag
ZP_MAX_ERROR = 0.01
#: ... with FLUX_AUTO, whose aperture loss differs by up to ~0.02 mag between these exposures' PSFs
ZP_MAX_ERROR_FLUX_AUTO = 0.02
#: zero-point difference allowed between ours and SCAMP on the same catalogues: the same photometric solution
#: (photsolve.c: every pair, photometric detections as anchors, photclip), fed from a cross-identification
#: that differs in a few detections (friends-of-friends against SCAMP's nearest neighbour), mag
ZP_SCAMP_AGREEMENT = 0.003


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
    real = rr.run_scamp(cats, ref, tmp_path / "scamp", ours=False)
    ours = rr.run_scamp(cats, ref, tmp_path / "ours", ours=True)
    assert real["ok"], real["stderr"][-2000:]
    assert ours["ok"], (ours["stdout"] + ours["stderr"])[-2000:]
    return out, real, ours, gs.score_heads(out, real["heads"]), gs.score_heads(out, ours["heads"])


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
    assert "astrometric solution rejected" in bad["stderr"] and "p.cat: reference residuals" in bad["stderr"]
    assert not any(h.exists() for h in bad["heads"])


def test_zero_points_of_every_exposure(few_arcsec):
    """The zero-point error of each exposure against the truth, with three fluxes of the same detections."""
    tmp_path, (out, real, ours, s_real, s_ours) = few_arcsec
    ref = out / "reference.cat"
    assert s_ours["zp_max"] <= ZP_MAX_ERROR_FLUX_AUTO, zp_errors(s_ours)
    # the same catalogues with each source's true total flux: nothing left but the solver's own error
    cats = sorted(ours["heads"][0].parent.glob("*.cat"))
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


def test_thirty_arcsec_half_degree_one_percent_with_distortion(tmp_path):
    out, real, ours, s_real, s_ours = _compare(
        tmp_path, seed=3, wcs_error_arcsec=20.0, wcs_error_max_arcsec=30.0, rotation_max_deg=0.5,
        scale_error_max=0.01, distortion_arcsec=4.0)
    summary = (out / "truth" / "survey.json").read_text()
    assert '"distortion_k": 0.0' not in summary
    assert s_ours["rms_mas"] <= s_real["rms_mas"] + 1.0, (s_ours, s_real)
    assert s_ours["zp_max"] <= ZP_MAX_ERROR_FLUX_AUTO, zp_errors(s_ours)


def test_thirty_arcsec_half_degree_one_percent_on_36_ccds(tmp_path):
    """MegaCam's 9x4 mosaic (CCDs of 256x576 to keep the test short), first guesses off by up to 30", 0.5 deg
    and 1% in scale: both programs on the same catalogues; the zero points agree with SCAMP's."""
    out, real, ours, s_real, s_ours = _compare(
        tmp_path, preset="small36", nx=256, ny=576, nexp=3, filters=("r",), seed=5, wcs_error_arcsec=20.0,
        wcs_error_max_arcsec=30.0, rotation_max_deg=0.5, scale_error_max=0.01)
    assert len(ours["heads"]) == 3
    assert s_ours["rms_mas"] <= s_real["rms_mas"] + 1.0, (s_ours, s_real)
    assert s_ours["zp_max"] <= ZP_MAX_ERROR_FLUX_AUTO, zp_errors(s_ours)
    for name, dzp in zp_errors(s_ours).items():
        assert abs(dzp - zp_errors(s_real)[name]) <= ZP_SCAMP_AGREEMENT, (zp_errors(s_ours), zp_errors(s_real))
