import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import leaktrace as lt
from leaktrace.identify import features
from leaktrace.transform import (
    MAX_WORKING_PIXELS,
    WORK_SIDE,
    analyse,
    check_shape,
    luma,
    synthesise,
    working_shape,
)


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


@pytest.mark.parametrize(
    "shape, match",
    [
        ((31, 500), "too small"),  # below what is marked (64) and what is traced (32)
        ((1, 100_000), "too small"),
        ((64, 10_000), "too elongated"),
        ((6000, 500), "too elongated"),
    ],
)
def test_arrays_too_small_or_too_elongated_are_refused_before_any_work(key, shape, match):
    image = np.zeros(shape, np.uint8)
    tracemalloc.start()
    try:
        for call in (
            lambda: lt.embed(image, key, "m", "alice"),
            lambda: lt.detect(image, key, "m", ["alice"]),
            lambda: lt.detect(image, key, "m", ["alice"], original=image),
            lambda: features(image),
        ):
            with pytest.raises(lt.ImageArrayError, match=match):
                call()
        assert tracemalloc.get_traced_memory()[1] < 1_000_000  # nothing grid-sized was made
    finally:
        tracemalloc.stop()


def test_a_panorama_is_accepted():
    check_shape((2000, 12000))
    check_shape((120, 1000))  # just over 8:1
    assert working_shape((2000, 12000))[0] * working_shape((2000, 12000))[1] <= MAX_WORKING_PIXELS
