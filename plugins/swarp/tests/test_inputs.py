"""Inputs and outputs: ``.head`` overriding (simple and MEF), weight-map types and RESCALE_WEIGHTS,
background subtraction, resample-only mode, RICE output, output header, drop-in command line, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from terapix_fw.headfile import format_head

RA, DEC = 150.0, 2.0
SRC = (150.0010, 2.0005)
FLUX = 1000.0


def _measure(image, x, y, half=12):
    ix, iy = int(round(x)), int(round(y))
    box = image[iy - 1 - half: iy + half, ix - 1 - half: ix + half].astype(np.float64)
    yy, xx = np.mgrid[iy - half: iy + half + 1, ix - half: ix + half + 1]
    total = box.sum()
    return total, (box * xx).sum() / total, (box * yy).sum() / total


def _where(path, lon, lat):
    return WCS(fits.getheader(path)).all_world2pix([[lon, lat]], 1)[0]


def test_head_file_overrides_astrometry_and_flxscale(synth, tmp_path, run_swarp):
    """IMAGE.head beside the image replaces its WCS and sets FLXSCALE, as SWarp reads it."""
    true = synth.tan_header(150, 140, RA, DEC, 0.2, rot_deg=5.0)
    img = synth.gaussian_image(true, [(SRC[0], SRC[1], FLUX)], noise=1e-3)
    wrong = true.copy()
    wrong["CRVAL1"] = RA + 4.0 / 3600  # a first-guess WCS 4" off
    synth.write_image(tmp_path / "h.fits", wrong, img)
    head = fits.Header()
    for key in ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        head[key] = true[key]
    head["FLXSCALE"] = 2.0
    (tmp_path / "h.head").write_text(format_head([head]))
    # a scale change spreads the sampling phases over the source; at a pure sub-pixel shift Lanczos3 biases
    # centroids by up to 0.02 px (its normalised taps do not reproduce linear functions), in SWarp too
    common = dict(COMBINE_TYPE="WEIGHTED", SUBTRACT_BACK="N", CENTER_TYPE="MANUAL", CENTER=f"{RA},{DEC}",
                  PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE="0.17", IMAGE_SIZE="180")
    run_swarp([tmp_path / "h.fits"], **common)
    x, y = _where(tmp_path / "coadd.fits", *SRC)
    total, xc, yc = _measure(fits.getdata(tmp_path / "coadd.fits"), x, y)
    assert abs(xc - x) < 0.01 and abs(yc - y) < 0.01
    assert total == pytest.approx(2.0 * FLUX, rel=1e-3)
    # without the .head (another HEADER_SUFFIX) the source lands 4" = 23.5 px away, with its flux
    run_swarp([tmp_path / "h.fits"], HEADER_SUFFIX=".nohead", IMAGEOUT_NAME="raw.fits", **common)
    raw = fits.getdata(tmp_path / "raw.fits")
    total_raw, xr, _ = _measure(raw, x - 4 / 0.17 * np.cos(np.radians(2.0)), y)
    assert total_raw == pytest.approx(FLUX, rel=2e-3)
    assert abs(xr - x) > 15


def test_mef_head_blocks_apply_per_extension(synth, tmp_path, run_swarp):
    """In a MEF the k-th END-terminated block of the .head goes to the k-th image extension."""
    hdus = [fits.PrimaryHDU()]
    heads = []
    sources = [(RA - 0.004, DEC, 500.0), (RA + 0.004, DEC, 700.0)]
    for k, (ra, dec, flux) in enumerate(sources):
        h = synth.tan_header(120, 120, ra, dec, 0.2)
        img = synth.gaussian_image(h, [(ra, dec, flux)], noise=1e-3, seed=k)
        shifted = h.copy()
        shifted["CRVAL2"] = dec + 3.0 / 3600
        hdus.append(fits.ImageHDU(img, shifted, name=f"CCD{k}"))
        head = fits.Header()
        head["CRVAL2"] = dec
        head["FLXSCALE"] = 1.0 + k
        heads.append(head)
    fits.HDUList(hdus).writeto(tmp_path / "mef.fits")
    (tmp_path / "mef.head").write_text(format_head(heads))
    result = run_swarp([tmp_path / "mef.fits"], COMBINE_TYPE="WEIGHTED", SUBTRACT_BACK="N",
                       PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE="0.2")
    out = fits.getdata(tmp_path / "coadd.fits")
    for k, (ra, dec, flux) in enumerate(sources):
        x, y = _where(tmp_path / "coadd.fits", ra, dec)
        total, xc, yc = _measure(out, x, y)
        assert abs(yc - y) < 0.01
        assert total == pytest.approx(flux * (1.0 + k), rel=1e-3)
    assert dict(result.records)["stack"]["ninputs"] == 2


@pytest.mark.parametrize("wtype", ["MAP_RMS", "MAP_VARIANCE"])
def test_weight_types_are_equivalent(synth, tmp_path, run_swarp, wtype):
    """MAP_WEIGHT w, MAP_VARIANCE 1/w and MAP_RMS 1/sqrt(w) describe the same noise: same co-add and weight.
    RESCALE_WEIGHTS N because SWarp does not rescale MAP_RMS."""
    rng = np.random.default_rng(5)
    paths = []
    for i in range(3):
        h = synth.tan_header(100, 90, RA + 5e-4 * i, DEC, 0.2, rot_deg=4.0 * i)
        data = rng.normal(0, 1, (90, 100)).astype(np.float32)
        w = rng.uniform(0.5, 2.0, (90, 100)).astype(np.float32)
        w[rng.random(w.shape) < 0.02] = 0
        synth.write_image(tmp_path / f"w{i}.fits", h, data)
        fits.PrimaryHDU(w, h).writeto(tmp_path / f"w{i}.weight.fits")
        other = {"MAP_RMS": np.where(w > 0, 1 / np.sqrt(np.where(w > 0, w, 1)), 0),
                 "MAP_VARIANCE": np.where(w > 0, 1 / np.where(w > 0, w, 1), 0)}[wtype]
        fits.PrimaryHDU(other.astype(np.float32), h).writeto(tmp_path / f"w{i}.other.fits")
        paths.append(tmp_path / f"w{i}.fits")
    common = dict(COMBINE_TYPE="WEIGHTED", SUBTRACT_BACK="N", RESCALE_WEIGHTS="N")
    run_swarp(paths, WEIGHT_TYPE="MAP_WEIGHT", IMAGEOUT_NAME="a.fits", WEIGHTOUT_NAME="a.w.fits", **common)
    run_swarp(paths, WEIGHT_TYPE=wtype, WEIGHT_SUFFIX=".other.fits", IMAGEOUT_NAME="b.fits",
              WEIGHTOUT_NAME="b.w.fits", **common)
    np.testing.assert_allclose(fits.getdata(tmp_path / "a.fits"), fits.getdata(tmp_path / "b.fits"),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fits.getdata(tmp_path / "a.w.fits"), fits.getdata(tmp_path / "b.w.fits"),
                               rtol=1e-5)


def test_rescale_weights_and_background(synth, tmp_path, run_swarp):
    """RESCALE_WEIGHTS brings a weight map that is 4x too large back to 1/sigma^2 of the measured noise,
    and SUBTRACT_BACK removes a sloped sky; BACK_TYPE MANUAL subtracts BACK_DEFAULT instead."""
    rng = np.random.default_rng(9)
    ny, nx = 256, 256
    h = synth.tan_header(nx, ny, RA, DEC, 0.2)
    yy, xx = np.mgrid[0:ny, 0:nx]
    # a gentle slope: the rms measured in 64-pixel meshes (which RESCALE_WEIGHTS compares to the weights)
    # would include a steep one
    sky = 200.0 + 0.005 * xx + 0.002 * yy
    data = (sky + rng.normal(0, 2.0, (ny, nx))).astype(np.float32)
    synth.write_image(tmp_path / "s.fits", h, data)
    fits.PrimaryHDU(np.full((ny, nx), 4 / 2.0 ** 2, np.float32), h).writeto(tmp_path / "s.weight.fits")
    grid = dict(CENTER_TYPE="MANUAL", CENTER=f"{RA},{DEC}", PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE="0.2",
                IMAGE_SIZE=str(nx), RESAMPLING_TYPE="NEAREST", COMBINE_TYPE="WEIGHTED",
                WEIGHT_TYPE="MAP_WEIGHT", BACK_SIZE="64")
    run_swarp([tmp_path / "s.fits"], **grid)
    out = fits.getdata(tmp_path / "coadd.fits")[8:-8, 8:-8]
    w = fits.getdata(tmp_path / "coadd.weight.fits")[8:-8, 8:-8]
    assert abs(np.median(out)) < 0.1  # the slope is gone
    assert np.median(w) == pytest.approx(1 / 2.0 ** 2, rel=0.05)
    run_swarp([tmp_path / "s.fits"], RESCALE_WEIGHTS="N", BACK_TYPE="MANUAL", BACK_DEFAULT="150",
              IMAGEOUT_NAME="m.fits", WEIGHTOUT_NAME="m.weight.fits", **grid)
    m = fits.getdata(tmp_path / "m.fits")[8:-8, 8:-8]
    assert np.median(m) == pytest.approx(np.median(sky[8:-8, 8:-8]) - 150.0, abs=0.5)
    assert np.median(fits.getdata(tmp_path / "m.weight.fits")) == pytest.approx(1.0, rel=1e-5)


def test_resample_only_keeps_resampled_images(synth, tmp_path, run_swarp):
    """COMBINE N keeps <name><RESAMPLE_SUFFIX> and its .weight beside, each with a standard WCS."""
    paths = []
    for i in range(2):
        h = synth.tan_header(100, 90, RA + 1e-3 * i, DEC, 0.2, rot_deg=10.0 * i)
        img = synth.gaussian_image(h, [(SRC[0], SRC[1], FLUX)], noise=1e-3, seed=i)
        paths.append(synth.write_image(tmp_path / f"r{i}.fits", h, img, EXPTIME=30.0))
    (tmp_path / "resamp").mkdir()
    result = run_swarp(paths, COMBINE="N", RESAMPLE_DIR="resamp", SUBTRACT_BACK="N", PIXELSCALE_TYPE="MANUAL",
                       PIXEL_SCALE="0.17")
    assert not (tmp_path / "coadd.fits").exists()
    kinds = sorted(p.kind for p in result.products)
    assert kinds == ["resampled", "resampled", "resampled_weight", "resampled_weight"]
    for i in range(2):
        image = tmp_path / "resamp" / f"r{i}.resamp.fits"
        weight = tmp_path / "resamp" / f"r{i}.resamp.weight.fits"
        assert image.exists() and weight.exists()
        x, y = _where(image, *SRC)
        total, xc, yc = _measure(fits.getdata(image), x, y)
        assert abs(xc - x) < 0.01 and abs(yc - y) < 0.01
        assert total == pytest.approx(FLUX, rel=1e-3)
        assert fits.getheader(image)["EXPTIME"] == 30.0


def test_output_header_keywords(synth, tmp_path, run_swarp):
    """EXPTIME (sum over the deepest overlap), GAIN, SATURATE (minimum), MAGZEROP and the input list."""
    paths = []
    for i in range(3):
        h = synth.tan_header(100, 90, RA + 2e-4 * i, DEC, 0.2)
        data = np.random.default_rng(i).normal(0, 1, (90, 100)).astype(np.float32)
        paths.append(synth.write_image(tmp_path / f"k{i}.fits", h, data, EXPTIME=100.0 + i, GAIN=2.0,
                                       SATURATE=30000.0 + 1000 * i, OBJECT="D1"))
    far = synth.tan_header(50, 50, RA + 0.02, DEC, 0.2)
    paths.append(synth.write_image(tmp_path / "far.fits", far, np.zeros((50, 50), np.float32) + 1,
                                   EXPTIME=1000.0, GAIN=2.0))
    run_swarp(paths, COMBINE_TYPE="AVERAGE", SUBTRACT_BACK="N", PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE="0.2")
    h = fits.getheader(tmp_path / "coadd.fits")
    assert h["EXPTIME"] == pytest.approx(303.0)  # the far image does not overlap the others
    assert h["GAIN"] == pytest.approx(6.0)  # AVERAGE of 3: w1^2/w2 = 9 / (3/2)
    assert h["SATURATE"] == pytest.approx(30000.0, rel=1e-4)  # area ratio 1
    assert h["MAGZEROP"] == 30.0
    assert h["OBJECT"] == "D1"
    assert [h[f"FILE{i:04d}"] for i in range(1, 5)] == ["k0.fits", "k1.fits", "k2.fits", "far.fits"]
    assert WCS(h).has_celestial


def test_tile_compress_and_xml(synth, tmp_path, run_swarp):
    h = synth.tan_header(80, 80, RA, DEC, 0.2)
    data = np.random.default_rng(1).normal(10, 1, (80, 80)).astype(np.float32)
    synth.write_image(tmp_path / "c.fits", h, data)
    run_swarp([tmp_path / "c.fits"], TILE_COMPRESS="Y", WRITE_XML="Y", SUBTRACT_BACK="N")
    assert not (tmp_path / "coadd.fits").exists()
    with fits.open(tmp_path / "coadd.fits.fz") as hdul:
        assert isinstance(hdul[1], fits.CompImageHDU)
        comp = hdul[1].data
    run_swarp([tmp_path / "c.fits"], IMAGEOUT_NAME="plain.fits", SUBTRACT_BACK="N")
    plain = fits.getdata(tmp_path / "plain.fits")
    good = plain != 0
    # RICE quantises floats to ~1/16 of the local noise
    assert np.abs(comp[good] - plain[good]).max() < 0.2
    xml = (tmp_path / "swarp.xml").read_text()
    assert "c.fits" in xml and 'name="COMBINE_TYPE"' in xml
    assert not list(tmp_path.glob(".swarp.*"))  # scratch files removed


def test_dropin_command_line(synth, tmp_path, monkeypatch):
    """``terapix tool swarp IMAGE -c file.swarp -KEYWORD value`` like SWarp; command line beats the file."""
    from terapix_fw.dropin import run_tool_command

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    h = synth.tan_header(80, 80, RA, DEC, 0.2)
    synth.write_image(tmp_path / "d.fits", h, np.random.default_rng(2).normal(5, 1, (80, 80)).astype(np.float32))
    (tmp_path / "my.swarp").write_text("COMBINE_TYPE  MEDIAN\nIMAGEOUT_NAME from_file.fits  # comment\n"
                                       "WRITE_XML N\n")
    code = run_tool_command("swarp", ["d.fits", "-c", "my.swarp", "-IMAGEOUT_NAME", "cli.fits",
                                      "-WEIGHTOUT_NAME", "cli.weight.fits"])
    assert code == 0
    assert (tmp_path / "cli.fits").exists() and not (tmp_path / "from_file.fits").exists()
    assert fits.getheader(tmp_path / "cli.fits")["COMBINET"] == "MEDIAN"
    assert not list(tmp_path.glob("*.resamp*"))  # DELETE_TMPFILES Y


def test_errors_name_file_and_keyword(synth, tmp_path):
    from terapix_fw.execute import UnitSpec, execute_unit

    h = synth.tan_header(40, 40, RA, DEC, 0.2)
    synth.write_image(tmp_path / "e.fits", h, np.zeros((40, 40), np.float32))

    def run(**kw):
        layer = [(k, v, "test") for k, v in kw.items()] + [("WRITE_XML", "N", "test")]
        spec = UnitSpec(step="swarp", unit="1", tool="swarp", config_layers=[layer],
                        inputs=[str(tmp_path / "e.fits")], outdir=str(tmp_path),
                        log_path=str(tmp_path / "e.log"), confine_outputs=False)
        result = execute_unit(spec)
        assert result.status == "failed"
        return result.error

    assert "e.weight.fits" in run(WEIGHT_TYPE="MAP_WEIGHT") and "not found" in run(WEIGHT_TYPE="MAP_WEIGHT")
    assert "INTERPOLATE" in run(INTERPOLATE="Y")
    assert "CENTER" in run(CENTER_TYPE="MANUAL", CENTER="12:xx:00,+02:00:00")
    assert "RESAMPLING_TYPE" in run(RESAMPLING_TYPE="SINC")
    assert "PROJECTION_TYPE" in run(PROJECTION_TYPE="TANGENT")


def test_stack_readable_by_sextractor(synth, tmp_path, run_swarp):
    """The stack and its weight map are standard FITS: the real SExtractor finds the source where the
    WCS says (1-based X_IMAGE/Y_IMAGE)."""
    import shutil
    import subprocess

    sex = shutil.which("source-extractor") or shutil.which("sex")
    if sex is None:
        pytest.skip("SExtractor is not installed")
    paths = []
    for i in range(2):
        h = synth.tan_header(120, 110, RA + 3e-4 * i, DEC, 0.2, rot_deg=3.0 * i)
        img = synth.gaussian_image(h, [(SRC[0], SRC[1], 5000.0)], noise=1.0, seed=i, sky=50.0)
        paths.append(synth.write_image(tmp_path / f"x{i}.fits", h, img, GAIN=2.0, EXPTIME=60.0))
    run_swarp(paths, COMBINE_TYPE="WEIGHTED", PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE="0.17")
    (tmp_path / "cat.param").write_text("X_IMAGE\nY_IMAGE\nFLUX_AUTO\n")
    share = "/usr/share/source-extractor"
    subprocess.run([sex, "coadd.fits", "-c", f"{share}/default.sex", "-PARAMETERS_NAME", "cat.param",
                    "-FILTER_NAME", f"{share}/default.conv", "-CATALOG_TYPE", "ASCII", "-CATALOG_NAME", "cat.txt",
                    "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_IMAGE", "coadd.weight.fits", "-VERBOSE_TYPE", "QUIET"],
                   cwd=tmp_path, check=True, capture_output=True)
    rows = np.atleast_2d(np.loadtxt(tmp_path / "cat.txt"))
    x, y = _where(tmp_path / "coadd.fits", *SRC)
    best = rows[np.argmax(rows[:, 2])]
    assert abs(best[0] - x) < 0.05 and abs(best[1] - y) < 0.05


def test_resample_n_combines_resampled_images(synth, tmp_path, run_swarp):
    """COMBINE N then RESAMPLE N on the resampled images gives the direct co-add (on a grid cut to the
    images' extent)."""
    paths = []
    for i in range(2):
        h = synth.tan_header(100, 90, RA + 1e-3 * i, DEC, 0.2, rot_deg=10.0 * i)
        img = synth.gaussian_image(h, [(SRC[0], SRC[1], FLUX)], noise=0.01, seed=i)
        paths.append(synth.write_image(tmp_path / f"q{i}.fits", h, img, EXPTIME=30.0, FLXSCALE=1.0 + i))
    common = dict(SUBTRACT_BACK="N", PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE="0.17", COMBINE_TYPE="WEIGHTED")
    run_swarp(paths, IMAGEOUT_NAME="direct.fits", WEIGHTOUT_NAME="direct.weight.fits", **common)
    run_swarp(paths, COMBINE="N", **common)
    resampled = [tmp_path / f"q{i}.resamp.fits" for i in range(2)]
    run_swarp(resampled, RESAMPLE="N", WEIGHT_TYPE="MAP_WEIGHT", IMAGEOUT_NAME="two.fits",
              WEIGHTOUT_NAME="two.weight.fits", COMBINE_TYPE="WEIGHTED")
    direct, two = fits.getdata(tmp_path / "direct.fits"), fits.getdata(tmp_path / "two.fits")
    hd, h2 = fits.getheader(tmp_path / "direct.fits"), fits.getheader(tmp_path / "two.fits")
    dx = int(hd["CRPIX1"] - h2["CRPIX1"])
    dy = int(hd["CRPIX2"] - h2["CRPIX2"])
    assert dx > 0 and dy > 0  # the RESAMPLE N grid is cut to the images' extent
    np.testing.assert_allclose(two, direct[dy:dy + two.shape[0], dx:dx + two.shape[1]], rtol=1e-6, atol=1e-6)
    assert h2["EXPTIME"] == pytest.approx(60.0)
    x, y = _where(tmp_path / "two.fits", *SRC)
    _, xc, yc = _measure(two, x, y)
    assert abs(xc - x) < 0.02 and abs(yc - y) < 0.02


def test_swarp_default_configuration_is_ours(tmp_path):
    """``SWarp -dd`` is accepted as a configuration file and gives exactly our defaults: same keywords,
    same default values."""
    import shutil
    import subprocess

    from terapix_fw.config import read_config_file
    from terapix_fw.plugins import get_tool

    swarp = shutil.which("SWarp") or shutil.which("swarp")
    if swarp is None:
        pytest.skip("SWarp is not installed")
    text = subprocess.run([swarp, "-dd"], capture_output=True, text=True, check=True).stdout
    (tmp_path / "default.swarp").write_text(text)
    params = get_tool("swarp").cls.parameter_set()
    config = params.resolve(read_config_file(tmp_path / "default.swarp"))
    assert config.non_defaults() == {}
    from terapix_swarp.tool import EXTENSIONS

    keywords = {line.split()[0] for line in text.splitlines() if line.strip() and line[0].isalpha()}
    assert keywords == {p.name for p in params} - set(EXTENSIONS)


def test_pipeline_mode_confines_outputs(synth, tmp_path):
    """In a pipeline unit (outputs confined to the unit's directory) the products and resampled files stay
    inside it, and an output name escaping it is refused."""
    from terapix_fw.execute import UnitSpec, execute_unit

    h = synth.tan_header(60, 60, RA, DEC, 0.2)
    synth.write_image(tmp_path / "p.fits", h, np.random.default_rng(3).normal(0, 1, (60, 60)).astype(np.float32))
    out = tmp_path / "unit"

    def run(**kw):
        layer = [(k, v, "test") for k, v in kw.items()]
        spec = UnitSpec(step="swarp", unit="1", tool="swarp", config_layers=[layer],
                        inputs=[str(tmp_path / "p.fits")], outdir=str(out), log_path=str(out / "u.log"))
        return execute_unit(spec)

    result = run(SUBTRACT_BACK="N")
    assert result.status == "done", result.error
    assert {p.kind for p in result.products} == {"stack", "weight", "xml"}
    # the default XML_NAME follows the stack's name, so that the units of a step keep their own files
    names = {p.kind: Path(p.path).name for p in result.products}
    assert names["stack"] == "coadd.fits" and names["xml"] == "coadd.xml"
    named = run(SUBTRACT_BACK="N", IMAGEOUT_NAME="D1_r.fits", XML_NAME="mine.xml")
    assert {Path(p.path).name for p in named.products if p.kind == "xml"} == {"mine.xml"}
    assert all(str(p.path).startswith(str(out.resolve())) for p in result.products)
    assert [k for k, _ in result.records] == ["stack"]
    bad = run(IMAGEOUT_NAME="../escape.fits")
    assert bad.status == "failed" and "escape" in bad.error
    assert not (tmp_path / "escape.fits").exists()


def test_companions_matched_by_name(synth, tmp_path, run_swarp):
    """HEADER_NAME and WEIGHT_IMAGE lists (as a pipeline passes them, possibly for more files and in
    another order) are matched to the inputs by name."""
    paths = []
    for i in range(2):
        h = synth.tan_header(80, 80, RA + 2e-4 * i, DEC, 0.2)
        data = np.full((80, 80), 10.0 * (i + 1), np.float32)
        paths.append(synth.write_image(tmp_path / f"m{i}.fits", h, data))
        fits.PrimaryHDU(np.full((80, 80), 1.0 + 3 * i, np.float32), h).writeto(tmp_path / f"w_m{i}.fits")
        head = fits.Header()
        head["FLXSCALE"] = 1.0 + i
        (tmp_path / "heads").mkdir(exist_ok=True)
        (tmp_path / "heads" / f"m{i}.head").write_text(format_head([head]))
    (tmp_path / "heads" / "other.head").write_text(format_head([fits.Header()]))
    # weights named differently: positional (one per input); heads: by name, in reverse order, plus another
    heads = ",".join(str(tmp_path / "heads" / n) for n in ("other.head", "m1.head", "m0.head"))
    weights = ",".join(str(tmp_path / f"w_m{i}.fits") for i in range(2))
    run_swarp(paths, HEADER_NAME=heads, WEIGHT_IMAGE=weights, WEIGHT_TYPE="MAP_WEIGHT", RESCALE_WEIGHTS="N",
              SUBTRACT_BACK="N", COMBINE_TYPE="WEIGHTED", RESAMPLING_TYPE="NEAREST")
    out = fits.getdata(tmp_path / "coadd.fits")
    w = fits.getdata(tmp_path / "coadd.weight.fits")
    # both inputs at full weight: values 10*1 (weight 1) and 20*2 = 40 (weight 4/2^2 = 1)
    both = w > 1.5
    assert both.sum() > 1000
    np.testing.assert_allclose(out[both], 25.0, rtol=1e-5)


def test_a_named_header_that_does_not_exist_is_an_error(synth, tmp_path, run_swarp):
    """A HEADER_NAME the user gives is wanted: stacking with the raw astrometry instead, without a word,
    made a wrong stack from a command file whose SCAMP step wrote its .head files elsewhere."""
    h = synth.tan_header(80, 80, RA, DEC, 0.2)
    path = synth.write_image(tmp_path / "m0.fits", h, np.full((80, 80), 10.0, np.float32))
    missing = tmp_path / "heads" / "m0.head"
    with pytest.raises(AssertionError, match=f"HEADER_NAME {missing} for {path} not found"):
        run_swarp([path], HEADER_NAME=str(missing), SUBTRACT_BACK="N")
    assert not (tmp_path / "coadd.fits").exists()
    # the same run with the suffix convention: a missing .head is optional
    run_swarp([path], SUBTRACT_BACK="N")
    assert (tmp_path / "coadd.fits").exists()


RERUN_XML = """<?xml version="1.0"?>
<instructions name="stacks" version="1">
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="stack" tool="swarp" fanout="group" group-by="FILTER">
      <config><param name="IMAGEOUT_NAME">stack_{group}.fits</param><param name="SUBTRACT_BACK">N</param></config>
      <input set="raw"/>
    </step>
  </steps>
</instructions>
"""


def test_units_of_one_step_keep_their_own_xml_and_a_rerun_does_nothing(synth, tmp_path):
    """Two stacks (one per filter) in one step: with SWarp's default XML_NAME both units wrote swarp.xml,
    so each re-run found the other unit's file in place of its recorded product and ran again."""
    from terapix_fw.runner import run_instructions

    (tmp_path / "raw").mkdir()
    for k, band in enumerate(("g", "r")):
        h = synth.tan_header(60, 60, RA, DEC, 0.2)
        h["FILTER"] = band
        synth.write_image(tmp_path / "raw" / f"{band}.fits", h,
                          np.random.default_rng(k).normal(0, 1, (60, 60)).astype(np.float32))
    xml = tmp_path / "stacks.xml"
    xml.write_text(RERUN_XML)
    first = run_instructions(xml, tmp_path / "work", jobs=1, progress=False)
    assert first["done"] == 2 and first["failed"] == 0
    assert sorted(p.name for p in (tmp_path / "work" / "stack").glob("*.xml")) == ["stack_g.xml", "stack_r.xml"]
    again = run_instructions(xml, tmp_path / "work", jobs=1, progress=False)
    assert again["done"] == 0 and again["skipped"] == 2, again  # skipped: up to date
