"""The workspace: a folder holding the registry database, the secret key and the originals.

::

    leaktrace/                 ($LEAKTRACE_HOME, or --home), mode 0700
      leaktrace.db             SQLite in WAL mode, mode 0600 (or $LEAKTRACE_DB_URL, e.g. PostgreSQL)
      leaktrace.key            the secret key, mode 0600 — never in the database, never logged
      originals/ab/abcdef….jpg originals, content-addressed by SHA-256
      copies/<media id>/       copies made by the service (the CLI writes where it is told)
      reports/<trace id>.html  evidence reports of traces made by the service
      locks/<batch>.lock       held by every process of a running batch of copies
      codewords/…              recipients' codewords as packed bits, for fast traces (never
                               the key; safe to delete: see :mod:`leaktrace.registry.codebook`)
      index/…                  the originals' fingerprints and features for finding a leak's
                               among many (safe to delete: see :mod:`leaktrace.registry.index`)

The registry stores the key's public fingerprint (never the key): a workspace refuses a key
that is not its own. Every write is one transaction; the schema is migrated by Alembic
(``migrations/versions``) when a workspace is opened.

Copies are recorded before they exist: a batch writes ``pending`` records naming each copy's
final path, its processes write each file to a temporary name and move it into place, and the
batch marks each one ``done`` with its hash. A batch that dies (Ctrl-C, kill, power cut) is
settled by :meth:`Workspace.recover`, which every open runs: a pending copy whose file is in
place is marked done with the file's hash, any other is forgotten with its temporary file. So
every copy file under its final name has a record, and every done record names its file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    String,
    cast,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
)
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..codes import code_name
from ..errors import (
    ConflictError,
    KeyFileError,
    NotFoundError,
    WorkspaceError,
)
from ..keys import Key
from .codebook import Codebook
from .copies import Copies, _now
from .index import MediaIndex
from .keyframes import KeyframeIndex
from .models import Base, Copy, Media, Meta, Recipient, ScanFile, Token, Trace
from .recipients import _text
from .scans import ScansAndCases

__all__ = ["Workspace", "default_home"]

SCHEMA_VERSION = 2
#: The newest migration in ``migrations/versions`` (a test keeps the two in step).
HEAD_REVISION = "0005"
_ID_MAX = 2**63 - 1
_Row = TypeVar("_Row", bound=Base)


def default_home() -> Path:
    """``$LEAKTRACE_HOME`` if set, else ``./leaktrace``."""
    return Path(os.environ.get("LEAKTRACE_HOME", "leaktrace"))


def _planned_video() -> ColumnElement[bool]:
    # A video registered before its variants holds a JSON null (not SQL NULL) as its plan.
    return (Media.kind == "video") & Media.plan.is_not(None) & (cast(Media.plan, String) != "null")


class Workspace(Copies, ScansAndCases):
    """An open workspace. Create one with :meth:`create`, open it with :meth:`open`."""

    DB_NAME = "leaktrace.db"
    KEY_NAME = "leaktrace.key"

    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        try:
            self._engine = create_engine(url)
        except ImportError as exc:
            raise WorkspaceError(
                f"no database driver for {url.split(':', 1)[0]}: {exc} "
                "(for PostgreSQL: pip install 'leaktrace[postgres]')"
            ) from exc
        except ArgumentError as exc:
            raise WorkspaceError(f"LEAKTRACE_DB_URL is not a database URL: {exc}") from exc
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine, "connect", _sqlite_connect)
            event.listen(self._engine, "begin", _sqlite_begin)
        elif self._engine.dialect.name == "postgresql":
            event.listen(self._engine, "begin", _postgresql_begin)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        # A workspace dropped without close() still hands its connections back (a server
        # counts them; a driver warns of ones left open).
        weakref.finalize(self, self._engine.dispose)
        self._key: Key | None = None
        self._locks: dict[str, int] = {}
        self._codebook: Codebook | None = None
        self._index: MediaIndex | None = None
        self._keyframes: KeyframeIndex | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @staticmethod
    def _url(home: Path) -> str:
        url = os.environ.get("LEAKTRACE_DB_URL") or f"sqlite:///{home / Workspace.DB_NAME}"
        # A plain PostgreSQL URL means psycopg (3), the driver the postgres extra installs.
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        return url

    @classmethod
    def create(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        """Make a new workspace with a fresh key; refuses if one is already there."""
        root = Path(home) if home is not None else default_home()
        key_file, db_file = root / cls.KEY_NAME, root / cls.DB_NAME
        if key_file.exists():
            raise WorkspaceError(f"a workspace already exists in {root}; not overwriting its key")
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(root, 0o700)
            (root / "originals").mkdir(exist_ok=True, mode=0o700)
            if cls._url(root).startswith("sqlite") and not db_file.exists():
                os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise WorkspaceError(f"cannot create {root}: {exc}") from exc
        key = Key.generate()
        ws = cls(root, cls._url(root))
        try:
            ws._migrate()
        except BaseException:
            ws.close()
            raise
        with ws._session() as s:
            # A registry without its key is refused unless nothing was ever marked under it
            # (an init that stopped before writing the key).
            orphaned = s.scalars(select(Media.id).limit(1)).first() is not None
            if not orphaned:
                s.execute(delete(Meta).where(Meta.name == "key_fingerprint"))
                s.add(Meta(name="key_fingerprint", value=key.fingerprint))
        if orphaned:
            ws.close()
            raise WorkspaceError(
                f"the registry of {root} exists without its key: restore your key backup "
                f"to {key_file} (a new key could not trace any copy already sent)"
            )
        key.save(key_file)
        return ws

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        """Open an existing workspace, bring its schema up to date and settle dead batches.

        A key file that is not the workspace's own is refused; a missing one is reported when
        the key is first needed, so the registry can still be read without it.
        """
        root = Path(home) if home is not None else default_home()
        url = cls._url(root)
        # A server's registry is there whatever the folder holds: the folder is a workspace
        # once create() made its originals' folder.
        has_db = (root / cls.DB_NAME).is_file() or (
            not url.startswith("sqlite") and (root / "originals").is_dir()
        )
        if not has_db:
            if (root / cls.KEY_NAME).is_file():
                raise WorkspaceError(
                    f"the registry {root / cls.DB_NAME} is missing (the key is there): restore "
                    "it from your backup"
                )
            raise WorkspaceError(
                f"no workspace in {root} (run `leaktrace init`, or set --home / LEAKTRACE_HOME)"
            )
        ws = cls(root, url)
        try:
            ws._migrate()
            if (root / cls.KEY_NAME).exists():
                ws.key  # noqa: B018 - refuse a foreign key at once
            ws.recover()
        except BaseException:
            ws.close()
            raise
        return ws

    def _migrate(self) -> None:
        """Bring the schema to :data:`HEAD_REVISION` with Alembic (loaded only when needed)."""
        try:
            with self._engine.begin() as conn:
                tables = conn.dialect.get_table_names(conn)
                if "alembic_version" in tables:
                    at = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                    if at == HEAD_REVISION:
                        return
                if "meta" in tables:
                    version = conn.execute(
                        select(Meta.value).where(Meta.name == "schema_version")
                    ).scalar()
                    if version is not None and int(version) > SCHEMA_VERSION:
                        raise WorkspaceError(
                            f"the registry in {self.home} is from a newer leaktrace"
                        )
                from alembic import command
                from alembic.config import Config
                from alembic.util.exc import CommandError

                cfg = Config()
                where = resources.files("leaktrace.registry") / "migrations"
                cfg.set_main_option("script_location", str(where))
                cfg.attributes["connection"] = conn
                try:
                    command.upgrade(cfg, "head")
                except CommandError as exc:
                    raise WorkspaceError(
                        f"the registry in {self.home} is from a newer leaktrace"
                    ) from exc
        except SQLAlchemyError as exc:
            raise WorkspaceError(f"cannot open the registry in {self.home}: {exc}") from exc

    def close(self) -> None:
        for fd in self._locks.values():
            os.close(fd)
        self._locks.clear()
        self._engine.dispose()

    @property
    def key(self) -> Key:
        """The workspace's secret key, checked against the fingerprint the registry holds."""
        if self._key is None:
            path = self.home / self.KEY_NAME
            if not path.exists():
                raise KeyFileError(
                    f"the key file {path} is missing: restore your key backup there "
                    "(running init would make a new key that cannot trace any copy already sent)"
                )
            key = Key.load(path)
            with self._session() as s:
                known = s.get(Meta, "key_fingerprint")
                if known is None:  # a workspace from before fingerprints: adopt its key
                    s.add(Meta(name="key_fingerprint", value=key.fingerprint))
                elif known.value != key.fingerprint:
                    raise KeyFileError(
                        f"{path} is not this workspace's key (fingerprint {key.fingerprint}, "
                        f"the registry expects {known.value}): restore the workspace's own key"
                    )
            self._key = key
        return self._key

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as s, s.begin():
            yield s

    @property
    def codebook(self) -> Codebook:
        """The recipients' codewords kept for tracing (:mod:`leaktrace.registry.codebook`)."""
        if self._codebook is None:
            self._codebook = Codebook(self.private_dir("codewords"))
        return self._codebook

    @property
    def index(self) -> MediaIndex:
        """The originals' search index (:mod:`leaktrace.registry.index`)."""
        if self._index is None:
            self._index = MediaIndex(self, self.private_dir("index"))
        return self._index

    @property
    def keyframes(self) -> KeyframeIndex:
        """The videos' keyframes in the originals' index (:mod:`leaktrace.registry.keyframes`)."""
        if self._keyframes is None:
            self._keyframes = KeyframeIndex(self, self.private_dir("index"))
        return self._keyframes

    def private_dir(self, *parts: str) -> Path:
        """A folder inside the workspace, created private to its owner (0700)."""
        path = self.home.joinpath(*parts)
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise WorkspaceError(f"cannot create {path}: {exc}") from exc
        return path

    # -- media -------------------------------------------------------------------------------
    def register_media(
        self,
        path: str | os.PathLike[str],
        *,
        sha256: str,
        width: int,
        height: int,
        fingerprint: bytes,
        features: bytes = b"",
        name: str | None = None,
        kind: str = "image",
        plan: dict[str, Any] | None = None,
    ) -> Media:
        """Register an original (idempotent by content hash), keeping a copy of the file.

        A video (``kind="video"``) comes with its variants' ``plan``; the variants must be in
        :meth:`variants_dir` already. A video registered without one gets it when it comes."""
        src = Path(path)
        found = self.media_by_sha256(sha256)
        if found is not None:
            if plan is not None and found.plan is None:
                with self._session() as s:
                    row = s.get(Media, found.id)
                    if row is not None and row.plan is None:
                        row.plan = plan
                return self.media_by_id(found.id)
            return found
        stored = Path("originals") / sha256[:2] / f"{sha256}{src.suffix.lower()}"
        target = self.home / stored
        try:
            if not target.exists():
                self.private_dir("originals", sha256[:2])
                fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")  # mode 0600
                os.close(fd)
                shutil.copyfile(src, tmp)
                os.replace(tmp, target)
            size = src.stat().st_size
        except OSError as exc:
            raise WorkspaceError(f"cannot keep a copy of {src.name}: {exc}") from exc
        media = Media(
            sha256=sha256,
            name=name or src.name,
            stored=str(stored),
            size=size,
            width=width,
            height=height,
            fingerprint=fingerprint,
            features=features,
            kind=kind,
            plan=plan,
        )
        try:
            with self._session() as s:
                s.add(media)
        except IntegrityError:  # registered meanwhile by another process
            with self._session() as s:
                return s.scalars(select(Media).where(Media.sha256 == sha256)).one()
        return media

    def media_by_sha256(self, sha256: str) -> Media | None:
        """The registered original with this content hash, if any."""
        with self._session() as s:
            return s.scalars(select(Media).where(Media.sha256 == sha256)).first()

    def media(self) -> list[Media]:
        with self._session() as s:
            return list(s.scalars(select(Media).order_by(Media.id)))

    def media_stamp(self) -> tuple[int, int, int]:
        """How many originals are registered, their largest id and the sum of their ids: what
        changes whenever one is added or removed (one query, no row loaded)."""
        with self._session() as s:
            n, top, total = s.execute(
                select(func.count(Media.id), func.max(Media.id), func.sum(Media.id))
            ).one()
        return int(n), int(top or 0), int(total or 0)

    def media_ids(self) -> list[int]:
        with self._session() as s:
            return list(s.scalars(select(Media.id).order_by(Media.id)))

    def media_rows(self, ids: Sequence[int]) -> list[Media]:
        """The registered originals with these ids (those that still exist), by id."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return []
        with self._session() as s:
            return list(s.scalars(select(Media).where(Media.id.in_(wanted)).order_by(Media.id)))

    def media_blobs(self, ids: Sequence[int]) -> list[tuple[int, bytes, bytes]]:
        """(id, fingerprint, features) of the originals with these ids, by id."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return []
        with self._session() as s:
            q = (
                select(Media.id, Media.fingerprint, Media.features)
                .where(Media.id.in_(wanted))
                .order_by(Media.id)
            )
            return [(int(i), bytes(p), bytes(f or b"")) for i, p, f in s.execute(q)]

    def video_stamp(self) -> tuple[int, int, int]:
        """:meth:`media_stamp` of the videos that have their variants (a plan): what changes
        whenever one is marked for the first time or removed."""
        with self._session() as s:
            n, top, total = s.execute(
                select(func.count(Media.id), func.max(Media.id), func.sum(Media.id)).where(
                    _planned_video()
                )
            ).one()
        return int(n), int(top or 0), int(total or 0)

    def planned_videos(self, ids: Sequence[int] | None = None) -> list[tuple[int, str]]:
        """(id, sha256) of the videos that have their variants (of those in ``ids``), by id."""
        q = select(Media.id, Media.sha256).where(_planned_video()).order_by(Media.id)
        if ids is not None:
            q = q.where(Media.id.in_(sorted({int(i) for i in ids})))
        with self._session() as s:
            return [(int(i), str(h)) for i, h in s.execute(q)]

    def media_by_id(self, media_id: int) -> Media:
        return self._get(Media, media_id, "media")

    def _get(self, model: type[_Row], row_id: Any, what: str) -> _Row:
        found = None
        # PostgreSQL's INTEGER ids stop at 2³¹ − 1 (SQLite's at 2⁶³ − 1): beyond, none exists.
        top = _ID_MAX if self._engine.dialect.name == "sqlite" else 2**31 - 1
        if not isinstance(row_id, int) or 0 < row_id <= top:
            with self._session() as s:
                found = s.get(model, row_id)
        if found is None:
            raise NotFoundError(f"no {what} with id {row_id}")
        return found

    def original_path(self, media: Media) -> Path:
        return self.home / media.stored

    def variants_dir(self, sha256: str) -> Path:
        """Where a video's variants are kept (``variants/<sha256>``; it may not exist yet)."""
        return self.home / "variants" / sha256

    def media_recipients(self, media: Media) -> list[str]:
        """Handles of everyone who received a copy of ``media``."""
        return sorted({h for handles in self.media_candidates(media).values() for h in handles})

    def media_candidates(self, media: Media, *, variants: bool = False) -> dict[str, list[str]]:
        """Everyone who received a copy of ``media``, by the code their copy was made with
        (its format version's; ``variants``: the code of a video's segment symbols)."""
        with self._session() as s:
            q = (
                select(Recipient.handle, Copy.format_version)
                .join(Copy, Copy.recipient_id == Recipient.id)
                .where(Copy.media_id == media.id, Copy.state == "done")
                .distinct()
                .order_by(Recipient.handle)
            )
            out: dict[str, list[str]] = {}
            for handle, version in s.execute(q):
                group = out.setdefault(code_name(version, variants=variants), [])
                if handle not in group:
                    group.append(handle)
            return out

    # -- traces ------------------------------------------------------------------------------
    def record_trace(
        self,
        *,
        sha256: str,
        name: str,
        result: dict,
        media: Media | None,
        scanned: dict[str, Any] | None = None,
    ) -> int:
        """Record a trace; returns its id. ``scanned``: the fields of the scan file record
        that this trace judges, written in the same transaction."""
        row = Trace(
            sha256=sha256,
            name=name,
            verdict=result["verdict"],
            recipient=result.get("recipient"),
            p_value=result.get("p_value"),
            media_id=media.id if media is not None else None,
            result=result,
        )
        with self._session() as s:
            s.add(row)
            s.flush()
            if scanned is not None:
                s.add(ScanFile(**scanned, trace_id=row.id))
            return row.id

    def trace(self, trace_id: int) -> Trace:
        return self._get(Trace, trace_id, "trace")

    def traces(self) -> list[Trace]:
        with self._session() as s:
            return list(s.scalars(select(Trace).order_by(Trace.id)))

    # -- API tokens --------------------------------------------------------------------------
    def create_token(self, name: str = "") -> tuple[str, Token]:
        """Make a new API token; the token string is returned once and only its digest kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        label = _text(name, "a token's name", 128)
        row = Token(name=label, digest=_token_digest(token), hint=token[:7])
        with self._session() as s:
            s.add(row)
        return token, row

    def tokens(self) -> list[Token]:
        """The tokens that still work."""
        with self._session() as s:
            return list(s.scalars(select(Token).where(Token.revoked.is_(None)).order_by(Token.id)))

    def token_valid(self, token: str) -> bool:
        if not token.startswith(TOKEN_PREFIX):
            return False
        with self._session() as s:
            q = select(Token.id).where(
                Token.digest == _token_digest(token), Token.revoked.is_(None)
            )
            return s.scalars(q).first() is not None

    def revoke_token(self, which: str) -> Token:
        """Revoke a working token by its id or its name (a name must be unique)."""
        with self._session() as s:
            live = select(Token).where(Token.revoked.is_(None))
            found = [] if "\x00" in which else list(s.scalars(live.where(Token.name == which)))
            if which.isdigit() and int(which) <= 2**31 - 1:
                found += list(s.scalars(live.where(Token.id == int(which))))
            if not found:
                raise NotFoundError(f"no working token with id or name {which!r}")
            if len({t.id for t in found}) > 1:
                raise ConflictError(f"several tokens are named {which!r}; revoke one by its id")
            found[0].revoked = _now()
            return found[0]


TOKEN_PREFIX = "lt_"


def _token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a plain hash is as strong as a slow one here.
    return hashlib.sha256(token.encode()).hexdigest()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun by _sqlite_begin (so DDL is transactional too).
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


#: The advisory lock every PostgreSQL transaction of a workspace takes (any constant: the
#: registry's database is its own). SQLite serialises the registry's transactions with
#: BEGIN IMMEDIATE; this does the same on PostgreSQL, so that a transaction that reads, then
#: writes what it read (a job's progress, "is this handle taken?", the key's fingerprint,
#: the schema's migrations) means the same on both, for any number of processes. Each one
#: is short: files are read and written outside transactions.
_PG_LOCK = 0x6C65616B74726163  # "leaktrac"


def _postgresql_begin(conn: Any) -> None:
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock at once: two writers wait their turn (busy_timeout)
    # instead of one failing when its read turns into a write.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
