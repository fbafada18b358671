"""terapix_fw.fitsimage: every FITS flavour an archive holds is read as the same float32 pixels; what cannot
be read is refused with one line naming the file, the HDU and the keyword."""
import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits

from terapix_fw.fitsimage import FitsImage, FitsReadError, header_number, read_located, scan, split_selector

RNG = np.random.default_rng(11)
#: integer-valued pixels that every BITPIX can hold exactly (0..200)
BASE = RNG.integers(0, 200, (37, 53)).astype(np.float64)


def _write(path, data, header=None, mef=False, compression=None):
    if compression:
        hdus = [fits.PrimaryHDU(), fits.CompImageHDU(data, header, compression_type=compression, name="ccd10",
                                                     **({"quantize_level": 0} if data.dtype.kind == "f" else {}))]
    elif mef:
        hdus = [fits.PrimaryHDU(), fits.ImageHDU(data, header, name="ccd00"), fits.ImageHDU(data, header,
                                                                                            name="ccd10")]
    else:
        hdus = [fits.PrimaryHDU(data, header)]
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.mark.parametrize("dtype, bitpix", [(np.uint8, 8), (np.int16, 16), (np.int32, 32), (np.int64, 64),
                                           (np.float32, -32), (np.float64, -64), (np.uint16, 16),
                                           (np.uint32, 32)])
def test_every_bitpix_reads_the_same_float32_pixels(tmp_path, dtype, bitpix):
    data = BASE.astype(dtype)
    if dtype in (np.uint16, np.uint32):  # BZERO 2^15 / 2^31: values above the signed range
        data = data + np.iinfo(dtype).max - 250
    path = _write(tmp_path / "a.fits", data)
    assert fits.getheader(path)["BITPIX"] == bitpix
    with FitsImage(path) as img:
        (hdu,) = img.images
        got = img.read(hdu.index)
        assert got.dtype == np.float32 and got.dtype.isnative
        np.testing.assert_array_equal(got, data.astype(np.float64).astype(np.float32))
        strip = img.read(hdu.index, rows=(5, 9))
        np.testing.assert_array_equal(strip, got[5:9])
        np.testing.assert_array_equal(read_located(img.locate(hdu.index)), got)
        native = img.read_native(hdu.index)
        if dtype != np.float64:
            assert native.dtype.kind == np.dtype(dtype).kind and native.dtype.isnative
        np.testing.assert_array_equal(native.astype(np.float64), data.astype(np.float64))


def test_bscale_bzero_blank_nan_and_inf(tmp_path):
    raw = BASE.astype(np.int16)
    raw[0, 0] = -32768
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 0.5, 100.0, -32768
    path = tmp_path / "scaled.fits"
    hdu.writeto(path)
    with FitsImage(path) as img:
        got = img.read(0)
        assert np.isnan(got[0, 0])
        np.testing.assert_allclose(got.ravel()[1:], (BASE.ravel()[1:] * 0.5 + 100.0).astype(np.float32))
        assert np.isnan(read_located(img.locate(0))[0, 0])
    f = BASE.astype(np.float32)
    f[1, 2], f[3, 4], f[5, 6] = np.nan, np.inf, -np.inf
    path = _write(tmp_path / "nan.fits", f)
    with FitsImage(path) as img:
        got = img.read(0)
        assert np.isnan(got[1, 2]) and np.isnan(got[3, 4]) and np.isnan(got[5, 6])  # masked, as SExtractor
        assert np.isfinite(got).sum() == f.size - 3
        assert np.isnan(read_located(img.locate(0))[3, 4])


@pytest.mark.parametrize("compression", ["RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1"])
def test_tile_compressed_integers_are_lossless(tmp_path, compression):
    data = (BASE + 30000).astype(np.uint16) if compression != "PLIO_1" else BASE.astype(np.int16)
    path = _write(tmp_path / "a.fits.fz", data, compression=compression)
    with FitsImage(path) as img:
        hdu = img.select("CCD10")
        assert hdu.compressed and hdu.shape == data.shape
        np.testing.assert_array_equal(img.read(hdu.index), data.astype(np.float32))
        np.testing.assert_array_equal(read_located(img.locate(hdu.index)), data.astype(np.float32))
        np.testing.assert_array_equal(img.read(hdu.index, rows=(3, 20)), data[3:20].astype(np.float32))


def test_gzip_files_and_mef_selection(tmp_path):
    data = (BASE + 40000).astype(np.uint16)
    plain = _write(tmp_path / "m.fits", data, mef=True)
    gz = tmp_path / "m.fits.gz"
    with open(plain, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for path in (plain, gz):
        with FitsImage(path) as img:
            assert [h.extname for h in img.images] == ["CCD00", "CCD10"]  # empty primary skipped
            assert img.select(2).index == 2 and img.select("ccd10").index == 2
            np.testing.assert_array_equal(img.read(2), data.astype(np.float32))
            np.testing.assert_array_equal(read_located(img.locate(2)), data.astype(np.float32))
            with pytest.raises(FitsReadError,
                               match=r"no image extension with EXTNAME 'ccd99' \(EXTNAMEs: CCD00, CCD10"):
                img.select("ccd99")
            with pytest.raises(FitsReadError, match="no image extension 3 \\(it has 2\\)"):
                img.select(3)
    assert split_selector("a.fits[ccd10]") == ("a.fits", "ccd10")
    assert split_selector("a.fits[3]") == ("a.fits", 3)
    assert split_selector("a.fits") == ("a.fits", None)


def test_integer_reading_stays_within_one_float32_copy(tmp_path):
    """A 2000x2000 BITPIX 16 image: the read's peak is the float32 result plus bounded blocks, never a
    whole float64 copy (which alone would be 32 MB)."""
    import tracemalloc

    data = RNG.integers(0, 65535, (2000, 2000)).astype(np.uint16)
    path = _write(tmp_path / "big.fits", data)
    with FitsImage(path) as img:
        tracemalloc.start()
        out = img.read(0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert out.nbytes == 16_000_000
    assert peak < out.nbytes + 6_000_000, peak  # blocks of ROWS_PER_BLOCK rows: 512 x 2000 x 4-8 bytes


def _corrupt(tmp_path, name, transform):
    path = _write(tmp_path / "ok.fits", BASE.astype(np.float32))
    raw = bytearray(path.read_bytes())
    bad = tmp_path / name
    bad.write_bytes(transform(raw))
    return bad


@pytest.mark.parametrize("name, transform, message", [
    ("trunc.fits", lambda b: b[:4000], r"trunc.fits: HDU 0: truncated file: the header declares 7844 bytes"),
    ("noend.fits", lambda b: b[:2880].replace(b"END" + b" " * 77, b" " * 80), r"no END card"),
    ("bitpix.fits", lambda b: b.replace(b"BITPIX  =                  -32", b"BITPIX  =                  -31"),
     r"BITPIX = -31, expected one of 8, 16"),
    ("huge.fits", lambda b: b.replace(b"NAXIS1  =                   53", b"NAXIS1  =            999999999"),
     r"truncated file: the header declares 7844 bytes|truncated file: the header declares \d+ bytes"),
    ("zero.fits", lambda b: b.replace(b"NAXIS2  =                   37", b"NAXIS2  =                    0")[:2880],
     r"HDU 0 is 53x0 pixels \(NAXISn = 0\): no pixels"),
    ("short-bitpix.fits", lambda b: b.replace(b"BITPIX  =                  -32", b"BITPIX  =                   16"),
     r"HDU 0: 2880 bytes or more follow its data that are not a FITS extension: BITPIX 16"),
    ("text.fits", lambda b: b"hello, this is not FITS\n" * 200, r"not a FITS file"),
    ("empty.fits", lambda b: b"", r"empty file"),
    ("binary.fits", lambda b: b[:80] + bytes(range(128, 256)) * 10 + b[80 + 1280:],
     r"non-ASCII bytes \(corrupted header\)"),
])
def test_unreadable_files_give_one_line_naming_the_file(tmp_path, name, transform, message):
    bad = _corrupt(tmp_path, name, transform)
    with pytest.raises(FitsReadError, match=message) as err:
        FitsImage(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_absurd_structures_are_refused_before_astropy(tmp_path, monkeypatch):
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(np.zeros((2, 2), np.float32)) for _ in range(40)]
    path = tmp_path / "many.fits"
    fits.HDUList(hdus).writeto(path)
    monkeypatch.setenv("TERAPIX_MAX_EXTENSIONS", "32")
    with pytest.raises(FitsReadError, match="more than 32 image extensions"):
        scan(path)
    monkeypatch.setenv("TERAPIX_MAX_EXTENSIONS", "64")
    assert len(scan(path)) == 41
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((3, 4, 5), np.float32)).writeto(cube)
    with pytest.raises(FitsReadError, match=r"data cube \(NAXIS3 = 3\)"):
        FitsImage(cube)
    plane = tmp_path / "plane.fits"
    fits.PrimaryHDU(np.ones((1, 4, 5), np.float32)).writeto(plane)
    with FitsImage(plane) as img:  # a degenerate third axis is a 2-D image
        assert img.read(0).shape == (4, 5)
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("A", "E", array=[1.0])])]
                 ).writeto(table)
    with pytest.raises(FitsReadError, match="no image data in any HDU \\(it holds tables: a catalogue\\?\\)"):
        FitsImage(table)


def test_header_numbers_name_the_keyword():
    h = fits.Header({"GAIN": -1.0, "SATURATE": 0.0, "EXPTIME": "long", "ZERO": 0.0})
    with pytest.raises(FitsReadError, match=r"x.fits\[1\]: header keyword GAIN = -1, expected >= 0"):
        header_number(h, "GAIN", "x.fits[1]", 0.0, positive=True, allow_zero=True)
    with pytest.raises(FitsReadError, match="SATURATE = 0, expected > 0"):
        header_number(h, "SATURATE", "x.fits[1]", 50000.0, positive=True)
    with pytest.raises(FitsReadError, match="EXPTIME = 'long' is not a number"):
        header_number(h, "EXPTIME", "x.fits[1]")
    assert header_number(h, "ZERO", "x", 1.0, positive=True, allow_zero=True) == 0.0
    assert header_number(h, "ABSENT", "x", 7.0, positive=True) == 7.0


@pytest.mark.parametrize("cards, keyword", [
    ({"CRVAL2": 95.0}, "CRVAL2 = 95.0 is outside \\[-90, 90\\]"),
    ({"CD1_1": 0.0, "CD1_2": 0.0}, "the CD1_1..CD2_2 matrix is singular"),
    ({"CD1_1": -5e-5, "CD1_2": 5e-5, "CD2_1": 5e-5, "CD2_2": -5e-5}, "the CD1_1..CD2_2 matrix is singular"),
    ({"CTYPE1": "RA---XYZ"}, "CTYPE1 = 'RA---XYZ': unknown projection 'XYZ'"),
    ({"CTYPE2": "FOO--TAN"}, "CTYPE2 = 'FOO--TAN' is not a celestial axis"),
    ({"CRPIX1": "middle"}, "CRPIX1 = 'middle' is not a finite number"),
])
def test_broken_wcs_names_the_keyword(cards, keyword):
    from terapix_fw.errors import ToolError
    from terapix_fw.wcsutil import celestial_wcs, wcs_problem

    h = fits.Header({"NAXIS": 2, "NAXIS1": 100, "NAXIS2": 100, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
                     "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 50.0, "CRPIX2": 50.0, "CD1_1": -5e-5, "CD1_2": 0.0,
                     "CD2_1": 0.0, "CD2_2": 5e-5})
    assert wcs_problem(h) is None
    h.update(cards)
    assert wcs_problem(h) is not None
    with pytest.raises(ToolError, match="x.fits\\[1\\]: broken WCS: " + keyword):
        celestial_wcs(h, "x.fits[1]")
