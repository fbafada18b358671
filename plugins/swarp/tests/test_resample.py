"""Resampling: flux conservation, astrometric fidelity (TAN, TPV, galactic output), the coarse-grid
mapping error bound (PROJECTION_ERR), kernels and flux scaling conventions."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

RA, DEC = 150.0, 2.0
SRC = (150.0012, 2.0007)
FLUX = 1000.0


def _point_source(synth, tmp_path, header=None, name="ps.fits", sigma_pix=2.0, **kw):
    h = header if header is not None else synth.tan_header(160, 150, RA, DEC, 0.2, rot_deg=7.0)
    img = synth.gaussian_image(h, [(SRC[0], SRC[1], FLUX)], sigma_pix=sigma_pix, noise=1e-3, seed=2)
    return synth.write_image(tmp_path / name, h, img, GAIN=1.0, **kw)


def _measure(image, x, y, half=12):
    """Total flux and first-moment centroid (1-based) in a box around (x, y) (1-based)."""
    ix, iy = int(round(x)), int(round(y))
    box = image[iy - 1 - half: iy + half, ix - 1 - half: ix + half].astype(np.float64)
    yy, xx = np.mgrid[iy - half: iy + half + 1, ix - half: ix + half + 1]
    total = box.sum()
    return total, (box * xx).sum() / total, (box * yy).sum() / total


def _expected_pixel(path, lon, lat):
    return WCS(fits.getheader(path)).all_world2pix([[lon, lat]], 1)[0]


# LANCZOS2 and BILINEAR attenuate the highest frequencies: with a 1.5-2 pixel sigma they lose 0.1-0.2% of
# the flux (SWarp too); they are tested on a 3-pixel sigma source.
@pytest.mark.parametrize("rtype,scale,sigma", [("LANCZOS3", 0.17, 2.0), ("LANCZOS4", 0.23, 2.0),
                                               ("LANCZOS3", 0.45, 2.0), ("LANCZOS2", 0.17, 3.0),
                                               ("BILINEAR", 0.17, 3.0)])
def test_point_source_flux_conserved(synth, tmp_path, run_swarp, rtype, scale, sigma):
    """The resampled point source keeps its flux to 0.1% (0.45"/px triggers automatic 2x2 oversampling)."""
    path = _point_source(synth, tmp_path, sigma_pix=sigma)
    run_swarp([path], COMBINE_TYPE="WEIGHTED", SUBTRACT_BACK="N", RESAMPLING_TYPE=rtype,
              PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE=str(scale))
    out = tmp_path / "coadd.fits"
    x, y = _expected_pixel(out, *SRC)
    total, _, _ = _measure(fits.getdata(out), x, y, half=int(8 * sigma * 0.2 / scale) + 3)
    assert total == pytest.approx(FLUX, rel=1e-3)


def test_flux_scaling_conventions(synth, tmp_path, run_swarp):
    """FSCALASTRO_TYPE VARIABLE also conserves flux; NONE conserves surface brightness instead, so the flux
    changes by the pixel-area ratio; FLXSCALE multiplies the result."""
    path = _point_source(synth, tmp_path, FLXSCALE=2.5)
    common = dict(COMBINE_TYPE="WEIGHTED", SUBTRACT_BACK="N", PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE="0.17")
    run_swarp([path], FSCALASTRO_TYPE="VARIABLE", IMAGEOUT_NAME="var.fits", **common)
    run_swarp([path], FSCALASTRO_TYPE="NONE", IMAGEOUT_NAME="none.fits", **common)
    out = tmp_path / "var.fits"
    x, y = _expected_pixel(out, *SRC)
    var_total, _, _ = _measure(fits.getdata(out), x, y, half=15)
    none_total, _, _ = _measure(fits.getdata(tmp_path / "none.fits"), x, y, half=15)
    assert var_total == pytest.approx(2.5 * FLUX, rel=1e-3)
    assert none_total == pytest.approx(2.5 * FLUX * (0.2 / 0.17) ** 2, rel=1e-3)


def _tpv_header(synth):
    h = synth.tan_header(160, 150, RA, DEC, 0.2, rot_deg=-4.0, crpix=(70.0, 90.0))
    h["CTYPE1"] = "RA---TPV"
    h["CTYPE2"] = "DEC--TPV"
    # identity plus a few percent of quadratic and cubic distortion
    for axis, terms in ((1, {1: 1.0, 4: 2e-3, 5: -1e-3, 7: 3e-2}), (2, {1: 1.0, 4: 1e-3, 6: 2e-3, 9: -2e-2})):
        for k, v in terms.items():
            h[f"PV{axis}_{k}"] = v
    return h


@pytest.mark.parametrize("kind", ["TAN", "TPV", "GALACTIC", "ZEA"])
def test_astrometric_fidelity(synth, tmp_path, run_swarp, kind):
    """A source at a known position lands at the right output pixel to 0.01 px."""
    header = _tpv_header(synth) if kind == "TPV" else None
    path = _point_source(synth, tmp_path, header=header)
    extra = {"GALACTIC": {"CELESTIAL_TYPE": "GALACTIC"}, "ZEA": {"PROJECTION_TYPE": "ZEA"}}.get(kind, {})
    run_swarp([path], COMBINE_TYPE="WEIGHTED", SUBTRACT_BACK="N", PIXELSCALE_TYPE="MANUAL",
              PIXEL_SCALE="0.17", **extra)
    out = tmp_path / "coadd.fits"
    lon, lat = SRC
    if kind == "ZEA":
        assert fits.getheader(out)["CTYPE2"] == "DEC--ZEA"
    if kind == "GALACTIC":
        assert fits.getheader(out)["CTYPE1"] == "GLON-TAN"
        g = SkyCoord(lon, lat, unit="deg", frame="icrs").galactic
        lon, lat = g.l.deg, g.b.deg
    x, y = _expected_pixel(out, lon, lat)
    _, xc, yc = _measure(fits.getdata(out), x, y, half=14)
    assert abs(xc - x) < 0.01
    assert abs(yc - y) < 0.01


def test_projection_err_bounds_the_mapping(synth):
    """The coarse-grid mapping agrees with the exact WCS mapping to PROJECTION_ERR at random points; a
    tighter tolerance refines the grid.  (A 2.2-degree TAN -> AIT mapping, coarse enough that the first
    1024-pixel grid misses 1e-6 px.)"""
    from terapix_swarp.kernels import mapping_rows
    from terapix_swarp.mapping import PixelMap, build_grid

    in_wcs = WCS(synth.tan_header(4000, 4000, RA, 60.0, 2.0))
    out_header = synth.tan_header(4000, 4000, RA + 1.0, 60.5, 2.1, rot_deg=30.0)
    out_header["CTYPE1"], out_header["CTYPE2"] = "RA---AIT", "DEC--AIT"
    pmap = PixelMap(in_wcs, WCS(out_header))
    rng = np.random.default_rng(3)
    xs = np.sort(rng.uniform(1, 4000, 80))
    ys = np.sort(rng.uniform(1, 4000, 70))
    ex, ey = pmap.out_to_in(*np.meshgrid(xs, ys))
    steps = {}
    for err in (1e-6, 1e-3):
        grid = build_grid(pmap, 1, 4000, 1, 4000, err, start_step=1024)
        ax, ay = mapping_rows(grid.gx, grid.gy, grid.x0, grid.y0, grid.step, xs, ys)
        assert np.hypot(ax.ravel() - ex, ay.ravel() - ey).max() < err
        steps[err] = grid.step
    assert steps[1e-3] > steps[1e-6]
    exact = build_grid(pmap, 1, 100, 1, 100, 0.0)
    assert exact.step == 1.0


def test_bad_pixel_zeroes_lanczos_footprint(synth, tmp_path, run_swarp):
    """A bad input pixel contributes nothing and, the variance being the maximum over the kernel
    footprint (SWarp's interpolate.c), zeroes the weight of the 6x6 output pixels around it."""
    h = synth.tan_header(60, 60, RA, DEC, 0.2)
    data = np.random.default_rng(1).normal(10, 1, (60, 60)).astype(np.float32)
    weight = np.ones((60, 60), np.float32)
    weight[29, 29] = 0.0
    synth.write_image(tmp_path / "bp.fits", h, data)
    fits.PrimaryHDU(weight, h).writeto(tmp_path / "bp.weight.fits")
    # output grid shifted by half a pixel so every output pixel interpolates
    run_swarp([tmp_path / "bp.fits"], WEIGHT_TYPE="MAP_WEIGHT", SUBTRACT_BACK="N", COMBINE_TYPE="WEIGHTED",
              CENTER_TYPE="MANUAL", CENTER=f"{RA + 0.5 * 0.2 / 3600},{DEC + 0.5 * 0.2 / 3600}",
              PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE="0.2", IMAGE_SIZE="60")
    w = fits.getdata(tmp_path / "coadd.weight.fits")
    zero = np.argwhere(w[10:50, 10:50] == 0)
    assert len(zero) == 36
    assert np.ptp(zero[:, 0]) == 5 and np.ptp(zero[:, 1]) == 5
