"""terapix_fw.background: the SExtractor mesh background shared with swarp and qualityfits."""
from __future__ import annotations

import numpy as np
import pytest

from terapix_fw.background import estimate_background
from terapix_sextractor.synth import gaussian_image


def test_flat_sky_with_sources_gives_the_sky_and_noise():
    rng = np.random.default_rng(0)
    src = [(x, y, 5e4, 2, 2, 0) for x, y in rng.uniform(10, 246, (60, 2))]
    img = gaussian_image((256, 256), src, sky=1000, noise=10, seed=1)
    bkg = estimate_background(img, back_size=64, filter_size=3)
    assert bkg.global_back == pytest.approx(1000, abs=1.0)  # the mode ignores the sources
    assert bkg.global_rms == pytest.approx(10, rel=0.05)
    assert bkg.back.shape == img.shape and bkg.back.dtype == np.float32
    assert np.abs(bkg.back - 1000).max() < 3
    mini_back, mini_rms = bkg.mini()
    assert mini_back.shape == (4, 4) and np.allclose(mini_back, 1000, atol=3)


def test_gradient_is_followed_and_rectangular_meshes():
    y, x = np.mgrid[:200, :300]
    sky = 100 + 0.2 * x + 0.1 * y
    img = (sky + np.random.default_rng(2).normal(0, 2, sky.shape)).astype(np.float32)
    bkg = estimate_background(img, back_size=(50, 40), filter_size=(3, 1))
    assert bkg.back_size == (50, 40) and bkg.filter_size == (3, 1)
    inner = (slice(40, 160), slice(50, 250))
    assert np.abs(bkg.back[inner] - sky[inner]).max() < 1.0


def test_masked_and_zero_weight_pixels_are_ignored():
    img = np.random.default_rng(3).normal(50, 1, (128, 128)).astype(np.float32)
    img[:, :40] = 5000  # a saturated region
    weight = np.ones_like(img)
    weight[:, :40] = 0
    bkg_w = estimate_background(img, weight=weight, back_size=32)
    bkg_m = estimate_background(img, mask=weight == 0, back_size=32)
    bkg_none = estimate_background(img, back_size=32)
    assert bkg_w.global_back == pytest.approx(50, abs=0.2)
    assert bkg_m.global_back == pytest.approx(bkg_w.global_back)
    assert np.median(bkg_none.back[:, :40]) > 1000  # without the weights the bad region pollutes it
    img[5, 5] = np.nan  # non-finite pixels are ignored too
    assert np.isfinite(estimate_background(img, weight=weight, back_size=32).back).all()


def test_manual_background_and_errors():
    img = np.random.default_rng(4).normal(10, 1, (64, 64)).astype(np.float32)
    bkg = estimate_background(img, back_type="MANUAL", back_value=7.5)
    assert np.all(bkg.back == 7.5) and bkg.global_back == 7.5
    assert bkg.global_rms == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="every pixel"):
        estimate_background(img, mask=np.ones(img.shape, bool))
    with pytest.raises(ValueError, match="BACK_SIZE"):
        estimate_background(img, back_size=(1, 2, 3))
