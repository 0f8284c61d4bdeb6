import os
import sqlite3
import stat

import pytest

import leaktrace as lt
from leaktrace.registry import Workspace


@pytest.fixture
def ws(tmp_path):
    return Workspace.create(tmp_path / "ws")


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
    assert len(ws.import_recipients(good)) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("handle,name,email\ncid,Cid,cid@x.org\ndee,Dee,not-an-email\n")
    with pytest.raises(lt.RecipientError, match="line 3"):
        ws.import_recipients(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("handle,name,email\neve,Eve,\nann,Ann again,\n")
    with pytest.raises(lt.RecipientError, match="'ann' already exists"):
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
