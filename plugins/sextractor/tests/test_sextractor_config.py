"""Configuration (.sex), parameter (.param), filter (.conv) and network (.nnw) files, and the drop-in CLI."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from terapix_fw.errors import ConfigError
from terapix_sextractor.paramfile import parse_param_text, read_param_file
from terapix_sextractor.tool import SExtractorTool


def test_every_sextractor_keyword_is_declared_with_its_default():
    """Compare with ``source-extractor -dd``: every keyword it prints exists here with the same default."""
    exe = shutil.which("source-extractor")
    if exe is None:
        pytest.skip("source-extractor is not installed")
    text = subprocess.run([exe, "-dd"], capture_output=True, text=True).stdout
    params = SExtractorTool.parameter_set()
    checked = 0
    for line in text.splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]+)\s+(.*?)\s*(#.*)?$", line)
        if not m:
            continue
        name, raw = m.group(1), m.group(2).strip()
        assert name in params, f"SExtractor keyword {name} is not declared"
        p = params[name]
        if name in ("NTHREADS",):  # 0 = all cores here (parallel build); the Debian build prints 1
            continue
        if raw == "":
            assert p.default in ([], "", None), name
        else:
            assert p.parse(raw, "sextractor") == p.default, f"{name}: default {p.default!r} != {raw!r}"
        checked += 1
    assert checked > 60


def test_unknown_keyword_names_keyword_and_file(tmp_path):
    from terapix_sextractor.extraction import resolve_config

    sex = tmp_path / "bad.sex"
    sex.write_text("DETECT_THRESH 3\nDETECT_TRESH 2   # typo\n")
    with pytest.raises(ConfigError) as err:
        resolve_config(sex)
    msg = str(err.value)
    assert "DETECT_TRESH" in msg and "bad.sex:2" in msg and "DETECT_THRESH" in msg  # suggestion


def test_bad_value_names_keyword_and_expectation(tmp_path):
    from terapix_sextractor.extraction import resolve_config

    sex = tmp_path / "v.sex"
    sex.write_text("BACKPHOTO_TYPE SOMETIMES\n")
    with pytest.raises(ConfigError, match=r"v.sex:1.*BACKPHOTO_TYPE.*GLOBAL, LOCAL"):
        resolve_config(sex)


def test_config_file_values_and_command_line_precedence(tmp_path):
    from terapix_sextractor.extraction import resolve_config

    sex = tmp_path / "c.sex"
    sex.write_text("PHOT_APERTURES 3, 4   # CFHTLS\nBACK_SIZE 256\nCATALOG_TYPE FITS_LDAC\n")
    cfg = resolve_config(sex, BACK_SIZE=128)
    assert cfg["PHOT_APERTURES"] == [3.0, 4.0]
    assert cfg["BACK_SIZE"] == [128]
    assert cfg["CATALOG_TYPE"] == "FITS_LDAC"
    assert cfg["DETECT_THRESH"] == [1.5]  # SExtractor default


def test_param_file_vectors_comments_and_descriptions(tmp_path):
    path = tmp_path / "x.param"
    path.write_text("# catalogue\nNUMBER\nMAG_APER(2)   Fixed aperture magnitude vector  [mag]\n"
                    "VIGNET(35,35)  # for PSFEx\n  FLUX_RADIUS(3)\nX_IMAGE            Object position along x\n")
    plist = read_param_file(path)
    assert [(p.name, p.shape) for p in plist] == [("NUMBER", ()), ("MAG_APER", (2,)), ("VIGNET", (35, 35)),
                                                   ("FLUX_RADIUS", (3,)), ("X_IMAGE", ())]


@pytest.mark.parametrize("text,pattern", [
    ("NUMBER\nX_IMAGEE\n", r"p.param:2.*unknown catalogue parameter X_IMAGEE"),
    ("SPREAD_MODEL\n", r"p.param:1.*SPREAD_MODEL.*does not measure"),
    ("VIGNET\n", r"p.param:1.*VIGNET needs a size"),
    ("NUMBER\nNUMBER\n", r"p.param:2.*listed twice"),
    ("# nothing\n", r"no catalogue parameter"),
])
def test_param_file_errors(tmp_path, text, pattern):
    path = tmp_path / "p.param"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        read_param_file(path)


def test_filter_file_normalisation_and_errors(tmp_path):
    from terapix_sextractor.filters import read_filter

    conv = tmp_path / "g.conv"
    conv.write_text("CONV NORM\n# comment\n1 2 1\n2 4 2\n1 2 1\n")
    k = read_filter(conv)
    assert k.shape == (3, 3) and abs(k.sum() - 1) < 1e-6 and k[1, 1] == pytest.approx(0.25)
    conv.write_text("CONV NONORM\n1 1\n1 1\n")
    assert read_filter(conv).sum() == pytest.approx(4.0)
    conv.write_text("1 2 1\n")
    with pytest.raises(ConfigError, match="CONV NORM"):
        read_filter(conv)
    with pytest.raises(ConfigError, match="missing.conv"):
        read_filter(tmp_path / "missing.conv")


def test_nnw_round_trip_and_sextractor_file(tmp_path):
    from terapix_sextractor.classifier import default_nnw_path, read_nnw, write_nnw

    net = read_nnw(default_nnw_path())
    out = tmp_path / "copy.nnw"
    write_nnw(out, net, ["copy"])
    again = read_nnw(out)
    x = np.random.default_rng(0).normal(size=(20, 10))
    assert np.allclose(net(x), again(x), rtol=1e-5)
    sex_nnw = "/usr/share/source-extractor/default.nnw"
    if shutil.which("source-extractor"):
        sex = read_nnw(sex_nnw)  # SExtractor's own file reads with the same code
        assert sex.layers == [10, 10, 1]
    bad = tmp_path / "bad.nnw"
    bad.write_text("NNW\n 3 10 10 1\n1 2 3\n")
    with pytest.raises(ConfigError, match="bad.nnw.*malformed"):
        read_nnw(bad)


def test_describe_inputs_dual_form():
    tool = SExtractorTool()
    assert tool.describe_inputs(["det.fits,img.fits"]) == ["det.fits", "img.fits"]
    assert tool.describe_inputs(["img.fits"]) == ["img.fits"]
    from terapix_fw.errors import ToolError
    with pytest.raises(ToolError, match="DETECTION_IMAGE,IMAGE"):
        tool.describe_inputs(["a.fits,b.fits,c.fits"])


def test_param_text_inline():
    plist = parse_param_text("FLUX_APER(1)\nMAG_AUTO\n")
    assert plist[0].shape == ()  # a vector of one is a scalar column, as SExtractor writes it


@pytest.mark.parametrize("key,value", [("DETECT_TYPE", "PHOTO"), ("DGEO_TYPE", "PIXEL"),
                                       ("CATALOG_TYPE", "ASCII_SKYCAT")])
def test_unsupported_settings_are_refused_up_front(tmp_path, key, value):
    from terapix_sextractor.extraction import extract_results

    with pytest.raises(ConfigError, match=f"{key} {value}.*not supported"):
        extract_results(tmp_path / "never-read.fits", params=["X_IMAGE"], **{key: value})


def test_classifier_training_is_reproducible(tmp_path, capsys):
    """train_classifier (quick mode) writes a valid .nnw; the same seed gives the same weights."""
    from terapix_sextractor.classifier import read_nnw
    from terapix_sextractor.train_classifier import main

    a, b = tmp_path / "a.nnw", tmp_path / "b.nnw"
    assert main(["--quick", "--seed", "3", "--out", str(a)]) == 0
    assert main(["--quick", "--seed", "3", "--out", str(b)]) == 0
    assert a.read_text() == b.read_text()
    net = read_nnw(a)
    assert net.layers == [10, 10, 10, 1]
    out = capsys.readouterr().out
    acc = float(out.split("training accuracy")[1].split()[0])
    assert acc > 0.8
