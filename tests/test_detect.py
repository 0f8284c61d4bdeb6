import cv2
import numpy as np
import pytest

import leaktrace as lt
from leaktrace import attacks
from leaktrace.codes import layout
from leaktrace.detect import _fitted, informed_values, score
from leaktrace.mask import perceptual_mask
from leaktrace.transform import to_working

from .conftest import mark_photos

GUILTY = "recipient-0042"


@pytest.fixture(scope="module")
def marked():
    """Kodak 19 (portrait, sky and fence) and 7 (landscape, flowers), marked for GUILTY."""
    return mark_photos((19, 7), GUILTY)


def _trace(leak, original, n, candidates, *, blind=False):
    key = lt.Key(bytes(range(32)))
    ref = None if blind else original
    if not blind and leak.shape != original.shape:
        leak = attacks.restore_size(leak, original.shape)
    return lt.detect(leak, key, f"kodim{n}", candidates, original=ref)


@pytest.mark.parametrize("name", list(attacks.STANDARD))
@pytest.mark.parametrize("n", [19, 7])
def test_every_standard_attack_is_traced_informed(marked, candidates, name, n):
    original, copy = marked[n]
    found = _trace(attacks.STANDARD[name](copy), original, n, candidates)
    assert found.verdict == "match" and found.recipient == GUILTY, found
    assert found.p_value <= 1e-9 and found.mode == "informed"
    assert found.best == GUILTY and list(found.scores)[0] == GUILTY


@pytest.mark.parametrize("name", ["none", "jpeg50", "scale0.5"])
def test_blind_traces_jpeg_and_downscale(marked, candidates, name):
    original, copy = marked[7]
    found = _trace(attacks.STANDARD[name](copy), original, 7, candidates, blind=True)
    assert found.recipient == GUILTY and found.mode == "blind"


def test_guilty_not_among_candidates_is_no_match(marked, candidates):
    others = [c for c in candidates if c != GUILTY]
    for n, (original, copy) in marked.items():
        for leak in (copy, attacks.jpeg(copy, 50)):
            found = _trace(leak, original, n, others)
            assert found.verdict == "no_match" and found.recipient is None
            assert found.p_value > 1e-9
            found = _trace(leak, original, n, others, blind=True)
            assert found.verdict == "no_match"


def test_unmarked_photo_is_no_match(kodak, key, candidates):
    img = kodak(15)
    other = kodak(20)  # an unrelated photo used as the leak in blind mode
    assert lt.detect(attacks.jpeg(img, 80), key, "kodim15", candidates, original=img).verdict == (
        "no_match"
    )
    assert lt.detect(other, key, "kodim15", candidates).verdict == "no_match"


def test_wrong_media_id_or_key_finds_nothing(marked, candidates):
    original, copy = marked[19]
    key = lt.Key(bytes(range(32)))
    assert lt.detect(copy, key, "kodim7", candidates, original=original).verdict == "no_match"
    other_key = lt.Key(bytes(32))
    assert lt.detect(copy, other_key, "kodim19", candidates, original=original).recipient is None


def test_p_value_is_the_corrected_hoeffding_tail(marked):
    original, copy = marked[19]
    key = lt.Key(bytes(range(32)))
    weak = attacks.noise(copy, 40.0)
    for n in (2, 100):
        cands = [GUILTY] + [f"x{i}" for i in range(n - 1)]
        found = lt.detect(weak, key, "kodim19", cands, original=original)
        z = found.scores[found.best]
        assert found.p_value == pytest.approx(min(1.0, n * np.exp(-z * z / 2)), rel=1e-6)


def test_duplicate_candidates_are_tested_once(marked):
    original, copy = marked[19]
    key = lt.Key(bytes(range(32)))
    found = lt.detect(copy, key, "kodim19", [GUILTY, "a", GUILTY, "a"], original=original)
    assert list(found.scores) == [GUILTY, "a"]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"candidates": []}, lt.DetectionInputError),
        ({"candidates": ["a"], "threshold": 0}, lt.DetectionInputError),
        ({"candidates": ["a"], "threshold": 1.5}, lt.DetectionInputError),
    ],
)
def test_bad_detection_arguments(kodak, key, kwargs, error):
    with pytest.raises(error):
        lt.detect(kodak(20), key, "m", **kwargs)


def test_bad_leak_arrays(key):
    with pytest.raises(lt.ImageArrayError):
        lt.detect(np.zeros((10, 10, 3), np.uint8), key, "m", ["a"])
    with pytest.raises(lt.ImageArrayError):
        lt.detect(np.zeros((100, 100), np.float64), key, "m", ["a"])


def test_every_colluder_of_an_average_is_named_each_with_its_probability(kodak, candidates):
    """Three recipients average their copies and re-save as JPEG 75: all three are named,
    nobody else, each with its own corrected probability."""
    key = lt.Key(bytes(range(32)))
    original = kodak(7)
    guilty = candidates[5], candidates[500], candidates[999]
    copies = [lt.embed(original, key, "kodim7", h) for h in guilty]
    leak = attacks.jpeg(np.mean(copies, axis=0).round().astype(np.uint8), 75)
    found = lt.detect(leak, key, "kodim7", candidates, original=original)
    assert {h for h, _ in found.accused} == set(guilty)
    assert found.recipient == found.accused[0][0] and found.verdict == "match"
    assert all(lp <= -9 for _, lp in found.accused)
    assert found.log10_p_value == found.accused[0][1]
    # Copies grouped by code: scored under a code they were not made with, nobody is named.
    other = lt.detect(leak, key, "kodim7", {"tardos-v1": candidates}, original=original)
    assert other.accused == () and other.verdict == "no_match"


@pytest.mark.parametrize("name", ["blur2.5", "median7", "soften0.3-bilinear"])
def test_a_softened_same_size_leak_is_traced(marked, candidates, name):
    original, copy = marked[19]
    found = _trace(attacks.SOFTENING[name](copy), original, 19, candidates)
    assert found.recipient == GUILTY, found


def test_an_unmarked_softened_original_is_not_accused(kodak, key, candidates):
    img = kodak(15)
    for leak in (attacks.blur(img, 2.5), attacks.soften(img, 0.3)):
        assert lt.detect(leak, key, "kodim15", candidates, original=img).verdict == "no_match"


def test_the_fitted_filter_leaves_an_untouched_copys_mark(marked):
    original, copy = marked[7]
    base, plane = to_working(original), to_working(copy)
    valid, mask = np.ones_like(base), perceptual_mask(base)
    key, soft = lt.Key(bytes(range(32))), {}
    for name, reference in (("plain", base), ("fitted", _fitted(plane, base, valid))):
        values = informed_values(plane, reference, valid, mask)
        soft[name] = layout(key, "kodim7", base.shape, values.size).collect(values)
    z = {k: float(score(v, key, "kodim7", [GUILTY])[0]) for k, v in soft.items()}
    assert z["fitted"] >= 0.99 * z["plain"] > 25


def test_blind_traces_an_untouched_strong_texture(key, candidates):
    # Gravel-like: grey noise blurred to grains of about the marked bands' size, full contrast.
    rng = np.random.default_rng(0)
    grains = cv2.GaussianBlur(rng.normal(0, 1, (256, 384)).astype(np.float32), (0, 0), 1.5)
    texture = np.clip(128 + 45 * grains / grains.std(), 0, 255).astype(np.uint8)
    img = np.dstack([texture] * 3)
    copy = lt.embed(img, key, "gravel", GUILTY)
    found = lt.detect(copy, key, "gravel", candidates, shape=img.shape)
    assert found.recipient == GUILTY, found
    # The host's texture is predicted away: far above the 7.5 of the band's energy alone.
    assert found.scores[GUILTY] > 12
    assert lt.detect(img, key, "gravel", candidates, shape=img.shape).verdict == "no_match"
