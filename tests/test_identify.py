"""Media identification among many registered pictures (more than 200 in the extended set)."""

import numpy as np
import pytest

import leaktrace as lt
from leaktrace import attacks
from leaktrace.identify import fingerprint, shortlist, similarities

from .conftest import CORPUS, KODAK, MOUNTAINS, SAMPLE_KODAK, WALRUS


def _library(photos, large, crop):
    """The photos, and 30 overlapping crops (6 rows × 5 columns) of each large photo."""
    pictures = [lt.read_image(p) for p in photos]
    ch, cw = crop
    for path in large:
        big = lt.read_image(path)
        h, w = big.shape[:2]
        for i in range(6):
            for j in range(5):
                y, x = i * (h - ch) // 5, j * (w - cw) // 4
                pictures.append(np.ascontiguousarray(big[y : y + ch, x : x + cw]))
    return pictures


@pytest.fixture(
    scope="module", params=["samples", pytest.param("corpus", marks=pytest.mark.corpus)]
)
def library(request):
    """The samples: 5 Kodak photos and 60 overlapping 480×320 crops of the two large photos;
    the corpus: 24 Kodak photos and 180 overlapping 1200×800 crops of the six 10–24 MP photos
    (crops of about the same share of their photo)."""
    if request.param == "samples":
        photos = [KODAK / f"kodim{n:02d}.png" for n in SAMPLE_KODAK]
        pictures = _library(photos, [WALRUS, MOUNTAINS], (320, 480))
        assert len(pictures) == 65
    else:
        photos = sorted((CORPUS / "kodak").glob("*.png"))
        pictures = _library(photos, sorted((CORPUS / "highres").glob("*.jpg")), (800, 1200))
        assert len(pictures) >= 200
    return pictures, [fingerprint(p) for p in pictures]


def test_resized_and_recompressed_leaks_find_their_original(library):
    pictures, prints = library
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
