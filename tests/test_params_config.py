"""Parameter declarations, AstrOmatic configuration files and command lines."""
from __future__ import annotations

import pytest

from terapix_fw.config import parse_command_line, parse_config_text, read_config_file
from terapix_fw.errors import ConfigError
from terapix_fw.params import Parameter, ParameterSet

PARAMS = ParameterSet("sextractor", [
    Parameter("DETECT_THRESH", "float", [1.5], "detection threshold", nvalues=(1, 2)),
    Parameter("DETECT_MINAREA", "int", 5, "minimum area", minimum=1),
    Parameter("CATALOG_TYPE", "keyword", "ASCII_HEAD", "catalogue type",
              choices=("ASCII_HEAD", "FITS_LDAC", "FITS_1.0")),
    Parameter("PHOT_APERTURES", "float", [5.0], "aperture diameters", nvalues=(1, None)),
    Parameter("CLEAN", "bool", True, "clean spurious detections"),
    Parameter("CATALOG_NAME", "str", "test.cat", "catalogue name"),
])


def test_defaults_and_layer_precedence():
    file_layer = parse_config_text("DETECT_THRESH 3 # comment\nPHOT_APERTURES 3, 4\nCLEAN N\n", "a.sex")
    cmd_layer = [("DETECT_THRESH", "2", "command line")]
    config = PARAMS.resolve(file_layer, cmd_layer)
    assert config["DETECT_THRESH"] == [2.0]          # command line wins over the file
    assert config["PHOT_APERTURES"] == [3.0, 4.0]    # comma list from the file
    assert config["CLEAN"] is False
    assert config["DETECT_MINAREA"] == 5             # default
    assert config.sources["PHOT_APERTURES"] == "a.sex:2"
    assert config.command_line() == ["-DETECT_THRESH", "2.0", "-PHOT_APERTURES", "3.0,4.0", "-CLEAN", "N"]


def test_unknown_keyword_suggests_the_nearest():
    with pytest.raises(ConfigError) as err:
        PARAMS.resolve(parse_config_text("\n\nDETECT_TRESH 2\n", "my.sex"))
    assert str(err.value) == "my.sex:3: unknown parameter DETECT_TRESH for tool sextractor; did you mean DETECT_THRESH?"


@pytest.mark.parametrize("line, message", [
    ("DETECT_MINAREA two", "bad value 'two' for parameter DETECT_MINAREA of tool sextractor; expected an integer"),
    ("DETECT_MINAREA 0", "bad value '0' for parameter DETECT_MINAREA of tool sextractor; expected a value >= 1"),
    ("CATALOG_TYPE FITS_LDCA", "expected one of ASCII_HEAD, FITS_LDAC, FITS_1.0"),
    ("CLEAN maybe", "expected Y or N"),
    ("DETECT_THRESH 1,2,3", "takes 1 to 2 values, got 3"),
])
def test_bad_values_name_keyword_and_expectation(line, message):
    with pytest.raises(ConfigError) as err:
        PARAMS.resolve(parse_config_text(line, "x.sex"))
    assert message in str(err.value)
    assert str(err.value).startswith("x.sex:1:")


def test_dump_defaults_is_accepted_back(tmp_path):
    text = PARAMS.format_defaults(header="# defaults")
    path = tmp_path / "default.sex"
    path.write_text(text)
    config = PARAMS.resolve(read_config_file(path))
    assert dict(config) == PARAMS.defaults()
    assert "CATALOG_TYPE" in text and "# catalogue type (ASCII_HEAD, FITS_LDAC, FITS_1.0)" in text


def test_command_line_parsing():
    cmd = parse_command_line(["det.fits,img.fits", "-c", "default.sex", "-CATALOG_NAME", "x.cat",
                              "-DETECT_THRESH", "-1.5"])
    assert cmd.inputs == ["det.fits,img.fits"]
    assert cmd.config_file == "default.sex"
    assert cmd.overrides == [("CATALOG_NAME", "x.cat", "command line"), ("DETECT_THRESH", "-1.5", "command line")]
    with pytest.raises(ConfigError, match="option -CATALOG_NAME needs a value"):
        parse_command_line(["a.fits", "-CATALOG_NAME"])


def test_quoted_values_and_hash_inside_quotes():
    entries = parse_config_text('CATALOG_NAME "my file#1.cat"   # trailing comment', "q.sex")
    assert PARAMS.resolve(entries)["CATALOG_NAME"] == "my file#1.cat"
