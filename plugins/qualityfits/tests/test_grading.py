import pytest

from terapix_fw.errors import ConfigError
from terapix_qualityfits.grading import read_rules, suggest_grade


def test_packaged_rules_grade_worst_first():
    rules = read_rules()
    assert suggest_grade({"fwhm_arcsec": 0.7, "ellipticity": 0.03, "n_ccd_misplaced": 0}, rules) == ("A", [])
    grade, reasons = suggest_grade({"fwhm_arcsec": 1.5, "n_trails": 1}, rules)
    assert grade == "B" and len(reasons) == 2
    grade, reasons = suggest_grade({"fwhm_arcsec": 1.5, "multiple_image_fraction": 0.6}, rules)
    assert grade == "C" and any("guiding" in r for r in reasons)
    grade, _ = suggest_grade({"multiple_image_fraction": 0.6, "n_ccd_misplaced": 2}, rules)
    assert grade == "D"
    assert suggest_grade({"fwhm_arcsec": float("nan")}, rules)[0] == "A"  # missing values never trigger


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
