"""Catalogues and check images written extension by extension: the same bytes as writing the whole file
at once, nothing left under the final name when a run stops half-way, and a peak memory that does not
grow with the number of extensions (measured on a real run in a subprocess)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits

from terapix_sextractor.extraction import extract_results
from terapix_sextractor.synth import make_image, simple_wcs_header

PARAMS = ["NUMBER", "X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "FLUX_AUTO", "MAG_AUTO", "MAG_APER(2)", "FLAGS",
          "ALPHA_J2000", "VIGNET(7,5)"]


@pytest.fixture(scope="module")
def mef_results(tmp_path_factory):
    d = tmp_path_factory.mktemp("mef")
    hdus = [fits.PrimaryHDU()]
    for k in range(3):
        sim = make_image((160, 150), nstars=12, ngal=8, fwhm=3.0, seed=60 + k)
        h = simple_wcs_header(sim.data.shape, ra=150 + 0.02 * k)
        h["EXTNAME"] = f"ccd{k:02d}"
        hdus.append(fits.ImageHDU(sim.data, h))
    fits.HDUList(hdus).writeto(d / "mef.fits")
    results = extract_results(d / "mef.fits", params=PARAMS, nthreads=1, CHECKIMAGE_TYPE=["SEGMENTATION"],
                              CHECKIMAGE_NAME=["seg.fits"])
    assert len(results) == 3 and all(len(r.table) > 5 for r in results)
    return results


def _astropy_bytes(hdus) -> bytes:
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def test_fits_stream_writes_astropys_bytes(tmp_path):
    from terapix_fw.fitsstream import FitsStream

    rng = np.random.default_rng(1)
    image = rng.normal(size=(37, 53)).astype(np.float32)
    seg = rng.integers(0, 9, size=(41, 29)).astype(np.int32)
    table = fits.BinTableHDU.from_columns([fits.Column("A", "D", array=rng.normal(size=7)),
                                           fits.Column("B", "3E", array=rng.normal(size=(7, 3)))])
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(image, fits.Header([("EXTNAME", "IM")])), fits.ImageHDU(seg), table,
            fits.ImageHDU(image.astype(">f8"))]
    with FitsStream(tmp_path / "s.fits") as out:
        for hdu in hdus:
            out.append(hdu)
    assert (tmp_path / "s.fits").read_bytes() == _astropy_bytes(hdus)
    with FitsStream(tmp_path / "p.fits") as out:  # pixels in the primary HDU
        out.append(fits.PrimaryHDU(image))
    assert (tmp_path / "p.fits").read_bytes() == _astropy_bytes([fits.PrimaryHDU(image)])
    with FitsStream(tmp_path / "bad.fits") as out, pytest.raises(ValueError, match="primary"):
        out.append(fits.ImageHDU(image))


def test_streamed_catalogues_equal_whole_file_writes(tmp_path, mef_results):
    """Each format, streamed, gives the bytes of the whole-file writers it replaced."""
    from astropy.io.votable import from_table
    from astropy.table import Table, vstack

    from terapix_fw.ldac import imhead_hdu
    from terapix_sextractor.catalog import _ascii_lines, objects_hdu, write_catalog

    results = mef_results
    write_catalog(tmp_path / "c.ldac", iter(results), "FITS_LDAC")
    whole = [fits.PrimaryHDU()]
    for r in results:
        whole += [imhead_hdu(r.header), objects_hdu(r.table)]
    assert (tmp_path / "c.ldac").read_bytes() == _astropy_bytes(whole)

    write_catalog(tmp_path / "c.fits", results, "FITS_1.0")
    primary = fits.PrimaryHDU()
    for card in results[0].header.cards:
        if card.keyword.startswith("SEX") or card.keyword in ("FITSFILE", "FITSNEXT"):
            primary.header.append(card)
    assert (tmp_path / "c.fits").read_bytes() == _astropy_bytes(
        [primary] + [objects_hdu(r.table, extname="OBJECTS") for r in results])

    for ctype in ("ASCII", "ASCII_HEAD"):
        write_catalog(tmp_path / "c.txt", results, ctype)
        lines = []
        for k, r in enumerate(results):
            lines += _ascii_lines(r.table, with_header=(ctype == "ASCII_HEAD" and k == 0))
        assert (tmp_path / "c.txt").read_text() == "\n".join(lines) + "\n"

    write_catalog(tmp_path / "c.xml", results, "ASCII_VOTABLE")
    tables = []
    for r in results:
        t = Table(r.table, copy=True)
        t.meta = {}
        tables.append(t)
    vot = from_table(vstack(tables))
    vot.resources[0].tables[0].name = "LDAC_OBJECTS"
    buf = io.BytesIO()
    vot.to_xml(buf)
    assert (tmp_path / "c.xml").read_bytes() == buf.getvalue()


def test_votable_of_extensions_without_sources(tmp_path, mef_results):
    """An extension with no source (first or later) adds no row and keeps the document valid."""
    from astropy.io.votable import parse_single_table

    from terapix_sextractor.catalog import write_catalog
    from terapix_sextractor.reading import ExtractionResult

    empty = ExtractionResult(mef_results[0].table[:0], mef_results[0].header)
    write_catalog(tmp_path / "e.xml", [empty, mef_results[1], empty, mef_results[2]], "ASCII_VOTABLE")
    got = parse_single_table(tmp_path / "e.xml").to_table()
    assert len(got) == len(mef_results[1].table) + len(mef_results[2].table)
    assert np.array_equal(np.asarray(got["XWIN_IMAGE"]), np.concatenate(
        [np.asarray(mef_results[1].table["XWIN_IMAGE"]), np.asarray(mef_results[2].table["XWIN_IMAGE"])]))
    write_catalog(tmp_path / "e0.xml", [empty], "ASCII_VOTABLE")
    assert len(parse_single_table(tmp_path / "e0.xml").to_table()) == 0


def test_streamed_check_image_equals_whole_file(tmp_path, mef_results):
    from terapix_sextractor.catalog import check_image_hdu, write_check_image

    write_check_image(tmp_path / "seg.fits", mef_results, "SEGMENTATION")
    whole = [fits.PrimaryHDU()] + [check_image_hdu(r.checks["SEGMENTATION"], r.header, "SEGMENTATION", False)
                                   for r in mef_results]
    assert (tmp_path / "seg.fits").read_bytes() == _astropy_bytes(whole)
    with fits.open(tmp_path / "seg.fits") as hdul:
        assert [h.header.get("EXTNAME") for h in hdul[1:]] == ["ccd00", "ccd01", "ccd02"]
        assert hdul[2].data.max() == len(mef_results[1].table)
    write_check_image(tmp_path / "one.fits", mef_results[:1], "SEGMENTATION")
    assert fits.getdata(tmp_path / "one.fits", 0).shape == (160, 150)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_run_stopped_half_way_leaves_no_file(tmp_path, mef_results, error):
    """An error or Ctrl-C after some extensions were written: no catalogue or check image under its final
    name, no temporary file left beside it."""
    from terapix_fw.atomic import atomic_path
    from terapix_sextractor.catalog import CheckImageWriter, write_catalog

    def stopping():
        yield mef_results[0]
        yield mef_results[1]
        raise error("stopped")

    def check_image(path):
        with atomic_path(path) as tmp, CheckImageWriter(tmp, "SEGMENTATION", 3) as out:
            for r in stopping():
                out.add(r)

    for write, name in ((lambda p: write_catalog(p, stopping(), "FITS_LDAC"), "c.ldac"),
                        (lambda p: write_catalog(p, stopping(), "ASCII_HEAD"), "c.txt"),
                        (check_image, "seg.fits")):
        with pytest.raises(error):
            write(tmp_path / name)
        assert os.listdir(tmp_path) == []


# the peak memory of a real run, in its own process (ru_maxrss of that process alone)
_RUN = textwrap.dedent("""
    import os, resource, sys
    from terapix_fw.dropin import run_tool_command
    os.chdir(sys.argv[1])
    rc = run_tool_command("sextractor", sys.argv[2:])
    print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rc)
""")


def _peak_mb(tmp_path, nccd, ccd):
    d = tmp_path / f"n{nccd}"
    d.mkdir()
    hdus = [fits.PrimaryHDU()]
    for k in range(nccd):  # the same pixels in every extension: only the count differs between runs
        hdus.append(fits.ImageHDU(ccd, simple_wcs_header(ccd.shape, ra=150 + 0.1 * k)))
    fits.HDUList(hdus).writeto(d / "mef.fits")
    del hdus
    (d / "p.param").write_text("NUMBER\nXWIN_IMAGE\nYWIN_IMAGE\nFLUX_AUTO\nFLAGS\nVIGNET(35,35)\n")
    env = dict(os.environ, TERAPIX_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", _RUN, str(d), "mef.fits", "-PARAMETERS_NAME", "p.param",
                          "-CATALOG_NAME", "mef.ldac", "-CATALOG_TYPE", "FITS_LDAC", "-CHECKIMAGE_TYPE", "SEGMENTATION", "-CHECKIMAGE_NAME",
                          "seg.fits", "-NTHREADS", "1", "-VERBOSE_TYPE", "QUIET"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("MAXRSS_KB")][-1].split()
    assert line[2] == "0", out.stderr[-2000:]
    with fits.open(d / "mef.ldac") as hdul:
        nobj = [len(h.data) for h in hdul if h.name == "LDAC_OBJECTS"]
    assert len(nobj) == nccd and min(nobj) == max(nobj) > 300
    return int(line[1]) / 1024, nobj[0]


def test_peak_memory_does_not_grow_with_extensions(tmp_path):
    """2 and 8 identical extensions, each with ~4 MB of catalogue rows (VIGNET(35,35)) and a 4 MB
    segmentation image: holding every extension's products until the end (the former writer) costs
    6 x 8 MB = 48 MB more for 8 than for 2; written as they come, the peak is that of one extension."""
    sim = make_image((1024, 1024), nstars=800, ngal=700, fwhm=3.0, seed=3)
    ccd = sim.data.astype(np.float32)
    peak2, nobj = _peak_mb(tmp_path, 2, ccd)
    peak8, _ = _peak_mb(tmp_path, 8, ccd)
    per_extension = nobj * 35 * 35 * 4 / 2**20 + ccd.size * 4 / 2**20
    assert per_extension > 7
    # bound: a third of what one held extension costs over the 6 extra ones (allocator noise is ~1-2 MB)
    assert peak8 - peak2 < 6 * per_extension / 3, (peak2, peak8, per_extension)


def test_tool_failing_on_a_later_extension_leaves_no_product(tmp_path):
    """The first extension's catalogue and check image are already written when the second fails: the
    step fails naming it, and neither file exists under its name nor as a temporary file."""
    import logging

    from terapix_fw.errors import ToolError
    from terapix_fw.tool import StepContext
    from terapix_sextractor.tool import SExtractorTool

    hdus = [fits.PrimaryHDU()]
    for k in range(3):
        sim = make_image((150, 150), nstars=8, ngal=4, fwhm=3.0, seed=70 + k)
        h = simple_wcs_header(sim.data.shape)
        if k == 1:
            h["GAIN"] = "lots"  # not a number: this extension cannot be measured
        hdus.append(fits.ImageHDU(sim.data, h))
    fits.HDUList(hdus).writeto(tmp_path / "exp.fits")
    (tmp_path / "p.param").write_text("X_IMAGE\nY_IMAGE\nFLUX_AUTO\n")
    cfg = SExtractorTool.parameter_set().resolve([("CATALOG_TYPE", "FITS_LDAC", "x.xml"),
                                                  ("PARAMETERS_NAME", str(tmp_path / "p.param"), "x.xml"),
                                                  ("CHECKIMAGE_TYPE", "SEGMENTATION", "x.xml"),
                                                  ("CHECKIMAGE_NAME", "seg.fits", "x.xml")])
    out = tmp_path / "out"
    ctx = StepContext(inputs=[tmp_path / "exp.fits"], config=cfg, outdir=out, log=logging.getLogger("t"),
                      nthreads=1)
    with pytest.raises(ToolError, match="GAIN"):
        SExtractorTool().run(ctx)
    assert ctx.products == [] and list(out.iterdir()) == []


def _ascii_lines_per_value(table):
    """The former ASCII writer: one format per value (the reference the row-wise one must equal)."""
    from terapix_sextractor.catalog import fortran_to_printf
    from terapix_sextractor.paramdefs import BY_NAME

    fmts = []
    for name in table.colnames:
        arr = np.asarray(table[name])
        fmts.append((fortran_to_printf(BY_NAME[name][3]), int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1))
    columns = [np.asarray(table[name]).reshape(len(table), size) for name, (_, size) in zip(table.colnames, fmts)]
    lines = []
    for i in range(len(table)):
        parts = []
        for (fmt, size), col in zip(fmts, columns):
            for v in col[i]:
                parts.append(fmt % (int(v) if fmt.endswith("d") else v))
        lines.append(" ".join(parts))
    return lines


def test_ascii_rows_equal_the_per_value_formatting(mef_results):
    from terapix_sextractor.catalog import _ascii_lines

    for r in mef_results:
        assert _ascii_lines(r.table, with_header=False) == _ascii_lines_per_value(r.table)
    t = mef_results[0].table.copy()
    t["FLAGS"] = t["FLAGS"].astype(np.float64)  # an integer format on a float column truncates as int()
    t["FLAGS"][0] = 3.7
    assert _ascii_lines(t, with_header=False) == _ascii_lines_per_value(t)
    assert _ascii_lines(t[:0], with_header=False) == []


def test_objects_table_from_the_columns_is_astropys(mef_results):
    """The catalogue is written from the result's columns without astropy.table: the LDAC_OBJECTS
    header and rows are those of astropy's BinTableHDU.from_columns of the same column definitions, and
    the same as written from the (lazily made) astropy Table, whose units, descriptions, TDISP and meta
    are SExtractor's."""
    from terapix_sextractor.catalog import objects_bytes, objects_hdu
    from terapix_sextractor.paramdefs import BY_NAME

    r = mef_results[1]
    ours = objects_hdu(r.columns)
    ref = fits.BinTableHDU.from_columns(ours.columns)
    assert [(c.keyword, c.value) for c in ours.header.cards if c.keyword != "EXTNAME"] == \
        [(c.keyword, c.value) for c in ref.header.cards]
    assert ours.data.tobytes() == ref.data.tobytes()
    assert objects_bytes(r.columns)[0] == objects_bytes(r.table)[0]
    assert objects_bytes(r.columns)[1].tobytes() == objects_bytes(r.table)[1].tobytes()
    table = r.table
    assert table.colnames == list(r.columns) == ["NUMBER", "X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "FLUX_AUTO",
                                                   "MAG_AUTO", "MAG_APER", "FLAGS", "ALPHA_J2000", "VIGNET"]
    assert str(table["X_IMAGE"].unit) == "pix" and str(table["MAG_AUTO"].unit) == "mag"
    assert table["FLUX_AUTO"].description == BY_NAME["FLUX_AUTO"][4]
    assert table["FLAGS"].meta == {"TDISP": BY_NAME["FLAGS"][3]}
    assert table.meta["IMHEAD"] is r.header and table.meta["EXTENSION"] == 2 and "TIMINGS" in table.meta
    assert r.table is table and r.meta is table.meta and r.nrows == len(table) > 5
