"""Dual-image catalogues in an instruction file: ``<input ... role="detection"/>`` puts the detection image
(the chi-squared image of a release) before each band's image, as SExtractor's ``sex det.fits,meas.fits``;
the catalogues of a pipeline run agree with the real ``source-extractor`` in dual-image mode."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from terapix_fw.errors import InstructionError
from terapix_fw.instructions import load_instructions
from terapix_fw.graph import build_graph
from terapix_fw.ldac import read_ldac
from terapix_fw.runner import run_instructions

CONV = "/usr/share/source-extractor/default.conv"
COLS = ["X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "FLUX_ISO", "FLUX_AUTO", "FLUX_APER", "A_IMAGE", "KRON_RADIUS",
        "ISOAREAF_IMAGE", "FLUX_MAX"]


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed (the regression test must run in CI)")
        pytest.skip(f"{name} is not installed")
    return path


def _image(shape, sources, seed):
    """Elliptical Gaussians (x, y, flux, sigma_x, sigma_y) on unit Gaussian noise."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    img = np.random.default_rng(seed).normal(0.0, 1.0, shape)
    for x, y, flux, sx, sy in sources:
        img += flux / (2 * np.pi * sx * sy) * np.exp(-0.5 * (((xx - x) / sx) ** 2 + ((yy - y) / sy) ** 2))
    return img.astype(np.float32)


INSTRUCTIONS = """<instructions name="dual" version="T0001">
  <inputs>
    <inputset id="bands"><files pattern="band_*.fits"/></inputset>
    <inputset id="chi2"><files pattern="chi2.fits"/></inputset>
  </inputs>
  <steps>
    <step id="dual" tool="sextractor" fanout="file">
      <config>
        <param name="PARAMETERS_NAME">{param}</param>
        <param name="CATALOG_TYPE">FITS_LDAC</param>
        <param name="CATALOG_NAME">{{stem}}_dual.ldac</param>
        <param name="FILTER_NAME">{conv}</param>
      </config>
      <input set="bands"/>
      <input set="chi2" role="detection"/>
    </step>
  </steps>
</instructions>
"""


@pytest.fixture
def images(tmp_path):
    src = [(40, 40, 3e4, 2, 2), (100, 60, 2e4, 2.5, 1.5), (60, 110, 1e4, 2, 2)]
    fits.PrimaryHDU(_image((150, 150), src, 1)).writeto(tmp_path / "chi2.fits")
    # band g: fainter, broader; band r: brighter, with a source the detection image does not have
    fits.PrimaryHDU(_image((150, 150), [(x + 0.3, y, 0.5 * f, a * 1.2, b * 1.2) for x, y, f, a, b in src], 2)
                    ).writeto(tmp_path / "band_g.fits")
    fits.PrimaryHDU(_image((150, 150), [(x, y - 0.4, 3 * f, a * 1.3, b * 1.3) for x, y, f, a, b in src]
                           + [(120, 120, 5e4, 2, 2)], 3)).writeto(tmp_path / "band_r.fits")
    (tmp_path / "d.param").write_text("\n".join(COLS) + "\n")
    path = tmp_path / "dual.xml"
    path.write_text(INSTRUCTIONS.format(param=tmp_path / "d.param", conv=CONV))
    return tmp_path, path


def test_detection_input_goes_first(images):
    _, path = images
    graph = build_graph(load_instructions(path))
    units = graph.by_step("dual")
    assert [u.id for u in units] == ["band_g", "band_r"]
    for u in units:
        assert [os.path.basename(i.path) for i in u.items] == ["chi2.fits", f"{u.id}.fits"]
        assert u.origin.endswith(f"{u.id}.fits")  # {stem} is the measurement image's


def test_detection_only_is_refused(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text('<instructions name="x" version="1"><inputs><inputset id="c"><files pattern="c.fits"/>'
                    '</inputset></inputs><steps><step id="s" tool="sextractor"><input set="c" role="detection"/>'
                    '</step></steps></instructions>')
    with pytest.raises(InstructionError, match="need a measurement input"):
        load_instructions(path)


def test_pipeline_dual_image_catalogues_match_source_extractor(images):
    sex = _program("source-extractor")
    tmp_path, path = images
    summary = run_instructions(path, tmp_path / "work", jobs=1, progress=False,
                               db_url=f"sqlite:///{tmp_path / 'rdbix.sqlite'}")
    assert summary["done"] == 2 and summary["failed"] == 0
    for band, nexpected in (("g", 3), ("r", 3)):  # r's extra source is not on the detection image
        subprocess.run([sex, f"{tmp_path / 'chi2.fits'},{tmp_path / f'band_{band}.fits'}", "-PARAMETERS_NAME",
                        str(tmp_path / "d.param"), "-CATALOG_TYPE", "FITS_LDAC", "-CATALOG_NAME",
                        str(tmp_path / f"ref_{band}.ldac"), "-FILTER_NAME", CONV, "-VERBOSE_TYPE", "QUIET"],
                       check=True, cwd=tmp_path, timeout=60)
        ref = read_ldac(tmp_path / f"ref_{band}.ldac")[0].objects
        ours = read_ldac(tmp_path / "work" / "dual" / f"band_{band}_dual.ldac")[0].objects
        assert len(ours) == len(ref) == nexpected
        ref.sort("X_IMAGE")
        ours.sort("X_IMAGE")
        # positions, shapes, Kron radius and isophotal areas from the detection image: float32 rounding only
        for col, tol in (("X_IMAGE", 1e-3), ("Y_IMAGE", 1e-3), ("A_IMAGE", 1e-3), ("KRON_RADIUS", 1e-3),
                         ("ISOAREAF_IMAGE", 0)):
            assert np.allclose(ours[col], ref[col], atol=tol, rtol=0), (band, col)
        # XWIN iterates on the measurement image, fluxes are measured on it (SExtractor subtracts its
        # background per pixel row: 0.5 % on the isophotal sums, as in the sextractor plugin's own test)
        assert np.allclose(ours["XWIN_IMAGE"], ref["XWIN_IMAGE"], atol=1e-3), band
        assert np.allclose(ours["FLUX_MAX"], ref["FLUX_MAX"], rtol=0.01), band
        for col in ("FLUX_AUTO", "FLUX_APER", "FLUX_ISO"):
            assert np.allclose(ours[col], ref[col], rtol=5e-3), (band, col)
