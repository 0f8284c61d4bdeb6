"""Informed detection after what leakers do to geometry: registration onto the original."""

import numpy as np
import pytest

import leaktrace as lt
from leaktrace import attacks
from leaktrace.register import register
from leaktrace.transform import luma, to_working

from .conftest import KODAK
from .images import foggy

GUILTY = "recipient-0777"


@pytest.fixture(scope="module")
def case():
    key = lt.Key(bytes(range(32)))
    original = lt.read_image(KODAK / "kodim05.png")
    others = [lt.read_image(KODAK / f"kodim{n:02d}.png") for n in (7, 15, 20)]
    return key, original, lt.embed(original, key, "kodim05", GUILTY), others


ATTACKS = [
    "crop10-corner",
    "crop25",
    "rot+7",
    "rot+15-cropped",
    "rot+90",
    "flip",
    "scale0.25",
    "scale2",
    "aspect0.8",
    "skew10",
    "screenshot-png",
    "screenshot-jpeg85",
    "reshare",
    "tone+crop50",
]


@pytest.mark.parametrize("name", ATTACKS)
def test_geometric_attacks_are_traced(case, candidates, name):
    key, original, copy, _ = case
    found = lt.detect(attacks.GEOMETRIC[name](copy), key, "kodim05", candidates, original=original)
    assert found.recipient == GUILTY, (name, found)
    # A whole picture merely rescaled (up, or down to a thumbnail) needs no registration;
    # everything else is registered.
    assert (found.geometry is None) == (name in ("scale2", "scale0.25"))


def test_collage_is_traced_from_its_own_pixels(case, candidates):
    key, original, copy, others = case
    sheet = attacks.jpeg(attacks.collage(copy, others, share=0.3), 75)
    found = lt.detect(sheet, key, "kodim05", candidates, original=original)
    assert found.recipient == GUILTY
    # The picture fills 30 % of the sheet but the whole original grid.
    assert found.geometry is not None and found.geometry.coverage > 0.9


def test_crop_coverage_is_measured(case, candidates):
    key, original, copy, _ = case
    found = lt.detect(
        attacks.GEOMETRIC["crop25"](copy), key, "kodim05", candidates, original=original
    )
    assert found.geometry is not None
    assert 0.2 < found.geometry.coverage < 0.26
    assert not found.geometry.flipped
    flipped = lt.detect(
        attacks.GEOMETRIC["flip"](copy), key, "kodim05", candidates, original=original
    )
    assert flipped.geometry is not None and flipped.geometry.flipped


def test_a_tiny_crop_is_no_confident_match_rather_than_a_guess(case, candidates):
    key, original, copy, _ = case
    sliver = attacks.jpeg(attacks.crop(copy, 0.004, at=(0.4, 0.4)), 75)  # about 49×32 pixels
    h, w = sliver.shape[:2]
    canvas = np.full((96, 96, 3), 128, np.uint8)  # pasted small into a bigger picture
    canvas[10 : 10 + h, 10 : 10 + w] = sliver
    found = lt.detect(canvas, key, "kodim05", candidates, original=original)
    assert found.verdict == "no_match"


def test_innocents_are_not_accused_after_geometry(case, candidates):
    key, original, _, others = case
    outsider = lt.embed(original, key, "kodim05", "outsider")
    for name in ("crop10-corner", "rot+15-cropped", "screenshot-png", "scale0.25"):
        leak = attacks.GEOMETRIC[name](outsider)
        found = lt.detect(leak, key, "kodim05", candidates, original=original)
        assert found.verdict == "no_match", name
    # A different photo registered against this original: nothing to find.
    found = lt.detect(others[0], key, "kodim05", candidates, original=original)
    assert found.verdict == "no_match"


def test_a_photo_of_odd_size_untouched_or_rescaled_needs_no_registration(case, candidates):
    key, original, _, _ = case
    odd = np.ascontiguousarray(original[:501, :737])  # 737×501: its grid rounds the aspect
    copy = lt.embed(odd, key, "odd", GUILTY)
    for leak in (copy, attacks.jpeg(attacks.rescale(copy, 0.6), 80)):
        found = lt.detect(leak, key, "odd", candidates, original=odd)
        assert found.recipient == GUILTY and found.geometry is None


def test_a_feature_poor_photo_moved_a_little_is_registered_densely(key, candidates):
    original = foggy()
    copy = lt.embed(original, key, "fog", GUILTY)
    h, w = copy.shape[:2]
    moved = attacks.jpeg(attacks.rescale(copy[6 : h - 4, 9 : w - 3], 0.93), 85)
    found = lt.detect(moved, key, "fog", candidates, original=original)
    assert found.recipient == GUILTY and found.geometry is not None


@pytest.mark.parametrize("side", [40, 32])
def test_thumbnails_down_to_32_pixels_are_tried(case, candidates, side):
    key, original, copy, _ = case
    thumb = attacks.rescale(copy, side / min(copy.shape[:2]))
    found = lt.detect(thumb, key, "kodim05", candidates, original=original)
    # 40 px still shows the coarsest marked band; 32 px is tried but shows too little of it.
    assert found.recipient == (GUILTY if side == 40 else None), found
    with pytest.raises(lt.ImageArrayError, match="at least 32 pixels"):
        lt.detect(thumb[:31], key, "kodim05", candidates, original=original)


@pytest.mark.parametrize("n", [7, 15, 20])
def test_another_photo_is_placed_nowhere(case, n):
    """A dense registration places any picture somewhere; a photo that is not the original
    must not be taken for a placement of it (it would be traced as a leak of it)."""
    _, original, _, _ = case
    other = lt.read_image(KODAK / f"kodim{n:02d}.png")
    assert register(luma(other).astype(np.float32), to_working(original)) is None
