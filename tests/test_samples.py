"""The samples in examples/media (photos, video clips): each documented with its licence, each
from the corpus."""

import importlib.util

import av
import numpy as np
import pytest

import leaktrace as lt

from .conftest import CORPUS, MOUNTAINS, ROOT, SAMPLE_KODAK, SAMPLES, WALRUS

MAKE_SAMPLES = ROOT / "benchmarks" / "make_samples.py"


def _make_samples():
    """benchmarks/make_samples.py, which makes the samples from the corpus."""
    spec = importlib.util.spec_from_file_location("make_samples", MAKE_SAMPLES)
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


def _clips():
    return sorted(p for p in SAMPLES.iterdir() if p.suffix == ".mp4")


def test_every_video_sample_is_made_by_the_script_and_documented_with_its_licence():
    made = _make_samples()
    assert [p.name for p in _clips()] == sorted(clip.name for clip in made.CLIPS)
    readme = (SAMPLES / "README.md").read_text()
    for clip in _clips():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{clip.name}` |"))
        assert f"| {clip.stat().st_size:,} |" in row, clip.name
        assert "CC BY 3.0" in row or "CC0" in row, clip.name
        if "CC BY" in row:  # attribution travels with the file too
            with av.open(str(clip)) as c:
                assert "Blender Foundation" in c.metadata["comment"], clip.name
    assert sum(p.stat().st_size for p in _clips()) < 3 * 1024 * 1024


@pytest.mark.corpus
def test_video_samples_are_what_the_script_makes_from_the_corpus(tmp_path):
    for path in _make_samples().make_clips(CORPUS, tmp_path):
        ours = SAMPLES / path.name
        # Another FFmpeg build may write other bytes; the pictures may not differ much.
        with av.open(str(ours)) as a, av.open(str(path)) as b:
            pairs = zip(a.decode(video=0), b.decode(video=0), strict=True)
            for x, y in pairs:
                mse = np.mean((x.to_ndarray().astype(float) - y.to_ndarray()) ** 2)
                assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 40, path.name
            assert len(a.streams.audio) == len(b.streams.audio), path.name
