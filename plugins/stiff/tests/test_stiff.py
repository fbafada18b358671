"""The stiff plugin: levels, stretches and binning against hand-computed values, and against the real STIFF.

The real STIFF (2.4, Debian's ``stiff``) prints its levels with ``%g`` (6 significant digits): our levels
must agree to 1e-5 relative.  Its pixels are compared after the same levels: at most 1 DN apart (STIFF
computes in single precision, the rounding of a value on a .5 boundary may differ), on 99.9 % of the
pixels (99 % on 16 bits).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from terapix_stiff import Settings, bin_image, chunk_stats, levels_from_stats, render, thumbnail, to_pixels
from terapix_stiff.rendering import STIFF_CHUNK

STIFF = shutil.which("stiff")
needs_stiff = pytest.mark.skipif(STIFF is None and os.environ.get("CI") != "true",
                                 reason="STIFF is not installed")


def sky_image(ny, nx, seed=1, sky=1000.0, noise=20.0, nstars=40):
    rng = np.random.default_rng(seed)
    data = rng.normal(sky, noise, (ny, nx)).astype(np.float32)
    yy, xx = np.mgrid[:ny, :nx]
    for x0, y0, flux in zip(rng.uniform(0, nx, nstars), rng.uniform(0, ny, nstars), rng.uniform(1e3, 5e4, nstars)):
        r2 = (xx - x0) ** 2 + (yy - y0) ** 2
        close = r2 < 100
        data[close] += (flux * np.exp(-r2[close] / 4.5)).astype(np.float32)
    return data


def write(path, data, **keys):
    hdu = fits.PrimaryHDU(data)
    for k, v in keys.items():
        hdu.header[k] = v
    hdu.writeto(path)
    return path


# ------------------------------------------------------------------ hand-computed values on small arrays

def test_chunk_statistics_follow_stiff_definitions():
    rng = np.random.default_rng(0)
    data = rng.permutation(1000).astype(np.float32).reshape(20, 50)
    sky, lo, hi = chunk_stats(data, 0.01, 0.99)
    assert sky == 499.5  # even count: mean of the two middle values
    # the median's quickselect leaves the 500 lowest values in the first half of STIFF's buffer: the
    # quantiles are those of the lower half (values 0..499) and of the upper half (500..999)
    assert lo == int(np.float32(0.01) * (500 - 0.5001)) == 4
    assert hi == 500 + int(np.float32(0.99) * (500 - 0.5001)) == 994


def test_statistics_are_medians_of_chunks():
    """Two chunks and a remainder: each level is the median of the per-chunk values."""
    n = 2 * STIFF_CHUNK + 1001
    flat = np.concatenate([np.full(STIFF_CHUNK, 10.0), np.full(STIFF_CHUNK, 30.0), np.arange(1001.0)]).astype(np.float32)
    sky, lo, hi = chunk_stats(flat.reshape(1, n), 0.5, 0.5)
    assert sky == 30.0  # medians 10, 30, 500 -> 30
    assert lo == 30.0 and hi == 30.0


def test_greylevel_min_puts_the_sky_at_the_grey_level():
    settings = Settings()
    lev = levels_from_stats((100.0, 0.0, 1100.0), settings)
    grey = 0.001
    assert lev.min == pytest.approx((1100.0 * grey - 100.0) / (grey - 1.0), rel=1e-6)
    assert (lev.sky - lev.min) / (lev.max - lev.min) == pytest.approx(grey, rel=1e-4)
    manual = levels_from_stats((100.0, 5.0, 1100.0), Settings(min_type="MANUAL", min_level=7.0, max_type="MANUAL",
                                                                 max_level=900.0, sky_type="MANUAL", sky_level=3.0))
    assert (manual.sky, manual.min, manual.max) == (3.0, 7.0, 900.0)
    quant = levels_from_stats((100.0, 5.0, 1100.0), Settings(min_type="QUANTILE"))
    assert quant.min == 5.0


def test_power_law_gamma_pixels_by_hand():
    from terapix_stiff import Levels

    data = np.array([[-5.0, 0.0, 10.0], [50.0, 100.0, 200.0]], np.float32)
    lev = Levels(0.0, 0.0, 100.0)
    for bits, pmax in ((8, 255), (16, 65535)):
        pix = to_pixels([data], [lev], Settings(bits_per_channel=bits))
        x = np.clip(data / 100.0, 0, None)
        expected = np.minimum(np.floor(pmax * x ** (1 / 2.2) + 0.5), pmax)
        assert pix.dtype == (np.uint8 if bits == 8 else np.uint16)
        np.testing.assert_array_equal(pix, expected)
    neg = to_pixels([data], [lev], Settings(negative=True))
    # STIFF subtracts the rounded-up value (with its +0.5) from pmax, then truncates
    coded = np.minimum(255 * np.clip(data / 100, 0, None) ** (1 / 2.2) + 0.5, 255)
    np.testing.assert_array_equal(neg, np.floor(255 - coded))
    srgb = to_pixels([np.array([[0.001, 0.5]], np.float32)], [Levels(0, 0, 1)], Settings(gamma_type="SRGB"))
    assert srgb[0, 0] == int(255 * 12.92 * 0.001 + 0.5)
    assert srgb[0, 1] == int(255 * (1.055 * 0.5 ** (1 / 2.4) - 0.055) + 0.5)


def test_asinh_stretch_matches_astropy_lupton():
    """Our asinh (white at MAX_LEVEL) is astropy's make_lupton_rgb with Q' = 10 sinh(asinh(Q) / 10) and
    stretch s' = Q' (max - min) / Q (astropy's slope puts 0.1 of its scale at asinh(0.1 Q'))."""
    from astropy.visualization import make_lupton_rgb

    from terapix_stiff import Levels

    rng = np.random.default_rng(2)
    r, g, b = (rng.gamma(1.5, 30.0, (40, 50)).astype(np.float32) for _ in range(3))
    q, lo, hi = 8.0, 0.0, 400.0
    ours = to_pixels([r, g, b], [Levels(0, lo, hi)] * 3, Settings(gamma_type="ASINH", asinh_q=q))
    qa = 10 * np.sinh(np.arcsinh(q) / 10)
    theirs = make_lupton_rgb(r, g, b, minimum=lo, stretch=qa * (hi - lo) / q, Q=qa)
    assert ours.shape == theirs.shape == (40, 50, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    grey = to_pixels([r], [Levels(0, lo, hi)], Settings(gamma_type="ASINH", asinh_q=q))
    x = np.clip(r / hi, 0, None)
    np.testing.assert_array_equal(grey, np.floor(255 * np.minimum(np.arcsinh(q * x) / np.arcsinh(q), 1) + 0.5))


def test_colour_saturation_zero_gives_grey_and_channel_order():
    from terapix_stiff import Levels

    red = np.full((2, 2), 90.0, np.float32)
    other = np.full((2, 2), 10.0, np.float32)
    lev = [Levels(0, 0, 100)] * 3
    pix = to_pixels([red, other, other], lev, Settings())
    assert pix.shape == (2, 2, 3) and pix[0, 0, 0] > pix[0, 0, 1] == pix[0, 0, 2]
    bw = to_pixels([red, other, other], lev, Settings(colour_sat=0.0))
    assert bw[0, 0, 0] == bw[0, 0, 1] == bw[0, 0, 2]


def test_binning_layout_as_stiff():
    """Bins start at the left and at the top (last FITS row); the remainders go right and bottom."""
    data = np.arange(35, dtype=np.float32).reshape(5, 7)  # 5 rows, 7 columns
    out = bin_image(data, 2)
    assert out.shape == (3, 4)
    # top output row: FITS rows 3 and 4
    np.testing.assert_allclose(out[0, 0], data[3:5, 0:2].mean())
    np.testing.assert_allclose(out[0, 3], data[3:5, 6:7].mean())
    np.testing.assert_allclose(out[1, 1], data[1:3, 2:4].mean())
    # bottom output row: FITS row 0 alone
    np.testing.assert_allclose(out[2, 0], data[0:1, 0:2].mean())
    np.testing.assert_allclose(out[2, 3], data[0, 6])


def test_nan_pixels_are_left_out():
    data = np.ones((4, 4), np.float32)
    data[:2, :2] = np.nan
    data[0, 2] = np.nan
    out = bin_image(data, 2)
    assert np.isnan(out[1, 0]) and out[1, 1] == 1.0 and out[0, 0] == 1.0
    values = np.where(np.isnan(data), np.nan, np.arange(16.0).reshape(4, 4)).astype(np.float32)
    sky, _, _ = chunk_stats(values)
    assert sky == np.median(values[np.isfinite(values)])  # 11 finite values: the 6th


# ------------------------------------------------------------------ files, tool, outputs

def run_tool(tmp_path, inputs, **keywords):
    from terapix_fw.execute import UnitSpec, execute_unit

    layer = [(k, str(v), "test") for k, v in keywords.items()]
    spec = UnitSpec(step="pic", unit="1", tool="stiff", config_layers=[layer], inputs=[str(p) for p in inputs],
                    outdir=str(tmp_path / "out"), log_path=str(tmp_path / "stiff.log"), nthreads=1)
    return execute_unit(spec)


@pytest.mark.parametrize("name,bits,nimages,compression", [
    ("g8.png", 8, 1, "LZW"), ("g16.png", 16, 1, "LZW"), ("c8.png", 8, 3, "LZW"), ("c16.png", 16, 3, "LZW"),
    ("g8.tif", 8, 1, "LZW"), ("c16.tif", 16, 3, "DEFLATE"), ("f32.tif", -32, 1, "NONE"), ("j8.tif", 8, 3, "JPEG")])
def test_outputs_open_with_expected_size_and_depth(tmp_path, name, bits, nimages, compression):
    from PIL import Image
    import tifffile

    paths = [write(tmp_path / f"im{i}.fits", sky_image(61, 83, seed=i)) for i in range(nimages)]
    res = run_tool(tmp_path, paths, OUTFILE_NAME=name, BITS_PER_CHANNEL=bits, BINNING=2, COMPRESSION_TYPE=compression)
    assert res.status == "done", res.error
    out = tmp_path / "out" / name
    width, height = 42, 31  # ceil(83 / 2), ceil(61 / 2)
    if name.endswith(".png"):
        with Image.open(out) as im:
            assert im.size == (width, height)
            if nimages == 1:
                assert im.mode == ("L" if bits == 8 else "I;16")
            else:
                assert im.mode == ("RGB" if bits == 8 else "RGB") and im.info.get("Software") == "terapix-fw stiff"
        if bits == 16 and nimages == 3:  # Pillow reads 16-bit RGB as 8 bits: check the IHDR itself
            raw = out.read_bytes()
            assert raw[24] == 16 and raw[25] == 2  # bit depth, colour type RGB
    else:
        with tifffile.TiffFile(out) as tif:
            page = tif.pages[0]
            arr = page.asarray()
            assert arr.shape[:2] == (height, width)
            assert page.bitspersample == abs(bits)
            assert arr.dtype == {8: np.uint8, 16: np.uint16, -32: np.float32}[bits]
            assert page.samplesperpixel == nimages
            assert page.compression.name == {"LZW": "LZW", "DEFLATE": "ADOBE_DEFLATE", "NONE": "NONE",
                                             "JPEG": "JPEG"}[compression]
    xml = (tmp_path / "out" / "stiff.xml").read_text()
    assert "Background_Level" in xml
    (kind, rec), = [r for r in res.records if r[0] == "picture"]
    assert rec["width"] == width and rec["height"] == height


def test_channel_order_red_green_blue(tmp_path):
    """The first image is red, the second green, the third blue, in PNG and TIFF alike."""
    from PIL import Image
    import tifffile

    ny, nx = 40, 60
    base = sky_image(ny, nx, seed=5, nstars=0)
    spot = np.zeros((ny, nx), np.float32)
    spot[10:20, 10:20] = 5000.0
    paths = []
    for i in range(3):
        img = base.copy()
        img[:, 20 * i:20 * i + 20] += 3000.0  # image i bright in columns 20i..20i+19
        paths.append(write(tmp_path / f"c{i}.fits", img))
    for name in ("rgb.png", "rgb.tif"):
        res = run_tool(tmp_path, paths, OUTFILE_NAME=name, WRITE_XML="N")
        assert res.status == "done", res.error
        out = tmp_path / "out" / name
        arr = np.asarray(Image.open(out)) if name.endswith("png") else tifffile.imread(out)
        for channel in range(3):
            block = arr[:, 20 * channel:20 * channel + 20].reshape(-1, 3).mean(axis=0)
            assert np.argmax(block) == channel, (name, channel, block)


def test_orientation_first_row_is_the_top_of_the_fits_image(tmp_path):
    data = sky_image(30, 20, nstars=0)
    data[25:, :] += 10000.0  # bright at the top (high FITS rows)
    pic = render(write(tmp_path / "o.fits", data))
    assert pic.pixels[0].mean() > 200 and pic.pixels[-1].mean() < 100
    flipped = render(tmp_path / "o.fits", Settings(flip_type="Y"))
    np.testing.assert_array_equal(flipped.pixels, pic.pixels[::-1])


def test_strip_reading_and_scaled_integers_give_the_in_memory_result(tmp_path, monkeypatch):
    """BITPIX -32 (memory map) and BITPIX 16 with BZERO (astropy sections) read by small strips give the
    same levels and thumbnail as the whole image in memory."""
    import terapix_stiff.rendering as R

    data = sky_image(301, 257, seed=9)
    monkeypatch.setattr(R, "STIFF_CHUNK", 5000)  # many chunks and strips on a small image
    monkeypatch.setattr(R, "STRIP_PIXELS", 7000)
    a = write(tmp_path / "f.fits", data)
    ints = np.clip(np.round(data), 0, 65535).astype(np.uint16)
    b = tmp_path / "i.fits"
    fits.PrimaryHDU(ints).writeto(b)  # astropy stores uint16 as BITPIX 16 with BZERO 32768
    for path, ref in ((a, data), (b, ints.astype(np.float32))):
        pic = thumbnail(path, size=64)
        assert pic.binning == (5, 5) and pic.pixels.shape == (61, 52)
        st = R._Stats(None, 0.999)
        st.feed(ref.ravel())
        sky, _, hi = st.finish()
        assert pic.levels[0].sky == pytest.approx(sky) and pic.levels[0].max == pytest.approx(hi)
        lev = levels_from_stats((sky, 0.0, hi), Settings())
        np.testing.assert_array_equal(pic.pixels, to_pixels([bin_image(ref, 5)], [lev], Settings()))


def test_bad_inputs_name_the_problem(tmp_path):
    a = write(tmp_path / "a.fits", sky_image(20, 30))
    b = write(tmp_path / "b.fits", sky_image(21, 30))
    res = run_tool(tmp_path, [a, b, b])
    assert res.status == "failed" and "b.fits" in res.error and "same size" in res.error
    res = run_tool(tmp_path, [a, b])
    assert res.status == "failed" and "2 input image(s)" in res.error
    res = run_tool(tmp_path, [a], OUTFILE_NAME="x.png", BITS_PER_CHANNEL=-32)
    assert res.status == "failed" and "PNG" in res.error
    res = run_tool(tmp_path, [a], OUTFILE_NAME="x.jpg")
    assert res.status == "failed" and "OUTFILE_NAME = x.jpg" in res.error


# ------------------------------------------------------------------ against the real STIFF

def _stiff_levels(text):
    found = re.findall(r"Background level:\s*(\S+)\s+Min level:\s*(\S+)\s+Max level:\s*(\S+)", text)
    return [tuple(float(v) for v in f) for f in found]


def run_real_stiff(tmp_path, inputs, out, *args):
    if STIFF is None:
        pytest.fail("CI=true and the real stiff is not installed")
    proc = subprocess.run([STIFF, *map(str, inputs), "-OUTFILE_NAME", str(out), "-WRITE_XML", "N",
                           "-COMPRESSION_TYPE", "NONE", "-NTHREADS", "1", *args],
                          capture_output=True, text=True, cwd=tmp_path, check=True)
    return _stiff_levels(proc.stdout + proc.stderr)


@needs_stiff
@pytest.mark.parametrize("args", [(), ("-BITS_PER_CHANNEL", "16", "-BINNING", "3"),
                                  ("-MIN_TYPE", "QUANTILE", "-MIN_LEVEL", "0.01", "-GAMMA", "1.8"),
                                  ("-GAMMA_TYPE", "SRGB", "-NEGATIVE", "Y")])
def test_levels_and_pixels_match_real_stiff_grey(tmp_path, args):
    import tifffile

    # 1700 x 1300 = 2.21 M pixels: two STIFF statistics chunks, the second one short
    data = sky_image(1300, 1700, seed=11, nstars=300)
    path = write(tmp_path / "img.fits", data)
    levels = run_real_stiff(tmp_path, [path], tmp_path / "ref.tif", *args)
    ref = tifffile.imread(tmp_path / "ref.tif")
    keys = dict(zip(args[::2], args[1::2]))
    settings = Settings(bits_per_channel=int(keys.get("-BITS_PER_CHANNEL", 8)),
                        binning=(int(keys.get("-BINNING", 1)),) * 2, min_type=keys.get("-MIN_TYPE", "GREYLEVEL"),
                        min_level=float(keys.get("-MIN_LEVEL", 0.001)), gamma=float(keys.get("-GAMMA", 2.2)),
                        gamma_type=keys.get("-GAMMA_TYPE", "POWER-LAW"), negative=keys.get("-NEGATIVE") == "Y")
    pic = render(path, settings)
    (sky, lo, hi), = levels
    # STIFF prints %g: 6 significant digits
    assert pic.levels[0].sky == pytest.approx(sky, rel=1e-5)
    assert pic.levels[0].min == pytest.approx(lo, rel=1e-5, abs=1e-3)
    assert pic.levels[0].max == pytest.approx(hi, rel=1e-5)
    assert ref.shape == pic.pixels.shape and ref.dtype == pic.pixels.dtype
    diff = np.abs(ref.astype(np.int64) - pic.pixels.astype(np.int64))
    # STIFF sums its bins in single precision (we use double): on 16 bits that moves ~0.2 % of the
    # pixels across a rounding boundary
    assert diff.max() <= 1 and np.count_nonzero(diff) < (1e-2 if settings.bits_per_channel == 16 else 1e-3) * diff.size


@needs_stiff
def test_colour_composite_matches_real_stiff(tmp_path):
    import tifffile

    paths = [write(tmp_path / f"b{i}.fits", sky_image(400, 500, seed=20 + i, sky=500.0 * (i + 1), nstars=60))
             for i in range(3)]
    levels = run_real_stiff(tmp_path, paths, tmp_path / "ref.tif", "-COLOUR_SAT", "1.8", "-BINNING", "2")
    ref = tifffile.imread(tmp_path / "ref.tif")
    pic = render(paths, Settings(colour_sat=1.8, binning=(2, 2)))
    assert len(levels) == 3
    for ours, theirs in zip(pic.levels, levels):
        assert (ours.sky, ours.min, ours.max) == pytest.approx(theirs, rel=1e-5, abs=1e-3)
    assert ref.shape == pic.pixels.shape == (200, 250, 3)
    diff = np.abs(ref.astype(int) - pic.pixels.astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) < 1e-3 * diff.size


def test_dropin_command_line_like_stiff(tmp_path, recorded_dropin):
    """``terapix tool stiff image.fits -OUTFILE_NAME x.tif -BINNING 4``, as the C program is called; the
    picture is recorded in RDBix."""
    import tifffile
    from sqlalchemy import select

    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect
    from terapix_fw.dropin import run_tool_command

    write(tmp_path / "image.fits", sky_image(100, 120, seed=3))
    assert run_tool_command("stiff", ["image.fits", "-OUTFILE_NAME", "x.tif", "-BINNING", "4",
                                      "-XML_NAME", "x.xml"]) == 0
    arr = tifffile.imread(tmp_path / "x.tif")
    assert arr.shape == (25, 30) and arr.dtype == np.uint8
    assert "Min_Level" in (tmp_path / "x.xml").read_text()
    with connect(recorded_dropin).connect() as conn:
        kinds = [r.kind for r in conn.execute(select(S.records.c.kind))]
    assert "picture" in kinds


@pytest.mark.parametrize("kind", ["noise", "ties", "sorted", "constant"])
def test_bracketed_order_statistics_are_exact(kind):
    """The sampled-bracket selection used on STIFF's chunks returns exactly np.partition's values."""
    from terapix_stiff.rendering import _order_statistics

    rng = np.random.default_rng(7)
    a = rng.normal(0, 5, 300_001).astype(np.float32)
    if kind == "ties":
        a[::3] = 1.0
    elif kind == "sorted":
        a = np.sort(a)[::-1].copy()
    elif kind == "constant":
        a[:] = 2.5
    ks = [0, 149, 150_000, 150_001, 299_850, 300_000]
    ref = np.partition(a.copy(), ks)
    got = _order_statistics(a.copy(), ks)
    assert [got[k] for k in ks] == [float(ref[k]) for k in ks]


def test_picture_file_for_spica_and_the_web(tmp_path):
    """One call renders three stacks into a colour PNG thumbnail and a grey 16-bit TIFF."""
    from PIL import Image
    import tifffile

    from terapix_stiff import picture_file

    paths = [write(tmp_path / f"s{i}.fits", sky_image(300, 500, seed=30 + i)) for i in range(3)]
    pic = picture_file(paths, tmp_path / "pics" / "irg.png", size=100, colour_sat=1.5, gamma_type="ASINH")
    with Image.open(tmp_path / "pics" / "irg.png") as im:
        assert im.size == (100, 60) and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), pic.pixels)
    grey = picture_file(paths[0], tmp_path / "g.tif", bits_per_channel=16, binning=(2, 2))
    arr = tifffile.imread(tmp_path / "g.tif")
    assert arr.dtype == np.uint16 and arr.shape == (150, 250)
    np.testing.assert_array_equal(arr, grey.pixels)
    assert not list((tmp_path / "pics").glob(".*part"))  # no temporary file left behind
