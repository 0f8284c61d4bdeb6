"""The originals' search index beside the registry (leaktrace.registry.index): the same
identification as the exact search, kept up to date with the registry, safe to delete."""

import json
import shutil

import pytest
from sqlalchemy import text

import leaktrace as lt
from leaktrace import attacks
from leaktrace.cli import app
from leaktrace.identify import fingerprint
from leaktrace.registry import Workspace
from leaktrace.registry.index import identify
from leaktrace.workflow import make_copies, register_original, trace_file

from .conftest import KODAK, MOUNTAINS, WALRUS, registry

pytest.importorskip("faiss")

REGISTERED = [KODAK / "kodim05.png", KODAK / "kodim07.png", KODAK / "kodim15.png", WALRUS]
UNRELATED = KODAK / "kodim20.png"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A workspace with four photos, kodim05 sent to alice and bob."""
    home = tmp_path_factory.mktemp("indexed")
    ws = Workspace.create(home / "ws")
    ws.add_recipients([("alice", "", ""), ("bob", "", "")])
    for path in REGISTERED[1:]:
        register_original(ws, path)
    made = make_copies(ws, [REGISTERED[0]], None, home / "out", workers=1)
    copies = {c.handle: c.path for c in made}
    ws.close()
    return home / "ws", copies


def _leak(path, tmp_path, name="leak.jpg"):
    leak = attacks.jpeg(attacks.rescale(lt.read_image(path), 0.5), 70)
    target = tmp_path / name
    lt.write_image(target, leak)
    return leak, target


def _names(found):
    """The mountains photo, if it is among the originals tried."""
    return [m.name for m in found.tried if m.name == MOUNTAINS.name]


def _ids(found):
    return [m.id for m in found.similar], [m.id for m in found.tried]


def test_the_index_and_the_exact_search_identify_the_same(indexed, monkeypatch):
    home, _ = indexed
    ws = Workspace.open(home)
    try:
        by_name = {m.name: m.id for m in ws.media()}
        for path in [*REGISTERED, UNRELATED]:
            leak = attacks.jpeg(attacks.rescale(lt.read_image(path), 0.5), 70)
            probe = fingerprint(leak)
            monkeypatch.setenv("LEAKTRACE_INDEX", "off")
            exact = identify(ws, leak, probe)
            monkeypatch.setenv("LEAKTRACE_INDEX", "on")
            fast = identify(ws, leak, probe)
            assert _ids(fast)[0] == _ids(exact)[0], path.name
            both = fast.similarity.keys() & exact.similarity.keys()
            assert {i: fast.similarity[i] for i in both} == pytest.approx(
                {i: exact.similarity[i] for i in both}, abs=1e-6
            )
            if path == UNRELATED:
                # Nothing looks like it. Its local features may still cast a few chance votes:
                # both searches match them approximately (FLANN's randomised trees, the IVF),
                # so one of them may, once in a while, count one more chance vote than the
                # other and try an original more (a trace of it then answers no_match).
                assert exact.similar == fast.similar == []
            else:
                assert _ids(fast)[1][:1] == _ids(exact)[1][:1], path.name
                assert fast.similar[0].id == by_name[path.name]
        assert (home / "index" / "state.json").is_file()
    finally:
        ws.close()


def test_a_leak_is_traced_through_the_index_loading_only_its_candidates(
    indexed, tmp_path, monkeypatch
):
    home, copies = indexed
    _, leak = _leak(copies["bob"], tmp_path)
    # A crop of what alice got: found by its features, not its fingerprint.
    alice = copies["alice"]
    lt.write_image(tmp_path / "crop.png", attacks.crop(lt.read_image(alice), 0.4, at=(0.3, 0.6)))
    monkeypatch.setenv("LEAKTRACE_INDEX", "on")

    def every_row(self):
        raise AssertionError("a trace through the index loaded every original")

    monkeypatch.setattr(Workspace, "media", every_row)
    ws = Workspace.open(home)
    try:
        found = trace_file(ws, leak)
        assert found.result["verdict"] == "match"
        assert found.result["recipient"] == "bob"
        cropped = trace_file(ws, tmp_path / "crop.png")
        assert cropped.result["verdict"] == "match"
        assert cropped.result["recipient"] == "alice"
        _, unrelated = _leak(UNRELATED, tmp_path, "other.jpg")
        assert trace_file(ws, unrelated).result["verdict"] == "no_match"
    finally:
        ws.close()


def test_a_deleted_or_torn_index_is_rebuilt(indexed, monkeypatch):
    home, _ = indexed
    monkeypatch.setenv("LEAKTRACE_INDEX", "on")
    leak = attacks.jpeg(attacks.rescale(lt.read_image(WALRUS), 0.5), 70)
    shutil.rmtree(home / "index", ignore_errors=True)
    for tear in (None, b"not an index"):
        if tear is not None:
            (home / "index" / "prints.faiss").write_bytes(tear)
        ws = Workspace.open(home)
        try:
            found = identify(ws, leak, fingerprint(leak))
            assert found.similar[0].name == WALRUS.name
        finally:
            ws.close()
        state = json.loads((home / "index" / "state.json").read_text())
        assert state["stamp"][0] == len(REGISTERED)
        assert (home / "index" / "prints.faiss").stat().st_size > 1000


def test_originals_registered_or_removed_elsewhere_are_seen(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAKTRACE_INDEX", "on")
    here = Workspace.create(tmp_path / "ws")
    there = Workspace.open(tmp_path / "ws")  # another process: its own index in memory
    try:
        register_original(here, REGISTERED[1])
        mountains = attacks.jpeg(attacks.rescale(lt.read_image(MOUNTAINS), 0.5), 70)
        probe = fingerprint(mountains)
        assert _names(identify(here, mountains, probe)) == []  # the index is built
        media, _ = register_original(there, MOUNTAINS)
        found = identify(here, mountains, probe)
        assert [m.id for m in found.similar] == [media.id]
        state = json.loads((tmp_path / "ws" / "index" / "state.json").read_text())
        assert state["stamp"][0] == 2
        # Removed from the registry (no copy was made of it): gone from the results.
        with registry(tmp_path / "ws") as conn:
            conn.execute(text("DELETE FROM media WHERE id = :id"), {"id": media.id})
        assert _names(identify(here, mountains, probe)) == []
        assert _names(identify(there, mountains, probe)) == []
    finally:
        here.close()
        there.close()


def test_a_bad_index_setting_is_one_line(indexed, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    home, _ = indexed
    _, leak = _leak(WALRUS, tmp_path)
    monkeypatch.setenv("LEAKTRACE_INDEX", "sometimes")
    result = CliRunner().invoke(app, ["--home", str(home), "trace", str(leak)])
    assert result.exit_code == 2
    assert "LEAKTRACE_INDEX='sometimes': use one of auto, on, off" in result.output
    assert "Traceback" not in result.output
