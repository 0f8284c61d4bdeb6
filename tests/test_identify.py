"""Media identification among more than 200 registered pictures."""

import numpy as np
import pytest

import leaktrace as lt
from leaktrace import attacks
from leaktrace.identify import fingerprint, shortlist, similarities

from .conftest import HIGHRES, KODAK


@pytest.fixture(scope="module")
def library():
    """24 Kodak photos and 180 overlapping 1200×800 crops of the six 10–24 MP photos."""
    pictures = [lt.read_image(p) for p in sorted(KODAK.glob("*.png"))]
    for path in sorted(HIGHRES.glob("*.jpg")):
        big = lt.read_image(path)
        h, w = big.shape[:2]
        for i in range(6):
            for j in range(5):
                y, x = i * (h - 800) // 5, j * (w - 1200) // 4
                pictures.append(np.ascontiguousarray(big[y : y + 800, x : x + 1200]))
    return pictures, [fingerprint(p) for p in pictures]


def test_resized_and_recompressed_leaks_find_their_original(library):
    pictures, prints = library
    assert len(prints) >= 200
    for k, picture in enumerate(pictures):
        leak = attacks.jpeg(attacks.rescale(picture, 0.5), 60)
        assert shortlist(fingerprint(leak), prints)[0] == k


def test_tone_changes_and_grayscale_keep_the_match(library):
    pictures, prints = library
    for k in range(0, len(pictures), 7):
        for leak in (
            attacks.gamma(pictures[k], 0.7),
            attacks.grayscale(pictures[k]),
            attacks.contrast(attacks.brightness(pictures[k], 25), 0.8),
        ):
            assert shortlist(fingerprint(leak), prints)[0] == k


def test_an_unrelated_picture_matches_nothing(library):
    _, prints = library
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)
    assert shortlist(fingerprint(noise), prints) == []
    flat = np.full((400, 600, 3), 120, np.uint8)
    assert similarities(fingerprint(flat), prints).max() < 0.5
