from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

import leaktrace as lt

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
KODAK = CORPUS / "kodak"
HIGHRES = CORPUS / "highres"


@cache
def _kodak(n: int) -> np.ndarray:
    return lt.read_image(KODAK / f"kodim{n:02d}.png")


@pytest.fixture
def kodak():
    """Load a Kodak photo by number (cached; callers get a fresh copy)."""
    return lambda n: _kodak(n).copy()


@pytest.fixture
def key() -> lt.Key:
    return lt.Key(bytes(range(32)))


@pytest.fixture
def candidates() -> list[str]:
    return [f"recipient-{i:04d}" for i in range(1000)]


def pytest_configure(config):
    if not KODAK.is_dir():
        raise pytest.UsageError(f"the shared corpus is missing: {CORPUS}")


def mark_photos(numbers, recipient, key=None):
    """{n: (Kodak photo n, its copy marked for ``recipient``)}; media id ``kodim<n>``."""
    key = key or lt.Key(bytes(range(32)))
    out = {}
    for n in numbers:
        img = lt.read_image(KODAK / f"kodim{n:02d}.png")
        out[n] = (img, lt.embed(img, key, f"kodim{n}", recipient))
    return out
