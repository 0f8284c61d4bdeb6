"""Copies: their records, the batches that make them, download links and the service's
jobs (mixed into the :class:`~.workspace.Workspace`; the module docstring there tells how a
copy is recorded before it exists)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, delete, select, update

from ..errors import NotFoundError
from .models import Copy, Job, Media, Meta, Recipient
from .recipients import Recipients

__all__ = ["Batch", "Claim", "CopyRecord", "Copies", "file_sha256", "part_path"]


def _now() -> datetime:
    return datetime.now(UTC)


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


class Copies(Recipients):
    """Copies made, batches in progress, download links and jobs."""

    home: Path
    _locks: dict[str, int]  # batch id -> the lock file this process holds
    private_dir: Callable[..., Path]  # Workspace.private_dir

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
