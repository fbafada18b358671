import pytest

from terapix_fw.errors import ConfigError
from terapix_qualityfits.grading import read_rules, suggest_grade


#: the metrics every gradable exposure has (the "missing" rules grade D without them)
MEASURED = {"fwhm_arcsec": 0.7, "back_adu": 1200.0, "back_rms_adu": 30.0, "ndet": 850}


def test_packaged_rules_grade_worst_first():
    rules = read_rules()
    good = {**MEASURED, "ellipticity": 0.03, "n_ccd_misplaced": 0}
    assert suggest_grade(good, rules) == ("A", [])
    grade, reasons = suggest_grade({**MEASURED, "fwhm_arcsec": 1.5, "n_trails": 1}, rules)
    assert grade == "B" and len(reasons) == 2
    grade, reasons = suggest_grade({**MEASURED, "fwhm_arcsec": 1.5, "multiple_image_fraction": 0.6}, rules)
    assert grade == "C" and any("guiding" in r for r in reasons)
    grade, _ = suggest_grade({**MEASURED, "multiple_image_fraction": 0.6, "n_ccd_misplaced": 2}, rules)
    assert grade == "D"
    # a NaN metric never triggers a comparison rule (ellipticity > 0.25 is not "true" for NaN)
    assert suggest_grade({**MEASURED, "ellipticity": float("nan")}, rules)[0] == "A"


@pytest.mark.parametrize("metric", ["fwhm_arcsec", "back_adu", "back_rms_adu", "ndet"])
@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), "n/a"])
def test_unmeasured_metric_grades_d_with_the_reason(metric, value):
    """Grades never reward what could not be measured: each metric an exposure must have (seeing,
    background, noise, source counts) grades D when absent, NaN, infinite or not a number."""
    metrics = dict(MEASURED)
    if value is None:
        del metrics[metric]
    else:
        metrics[metric] = value
    grade, reasons = suggest_grade(metrics, read_rules())
    assert grade == "D"
    assert any(metric in r and "could not be measured" in r for r in reasons), reasons


@pytest.mark.parametrize("metric, value, why", [("ndet", 0, "no source detected"),
                                                ("back_rms_adu", 0.0, "no noise")])
def test_empty_or_flat_exposure_grades_d(metric, value, why):
    grade, reasons = suggest_grade({**MEASURED, metric: value}, read_rules())
    assert grade == "D" and any(why in r for r in reasons)


def test_missing_rule_syntax(tmp_path):
    path = tmp_path / "r.rules"
    path.write_text("C zeropoint missing no photometric zero point\nX zeropoint missing\n")
    with pytest.raises(ConfigError, match=r"r.rules:2.*grade 'X'"):
        read_rules(path)
    path.write_text("C zeropoint missing no photometric zero point\n")
    rules = read_rules(path)
    assert suggest_grade({"zeropoint": 25.0}, rules) == ("A", [])
    assert suggest_grade({}, rules)[0] == "C"


def test_rules_file_errors_name_the_line(tmp_path):
    path = tmp_path / "r.rules"
    path.write_text("# comment\nB fwhm_arcsec > 1.0 bad seeing\nE fwhm_arcsec > 2 nope\n")
    with pytest.raises(ConfigError, match=r"r.rules:3.*grade 'E'"):
        read_rules(path)
    path.write_text("B fwhm_arcsec => 1.0\n")
    with pytest.raises(ConfigError, match="operator"):
        read_rules(path)
    path.write_text("C ellipticity > 0.2 custom reason\n")
    assert suggest_grade({"ellipticity": 0.3}, read_rules(path)) == ("C", [
        "C: custom reason (ellipticity = 0.3 > 0.2)"])
