"""End to end: an instruction file run by the runner, recorded in RDBix by the recorder hooks, then
``terapix web build``: the run page shows the steps and the failure with its log, the coverage page the
skywatcher result."""
from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest
from astropy.io import fits

PIPELINE = """\
<?xml version="1.0"?>
<instructions name="webdemo" version="1">
  <inputs>
    <inputset id="good"><files pattern="raw/e*.fits"/></inputset>
    <inputset id="bad"><files pattern="raw/bad*.fits"/></inputset>
  </inputs>
  <steps>
    <step id="coverage" tool="skywatcher" fanout="all">
      <config><param name="NSIDE">4096</param><param name="CHECKPLOT_RES">600</param></config>
      <input set="good"/>
    </step>
    <step id="nowcs" tool="skywatcher" fanout="file">
      <config><param name="NSIDE">1024</param></config>
      <input set="bad"/>
    </step>
  </steps>
</instructions>
"""


def _exposure(path, ra, dec, filt, wcs=True):
    h = fits.Header()
    if wcs:
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
        h["CRVAL1"], h["CRVAL2"], h["CRPIX1"], h["CRPIX2"] = ra, dec, 50.5, 50.5
        h["CD1_1"], h["CD2_2"], h["CD1_2"], h["CD2_1"] = -0.002, 0.002, 0.0, 0.0
    h["FILTER"], h["EXPTIME"] = filt, 300.0
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((100, 100), np.int16), header=h)]).writeto(path)


def test_recorded_pipeline_run_renders(tmp_path, monkeypatch):
    from terapix_fw.db.engine import dispose_all
    from terapix_fw.db.recorder import reset_recorders
    from terapix_fw.runner import run_instructions
    from terapix_fw.web import build_site

    monkeypatch.delenv("TERAPIX_DB_URL", raising=False)
    monkeypatch.delenv("TERAPIX_DBCLIENT_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw").mkdir()
    _exposure(tmp_path / "raw" / "e1.fits", 36.5, -4.5, "r")
    _exposure(tmp_path / "raw" / "e2.fits", 36.6, -4.5, "r")
    _exposure(tmp_path / "raw" / "bad1.fits", 36.5, -4.5, "r", wcs=False)
    (tmp_path / "run.xml").write_text(textwrap.dedent(PIPELINE))
    reset_recorders()
    try:
        summary = run_instructions(tmp_path / "run.xml", tmp_path / "work", jobs=1, progress=False)
        assert summary["done"] == 1 and summary["failed"] == 1
        out = tmp_path / "site"
        build_site(f"sqlite:///{tmp_path / 'work' / 'rdbix.sqlite'}", out)
    finally:
        reset_recorders()
        dispose_all()
    runs = (out / "runs.html").read_text()
    link = re.search(r'<a href="(run/[^"]+\.html)">webdemo</a>', runs)
    assert link, runs
    run = (out / link.group(1)).read_text()
    assert "skywatcher 1.0.0" in run and "NSIDE" in run
    assert "nowcs / " in run and "bad1.fits[1]: no celestial WCS" in run
    log = re.search(r'<a class="log" href="\.\./(assets/[^"]+)">log</a>', run)
    assert log and "no celestial WCS" in (out / log.group(1)).read_text()
    coverage = (out / "coverage.html").read_text()
    area = float(re.search(r"<td>r</td>\s*<td class=\"num\">([0-9.]+)</td>", coverage).group(1))
    # two 0.2 x 0.2 deg CCDs overlapping by half: 0.06 deg^2, within the HEALPix edge tolerance
    assert area == pytest.approx(0.06, abs=0.5 * 1.2 * 0.86 / 60)
    assert len(re.findall(r'<img src="assets/', coverage)) == 2
    products = (out / "products.html").read_text()
    assert "coverage_r.fits" in products and "skywatcher 1.0.0" in products
