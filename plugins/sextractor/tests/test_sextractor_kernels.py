"""The memory-lean forms of the weight-map handling give exactly what the whole-image formulas give.

The whole-image formulas below are the definitions (SExtractor's ``interpolate.c``, ``weight.c`` and the
3x3 grown segmentation of FLAGS_WEIGHT); the plugin evaluates them on the list of bad pixels only and in
place, so that a 2048x4612 CCD with a weight map stays within a few image-sized arrays.  Catalogues made
in place (arrays read for the extraction) and from the caller's arrays (copied) are identical, and the
caller's arrays are left untouched.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import maximum_filter

from terapix_sextractor.extraction import (ImageSpec, _every_nth, _grown_labels_at, _interpolate_bad,
                                           _variance_from_weight, extract_image, resolve_config, resolve_params)
from terapix_sextractor.synth import make_image


def dense_interpolation(data, var, bad, maxxlag, maxylag):
    """interpolate.c on whole-image index maps (the definition)."""
    ny, nx = data.shape
    good = ~bad
    last = np.maximum.accumulate(np.where(good, np.arange(nx)[None, :], -1), axis=1)
    okx = bad & (last >= 0) & (np.arange(nx)[None, :] - last <= maxxlag)
    lasty = np.maximum.accumulate(np.where(good, np.arange(ny)[:, None], -1), axis=0)
    oky = bad & ~okx & (lasty >= 0) & (np.arange(ny)[:, None] - lasty <= maxylag)
    out, vout = data.copy(), var.copy()
    yy, xx = np.nonzero(okx)
    out[yy, xx], vout[yy, xx] = data[yy, last[yy, xx]], var[yy, last[yy, xx]]
    yy, xx = np.nonzero(oky)
    out[yy, xx], vout[yy, xx] = data[lasty[yy, xx], xx], var[lasty[yy, xx], xx]
    return out, vout, okx | oky


def bad_mask(rng, shape):
    """Scattered bad pixels, runs along lines longer and shorter than the lags, whole bad columns and
    rows, bad pixels on every edge."""
    ny, nx = shape
    bad = rng.random(shape) < 0.03
    bad[:, 7] = True              # a bad column from bottom to top
    bad[5, :] = True              # a bad row
    bad[20, 3:40] = True          # a run longer than INTERP_MAXXLAG 16
    bad[30:60, 50] = True         # a column segment
    bad[0, :4] = bad[:3, -1] = bad[-1, -5:] = True
    bad[40:44, 0] = True
    return bad


@pytest.mark.parametrize("lags", [(16, 0), (16, 16), (3, 2), (0, 100)])
def test_interpolation_of_bad_pixels_equals_the_whole_image_definition(lags):
    rng = np.random.default_rng(3)
    shape = (80, 64)
    data = rng.normal(100, 5, shape).astype(np.float32)
    var = rng.uniform(1, 2, shape).astype(np.float32)
    bad = bad_mask(rng, shape)
    want = dense_interpolation(data, var, bad, *lags)
    got = _interpolate_bad(data, var, bad, *lags)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
    assert got[2].sum() > 0 and not got[2].all()  # the case filled some pixels and left others
    d2, v2 = data.copy(), var.copy()
    out, vout, filled = _interpolate_bad(d2, v2, bad, *lags, inplace=True)
    assert out is d2 and vout is v2
    np.testing.assert_array_equal(d2, want[0])
    np.testing.assert_array_equal(v2, want[1])
    d3 = data.copy()
    out, vout, _ = _interpolate_bad(d3, var.copy(), bad, *lags, data_too=False)  # INTERP_TYPE VAR_ONLY
    np.testing.assert_array_equal(out, data)
    np.testing.assert_array_equal(vout, want[1])


@pytest.mark.parametrize("wtype", ["MAP_WEIGHT", "MAP_VAR", "MAP_RMS"])
@pytest.mark.parametrize("thresh", [None, 0.5])
def test_variance_from_weight_in_place_equals_the_definition(wtype, thresh):
    rng = np.random.default_rng(4)
    w = rng.uniform(0.2, 2.0, (50, 40)).astype(np.float32)
    w[rng.random(w.shape) < 0.05] = 0
    w[3, 3], w[4, 4], w[5, 5] = np.nan, np.inf, -1
    if wtype == "MAP_WEIGHT":
        bad = ~(w > (0.0 if thresh is None else thresh))
        with np.errstate(divide="ignore"):
            var = np.where(bad, np.float32(1e30), 1.0 / np.where(bad, 1, w)).astype(np.float32)
    else:
        big = {"MAP_VAR": 1e30, "MAP_RMS": 1e15}[wtype] if thresh is None else thresh
        bad = ~np.isfinite(w) | (w >= big) | (w <= 0)
        val = w if wtype == "MAP_VAR" else np.square(np.where(bad, 0, w))
        var = np.where(bad, np.float32(1e30), val).astype(np.float32)
    before = w.copy()
    v1, b1 = _variance_from_weight(w, wtype, thresh)
    np.testing.assert_array_equal(w, before)  # not in place: the caller's map is untouched
    v2, b2 = _variance_from_weight(w, wtype, thresh, inplace=True)
    assert v2 is w
    for v, b in ((v1, b1), (v2, b2)):
        np.testing.assert_array_equal(b, bad)
        np.testing.assert_array_equal(v, var)


def test_grown_labels_equal_the_maximum_filter():
    rng = np.random.default_rng(5)
    seg = np.where(rng.random((60, 50)) < 0.2, rng.integers(1, 30, (60, 50)), 0).astype(np.int32)
    mask = rng.random(seg.shape) < 0.1
    mask[0, 0] = mask[-1, -1] = mask[0, -1] = mask[-1, 0] = True
    flat, grown = _grown_labels_at(seg, mask)
    np.testing.assert_array_equal(flat, np.flatnonzero(mask))
    np.testing.assert_array_equal(grown, maximum_filter(seg, size=3)[mask])


@pytest.mark.parametrize("step", [1, 3, 9, 1000])
def test_every_nth_selected_value_equals_the_plain_slice(step):
    rng = np.random.default_rng(6)
    values = rng.random((700, 33)).astype(np.float32)
    select = rng.random(values.shape) < 0.7
    np.testing.assert_array_equal(_every_nth(values, select, step, block=64), values[select][::step])
    unselected = np.flatnonzero(~select)
    np.testing.assert_array_equal(_every_nth(values, None, step, unselected=unselected), values[select][::step])
    np.testing.assert_array_equal(_every_nth(values, None, step, unselected=unselected[:0]), values.ravel()[::step])


def test_catalogue_in_place_equals_the_catalogue_from_the_callers_arrays():
    sim = make_image((300, 260), nstars=40, ngal=40, fwhm=3.0, seed=12, satur=60000)
    weight = np.ones(sim.data.shape, np.float32)
    weight[:, 100] = 0       # a bad column (interpolated from its left neighbour)
    weight[150:153, 20:200] = 0
    data = sim.data.astype(np.float32)
    data[10, 10] = np.nan    # a NaN pixel (masked)
    cfg = resolve_config(None, WEIGHT_TYPE="MAP_WEIGHT", GAIN=sim.gain)
    plist = resolve_params(["NUMBER", "XWIN_IMAGE", "YWIN_IMAGE", "FLUX_AUTO", "FLUXERR_AUTO", "FLAGS",
                            "FLAGS_WEIGHT", "NLOWWEIGHT_ISO", "FLUX_ISO", "FLUXERR_ISO", "SNR_WIN"], cfg)
    d0, w0 = data.copy(), weight.copy()
    api = extract_image(ImageSpec(data, None, weight=weight), cfg, plist, wtype_m="MAP_WEIGHT").table
    np.testing.assert_array_equal(data, d0)
    np.testing.assert_array_equal(weight, w0)
    owned = extract_image(ImageSpec(d0.copy(), None, weight=w0.copy(), owned=True), cfg, plist,
                          wtype_m="MAP_WEIGHT").table
    assert len(api) == len(owned) > 40
    assert (np.asarray(api["FLAGS_WEIGHT"]) & 2).any()
    for name in api.colnames:
        np.testing.assert_array_equal(np.asarray(owned[name]), np.asarray(api[name]), err_msg=name)
