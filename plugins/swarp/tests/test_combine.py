"""Co-addition: every COMBINE_TYPE against a direct numpy computation, CLIPPED against a cosmic ray,
CHI-MEAN statistics on pure noise, and strips (tiling) against a single pass.

The inputs share the output grid exactly (same CRVAL, CRPIX, scale, no rotation) and are resampled with
NEAREST, so resampling is the identity and the co-added pixels can be computed independently with numpy.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from scipy.special import gammaln


NX, NY = 40, 36
RA, DEC, SCALE = 150.0, 2.0, 0.2
IDENTITY = dict(CENTER_TYPE="MANUAL", CENTER=f"{RA},{DEC}", PIXELSCALE_TYPE="MANUAL", PIXEL_SCALE=str(SCALE),
                IMAGE_SIZE=f"{NX},{NY}", RESAMPLING_TYPE="NEAREST", SUBTRACT_BACK="N", RESCALE_WEIGHTS="N",
                WEIGHT_TYPE="MAP_WEIGHT")


def make_stack(synth, tmp_path, n=5, seed=0, holes=True, fscales=None, gains=None):
    """``n`` images on the identity grid with random values and weights; some pixels have weight 0."""
    rng = np.random.default_rng(seed)
    h = synth.tan_header(NX, NY, RA, DEC, SCALE)
    values, weights, paths = [], [], []
    for i in range(n):
        data = rng.normal(10.0, 3.0, (NY, NX)).astype(np.float32)
        weight = rng.uniform(0.5, 2.0, (NY, NX)).astype(np.float32)
        if holes:
            weight[rng.random((NY, NX)) < 0.15] = 0.0
        kw = {"GAIN": (gains[i] if gains else 0.0), "EXPTIME": 10.0 * (i + 1)}
        if fscales:
            kw["FLXSCALE"] = fscales[i]
        paths.append(synth.write_image(tmp_path / f"in{i}.fits", h, data, **kw))
        fits.PrimaryHDU(weight, h).writeto(tmp_path / f"in{i}.weight.fits")
        values.append(data)
        weights.append(weight)
    return paths, np.array(values, dtype=np.float64), np.array(weights, dtype=np.float64)


def numpy_combine(ctype, f, w):
    """Direct computation over axis 0 with masked (weight 0) values ignored; returns (value, variance)."""
    good = w > 0
    var = np.where(good, 1.0 / np.where(good, w, 1.0), np.inf)
    n = good.sum(0)
    fm = np.where(good, f, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        if ctype == "WEIGHTED":
            iw = np.where(good, 1.0 / var, 0.0)
            return (np.where(good, f, 0) * iw).sum(0) / iw.sum(0), 1.0 / iw.sum(0)
        if ctype == "AVERAGE":
            return np.nanmean(fm, 0), np.where(good, var, 0).sum(0) / n ** 2
        if ctype == "SUM":
            return np.nansum(fm, 0), np.where(good, var, 0).sum(0)
        if ctype == "MEDIAN":
            s = np.where(good, 1.0 / np.sqrt(var), 0).sum(0)
            c = np.where(n % 2 == 1, math.pi / 2 - 1, math.pi - 2)
            v_big = math.pi * n ** 2 / (2 * s ** 2 * (n + c))
            v_small = np.where(good, var, 0).sum(0) / n ** 2
            return np.nanmedian(fm, 0), np.where(n > 2, v_big, v_small)
        if ctype in ("MIN", "MAX"):
            return (np.nanmin(fm, 0) if ctype == "MIN" else np.nanmax(fm, 0)), np.ones(n.shape)
        y = np.where(good, f ** 2 / var, 0).sum(0)
        if ctype == "CHI-OLD":
            return np.sqrt(y / n), np.ones(n.shape)
        mu = np.sqrt(2) * np.exp(gammaln((n + 1) / 2) - gammaln(n / 2))
        centre = mu if ctype == "CHI-MEAN" else np.sqrt(n - 1.0)
        return (np.sqrt(y) - centre) / np.sqrt(n - mu ** 2), np.ones(n.shape)
    raise ValueError(ctype)


@pytest.mark.parametrize("ctype", ["WEIGHTED", "AVERAGE", "MEDIAN", "SUM", "MIN", "MAX", "CHI-OLD",
                                   "CHI-MODE", "CHI-MEAN"])
def test_combine_type_matches_numpy(synth, tmp_path, run_swarp, ctype):
    fscales = [1.0, 0.5, 2.0, 1.5, 0.8]
    paths, f, w = make_stack(synth, tmp_path, fscales=fscales)
    # FLXSCALE multiplies values and variances by fscale and fscale^2 (SWarp's makeit.c)
    fs = np.array(fscales)[:, None, None]
    f, w = f * fs, w / fs ** 2
    run_swarp(paths, COMBINE_TYPE=ctype, **IDENTITY)
    out = fits.getdata(tmp_path / "coadd.fits").astype(np.float64)
    wout = fits.getdata(tmp_path / "coadd.weight.fits").astype(np.float64)
    value, var = numpy_combine(ctype, f, w)
    n = (w > 0).sum(0)
    if ctype.startswith("CHI"):
        ok = n > 1  # n = 1 gives f/sigma, tested below
    else:
        ok = n > 0
    assert ok.sum() > 0.9 * ok.size
    np.testing.assert_allclose(out[ok], value[ok], rtol=2e-6, atol=2e-5)
    np.testing.assert_allclose(wout[ok], 1.0 / var[ok], rtol=2e-6)
    assert np.all(wout[n == 0] == 0)
    if ctype.startswith("CHI"):
        one = n == 1
        if one.any():
            k = np.argmax(w > 0, axis=0)
            jj, ii = np.nonzero(one)
            expect = f[k[jj, ii], jj, ii] * np.sqrt(w[k[jj, ii], jj, ii])
            np.testing.assert_allclose(out[jj, ii], expect, rtol=2e-6, atol=1e-5)


def test_clipped_rejects_cosmic_ray(synth, tmp_path, run_swarp):
    rng = np.random.default_rng(4)
    h = synth.tan_header(NX, NY, RA, DEC, SCALE)
    truth = 50.0
    paths = []
    frames = []
    for i in range(5):
        data = (truth + rng.normal(0.0, 1.0, (NY, NX))).astype(np.float32)
        if i == 2:
            data[20, 15] += 5000.0  # the cosmic ray: output pixel x=16, y=21 (1-based)
        frames.append(data)
        paths.append(synth.write_image(tmp_path / f"cr{i}.fits", h, data, GAIN=1e4))
        fits.PrimaryHDU(np.ones((NY, NX), np.float32), h).writeto(tmp_path / f"cr{i}.weight.fits")
    run_swarp(paths, COMBINE_TYPE="CLIPPED", CLIP_WRITELOG="Y", IMAGEOUT_NAME="clipped.fits", **IDENTITY)
    run_swarp(paths, COMBINE_TYPE="WEIGHTED", IMAGEOUT_NAME="weighted.fits", **IDENTITY)
    clipped = fits.getdata(tmp_path / "clipped.fits")
    weighted = fits.getdata(tmp_path / "weighted.fits")
    others = np.mean([frames[i][20, 15] for i in (0, 1, 3, 4)])
    assert weighted[20, 15] > truth + 900  # the plain weighted mean is ruined
    assert clipped[20, 15] == pytest.approx(others, abs=1e-4)
    # away from the cosmic ray nothing is clipped: CLIPPED equals WEIGHTED
    mask = np.ones_like(clipped, bool)
    mask[20, 15] = False
    np.testing.assert_allclose(clipped[mask], weighted[mask], rtol=1e-6)
    lines = (tmp_path / "clipped.log").read_text().split()
    assert len(lines) == 4
    origin, x, y, dev = int(lines[0]), int(lines[1]), int(lines[2]), float(lines[3])
    assert (origin, x, y) == (2, 16, 21)
    assert dev > 100


def test_chi_mean_on_pure_noise(synth, tmp_path, run_swarp):
    """CHI-MEAN of noise-only images has zero mean and unit variance for every local number of inputs."""
    nx, ny = 200, 150
    rng = np.random.default_rng(7)
    h = synth.tan_header(nx, ny, RA, DEC, SCALE)
    paths = []
    for i, sigma in enumerate([1.0, 3.0, 0.5]):
        data = rng.normal(0.0, sigma, (ny, nx)).astype(np.float32)
        weight = np.full((ny, nx), 1.0 / sigma ** 2, np.float32)
        if i == 2:
            weight[:, nx // 2:] = 0.0  # right half: two inputs only
        paths.append(synth.write_image(tmp_path / f"n{i}.fits", h, data))
        fits.PrimaryHDU(weight, h).writeto(tmp_path / f"n{i}.weight.fits")
    cfg = dict(IDENTITY, CENTER=f"{RA},{DEC}", IMAGE_SIZE=f"{nx},{ny}")
    run_swarp(paths, COMBINE_TYPE="CHI-MEAN", **cfg)
    chi = fits.getdata(tmp_path / "coadd.fits").astype(np.float64)
    for part in (chi[:, : nx // 2], chi[:, nx // 2:]):
        # 15000 pixels: the standard error of the mean is 0.008 and of the variance ~0.012
        assert abs(part.mean()) < 0.035
        assert abs(part.var() - 1.0) < 0.05
    # CHI-OLD is not centred: its mean is mu_n / sqrt(n) > 0.8
    run_swarp(paths, COMBINE_TYPE="CHI-OLD", IMAGEOUT_NAME="old.fits", **cfg)
    assert fits.getdata(tmp_path / "old.fits")[:, : nx // 2].mean() > 0.8


@pytest.mark.parametrize("ctype", ["WEIGHTED", "MEDIAN", "CLIPPED"])
def test_strips_equal_single_pass(synth, tmp_path, run_swarp, ctype, monkeypatch):
    """Co-adding in many small strips gives exactly the single-pass result."""
    import terapix_swarp.coadd

    monkeypatch.setattr(terapix_swarp.coadd, "MAX_STRIP_LINES", 100000)  # let the first run be one strip
    nx, ny = 300, 290
    rng = np.random.default_rng(11)
    paths = []
    for i in range(3):
        h = synth.tan_header(nx, ny, RA + 1e-3 * i, DEC - 1e-3 * i, SCALE, rot_deg=3.0 * i)
        data = rng.normal(100.0, 5.0, (ny, nx)).astype(np.float32)
        paths.append(synth.write_image(tmp_path / f"t{i}.fits", h, data, GAIN=2.0))
    one = run_swarp(paths, COMBINE_TYPE=ctype, COMBINE_BUFSIZE="512", IMAGEOUT_NAME="one.fits",
                    WEIGHTOUT_NAME="one.weight.fits")
    monkeypatch.undo()
    many = run_swarp(paths, COMBINE_TYPE=ctype, COMBINE_BUFSIZE="1", IMAGEOUT_NAME="many.fits",
                     WEIGHTOUT_NAME="many.weight.fits")
    rec_one = dict(one.records)["stack"]
    rec_many = dict(many.records)["stack"]
    assert rec_one["strips"] == 1
    assert rec_many["strips"] >= 3
    assert np.array_equal(fits.getdata(tmp_path / "one.fits"), fits.getdata(tmp_path / "many.fits"))
    assert np.array_equal(fits.getdata(tmp_path / "one.weight.fits"),
                          fits.getdata(tmp_path / "many.weight.fits"))


@pytest.mark.parametrize("ctype", ["WEIGHTED", "AVERAGE", "MEDIAN", "SUM", "MIN", "MAX", "CLIPPED", "CHI-OLD",
                                   "CHI-MODE", "CHI-MEAN", "WEIGHTED_WEIGHT", "MEDIAN_WEIGHT"])
def test_bands_equal_single_pass(synth, tmp_path, run_swarp, ctype):
    """When the resampled images exceed RESAMPLE_DISKMAX the output is made in bands of rows (inputs cut by
    a band boundary resampled piecewise with their cached background and mapping): the pixels, weights and
    header values are exactly those of a single pass, for every combine type.  Rotated and shifted inputs,
    LANCZOS3, background subtraction and weight rescaling, as in a real run."""
    nx, ny = 260, 300
    rng = np.random.default_rng(21)
    paths = []
    yy, xx = np.mgrid[0:ny, 0:nx]
    for i in range(4):
        h = synth.tan_header(nx, ny, RA + 4e-3 * i, DEC - 3e-3 * i, SCALE, rot_deg=5.0 * i)
        star = 500.0 * np.exp(-((xx - 80 - 30 * i) ** 2 + (yy - 150) ** 2) / 8.0)
        data = (rng.normal(100.0 + 10 * i, 5.0, (ny, nx)) + star + 0.05 * yy).astype(np.float32)
        weight = rng.uniform(0.5, 1.5, (ny, nx)).astype(np.float32)
        weight[rng.random((ny, nx)) < 0.01] = 0.0
        paths.append(synth.write_image(tmp_path / f"b{i}.fits", h, data, GAIN=1.5 + i, EXPTIME=100.0 + i,
                                       SATURATE=60000.0 - 1000 * i))
        fits.PrimaryHDU(weight, h).writeto(tmp_path / f"b{i}.weight.fits")
    cfg = dict(COMBINE_TYPE=ctype, WEIGHT_TYPE="MAP_WEIGHT", RESAMPLING_TYPE="LANCZOS3", BACK_SIZE="64",
               PIXEL_SCALE="0.17", PIXELSCALE_TYPE="MANUAL")
    one = run_swarp(paths, IMAGEOUT_NAME="one.fits", WEIGHTOUT_NAME="one.weight.fits", **cfg)
    bands = run_swarp(paths, IMAGEOUT_NAME="bands.fits", WEIGHTOUT_NAME="bands.weight.fits", RESAMPLE_DISKMAX="1",
                      COMBINE_BUFSIZE="1", **cfg)
    rec_one, rec_bands = dict(one.records)["stack"], dict(bands.records)["stack"]
    assert rec_one["bands"] == 1
    assert rec_bands["bands"] >= 3
    for name in ("", ".weight"):
        a, ha = fits.getdata(tmp_path / f"one{name}.fits", header=True)
        b, hb = fits.getdata(tmp_path / f"bands{name}.fits", header=True)
        assert (a > 0).mean() > 0.5 if name else a.std() > 0  # weight: most of the output covered
        assert np.array_equal(a, b), f"{ctype}{name}: {np.abs(a - b).max()}"
        for key in ("EXPTIME", "GAIN", "SATURATE", "NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2"):
            assert ha[key] == hb[key], key
    assert sorted(rec_one["inputs"]) == sorted(rec_bands["inputs"])
    assert not list(tmp_path.glob("*.resamp*.fits"))  # pieces deleted


def test_weighted_weight_combines_weight_maps(synth, tmp_path, run_swarp):
    """WEIGHTED_WEIGHT combines weight maps given as images: the result is the inverse of the
    weight-weighted mean of the input variances 1/w (SWarp's coadd.c), FLXSCALE dividing them by fscale^2."""
    rng = np.random.default_rng(12)
    h = synth.tan_header(NX, NY, RA, DEC, SCALE)
    paths, maps, wts = [], [], []
    fscales = [1.0, 2.0, 0.5]
    for i in range(3):
        wmap = rng.uniform(0.5, 3.0, (NY, NX)).astype(np.float32)  # the "image" is a weight map
        w = rng.uniform(0.5, 2.0, (NY, NX)).astype(np.float32)
        paths.append(synth.write_image(tmp_path / f"ww{i}.fits", h, wmap, FLXSCALE=fscales[i]))
        fits.PrimaryHDU(w, h).writeto(tmp_path / f"ww{i}.weight.fits")
        maps.append(wmap.astype(np.float64) / fscales[i] ** 2)
        wts.append(w.astype(np.float64) / fscales[i] ** 2)
    run_swarp(paths, COMBINE_TYPE="WEIGHTED_WEIGHT", **IDENTITY)
    out = fits.getdata(tmp_path / "coadd.fits").astype(np.float64)
    maps, wts = np.array(maps), np.array(wts)
    wsum = wts.sum(0)
    expect = 1.0 / ((1.0 / maps * wts ** 2).sum(0) / wsum ** 2)
    np.testing.assert_allclose(out, expect, rtol=1e-5)
