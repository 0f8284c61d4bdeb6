"""The registry on both its databases, SQLite and PostgreSQL: the migrations build today's
schema from nothing (and from the first release's, with its records), and writers in many
processes at once lose and duplicate nothing."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

import leaktrace as lt
from leaktrace.registry import Workspace
from leaktrace.registry.models import Base, Copy, Media, Recipient
from leaktrace.registry.workspace import HEAD_REVISION

BACKENDS = ["sqlite", "postgres"]
WRITERS = 8
EACH = 12  # recipients (and copies) per writer


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch) -> str:
    """Each test once per database; LEAKTRACE_DB_URL is what the writers' processes see."""
    if request.param == "postgres":
        monkeypatch.setenv("LEAKTRACE_DB_URL", request.getfixturevalue("postgres").database())
    else:
        monkeypatch.delenv("LEAKTRACE_DB_URL", raising=False)
    return request.param


def _alembic(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from leaktrace.registry import workspace

    engine = create_engine(Workspace._url(Path()) if url == "" else url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(workspace.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()


def _schema_drift(ws: Workspace) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with ws._engine.connect() as conn, warnings.catch_warnings():
        # SQLite's reflection cannot read the lower(handle) index back (PostgreSQL's can).
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_migrations_build_todays_schema_from_nothing(backend, tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    with ws._engine.connect() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar() == (
            HEAD_REVISION
        )
    assert _schema_drift(ws) == []
    big = tmp_path / "big.bin"
    big.write_bytes(b"x")
    media = ws.register_media(big, sha256="b" * 64, width=1, height=1, fingerprint=b"")
    with ws._session() as s:  # a video over 2 GiB: 64 bits on both
        s.get(Media, media.id).size = 5 * 2**30  # type: ignore[union-attr]
    assert ws.media_by_id(media.id).size == 5 * 2**30
    ws.close()


def test_migrations_carry_the_first_releases_records(backend, tmp_path):
    """A registry made at revision 0001 with records in it, opened by today's leaktrace."""
    home = tmp_path / "ws"
    (home / "originals").mkdir(parents=True)
    url = os.environ.get("LEAKTRACE_DB_URL") or f"sqlite:///{home / Workspace.DB_NAME}"
    _alembic(Workspace._url(home) if backend == "postgres" else url, "0001")
    engine = create_engine(Workspace._url(home))
    now = "2024-01-02 03:04:05+00:00"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into recipients (handle, name, email, created) values "
            f"('alice', 'Alice', '', '{now}'), ('bob', '', '', '{now}')"
        )
        conn.exec_driver_sql(
            "insert into media (sha256, kind, name, stored, size, width, height, fingerprint, "
            f"features, created) values ('{'a' * 64}', 'image', 'p.png', 'originals/p.png', 1, "
            f"1, 1, '', '', '{now}')"
        )
        conn.exec_driver_sql(
            "insert into copies (media_id, recipient_id, path, sha256, strength, format_version,"
            f" created) values (1, 1, '/c/alice.png', '{'1' * 64}', 1.0, 2, '{now}'), "
            f"(1, 2, '/c/bob.png', '{'2' * 64}', 1.0, 2, '{now}')"
        )
    engine.dispose()
    lt.Key.generate().save(home / Workspace.KEY_NAME)
    ws = Workspace.open(home)
    assert [(r.handle, r.path) for r in ws.copies()] == [
        ("alice", "/c/alice.png"),
        ("bob", "/c/bob.png"),
    ]
    assert _schema_drift(ws) == []
    with pytest.raises(lt.RecipientConflictError):
        ws.add_recipient("ALICE")  # the case-blind unique index of 0002
    ws.close()


def _writer(home: str, number: int, start: multiprocessing.synchronize.Barrier) -> list[str]:
    """One process's writes: its own recipients and their copies, the shared handles (one
    process each wins), the same original registered by everyone."""
    ws = Workspace.open(home)
    src = Path(home) / "shared.png"
    start.wait(timeout=60)
    won = []
    media = ws.register_media(src, sha256="c" * 64, width=1, height=1, fingerprint=b"")
    for i in range(EACH):
        ws.add_recipient(f"w{number}-{i}")
        try:
            ws.add_recipient(f"Shared-{i}" if number % 2 else f"shared-{i}")
            won.append(f"shared-{i}")
        except lt.RecipientConflictError:
            pass
        out = Path(home) / f"copy-{number}-{i}.png"
        batch, _ = ws.begin_batch([(media, f"w{number}-{i}", out)], strength=1.0)
        out.write_bytes(b"copy")
        ws.end_batch(batch)
    ws.close()
    return won


def test_concurrent_writers_lose_and_duplicate_nothing(backend, tmp_path):
    home = tmp_path / "ws"
    Workspace.create(home).close()
    (home / "shared.png").write_bytes(b"\x89PNG original")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Manager().Barrier(WRITERS)
    with ctx.Pool(WRITERS) as pool:
        results = [pool.apply_async(_writer, (str(home), n, start)) for n in range(WRITERS)]
        won = [h for r in results for h in r.get(timeout=300)]
    # Every shared handle went to exactly one writer; every own handle and copy is there once.
    assert sorted(won) == sorted(f"shared-{i}" for i in range(EACH))
    ws = Workspace.open(home)
    with ws._session() as s:
        handles = [h.lower() for h in s.scalars(select(Recipient.handle))]
        assert len(handles) == len(set(handles)) == WRITERS * EACH + EACH
        assert s.scalar(select(func.count()).select_from(Media)) == 1
        copies = s.execute(select(Copy.recipient_id, Copy.state, Copy.path)).all()
    assert len(copies) == WRITERS * EACH and {c.state for c in copies} == {"done"}
    assert len({c.recipient_id for c in copies}) == len({c.path for c in copies}) == len(copies)
    assert sorted(r.handle for r in ws.copies()) == sorted(
        f"w{n}-{i}" for n in range(WRITERS) for i in range(EACH)
    )
    ws.close()
