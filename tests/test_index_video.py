"""Videos through the originals' index (leaktrace.registry.keyframes): a leaked excerpt is
placed only in the videos its keyframes vote for, and a video marked after the index was
built is found."""

import json

import numpy as np
import pytest

from leaktrace.registry import Workspace
from leaktrace.registry.keyframes import keyframe_vectors
from leaktrace.video import attacks, leak_timeline
from leaktrace.video.detect import keyframes, probe_thumbs
from leaktrace.workflow import make_copies, register_original, trace_file

from .test_video import CLIP, MEDIA, SILENT

pytest.importorskip("faiss")

FLOWER = MEDIA / "clip_flower_30fps.mp4"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A workspace where the 4 s clip was sent to alice and bob, and the flower clip is
    registered but not marked yet (no variants, so nothing of it to index)."""
    home = tmp_path_factory.mktemp("videos")
    ws = Workspace.create(home / "ws")
    for h in ("alice", "bob", "carol"):
        ws.add_recipient(h)
    made = make_copies(ws, [SILENT], ["alice", "bob"], home / "out", workers=1)
    copies = {c.handle: c.path for c in made}
    register_original(ws, FLOWER)
    ws.close()
    return home / "ws", copies


def _leak(copy, tmp_path, name="leak.mp4"):
    cut = attacks.trim(copy, tmp_path / f"cut-{name}", start=0.5, duration=3.0)
    # CRF 23: at 26 a 3 s cut of the flower clip traced at p ≈ 1e-9 under one key in CI
    return attacks.reencode(cut, tmp_path / name, crf=23)


def _every_row(self):
    raise AssertionError("a trace through the index loaded every original")


def test_keyframes_are_one_a_second_and_one_per_shot():
    times = np.arange(100) / 25  # 4 s
    rng = np.random.default_rng(1)
    shots = rng.integers(0, 255, (2, 16, 16), dtype=np.uint8)
    thumbs = np.repeat(shots, [62, 38], axis=0)  # a cut at frame 62 (2.48 s)
    assert keyframes(times, thumbs).tolist() == [0, 25, 50, 62, 75]
    v = keyframe_vectors(times, thumbs)
    assert v.shape == (5, 256) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_a_leaked_excerpt_is_traced_through_the_index_loading_only_its_candidates(
    videos, tmp_path, monkeypatch
):
    home, copies = videos
    leak = _leak(copies["bob"], tmp_path)
    monkeypatch.setenv("LEAKTRACE_INDEX", "on")
    monkeypatch.setattr(Workspace, "media", _every_row)
    ws = Workspace.open(home)
    try:
        (silent,) = [m for m in ws.media_rows([1, 2]) if m.name == SILENT.name]
        assert ws.keyframes.search(probe_thumbs(leak_timeline(leak)))[:1] == [silent.id]
        result = trace_file(ws, leak).result
        assert result["verdict"] == "match" and result["recipient"] == "bob", result["message"]
        assert result["video"]["start"] == pytest.approx(0.5, abs=0.5)
        # A clip that was never registered: no video of the index is like it.
        assert ws.keyframes.search(probe_thumbs(leak_timeline(CLIP))) == []
        assert trace_file(ws, CLIP).result["verdict"] == "no_match"
        state = json.loads((home / "index" / "keyframes.json").read_text())
        assert silent.id in state["videos"] and state["keyframes"] >= 4
    finally:
        ws.close()


def test_a_video_marked_after_the_index_was_built_is_found(videos, tmp_path, monkeypatch):
    home, _ = videos
    monkeypatch.setenv("LEAKTRACE_INDEX", "on")
    here = Workspace.open(home)
    there = Workspace.open(home)  # another process: its own index in memory
    try:
        before = here.video_stamp()
        (flower,) = [m for m in here.media_rows([1, 2]) if m.name == FLOWER.name]
        probes = probe_thumbs(leak_timeline(FLOWER))
        if flower.plan is None:  # the first test to mark it
            assert flower.id not in here.keyframes.search(probes)  # and the index is built
        # Marked with the index off there, so that here has to bring it up to date itself.
        monkeypatch.setenv("LEAKTRACE_INDEX", "off")
        (made,) = make_copies(there, [FLOWER], ["carol"], tmp_path / "out", workers=1)
        monkeypatch.setenv("LEAKTRACE_INDEX", "on")
        assert here.video_stamp()[0] == before[0] + (flower.plan is None)
        assert here.keyframes.search(probes)[:1] == [flower.id]
        monkeypatch.setattr(Workspace, "media", _every_row)
        result = trace_file(here, _leak(made.path, tmp_path)).result
        assert result["verdict"] == "match" and result["recipient"] == "carol", result["message"]
        state = json.loads((home / "index" / "keyframes.json").read_text())
        assert flower.id in state["videos"]
    finally:
        here.close()
        there.close()
