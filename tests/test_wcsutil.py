"""WCS helpers: the robust inverse of strongly distorted TPV solutions."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from terapix_fw.errors import ToolError
from terapix_fw.headfile import read_head_file
from terapix_fw.wcsutil import celestial_wcs, world_to_pixel

DATA = Path(__file__).parent / "data"


def _wcs(header):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(header)


def test_inverse_of_a_tpv_that_astropy_cannot_invert():
    # a per-CCD TPV solution (from a SCAMP-like fit of a small CCD far from its tangent point) whose
    # CD matrix and cubic terms nearly cancel: astropy's fixed-point inverse diverges everywhere
    (header,) = read_head_file(DATA / "diverging_tpv.head")
    wcs = _wcs(header)
    x, y = np.meshgrid(np.linspace(-20, 276, 9), np.linspace(-20, 596, 9))
    pixels = np.column_stack([x.ravel(), y.ravel()])
    world = wcs.all_pix2world(pixels, 1)
    assert np.isnan(wcs.all_world2pix(world, 1, quiet=True)).any()
    back = world_to_pixel(wcs, world, 1)
    assert np.all(np.isfinite(back))
    np.testing.assert_allclose(back, pixels, atol=1e-6)


def test_inverse_matches_astropy_where_it_converges():
    header = fits.Header({"NAXIS": 2, "NAXIS1": 100, "NAXIS2": 100, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
                          "CRVAL1": 150.0, "CRVAL2": 2.0, "CRPIX1": 50.0, "CRPIX2": 50.0,
                          "CD1_1": -5e-5, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 5e-5})
    wcs = _wcs(header)
    world = np.array([[150.001, 2.001], [149.999, 1.998]])
    np.testing.assert_array_equal(world_to_pixel(wcs, world, 1), wcs.all_world2pix(world, 1))


def test_celestial_wcs_errors_name_the_place():
    header = fits.Header({"NAXIS": 2, "NAXIS1": 10, "NAXIS2": 10, "CTYPE1": "PIXEL", "CTYPE2": "PIXEL"})
    with pytest.raises(ToolError, match=r"a.fits\[3\]: no celestial WCS \(CTYPE1/CTYPE2 = 'PIXEL'/'PIXEL'\)"):
        celestial_wcs(header, "a.fits[3]")
