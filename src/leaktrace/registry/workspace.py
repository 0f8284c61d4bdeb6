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

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import unicodedata
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    cast,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..codes import code_name
from ..errors import (
    ConflictError,
    KeyFileError,
    NotFoundError,
    RecipientConflictError,
    RecipientError,
    UnknownRecipientError,
    WorkspaceError,
)
from ..keys import Key
from .codebook import Codebook
from .index import MediaIndex
from .keyframes import KeyframeIndex
from .models import Base, Copy, Job, Media, Meta, Recipient, ScanFile, Token, Trace
from .people import read_people
from .scans import ScansAndCases

__all__ = [
    "Batch",
    "Claim",
    "CopyRecord",
    "Imported",
    "Workspace",
    "default_home",
    "file_sha256",
    "part_path",
]

SCHEMA_VERSION = 2
#: The newest migration in ``migrations/versions`` (a test keeps the two in step).
HEAD_REVISION = "0005"
HANDLE_MAX = 64
NAME_MAX = 200
EMAIL_MAX = 254
_HANDLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Bidirectional overrides and isolates can make a name display as another.
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))
_ID_MAX = 2**63 - 1
_Row = TypeVar("_Row", bound=Base)


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


def part_path(final: str | os.PathLike[str], batch: str) -> Path:
    """The temporary name a batch writes a copy under before moving it to ``final``."""
    target = Path(final)
    return target.with_name(f".{target.name}.{batch}.part")


def _text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise RecipientError(f"{what} is longer than {limit} characters")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ord(ch) in _BIDI:
            raise RecipientError(f"{what} contains a control character ({ord(ch):#06x})")
    return value


@dataclass(frozen=True)
class CopyRecord:
    """What the registry knows of a copy, detached from any session."""

    media_sha256: str
    handle: str
    path: str
    sha256: str
    created: datetime
    media_name: str = ""
    media_id: int = 0


@dataclass(frozen=True)
class Imported:
    """What an import did: the recipients added, and the handles of those already there."""

    added: list[Recipient]
    skipped: list[str]


@dataclass(frozen=True)
class Batch:
    """A run of copies in progress: its id and the lock its processes hold."""

    id: str
    lock: Path
    job_id: str | None = None


@dataclass(frozen=True)
class Claim:
    """The answer of :meth:`Workspace.claim_copy`: the copy is there (``done``), someone else
    is making it (``busy``: their batch), or this process is to make it (``batch`` and
    ``copy_id``, its pending record)."""

    done: CopyRecord | None = None
    busy: str | None = None
    batch: Batch | None = None
    copy_id: int | None = None


def _planned_video() -> ColumnElement[bool]:
    # A video registered before its variants holds a JSON null (not SQL NULL) as its plan.
    return (Media.kind == "video") & Media.plan.is_not(None) & (cast(Media.plan, String) != "null")


class Workspace(ScansAndCases):
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

    # -- recipients --------------------------------------------------------------------------
    @staticmethod
    def _checked(handle: str, name: str, email: str) -> Recipient:
        if not isinstance(handle, str) or not _HANDLE.fullmatch(handle):
            raise RecipientError(
                f"bad handle {handle!r}: use 1–{HANDLE_MAX} letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        name = _text(name, f"the name of {handle}", NAME_MAX)
        email = _text(email, f"the email of {handle}", EMAIL_MAX)
        if email and not _EMAIL.fullmatch(email):
            raise RecipientError(f"bad email {email!r} for {handle}")
        return Recipient(handle=handle, name=name, email=email)

    def add_recipient(self, handle: str, *, name: str = "", email: str = "") -> Recipient:
        """Register one recipient; a handle already taken (ignoring case) is refused."""
        return self.add_recipients([(handle, name, email)])[0]

    def add_recipients(self, rows: Iterable[tuple[str, str, str]]) -> list[Recipient]:
        """Register recipients all at once, or none of them."""
        new = [self._checked(*row) for row in rows]
        seen: dict[str, str] = {}
        for r in new:
            if r.handle.lower() in seen:
                raise RecipientConflictError(
                    f"handle {r.handle!r} appears twice (as {seen[r.handle.lower()]!r})"
                )
            seen[r.handle.lower()] = r.handle
        try:
            with self._session() as s:
                taken = s.scalars(
                    select(Recipient.handle).where(func.lower(Recipient.handle).in_(seen))
                )
                clash = sorted(taken)
                if clash:
                    raise RecipientConflictError(f"recipient {clash[0]!r} already exists")
                s.add_all(new)
        except IntegrityError as exc:
            raise RecipientConflictError(f"a recipient already exists: {exc.orig}") from exc
        return new

    def import_recipients(
        self, path: str | os.PathLike[str], *, skip_existing: bool = False
    ) -> Imported:
        """Import the people of a CSV file (:mod:`.people`: ``handle,name,email``, or an
        export such as Patreon's, handles derived): all new rows, or none.

        A row is already registered when its handle is (ignoring case) or, for a derived
        handle, when its email is (or, without an email, the same name under that handle):
        an error, or skipped with ``skip_existing``. A derived handle someone else holds gets
        the next free ``-<n>``.
        """
        existing = self.recipients()
        by_handle = {r.handle.lower(): r for r in existing}
        by_email = {r.email.lower(): r for r in existing if r.email}
        new: list[Recipient] = []
        skipped: list[str] = []
        for p in read_people(path):
            if not p.derived:
                same = by_handle.get(p.handle.lower())
            elif p.email:
                same = by_email.get(p.email.lower())
            else:
                same = by_handle.get(p.handle.lower())
                same = same if same is not None and same.name == p.name else None
            if same is not None:
                if not skip_existing:
                    raise RecipientConflictError(
                        f"{path}, line {p.line}: {p.email if p.derived and p.email else p.handle}"
                        f" is already registered (as {same.handle}); skip the rows already "
                        "registered with --skip-existing"
                    )
                skipped.append(same.handle)
                continue
            handle, n = p.handle, 1
            while p.derived and handle.lower() in by_handle:
                n += 1
                handle = f"{p.handle}-{n}"
            try:
                row = self._checked(handle, p.name, p.email)
            except RecipientError as exc:
                raise RecipientError(f"{path}, line {p.line}: {exc}") from exc
            by_handle[handle.lower()] = row
            if row.email:
                by_email[row.email.lower()] = row
            new.append(row)
        added = self.add_recipients([(r.handle, r.name, r.email) for r in new]) if new else []
        return Imported(added, skipped)

    def recipients(self, handles: Sequence[str] | None = None) -> list[Recipient]:
        """All recipients (by handle), or exactly those named — matched ignoring case; an
        unknown handle is an error."""
        with self._session() as s:
            query = select(Recipient).order_by(Recipient.handle)
            if handles is None:
                return list(s.scalars(query))
            # A NUL is in no handle (and PostgreSQL refuses it in a query).
            wanted = {h.lower() for h in handles if isinstance(h, str) and "\x00" not in h}
            rows = list(s.scalars(query.where(func.lower(Recipient.handle).in_(wanted))))
        exact = {r.handle: r for r in rows}
        folded: dict[str, list[Recipient]] = {}
        for r in rows:
            folded.setdefault(r.handle.lower(), []).append(r)
        found: dict[int, Recipient] = {}
        for h in handles:
            # An older workspace may hold two handles that differ only in case: then only the
            # exact one matches.
            same = folded.get(h.lower(), [])
            match = exact.get(h) or (same[0] if len(same) == 1 else None)
            if match is None:
                raise UnknownRecipientError(f"unknown recipient {h!r}")
            found.setdefault(match.id, match)
        return list(found.values())

    def copy_counts(self) -> dict[str, int]:
        """How many media items each recipient has received, by handle (absent: none)."""
        with self._session() as s:
            q = (
                select(Recipient.handle, func.count(func.distinct(Copy.media_id)))
                .join(Copy, Copy.recipient_id == Recipient.id)
                .where(Copy.state == "done")
                .group_by(Recipient.handle)
            )
            return {h: int(n) for h, n in s.execute(q)}

    def remove_recipient(self, handle: str) -> None:
        """Delete a recipient who has received no copies (copies keep their evidence)."""
        (r,) = self.recipients([handle])
        with self._session() as s:
            if s.scalars(select(Copy.id).where(Copy.recipient_id == r.id)).first() is not None:
                raise RecipientConflictError(
                    f"{r.handle!r} has received copies; their record is kept"
                )
            s.execute(delete(Recipient).where(Recipient.id == r.id))

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

    # -- copies ------------------------------------------------------------------------------
    def copies(
        self,
        media: Media | Sequence[Media] | None = None,
        *,
        job_id: str | None = None,
        to: str | None = None,
    ) -> list[CopyRecord]:
        """Every copy made (oldest first), of one or several media items, of one job, or sent
        to one recipient (``to``: a handle, matched as :meth:`recipients` does)."""
        recipient = None if to is None else self.recipients([to])[0]
        q = _done_copies().order_by(Copy.id)
        if isinstance(media, Media):
            q = q.where(Copy.media_id == media.id)
        elif media is not None:
            q = q.where(Copy.media_id.in_([m.id for m in media]))
        if job_id is not None:
            q = q.where(Copy.job_id == job_id)
        if recipient is not None:
            q = q.where(Copy.recipient_id == recipient.id)
        with self._session() as s:
            return [CopyRecord(*row) for row in s.execute(q)]

    def copy_by_sha256(self, sha256: str) -> CopyRecord | None:
        """The copy whose file has this hash, if one was made."""
        with self._session() as s:
            row = s.execute(_done_copies().where(Copy.sha256 == sha256).limit(1)).first()
        return None if row is None else CopyRecord(*row)

    def begin_batch(
        self,
        planned: Sequence[tuple[Media, str, Path]],
        *,
        strength: float,
        job_id: str | None = None,
    ) -> tuple[Batch, list[int]]:
        """Record ``planned`` (media, handle, final path) copies as pending under a new batch,
        whose lock this process holds until :meth:`end_batch`; returns it with the records' ids.
        """
        name = secrets.token_hex(8)
        batch = Batch(name, self.private_dir("locks") / f"{name}.lock", job_id)
        fd = os.open(batch.lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._locks[batch.id] = fd
        try:
            with self._session() as s:
                ids = {row[0]: row[1] for row in s.execute(select(Recipient.handle, Recipient.id))}
                rows = [
                    Copy(
                        media_id=m.id,
                        recipient_id=ids[h],
                        path=os.fspath(path),
                        strength=strength,
                        state="pending",
                        batch=batch.id,
                        job_id=job_id,
                    )
                    for m, h, path in planned
                ]
                s.add_all(rows)
                s.flush()
                return batch, [r.id for r in rows]
        except BaseException:
            self._release(batch)
            raise

    def claim_copy(self, media: Media, handle: str, path: Path, *, strength: float) -> Claim:
        """Claim the making of ``handle``'s copy of ``media`` at ``path``, for any number of
        processes (and machines sharing the registry) asking at once: in one transaction —
        which the registry serialises (SQLite's write lock, PostgreSQL's advisory lock) — the
        newest done copy there whose file is in place is returned, else a pending one's batch
        (someone is making it), else a pending record is written under a new batch whose lock
        this process holds until :meth:`end_batch`. Exactly one asker gets the claim."""
        (recipient,) = self.recipients([handle])
        name = secrets.token_hex(8)
        batch = Batch(name, self.private_dir("locks") / f"{name}.lock")
        fd = os.open(batch.lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._locks[batch.id] = fd
        claim = Claim()
        try:
            with self._session() as s:
                rows = s.execute(
                    select(Copy.id, Copy.state, Copy.batch, Copy.sha256, Copy.created)
                    .where(
                        Copy.media_id == media.id,
                        Copy.recipient_id == recipient.id,
                        Copy.path == os.fspath(path),
                    )
                    .order_by(Copy.id.desc())
                ).all()
                done = [r for r in rows if r.state == "done"]
                pending = [r for r in rows if r.state == "pending"]
                if done and os.path.isfile(path):
                    record = CopyRecord(
                        media.sha256,
                        recipient.handle,
                        os.fspath(path),
                        done[0].sha256,
                        done[0].created,
                        media.name,
                        media.id,
                    )
                    claim = Claim(done=record)
                elif pending:
                    claim = Claim(busy=pending[0].batch or "")
                else:
                    row = Copy(
                        media_id=media.id,
                        recipient_id=recipient.id,
                        path=os.fspath(path),
                        strength=strength,
                        state="pending",
                        batch=batch.id,
                    )
                    s.add(row)
                    s.flush()
                    claim = Claim(batch=batch, copy_id=row.id)
        finally:
            if claim.batch is None:
                self._release(batch)
                batch.lock.unlink(missing_ok=True)
        return claim

    def copy_record(self, copy_id: int) -> CopyRecord:
        """The done copy with this record id."""
        with self._session() as s:
            row = s.execute(_done_copies().where(Copy.id == copy_id)).first()
        if row is None:
            raise NotFoundError(f"no copy made with record id {copy_id}")
        return CopyRecord(*row)

    def finish_copies(self, done: Sequence[tuple[int, str]]) -> None:
        """Mark pending copies done, each with its file's hash: ``(record id, sha256)``."""
        if not done:
            return
        with self._session() as s:
            for copy_id, sha in done:
                s.execute(
                    update(Copy)
                    .where(Copy.id == copy_id, Copy.state == "pending")
                    .values(state="done", sha256=sha, created=_now())
                )

    def forget_copies(self, ids: Sequence[int]) -> None:
        """Drop pending records whose copy was not made."""
        if ids:
            with self._session() as s:
                s.execute(delete(Copy).where(Copy.id.in_(ids), Copy.state == "pending"))

    def end_batch(self, batch: Batch, *, shared: bool = False) -> int:
        """Settle what the batch left pending and release its lock; returns how many of its
        copies turned out to be in place (and are now recorded done).

        ``shared``: processes this one did not start hold the lock while they write (a
        cluster's tasks, which may outlive their futures); the batch is settled only if none
        does any more, else left to :meth:`recover` on a later open."""
        if shared:
            self._release(batch)
            try:
                fd = os.open(batch.lock, os.O_RDWR)
            except FileNotFoundError:  # settled meanwhile by another process's recover()
                return 0
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a task still writes
                os.close(fd)
                return 0
            try:
                return self._settle(batch.id)
            finally:
                batch.lock.unlink(missing_ok=True)
                os.close(fd)
        try:
            return self._settle(batch.id)
        finally:
            self._release(batch)
            batch.lock.unlink(missing_ok=True)

    def _release(self, batch: Batch) -> None:
        fd = self._locks.pop(batch.id, None)
        if fd is not None:
            os.close(fd)

    def recover(self) -> int:
        """Settle the pending copies of batches whose processes are all gone; returns how many
        copies were found in place and recorded done."""
        with self._session() as s:
            batches = set(s.scalars(select(Copy.batch).where(Copy.state == "pending")))
        found = 0
        for batch in sorted(b for b in batches if b and b not in self._locks):
            lock = self.home / "locks" / f"{batch}.lock"
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # some process of that batch is still running
                os.close(fd)
                continue
            try:
                found += self._settle(batch)
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return found

    def _settle(self, batch: str) -> int:
        with self._session() as s:
            pending = list(
                s.execute(
                    select(Copy.id, Copy.path).where(Copy.batch == batch, Copy.state == "pending")
                )
            )
        done, gone = [], []
        for copy_id, path in pending:
            # A batch's process writes the temporary file, links it to the final name (which
            # fails if anything is there) and removes the temporary name.
            part = part_path(path, batch)
            if os.path.isfile(path) and (not part.exists() or os.path.samefile(path, part)):
                done.append((copy_id, file_sha256(path)))
            else:  # never moved into place (a file there now is not this batch's)
                gone.append(copy_id)
            part.unlink(missing_ok=True)
        self.finish_copies(done)
        self.forget_copies(gone)
        return len(done)

    # -- download links ----------------------------------------------------------------------
    def links_epoch(self) -> int:
        """The current epoch of download links: links signed in an earlier one are revoked."""
        with self._session() as s:
            row = s.get(Meta, "links_epoch")
        return 0 if row is None else int(row.value)

    def revoke_links(self) -> int:
        """Revoke every download link made so far (the epoch moves on); returns the new epoch."""
        with self._session() as s:
            row = s.get(Meta, "links_epoch")
            if row is None:
                row = Meta(name="links_epoch", value="0")
                s.add(row)
            row.value = str(int(row.value) + 1)
            return int(row.value)

    # -- jobs --------------------------------------------------------------------------------
    def add_job(self, media: Media, handles: Sequence[str], strength: float) -> Job:
        """Accept a service job for exactly these recipients."""
        job = Job(
            id=secrets.token_hex(8),
            media_id=media.id,
            handles=list(handles),
            strength=strength,
            status="queued",
            done=0,
            total=len(handles),
            errors=[],
            warnings=[],
        )
        with self._session() as s:
            s.add(job)
        return job

    def job(self, job_id: str) -> Job:
        found = None
        if "\x00" not in job_id:  # in no id (and PostgreSQL refuses it in a query)
            with self._session() as s:
                found = s.get(Job, job_id)
        if found is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        return found

    def jobs(self, *, status: Sequence[str] | None = None) -> list[Job]:
        with self._session() as s:
            q = select(Job).order_by(Job.created)
            if status is not None:
                q = q.where(Job.status.in_(status))
            return list(s.scalars(q))

    def update_job(self, job_id: str, **values: Any) -> Job:
        """Change a job's fields (status, done, errors, ...); returns it as stored."""
        if values.get("status") in ("done", "failed", "cancelled"):
            values.setdefault("finished", _now())
        with self._session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"no job with id {job_id!r}")
            for name, value in values.items():
                setattr(job, name, value)
        return job

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


def _done_copies() -> Select[str, str, str, str, datetime, str, int]:
    """The copies whose files are in place, as :class:`CopyRecord` fields."""
    return (
        select(
            Media.sha256,
            Recipient.handle,
            Copy.path,
            Copy.sha256,
            Copy.created,
            Media.name,
            Media.id,
        )
        .join(Media, Copy.media_id == Media.id)
        .join(Recipient, Copy.recipient_id == Recipient.id)
        .where(Copy.state == "done")
    )


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
