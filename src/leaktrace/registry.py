"""The workspace: a folder holding the registry database, the secret key and the originals.

::

    leaktrace/                 ($LEAKTRACE_HOME, or --home)
      leaktrace.db             SQLite in WAL mode (or $LEAKTRACE_DB_URL, e.g. PostgreSQL)
      leaktrace.key            the secret key, mode 0600 — never in the database, never logged
      originals/ab/abcdef….jpg originals, content-addressed by SHA-256
      copies/<media id>/       copies made by the service (the CLI writes where it is told)
      reports/<trace id>.html  evidence reports of traces made by the service

Records: recipients (handle, name, email), media (content hash, size, fingerprint, original
file name), copies (which recipient got which media, where, with what hash and when) and
traces (what was traced, the verdict, when), and the service's API tokens (only a SHA-256
digest of each is stored). Every write is one transaction.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from .codes import FORMAT_VERSION
from .errors import (
    ConflictError,
    NotFoundError,
    RecipientConflictError,
    RecipientError,
    UnknownRecipientError,
    WorkspaceError,
)
from .keys import Key

__all__ = [
    "Copy",
    "Media",
    "Recipient",
    "Token",
    "Trace",
    "Workspace",
    "default_home",
    "file_sha256",
]

SCHEMA_VERSION = 1
_HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _now() -> datetime:
    return datetime.now(UTC)


def default_home() -> Path:
    """``$LEAKTRACE_HOME`` if set, else ``./leaktrace``."""
    return Path(os.environ.get("LEAKTRACE_HOME", "leaktrace"))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Base(DeclarativeBase):
    pass


_Row = TypeVar("_Row", bound=_Base)


class _Meta(_Base):
    __tablename__ = "meta"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Recipient(_Base):
    """Someone who receives copies."""

    __tablename__ = "recipients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str] = mapped_column(String(256), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Media(_Base):
    """A registered original (content-addressed)."""

    __tablename__ = "media"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="image")
    name: Mapped[str] = mapped_column(String(512))
    stored: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    features: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    @property
    def mark_id(self) -> str:
        """The ``media_id`` the engine marks this original's copies with."""
        return f"sha256:{self.sha256}"


class Copy(_Base):
    """One recipient's marked copy of one media item."""

    __tablename__ = "copies"
    __table_args__ = (UniqueConstraint("media_id", "recipient_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    strength: Mapped[float] = mapped_column(Float, default=1.0)
    format_version: Mapped[int] = mapped_column(Integer, default=FORMAT_VERSION)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Trace(_Base):
    """One run of ``trace`` and its result."""

    __tablename__ = "traces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    verdict: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(64), nullable=True)
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id"), nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Token(_Base):
    """An API token of the service; the token itself is shown once and never stored."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


TOKEN_PREFIX = "lt_"


def _token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a plain hash is as strong as a slow one here.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CopyRecord:
    """What the registry knows of a copy, detached from any session."""

    media_sha256: str
    handle: str
    path: str
    sha256: str
    created: datetime


class Workspace:
    """An open workspace. Create one with :meth:`create`, open it with :meth:`open`."""

    DB_NAME = "leaktrace.db"
    KEY_NAME = "leaktrace.key"

    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        self._engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(self._engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._key: Key | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @staticmethod
    def _url(home: Path) -> str:
        return os.environ.get("LEAKTRACE_DB_URL") or f"sqlite:///{home / Workspace.DB_NAME}"

    @classmethod
    def create(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        """Make a new workspace with a fresh key; refuses if one is already there."""
        root = Path(home) if home is not None else default_home()
        if (root / cls.KEY_NAME).exists() or (root / cls.DB_NAME).exists():
            raise WorkspaceError(f"a workspace already exists in {root}; not overwriting its key")
        try:
            (root / "originals").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create {root}: {exc}") from exc
        Key.generate().save(root / cls.KEY_NAME)
        ws = cls(root, cls._url(root))
        try:
            _Base.metadata.create_all(ws._engine)
            with ws._session() as s:
                s.add(_Meta(name="schema_version", value=str(SCHEMA_VERSION)))
        except SQLAlchemyError as exc:
            raise WorkspaceError(f"cannot create the registry: {exc}") from exc
        return ws

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        """Open an existing workspace."""
        root = Path(home) if home is not None else default_home()
        if not (root / cls.KEY_NAME).is_file():
            raise WorkspaceError(
                f"no workspace in {root} (run `leaktrace init`, or set --home / LEAKTRACE_HOME)"
            )
        ws = cls(root, cls._url(root))
        try:
            with ws._session() as s:
                version = s.get(_Meta, "schema_version")
        except SQLAlchemyError as exc:
            raise WorkspaceError(f"cannot open the registry in {root}: {exc}") from exc
        if version is None or int(version.value) > SCHEMA_VERSION:
            raise WorkspaceError(f"the registry in {root} is from a newer leaktrace")
        try:
            _Base.metadata.create_all(ws._engine)  # tables added since (tokens); idempotent
        except SQLAlchemyError as exc:
            raise WorkspaceError(f"cannot update the registry in {root}: {exc}") from exc
        return ws

    def close(self) -> None:
        self._engine.dispose()

    @property
    def key(self) -> Key:
        if self._key is None:
            self._key = Key.load(self.home / self.KEY_NAME)
        return self._key

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions() as s, s.begin():
            yield s

    # -- recipients --------------------------------------------------------------------------
    @staticmethod
    def _checked(handle: str, name: str, email: str) -> Recipient:
        if not _HANDLE.match(handle):
            raise RecipientError(
                f"bad handle {handle!r}: use 1–64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if email and "@" not in email:
            raise RecipientError(f"bad email {email!r} for {handle}")
        return Recipient(handle=handle, name=name.strip(), email=email.strip())

    def add_recipient(self, handle: str, *, name: str = "", email: str = "") -> Recipient:
        """Register one recipient; a duplicate handle is refused."""
        return self.add_recipients([(handle, name, email)])[0]

    def add_recipients(self, rows: Iterable[tuple[str, str, str]]) -> list[Recipient]:
        """Register recipients all at once, or none of them."""
        new = [self._checked(*row) for row in rows]
        seen: set[str] = set()
        for r in new:
            if r.handle in seen:
                raise RecipientConflictError(f"handle {r.handle!r} appears twice")
            seen.add(r.handle)
        try:
            with self._session() as s:
                taken = s.scalars(select(Recipient.handle).where(Recipient.handle.in_(seen)))
                clash = sorted(taken)
                if clash:
                    raise RecipientConflictError(f"recipient {clash[0]!r} already exists")
                s.add_all(new)
        except IntegrityError as exc:
            raise RecipientConflictError(f"a recipient already exists: {exc.orig}") from exc
        return new

    def import_recipients(self, path: str | os.PathLike[str]) -> list[Recipient]:
        """Import a CSV with a header row ``handle,name,email``; all rows or none."""
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                fields = [f.strip().lower() for f in reader.fieldnames or []]
                if "handle" not in fields:
                    raise RecipientError(f"{path}: the header row must name a 'handle' column")
                reader.fieldnames = fields
                rows = []
                for row in reader:
                    line = reader.line_num
                    if None in row:
                        raise RecipientError(f"{path}, line {line}: more fields than the header")
                    handle = (row.get("handle") or "").strip()
                    try:
                        rows.append(
                            self._checked(handle, row.get("name") or "", row.get("email") or "")
                        )
                    except RecipientError as exc:
                        raise RecipientError(f"{path}, line {line}: {exc}") from exc
        except OSError as exc:
            raise RecipientError(f"cannot read {path}: {exc}") from exc
        except (UnicodeDecodeError, csv.Error) as exc:
            raise RecipientError(f"{path} is not a readable CSV file: {exc}") from exc
        if not rows:
            raise RecipientError(f"{path} has no recipient rows")
        return self.add_recipients([(r.handle, r.name, r.email) for r in rows])

    def recipients(self, handles: Sequence[str] | None = None) -> list[Recipient]:
        """All recipients (by handle), or exactly those named — an unknown handle is an error."""
        with self._session() as s:
            query = select(Recipient).order_by(Recipient.handle)
            if handles is None:
                return list(s.scalars(query))
            found = {r.handle: r for r in s.scalars(query.where(Recipient.handle.in_(handles)))}
        missing = [h for h in handles if h not in found]
        if missing:
            raise UnknownRecipientError(f"unknown recipient {missing[0]!r}")
        return [found[h] for h in dict.fromkeys(handles)]

    def copy_counts(self) -> dict[str, int]:
        """How many copies each recipient has received, by handle (absent: none)."""
        with self._session() as s:
            q = (
                select(Recipient.handle, func.count(Copy.id))
                .join(Copy, Copy.recipient_id == Recipient.id)
                .group_by(Recipient.handle)
            )
            return {h: int(n) for h, n in s.execute(q)}

    def remove_recipient(self, handle: str) -> None:
        """Delete a recipient who has received no copies (copies keep their evidence)."""
        with self._session() as s:
            r = s.scalars(select(Recipient).where(Recipient.handle == handle)).first()
            if r is None:
                raise UnknownRecipientError(f"unknown recipient {handle!r}")
            if s.scalars(select(Copy.id).where(Copy.recipient_id == r.id)).first() is not None:
                raise RecipientConflictError(
                    f"{handle!r} has received copies; their record is kept"
                )
            s.delete(r)

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
    ) -> Media:
        """Register an original (idempotent by content hash), keeping a copy of the file."""
        src = Path(path)
        found = self.media_by_sha256(sha256)
        if found is not None:
            return found
        stored = Path("originals") / sha256[:2] / f"{sha256}{src.suffix.lower()}"
        target = self.home / stored
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
            os.close(fd)
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        media = Media(
            sha256=sha256,
            name=src.name,
            stored=str(stored),
            size=src.stat().st_size,
            width=width,
            height=height,
            fingerprint=fingerprint,
            features=features,
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

    def media_by_id(self, media_id: int) -> Media:
        return self._get(Media, media_id, "media")

    def _get(self, model: type[_Row], row_id: int, what: str) -> _Row:
        with self._session() as s:
            found = s.get(model, row_id)
        if found is None:
            raise NotFoundError(f"no {what} with id {row_id}")
        return found

    def original_path(self, media: Media) -> Path:
        return self.home / media.stored

    def media_recipients(self, media: Media) -> list[str]:
        """Handles of everyone who received a copy of ``media``."""
        with self._session() as s:
            q = (
                select(Recipient.handle)
                .join(Copy, Copy.recipient_id == Recipient.id)
                .where(Copy.media_id == media.id)
                .order_by(Recipient.handle)
            )
            return list(s.scalars(q))

    # -- copies ------------------------------------------------------------------------------
    def copies(self, media: Media | None = None) -> list[CopyRecord]:
        with self._session() as s:
            q = (
                select(Media.sha256, Recipient.handle, Copy.path, Copy.sha256, Copy.created)
                .join(Media, Copy.media_id == Media.id)
                .join(Recipient, Copy.recipient_id == Recipient.id)
                .order_by(Copy.id)
            )
            if media is not None:
                q = q.where(Copy.media_id == media.id)
            return [CopyRecord(*row) for row in s.execute(q)]

    def record_copy(
        self,
        media: Media,
        handle: str,
        path: str | os.PathLike[str],
        sha256: str,
        *,
        strength: float = 1.0,
    ) -> None:
        """Record (or update the path and hash of) ``handle``'s copy of ``media``."""
        with self._session() as s:
            rid = s.scalars(select(Recipient.id).where(Recipient.handle == handle)).one()
            found = s.scalars(
                select(Copy).where(Copy.media_id == media.id, Copy.recipient_id == rid)
            ).first()
            if found is None:
                s.add(
                    Copy(
                        media_id=media.id,
                        recipient_id=rid,
                        path=os.fspath(path),
                        sha256=sha256,
                        strength=strength,
                    )
                )
            else:
                found.path, found.sha256, found.strength = os.fspath(path), sha256, strength

    # -- traces ------------------------------------------------------------------------------
    def record_trace(self, *, sha256: str, name: str, result: dict, media: Media | None) -> int:
        """Record a trace; returns its id."""
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
        row = Token(name=name.strip()[:128], digest=_token_digest(token), hint=token[:7])
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
            found = list(s.scalars(live.where(Token.name == which)))
            if which.isdigit():
                found += list(s.scalars(live.where(Token.id == int(which))))
            if not found:
                raise NotFoundError(f"no working token with id or name {which!r}")
            if len({t.id for t in found}) > 1:
                raise ConflictError(f"several tokens are named {which!r}; revoke one by its id")
            found[0].revoked = _now()
            return found[0]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
