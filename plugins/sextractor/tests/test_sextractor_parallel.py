"""One image on several cores (detection in a forked process, measurements in threads) gives exactly the
single-threaded catalogue; the forked call returns arrays and exceptions faithfully."""
from __future__ import annotations


import os

import numpy as np
import pytest
from astropy.io import fits

from terapix_sextractor.extraction import extract
from terapix_fw.forked import can_fork
from terapix_sextractor.synth import make_image, simple_wcs_header

pytestmark = pytest.mark.skipif(not can_fork(), reason="no os.fork on this platform")

PARAMS = ["NUMBER", "X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE", "ERRAWIN_IMAGE", "ERRA_IMAGE",
          "ALPHA_J2000", "DELTA_J2000", "FLUX_AUTO", "FLUXERR_AUTO", "FLUX_ISO", "FLUXERR_ISO", "MAG_APER(2)",
          "FLUX_RADIUS", "KRON_RADIUS", "FLAGS", "FLAGS_WEIGHT", "CLASS_STAR", "FWHM_IMAGE", "ISOAREA_IMAGE",
          "ISO0", "ISO7", "SNR_WIN", "BACKGROUND", "THRESHOLD", "IMAFLAGS_ISO"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("par")
    sim = make_image((400, 360), nstars=60, ngal=60, fwhm=3.0, seed=11, satur=60000)
    hdr = simple_wcs_header(sim.data.shape)
    hdr["GAIN"] = sim.gain
    fits.PrimaryHDU(sim.data, hdr).writeto(d / "img.fits")
    weight = np.ones(sim.data.shape, np.float32)
    weight[100:104, :] = 0  # a bad row band: weights, interpolation and FLAGS_WEIGHT take part
    fits.PrimaryHDU(weight).writeto(d / "w.fits")
    flags = np.zeros(sim.data.shape, np.int16)
    flags[200:260, 50:120] = 4
    fits.PrimaryHDU(flags).writeto(d / "f.fits")
    return d


@pytest.mark.parametrize("extra", [
    {},
    {"WEIGHT_TYPE": "MAP_WEIGHT", "FILTER": "N"},
    {"BACKPHOTO_TYPE": "LOCAL", "FILTER": "Y"},
    {"PIXEL_SCALE": 0.2},  # the WCS is then only needed for the world columns: built in a thread
])
def test_overlapped_extraction_equals_the_serial_one(files, extra):
    kw = dict(params=PARAMS, PHOT_APERTURES=[5, 10], flag_path=str(files / "f.fits"), **extra)
    if extra.get("WEIGHT_TYPE"):
        kw["weight_path"] = str(files / "w.fits")
    serial = extract(files / "img.fits", nthreads=1, **kw)[0]
    par = extract(files / "img.fits", nthreads=2, **kw)[0]
    assert "isophotal (detecting process)" in par.meta["TIMINGS"]  # the forked path was taken
    assert "isophotal (detecting process)" not in serial.meta["TIMINGS"]
    assert len(serial) == len(par) > 50
    for name in serial.colnames:
        np.testing.assert_array_equal(np.asarray(par[name]), np.asarray(serial[name]), err_msg=name)
    assert (np.asarray(par["IMAFLAGS_ISO"]) == 4).any()
    if extra.get("WEIGHT_TYPE"):
        assert (np.asarray(par["FLAGS_WEIGHT"]) & 2).any()


def test_a_pixel_stack_too_small_is_enlarged_not_fatal(files, monkeypatch):
    """SExtractor stops when MEMORY_PIXSTACK overflows; the plugin enlarges sep's stack and extracts again,
    with the same catalogue as a stack large enough from the start."""
    import sep
    sizes = []
    real = sep.set_extract_pixstack
    monkeypatch.setattr(sep, "set_extract_pixstack", lambda n: (sizes.append(n), real(n)))
    kw = dict(params=["NUMBER", "X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "ISOAREA_IMAGE"], nthreads=1)
    small = extract(files / "img.fits", MEMORY_PIXSTACK=50, **kw)[0]
    assert sizes[0] == 50 and len(sizes) > 1 and sizes == sorted(sizes)  # overflowed, then enlarged
    large = extract(files / "img.fits", MEMORY_PIXSTACK=1_000_000, **kw)[0]
    assert len(small) == len(large) > 50
    assert np.asarray(large["ISOAREA_IMAGE"]).max() > 50  # an object larger than the small stack
    for name in large.colnames:
        np.testing.assert_array_equal(np.asarray(small[name]), np.asarray(large[name]), err_msg=name)


DASK_XML = """<?xml version="1.0"?>
<instructions name="sexdask" version="1">
  <inputs><inputset id="raw"><files pattern="raw/*.fits"/></inputset></inputs>
  <steps>
    <step id="sex" tool="sextractor" fanout="file" threads="2">
      <config><param name="CATALOG_TYPE">FITS_LDAC</param><param name="PHOT_APERTURES">5,10</param>
        <param name="NTHREADS">0</param><param name="VERBOSE_TYPE">NORMAL</param></config>
      <input set="raw"/>
    </step>
  </steps>
</instructions>
"""


def test_forked_detection_inside_a_dask_worker_thread(files, tmp_path):
    """A single image with two threads takes the forked-detection path; in a Dask worker that fork
    happens in a task thread of a multi-threaded process (event loop, heartbeats).  It must neither hang
    nor differ from the local process pool."""
    pytest.importorskip("distributed")
    from terapix_fw.ldac import read_ldac
    from terapix_fw.runner import run_instructions

    (tmp_path / "raw").mkdir()
    os.symlink(files / "img.fits", tmp_path / "raw" / "img.fits")
    xml = tmp_path / "sex.xml"
    xml.write_text(DASK_XML)
    cats = {}
    for executor in ("local", "dask"):
        counts = run_instructions(xml, tmp_path / executor, jobs=1, executor=executor, progress=False)
        assert counts["done"] == 1 and counts["failed"] == 0, counts
        (cat,) = (tmp_path / executor).glob("**/img.cat")
        cats[executor] = read_ldac(cat)[0].objects
        logs = "".join(p.read_text() for p in (tmp_path / executor).glob("**/*.log"))
        assert "isophotal (detecting process)" in logs  # the forked path was taken
    local, dask = cats["local"], cats["dask"]
    assert len(local) == len(dask) > 50
    for name in local.colnames:
        np.testing.assert_array_equal(np.asarray(dask[name]), np.asarray(local[name]), err_msg=name)
