import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from leaktrace.transform import WORK_SIDE, analyse, luma, synthesise, working_shape


@given(st.integers(16, 20000), st.integers(16, 20000))
def test_working_grid_is_aligned_and_keeps_aspect(h, w):
    wh, ww = working_shape((h, w))
    assert wh % 16 == 0 and ww % 16 == 0
    assert abs(min(wh, ww) - WORK_SIDE) <= 8
    if min(h, w) >= 64:
        assert abs(ww / wh - w / h) <= 0.05 * (w / h) + 16 / min(wh, ww)


def test_synthesise_then_analyse_returns_the_bands():
    rng = np.random.default_rng(1)
    shape = (512, 768)
    bands = [
        rng.normal(size=b.shape).astype(np.float32) for b in analyse(np.zeros(shape, np.float32))
    ]
    again = analyse(synthesise(bands, shape))
    for a, b in zip(bands, again, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_luma_of_layouts_and_depths():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 200
    assert np.allclose(luma(rgb), 0.587 * 200, atol=0.6)
    rgba = np.dstack([rgb, np.full((4, 4), 7, np.uint8)])
    assert np.array_equal(luma(rgba), luma(rgb))
    gray16 = np.full((4, 4), 65535, np.uint16)
    assert np.allclose(luma(gray16), 255.0)
