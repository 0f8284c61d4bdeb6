"""The registry's tables (SQLAlchemy 2). Their history lives in ``migrations/versions``.

::

    meta        schema and key fingerprint (never the key)
    recipients  handle (unique ignoring case), name, email
    media       registered originals, content-addressed (a video's keeps its variants' plan)
    copies      every copy file made: who, of what, where, its hash; ``pending`` while a batch
                is writing it, ``done`` once its file is in place (history: never rewritten)
    jobs        the service's batches: recipients fixed when accepted, status, progress
    traces      every trace and its result
    tokens      API tokens (a SHA-256 digest of each, never the token)
    scans       runs of ``scan`` over a folder of suspected leaks: status and progress
    scan_files  every file a scan met: where, its hash, what it is (a match and its trace, no
                confident match, unrelated, unreadable — with the one-line reason) and its case
    cases       one per leaker (or group of leakers together) the scans' matches name
    case_exports  every evidence bundle exported: the SHA-256 of its manifest
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..codes import FORMAT_VERSION

__all__ = [
    "Base",
    "Case",
    "CaseExport",
    "Copy",
    "Job",
    "Media",
    "Meta",
    "Recipient",
    "Scan",
    "ScanFile",
    "Token",
    "Trace",
]


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "meta"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Recipient(Base):
    """Someone who receives copies."""

    __tablename__ = "recipients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str] = mapped_column(String(256), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


# Handles are unique ignoring case (created by migration 0002 unless an older workspace
# already holds two handles that differ only in case; the registry checks on every insert).
HANDLE_KEY = Index("ix_recipients_handle_lower", func.lower(Recipient.handle), unique=True)


class Media(Base):
    """A registered original (content-addressed)."""

    __tablename__ = "media"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="image")
    name: Mapped[str] = mapped_column(String(512))
    stored: Mapped[str] = mapped_column(String(512))
    # 64 bits: SQLite's INTEGER is already (migration 0004 widens PostgreSQL's).
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    features: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    plan: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    @property
    def mark_id(self) -> str:
        """The ``media_id`` the engine marks this original's copies with."""
        return f"sha256:{self.sha256}"


class Copy(Base):
    """One copy file made for one recipient of one media item.

    A batch records its copies as ``pending`` (with their final path) before any is written,
    and marks each ``done`` with its hash once the file is in place; a batch that dies is
    settled by :meth:`Workspace.recover`. A record is never rewritten: making a copy again
    elsewhere adds a record.
    """

    __tablename__ = "copies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"), index=True)
    path: Mapped[str] = mapped_column(String(1024), index=True)
    sha256: Mapped[str] = mapped_column(String(64), default="", index=True)
    strength: Mapped[float] = mapped_column(Float, default=1.0)
    format_version: Mapped[int] = mapped_column(Integer, default=FORMAT_VERSION)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    state: Mapped[str] = mapped_column(String(8), default="done", server_default="done")
    batch: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), nullable=True, index=True)


class Job(Base):
    """A batch of copies accepted by the service; its recipients are fixed when accepted."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"))
    handles: Mapped[list[str]] = mapped_column(JSON)
    strength: Mapped[float] = mapped_column(Float, default=1.0)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Trace(Base):
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


class Token(Base):
    """An API token of the service; the token itself is shown once and never stored."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Scan(Base):
    """One run of ``scan`` over a folder (or of the service's scan job over uploads)."""

    __tablename__ = "scans"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    folder: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="running")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Case(Base):
    """The leaks that name one leaker (``handles``: one, or several who combined copies)."""

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), unique=True)  # handles, sorted, '+'-joined
    handles: Mapped[list[str]] = mapped_column(JSON)
    log10_p: Mapped[float | None] = mapped_column(Float, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ScanFile(Base):
    """One file a scan met, recorded (with its trace, in the same transaction) as it was
    judged. ``status``: ``match`` (its trace names someone; ``case_id`` set), ``no_match``
    (one of our media, nobody named), ``original`` (an unmarked original), ``unrelated`` (not
    one of our media) or ``unreadable`` (``reason`` says why)."""

    __tablename__ = "scan_files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id"), index=True)
    path: Mapped[str] = mapped_column(String(2048))
    name: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(1024), default="")
    trace_id: Mapped[int | None] = mapped_column(ForeignKey("traces.id"), nullable=True)
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id"), nullable=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), nullable=True, index=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class CaseExport(Base):
    """An evidence bundle exported from a case: its manifest's SHA-256, so that a bundle
    whose files and manifest were both changed is still told from the one exported."""

    __tablename__ = "case_exports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    manifest_sha256: Mapped[str] = mapped_column(String(64), index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
