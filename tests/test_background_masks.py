"""terapix_fw.background: the finiteness test by blocks of rows, and a mask without bad pixels (left out of
sep's estimate, which reads a mask pixel by pixel) giving the estimate without a mask, bit for bit."""
import numpy as np
import pytest

from terapix_fw.background import all_finite, estimate_background


@pytest.mark.parametrize("where", [(0, 0), (300, 17), (599, 99)])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_a_single_non_finite_pixel_in_any_block(where, value):
    image = np.ones((600, 100), np.float32)  # 3 blocks of rows, the last one partial
    assert all_finite(image)
    image[where] = value
    assert not all_finite(image)


def test_an_empty_mask_gives_the_unmasked_estimate_and_a_mask_still_counts():
    rng = np.random.default_rng(5)
    image = (100 + rng.normal(0, 5, (300, 260))).astype(np.float32)
    image[:150, :130] += 40  # a brighter quadrant: masking it changes the estimate
    plain = estimate_background(image, back_size=64)
    empty = estimate_background(image, mask=np.zeros(image.shape, bool), back_size=64)
    assert empty.back.tobytes() == plain.back.tobytes() and empty.rms.tobytes() == plain.rms.tobytes()
    assert (empty.global_back, empty.global_rms) == (plain.global_back, plain.global_rms)
    mask = np.zeros(image.shape, bool)
    mask[:150, :130] = True
    masked = estimate_background(image, mask=mask, back_size=64)
    # the masked meshes take their neighbours' values (~100) instead of the quadrant's (~140)
    assert masked.back[:128, :128].mean() < plain.back[:128, :128].mean() - 20
