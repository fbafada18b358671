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


def _tangent_header(**cards):
    header = fits.Header({"NAXIS": 2, "NAXIS1": 256, "NAXIS2": 576, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
                          "CRPIX1": 1000.5, "CRPIX2": -300.0, "CRVAL1": 359.99, "CRVAL2": -62.2,
                          "CD1_1": -5.16e-5, "CD1_2": 1.1e-6, "CD2_1": -0.9e-6, "CD2_2": 5.17e-5})
    for key, value in cards.items():
        if value is None:
            del header[key]
        else:
            header[key] = value
    return header


#: a 7th-order TPV with every radial term (what SCAMP may write with DISTORT_DEGREES up to 7)
_TPV = {f"PV{axis}_{k}": (1.0 if k == 1 else 0.0) + 10.0 ** -(1 + k % 5) * (-1) ** (k + axis)
        for axis in (1, 2) for k in range(40)}


@pytest.mark.parametrize("cards", [
    {},                                                                  # raw MegaCam: TAN, CD matrix
    {"CD1_1": None, "CD1_2": None, "CD2_1": None, "CD2_2": None, "CDELT1": -5.2e-5, "CDELT2": 5.2e-5,
     "PC1_1": 0.99, "PC1_2": 0.02, "PC2_1": -0.01, "PC2_2": 1.0},       # PC x CDELT
    {"CTYPE1": "RA---TPV", "CTYPE2": "DEC--TPV", **_TPV},                # SCAMP's TPV
    {"PV1_1": 1.0, "PV2_1": 1.0, "PV1_7": 2e-2, "PV2_10": -1e-2, "PV1_0": 1e-4},  # pre-2012 SCAMP: TAN + PV
    {"CRVAL1": 10.0, "CRVAL2": 89.9},                                    # near the pole
])
def test_tangent_wcs_matches_astropy(cards):
    """The numpy TAN/TPV mapping (used instead of astropy.wcs to keep astropy.coordinates out of a drop-in
    run) gives astropy's (WCSLIB's) positions to 1e-10 deg, and the same pixel scale."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    from terapix_fw.wcsutil import TangentWCS, pixel_scale_arcsec

    header = _tangent_header(**cards)
    ours = TangentWCS.from_header(header)
    assert ours is not None
    reference = _wcs(header)
    x, y = np.meshgrid(np.linspace(-50, 300, 8), np.linspace(-50, 620, 8))
    pixels = np.column_stack([x.ravel(), y.ravel()])
    for origin in (0, 1):
        got, want = ours.all_pix2world(pixels, origin), reference.all_pix2world(pixels, origin)
        dra = (got[:, 0] - want[:, 0] + 180.0) % 360.0 - 180.0
        assert np.abs(dra * np.cos(np.radians(want[:, 1]))).max() < 1e-10
        assert np.abs(got[:, 1] - want[:, 1]).max() < 1e-10
        assert got[:, 0].min() >= 0.0 and got[:, 0].max() < 360.0
    assert pixel_scale_arcsec(ours) == pytest.approx(np.sqrt(np.prod(proj_plane_pixel_scales(reference))) * 3600,
                                                     rel=1e-12)


@pytest.mark.parametrize("cards", [
    {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN"},                        # another projection
    {"CTYPE1": "DEC--TAN", "CTYPE2": "RA---TAN"},                        # swapped axes
    {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1e-6},
    {"PV1_1": 1.0, "PV2_2": 0.5},                                        # TAN with low-order PV only
    {"CTYPE1": "RA---TPV", "CTYPE2": "DEC--TPV", "PV1_4": 1e-3},          # TPV without its linear terms
    {"LONPOLE": 170.0},
    {"CUNIT1": "rad"},
    {"PC1_1": 1.0},                                                      # both CD and PC
    {"CRVAL2": 90.0},
])
def test_tangent_wcs_leaves_other_headers_to_astropy(cards):
    from terapix_fw.wcsutil import TangentWCS

    assert TangentWCS.from_header(_tangent_header(**cards)) is None
