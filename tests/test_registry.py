import os
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

import leaktrace as lt
from leaktrace.registry import Workspace
from leaktrace.registry.people import slug
from leaktrace.registry.recipients import _HANDLE
from leaktrace.registry.workspace import HEAD_REVISION

from .conftest import TEST_DB
from .images import photo as photo_pixels


@pytest.fixture
def ws(tmp_path):
    return Workspace.create(tmp_path / "ws")


@pytest.mark.sqlite_only
def test_create_makes_wal_database_and_private_key(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_recipient("alice")
    key_file = tmp_path / "ws" / Workspace.KEY_NAME
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    with sqlite3.connect(tmp_path / "ws" / Workspace.DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # The key is never stored in the database.
        secret = key_file.read_text().split()[-1].encode()
    assert secret not in (tmp_path / "ws" / Workspace.DB_NAME).read_bytes()


def test_create_refuses_to_overwrite_a_workspace(ws, tmp_path):
    key_before = (tmp_path / "ws" / Workspace.KEY_NAME).read_bytes()
    with pytest.raises(lt.WorkspaceError, match="already exists"):
        Workspace.create(tmp_path / "ws")
    assert (tmp_path / "ws" / Workspace.KEY_NAME).read_bytes() == key_before


def test_open_missing_workspace(tmp_path):
    with pytest.raises(lt.WorkspaceError, match="no workspace"):
        Workspace.open(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("name", "email", "handle"),
    [
        ("Chloé Martin", "", "chloe-martin"),
        ("  Ann   O'Neil ", "ann@x.org", "ann-o-neil"),
        ("東京 🎉", "kenji.sato+vip@x.jp", "kenji.sato-vip"),
        ("", "", "patron"),
        ("x" * 80, "", "x" * 40),
    ],
)
def test_a_handle_is_made_from_the_name_else_the_email(name, email, handle):
    assert slug(name, email) == handle
    assert _HANDLE.fullmatch(handle)


def test_recipients_add_list_and_duplicates(ws):
    ws.add_recipient("alice", name="Alice A.", email="alice@example.com")
    ws.add_recipient("bob")
    assert [r.handle for r in ws.recipients()] == ["alice", "bob"]
    with pytest.raises(lt.RecipientError, match="already exists"):
        ws.add_recipient("alice")
    with pytest.raises(lt.RecipientError, match="unknown recipient 'zed'"):
        ws.recipients(["alice", "zed"])
    for bad in ["", "has space", "../etc", ".hidden", "x" * 65]:
        with pytest.raises(lt.RecipientError, match="bad handle"):
            ws.add_recipient(bad)


def test_import_is_all_or_nothing_and_names_the_line(ws, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("handle,name,email\nann,Ann,ann@x.org\nben,Ben,ben@x.org\n")
    assert len(ws.import_recipients(good).added) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("handle,name,email\ncid,Cid,cid@x.org\ndee,Dee,not-an-email\n")
    with pytest.raises(lt.RecipientError, match="line 3"):
        ws.import_recipients(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("handle,name,email\neve,Eve,\nann,Ann again,\n")
    with pytest.raises(lt.RecipientError, match="line 3: ann is already registered"):
        ws.import_recipients(dup)
    assert [r.handle for r in ws.recipients()] == ["ann", "ben"]  # nothing half-imported
    noheader = tmp_path / "noheader.csv"
    noheader.write_text("fay,Fay,fay@x.org\n")
    with pytest.raises(lt.RecipientError, match="header"):
        ws.import_recipients(noheader)
    with pytest.raises(lt.RecipientError, match="cannot read"):
        ws.import_recipients(tmp_path / "absent.csv")


def test_remove_recipient_only_without_copies(ws):
    ws.add_recipient("gil")
    ws.remove_recipient("gil")
    assert ws.recipients() == []
    with pytest.raises(lt.RecipientError):
        ws.remove_recipient("gil")


# -- migrations ------------------------------------------------------------------------------
DATA = Path(__file__).parent / "data"


def legacy_workspace(root: Path) -> Path:
    """A workspace whose registry leaktrace 0.1 (schema 1) made: see data/make_registry_v1.py."""
    home = root / "old"
    home.mkdir()
    with sqlite3.connect(home / Workspace.DB_NAME) as db:
        db.executescript((DATA / "registry-v1.sql").read_text())
    lt.Key.generate().save(home / Workspace.KEY_NAME)
    return home


@pytest.mark.sqlite_only
def test_schema_1_registry_is_migrated_keeping_every_record(tmp_path):
    home = legacy_workspace(tmp_path)
    ws = Workspace.open(home)
    records = ws.copies()
    assert [(r.handle, r.path) for r in records] == [
        ("alice", "/copies/alice/photo1.png"),
        ("bob", "/copies/bob/photo1.png"),
        ("alice", "/copies/alice/photo2.png"),
        ("bob", "/copies/bob/photo2.png"),
    ]
    assert records[0].sha256 == "1a" * 32
    assert [r.handle for r in ws.recipients()] == ["ALICE", "alice", "bob"]
    assert [t.name for t in ws.traces()] == ["leak.jpg"] and len(ws.tokens()) == 1
    # Two handles that differ only in case survive; each is matched exactly, none by a third
    # spelling, and no new one can join them.
    assert [r.handle for r in ws.recipients(["ALICE", "alice"])] == ["ALICE", "alice"]
    with pytest.raises(lt.UnknownRecipientError):
        ws.recipients(["Alice"])
    with pytest.raises(lt.RecipientConflictError):
        ws.add_recipient("Alice")
    # Copies are history now: a second record of alice's copy of photo 1 sits beside the first.
    media = ws.media()[0]
    batch, ids = ws.begin_batch([(media, "alice", tmp_path / "again.png")], strength=1.0)
    (tmp_path / "again.png").write_bytes(b"x")
    ws.end_batch(batch)
    assert [r.path for r in ws.copies(media) if r.handle == "alice"] == [
        "/copies/alice/photo1.png",
        str(tmp_path / "again.png"),
    ]
    with sqlite3.connect(home / Workspace.DB_NAME) as db:
        assert db.execute("select version_num from alembic_version").fetchone()[0] == HEAD_REVISION
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        meta = dict(db.execute("select name, value from meta"))
    assert meta["schema_version"] == "2" and meta["key_fingerprint"] == ws.key.fingerprint


def test_head_revision_is_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from leaktrace.registry import workspace

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(workspace.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == workspace.HEAD_REVISION


def test_a_registry_from_a_newer_leaktrace_is_refused(ws, tmp_path):
    with ws._engine.begin() as db:
        db.execute(text("update alembic_version set version_num = '0099'"))
    with pytest.raises(lt.WorkspaceError, match="newer leaktrace"):
        Workspace.open(tmp_path / "ws")


# -- keys ------------------------------------------------------------------------------------
def test_a_foreign_key_is_refused_and_a_missing_one_asks_for_the_backup(ws, tmp_path):
    home = tmp_path / "ws"
    (tmp_path / "o.png").write_bytes(b"x")
    ws.register_media(tmp_path / "o.png", sha256="e" * 64, width=1, height=1, fingerprint=b"")
    own = (home / Workspace.KEY_NAME).read_bytes()
    if TEST_DB == "sqlite":
        assert own.decode().split()[-1] not in (home / Workspace.DB_NAME).read_text("latin-1")
    (home / Workspace.KEY_NAME).unlink()
    lt.Key.generate().save(home / Workspace.KEY_NAME)
    with pytest.raises(lt.KeyFileError, match="not this workspace's key"):
        Workspace.open(home)
    (home / Workspace.KEY_NAME).unlink()
    opened = Workspace.open(home)  # the records can still be read
    assert opened.recipients() == []
    with pytest.raises(lt.KeyFileError, match="restore your key backup"):
        opened.key  # noqa: B018
    with pytest.raises(lt.WorkspaceError, match="restore your key backup"):
        Workspace.create(home)
    (home / Workspace.KEY_NAME).write_bytes(own)
    (home / Workspace.KEY_NAME).chmod(0o600)
    assert Workspace.open(home).key.fingerprint == ws.key.fingerprint


def test_an_init_stopped_before_the_key_was_written_can_be_run_again(ws, tmp_path):
    home = tmp_path / "ws"
    before = ws.key.fingerprint
    (home / Workspace.KEY_NAME).unlink()  # nothing was ever marked with that key
    again = Workspace.create(home)
    assert Workspace.open(home).key.fingerprint == again.key.fingerprint != before


def test_workspace_files_are_private(ws, tmp_path):
    home = tmp_path / "ws"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    if TEST_DB == "sqlite":
        assert stat.S_IMODE(os.stat(home / Workspace.DB_NAME).st_mode) == 0o600
    src = tmp_path / "o.png"
    src.write_bytes(b"\x89PNG")
    media = ws.register_media(src, sha256="a" * 64, width=1, height=1, fingerprint=b"")
    assert stat.S_IMODE(os.stat(ws.original_path(media)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ws.original_path(media).parent).st_mode) == 0o700


# -- recipients ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "handle, name, email, message",
    [
        ("dave\n", "", "", "bad handle"),
        ("dave ", "", "", "bad handle"),
        ("ok", "Eve\x1b[31m", "", "control character"),
        ("ok", "Nul\x00l", "", "control character"),
        ("ok", "abc\u202edcba", "", "control character"),
        ("ok", "x" * 201, "", "longer than 200"),
        ("ok", "", "a@b.\norg", "control character"),
        ("ok", "", "no-at-sign", "bad email"),
        ("ok", "", "a@" + "b" * 260 + ".org", "longer than 254"),
    ],
)
def test_recipients_are_checked(ws, handle, name, email, message):
    with pytest.raises(lt.RecipientError, match=message):
        ws.add_recipient(handle, name=name, email=email)
    assert ws.recipients() == []


def test_handles_are_unique_ignoring_case_and_found_by_any_case(ws):
    ws.add_recipient("alice", name="Élodie Ürsel 東京")  # letters of any script are fine
    with pytest.raises(lt.RecipientConflictError, match="'alice' already exists"):
        ws.add_recipient("ALICE")
    with pytest.raises(lt.RecipientConflictError, match="appears twice"):
        ws.add_recipients([("bob", "", ""), ("Bob", "", "")])
    assert [r.handle for r in ws.recipients(["Alice", "ALICE"])] == ["alice"]
    ws.remove_recipient("ALICE")
    assert ws.recipients() == []


@pytest.mark.parametrize("row_id", [0, -1, 2**63, 2**64])
def test_out_of_range_ids_are_not_found(ws, row_id):
    with pytest.raises(lt.NotFoundError):
        ws.media_by_id(row_id)
    with pytest.raises(lt.NotFoundError):
        ws.trace(row_id)


# -- batches ---------------------------------------------------------------------------------
def test_recovery_keeps_what_landed_and_forgets_the_rest(ws, tmp_path):
    """A dead batch's pending copies, in each state its processes can leave them."""
    from leaktrace.registry import file_sha256, part_path

    ws.add_recipients([(h, "", "") for h in ("a", "b", "c", "d", "e")])
    src = tmp_path / "o.png"
    src.write_bytes(b"original")
    media = ws.register_media(src, sha256="b" * 64, width=1, height=1, fingerprint=b"")
    out = tmp_path / "out"
    out.mkdir()
    plan = [(media, h, out / f"{h}.png") for h in "abcde"]
    batch, _ = ws.begin_batch(plan, strength=1.0)
    landed, linked, unwritten, foreign = (out / f"{h}.png" for h in "abcd")
    landed.write_bytes(b"a copy")  # moved into place, temporary name gone
    part_path(linked, batch.id).write_bytes(b"b copy")  # linked, temporary name not yet gone
    os.link(part_path(linked, batch.id), linked)
    part_path(unwritten, batch.id).write_bytes(b"half")  # written, never moved
    part_path(foreign, batch.id).write_bytes(b"d copy")  # someone else's file took the name
    foreign.write_bytes(b"not ours")
    ws._release(batch)  # the batch's process dies, its lock with it
    other = Workspace.open(tmp_path / "ws")  # opening settles it
    records = {r.handle: r for r in other.copies()}
    assert sorted(records) == ["a", "b"]
    assert all(file_sha256(r.path) == r.sha256 for r in records.values())
    assert foreign.read_bytes() == b"not ours"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "d.png"]
    assert not (tmp_path / "ws" / "locks" / f"{batch.id}.lock").exists()


def test_a_live_batch_is_not_settled_by_others(ws, tmp_path):
    ws.add_recipient("a")
    src = tmp_path / "o.png"
    src.write_bytes(b"original")
    media = ws.register_media(src, sha256="c" * 64, width=1, height=1, fingerprint=b"")
    batch, ids = ws.begin_batch([(media, "a", tmp_path / "a.png")], strength=1.0)
    Workspace.open(tmp_path / "ws")  # another process opens the workspace meanwhile
    (tmp_path / "a.png").write_bytes(b"copy")
    ws.finish_copies([(ids[0], "f" * 64)])
    assert ws.end_batch(batch) == 0
    assert [(r.handle, r.sha256) for r in ws.copies()] == [("a", "f" * 64)]


def test_candidates_are_grouped_by_the_code_of_their_copies_format(ws, tmp_path):
    """A copy keeps the code of the format it was made with: a video's segment symbols of
    format 2 are fair coins, of format 3 Tardos, of format 4 the same Tardos symbols judged
    under two scores; a picture's codeword is a fair coin in all."""
    from sqlalchemy import update

    from leaktrace.registry.models import Copy
    from leaktrace.workflow import make_copies

    for h in ("ann", "bob"):
        ws.add_recipient(h)
    photo = tmp_path / "p.png"
    lt.write_image(photo, photo_pixels())
    assert len(list(make_copies(ws, [photo], None, tmp_path / "out", workers=1))) == 2
    (media,) = ws.media()
    assert ws.media_candidates(media, variants=True) == {"tardos-v2": ["ann", "bob"]}
    with ws._session() as s:  # ann's copy was made before format 3, bob's in format 3
        (ann, bob) = ws.recipients(["ann", "bob"])
        s.execute(update(Copy).where(Copy.recipient_id == ann.id).values(format_version=2))
        s.execute(update(Copy).where(Copy.recipient_id == bob.id).values(format_version=3))
        s.commit()
    assert ws.media_candidates(media, variants=True) == {"random-v1": ["ann"], "tardos-v1": ["bob"]}
    assert ws.media_candidates(media) == {"random-v1": ["ann", "bob"]}
    assert ws.media_recipients(media) == ["ann", "bob"]
