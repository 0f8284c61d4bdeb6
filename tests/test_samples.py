"""The sample photos in examples/media: each documented with its licence, each from the corpus."""

import importlib.util

import numpy as np
import pytest

import leaktrace as lt

from .conftest import CORPUS, MOUNTAINS, SAMPLE_KODAK, SAMPLES, WALRUS


def _make_samples():
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _photos():
    return sorted(p for p in SAMPLES.iterdir() if p.suffix in (".png", ".jpg"))


def test_every_sample_is_made_by_the_script_and_documented_with_its_licence():
    made = _make_samples()
    assert tuple(made.KODAK) == SAMPLE_KODAK
    expected = [f"kodim{n:02d}.png" for n in SAMPLE_KODAK] + [WALRUS.name, MOUNTAINS.name]
    assert [p.name for p in _photos()] == sorted(expected)
    assert {made.WALRUS, made.MOUNTAINS} == {WALRUS.name, MOUNTAINS.name}
    readme = (SAMPLES / "README.md").read_text()
    for photo in _photos():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{photo.name}` |"))
        assert f"| {photo.stat().st_size:,} |" in row, photo.name
        assert "Unrestricted use" in row or "CC0 1.0" in row, photo.name
    # A clone stays small: the samples are for tests and the quickstart, the corpus for the rest.
    assert sum(p.stat().st_size for p in _photos()) < 4 * 1024 * 1024


@pytest.mark.corpus
def test_samples_are_what_the_script_makes_from_the_corpus(tmp_path):
    for path in _make_samples().make(CORPUS, tmp_path):
        ours = SAMPLES / path.name
        if path.suffix == ".png":  # Kodak: byte for byte
            assert ours.read_bytes() == path.read_bytes(), path.name
            continue
        # JPEG bytes may differ with another Pillow's libjpeg; the pictures may not.
        a, b = lt.read_image(ours).astype(float), lt.read_image(path).astype(float)
        assert a.shape == b.shape, path.name
        assert 10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)) > 45, path.name
