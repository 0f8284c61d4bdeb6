import cv2
import numpy as np
import pytest

import leaktrace as lt
from leaktrace import attacks, sync
from leaktrace.detect import Scorer
from leaktrace.transform import luma, working_shape

from .conftest import mark_photos

GUILTY = "recipient-0042"


@pytest.fixture(scope="module")
def marked():
    """Kodak 15 (landscape) and 19 (portrait), marked for GUILTY."""
    return mark_photos((15, 19), GUILTY)


def test_template_is_keyed_periodic_and_deterministic(key):
    t = sync.template(key, "m", (512, 768))
    p = sync.PERIOD
    assert t.shape == (512, 768) and t.dtype == np.float32
    assert np.array_equal(t[:p, :p], t[p : 2 * p, 3 * p : 4 * p])
    assert np.sqrt(np.mean(t * t)) == pytest.approx(1.0, rel=1e-3)
    assert np.array_equal(t, sync.template(key, "m", (512, 768)))
    others = [sync.tile(key, "n", (512, 768)), sync.tile(key, "m", (768, 512))]
    for other in others:
        assert abs(np.corrcoef(t[:p, :p].ravel(), other.ravel())[0, 1]) < 0.2


def test_template_is_common_to_every_recipient(kodak, key):
    plan = lt.prepare(kodak(15), key, "m")
    img = kodak(15)
    # Two copies differ only by their codewords: the template cancels out between them.
    a, b = lt.apply(plan, img, "alice"), lt.apply(plan, img, "bob")
    diff = a.astype(np.float32)[..., 1] - b.astype(np.float32)[..., 1]
    t = sync.template(key, "m", plan.sync.shape) * plan.mask
    assert abs(np.corrcoef(diff.ravel(), t.ravel())[0, 1]) < 0.02
    assert np.array_equal(plan.sync, lt.prepare(img, key, "m").sync)


@pytest.mark.parametrize("n", [15, 19])
@pytest.mark.parametrize("at", [(0.5, 0.5), (0.1, 0.85)])
def test_blind_crop50_is_traced_given_the_original_size(marked, candidates, n, at):
    original, copy = marked[n]
    leak = attacks.jpeg(attacks.crop(copy, 0.5, at=at), 75)
    key = lt.Key(bytes(range(32)))
    found = lt.detect(leak, key, f"kodim{n}", candidates, shape=original.shape)
    assert found.mode == "blind" and found.recipient == GUILTY, found
    assert found.geometry is not None and found.geometry.coverage == pytest.approx(0.5, abs=0.02)
    # Without the guilty one among the candidates, nobody is accused.
    others = [c for c in candidates if c != GUILTY]
    assert lt.detect(leak, key, f"kodim{n}", others, shape=original.shape).verdict == "no_match"


@pytest.mark.parametrize("n", [15, 19])
@pytest.mark.parametrize("degrees", [2, -2])
def test_blind_rotation_is_traced(marked, candidates, n, degrees):
    _, copy = marked[n]
    leak = attacks.GEOMETRIC[f"rot{degrees:+d}"](copy)
    key = lt.Key(bytes(range(32)))
    found = lt.detect(leak, key, f"kodim{n}", candidates)
    assert found.recipient == GUILTY, found
    assert found.geometry is not None
    others = [c for c in candidates if c != GUILTY]
    assert lt.detect(leak, key, f"kodim{n}", others).verdict == "no_match"


def test_unmarked_crop_and_rotation_are_no_match(kodak, key, candidates):
    img = kodak(15)
    for leak in (attacks.GEOMETRIC["crop50"](img), attacks.GEOMETRIC["rot+2"](img)):
        found = lt.detect(leak, key, "kodim15", candidates, shape=img.shape)
        assert found.verdict == "no_match" and found.p_value > 1e-9


def test_every_blind_reading_is_paid_for(marked, candidates):
    original, copy = marked[15]
    key = lt.Key(bytes(range(32)))
    leak = attacks.GEOMETRIC["crop50"](copy)
    found = lt.detect(leak, key, "kodim15", candidates, shape=original.shape)
    # The same soft values judged as one reading: the difference is what the readings cost.
    once = Scorer(key, "kodim15", candidates).judge(found.soft)
    readings = 10 ** (found.log10_p_value - once.log10_p[found.best])
    assert readings > 10  # the whole-picture reading, plus every crop placement tried


def test_shape_is_for_blind_mode_only(kodak, key):
    img = kodak(15)
    with pytest.raises(lt.DetectionInputError):
        lt.detect(img, key, "m", ["a"], original=img, shape=img.shape)
    with pytest.raises(lt.DetectionInputError):
        lt.detect(img, key, "m", ["a"], shape=(0, 5))


@pytest.mark.parametrize(("n", "name"), [(15, "flip"), (19, "aspect1.25"), (15, "screenshot-png")])
def test_blind_whole_picture_geometries_are_traced(marked, candidates, n, name):
    original, copy = marked[n]
    key = lt.Key(bytes(range(32)))
    leak = attacks.BLIND[name](copy)
    found = lt.detect(leak, key, f"kodim{n}", candidates, shape=original.shape)
    assert [h for h, _ in found.accused] == [GUILTY], found
    # Only resized (a stretch): no geometry; mirrored or shown on a screen: where it sits.
    assert (found.geometry is None) == (name == "aspect1.25")
    assert name == "aspect1.25" or found.geometry.flipped == (name == "flip")


def test_blind_turned_crop_is_traced_and_its_angle_found(marked, candidates):
    original, copy = marked[15]
    key = lt.Key(bytes(range(32)))
    leak = attacks.BLIND["rot+10-cropped"](copy)
    found = lt.detect(leak, key, "kodim15", candidates, shape=original.shape)
    assert [h for h, _ in found.accused] == [GUILTY], found
    m = found.geometry.matrix
    # Grid → leak: the picture turned 10° counter-clockwise on screen (y down).
    assert np.degrees(np.arctan2(-m[1, 0], m[0, 0])) == pytest.approx(10, abs=0.3)


def test_blind_reads_a_leak_on_its_originals_grid_without_the_size(marked, candidates):
    original, copy = marked[15]  # 768×512: a 768×512 grid
    key = lt.Key(bytes(range(32)))
    leak = attacks.jpeg(cv2.resize(copy, (376, 256), interpolation=cv2.INTER_AREA), 75)
    assert working_shape(leak.shape) != working_shape(original.shape)  # 512×752
    found = lt.detect(leak, key, "kodim15", candidates)
    assert found.recipient == GUILTY, found


def test_unmarked_turned_crop_and_flip_are_no_match(kodak, key, candidates):
    img = kodak(15)
    for name in ("rot+10-cropped", "flip"):
        found = lt.detect(attacks.BLIND[name](img), key, "kodim15", candidates, shape=img.shape)
        assert found.verdict == "no_match" and found.p_value > 1e-9, name


def test_blind_corner_crop_of_a_photo_the_band_pass_alone_could_not_place(candidates):
    """Kodak 7 (flowers and shutters): with the band-pass whitening alone the template put
    its 50 % corner crop's true translation outside the best four (the reading judged had
    z 0.9, nobody named); whitened in the wavelet bands as well, the crop is placed to a
    pixel and its recipient named."""
    original, copy = mark_photos((7,), GUILTY)[7]
    leak = attacks.BLIND["crop50-corner"](copy)  # 543×362 from (191, 15) of 768×512
    key = lt.Key(bytes(range(32)))
    plane = luma(leak)
    found = sync.residues(plane, np.ones_like(plane), key, "kodim7", (512, 768))
    assert (15, 191 % sync.PERIOD) in found[:9]  # the best peak (with its neighbours)
    found = lt.detect(leak, key, "kodim7", candidates, shape=original.shape)
    assert [h for h, _ in found.accused] == [GUILTY], found
    assert found.geometry.matrix[:2, 2] == pytest.approx([-191, -15], abs=1)


def test_template_whitening_keeps_a_flat_or_tiny_leak_finite(key):
    for plane in (np.full((40, 70), 128, np.float32), np.zeros((5, 9), np.float32)):
        white = sync._whiten(plane)
        assert white.shape == plane.shape and np.isfinite(white).all()
        # Nothing to place it by, and no warning (they are errors here) on the way.
        assert len(sync.residues(plane, np.ones_like(plane), key, "m", (512, 768))) == 36
