"""The workspace's records of scans, cases, exported bundles and the creator's settings.

A part of :class:`~leaktrace.registry.Workspace` (which inherits it): every method is one
transaction. A file a scan traced is recorded with its trace by
:meth:`Workspace.record_trace` (``scanned=``), in the same transaction.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..errors import NotFoundError, WorkspaceError
from .models import Case, CaseExport, Copy, Media, Meta, Recipient, Scan, ScanFile, Trace

__all__ = ["SETTINGS", "ScansAndCases"]

#: The settings a workspace keeps (for the takedown notice), with what each is.
SETTINGS = {
    "creator.name": "your name (or your company's), as the notice is signed",
    "creator.email": "the email address a platform should answer",
    "creator.address": "a postal address (some platforms require one)",
    "creator.website": "where your work is published",
}
_SETTING_MAX = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _now() -> datetime:
    return datetime.now(UTC)


class ScansAndCases:
    """Scans, their files, cases, exports and settings (mixed into the Workspace)."""

    _session: Any  # Workspace._session: one transaction

    def _tx(self) -> AbstractContextManager[Session]:
        session: AbstractContextManager[Session] = self._session()
        return session

    # -- scans -------------------------------------------------------------------------------
    def begin_scan(self, folder: str, total: int = 0, *, status: str = "running") -> Scan:
        """Record a new scan run."""
        scan = Scan(
            id=secrets.token_hex(8),
            folder=folder,
            status=status,
            done=0,
            total=total,
            errors=[],
        )
        with self._tx() as s:
            s.add(scan)
        return scan

    def update_scan(self, scan_id: str, **values: Any) -> Scan:
        """Change a scan's fields (status, done, total, errors); returns it as stored."""
        if values.get("status") in ("done", "failed", "stopped"):
            values.setdefault("finished", _now())
        with self._tx() as s:
            scan = s.get(Scan, scan_id)
            if scan is None:
                raise NotFoundError(f"no scan with id {scan_id!r}")
            for name, value in values.items():
                setattr(scan, name, value)
        return scan

    def scan_run(self, scan_id: str) -> Scan:
        with self._tx() as s:
            found = s.get(Scan, scan_id)
        if found is None:
            raise NotFoundError(f"no scan with id {scan_id!r}")
        return found

    def scan_runs(self, *, status: Sequence[str] | None = None) -> list[Scan]:
        with self._tx() as s:
            q = select(Scan).order_by(Scan.created)
            if status is not None:
                q = q.where(Scan.status.in_(status))
            return list(s.scalars(q))

    def scanned(self, *, scan_id: str | None = None, case_id: int | None = None) -> list[ScanFile]:
        """The files scans met, oldest first (of one scan, or of one case)."""
        with self._tx() as s:
            q = select(ScanFile).order_by(ScanFile.id)
            if scan_id is not None:
                q = q.where(ScanFile.scan_id == scan_id)
            if case_id is not None:
                q = q.where(ScanFile.case_id == case_id)
            return list(s.scalars(q))

    def scanned_by_sha256(self, sha256s: Sequence[str]) -> dict[str, ScanFile]:
        """The first record of each of these contents that a scan judged, by hash."""
        out: dict[str, ScanFile] = {}
        with self._tx() as s:
            for i in range(0, len(sha256s), 500):
                q = (
                    select(ScanFile)
                    .where(ScanFile.sha256.in_(sha256s[i : i + 500]))
                    .order_by(ScanFile.id)
                )
                for row in s.scalars(q):
                    out.setdefault(row.sha256, row)
        return out

    def add_scanned(self, **fields: Any) -> ScanFile:
        """Record a file a scan met without tracing it (unreadable, or a content judged
        already: then with that record's verdict and trace)."""
        row = ScanFile(**fields)
        with self._tx() as s:
            s.add(row)
            s.flush()
        return row

    # -- cases -------------------------------------------------------------------------------
    def save_cases(self, groups: Mapping[str, tuple[list[str], float, list[int]]]) -> None:
        """Write the cases (key → handles, combined log10 p, their scan files' ids) in one
        transaction: a case keeps its id for good; a file no case holds is left without."""
        with self._tx() as s:
            known = {c.key: c for c in s.scalars(select(Case))}
            s.execute(update(ScanFile).values(case_id=None))
            for key, (handles, log10_p, ids) in groups.items():
                case = known.get(key)
                if case is None:
                    case = Case(key=key, handles=handles, log10_p=log10_p)
                    s.add(case)
                    s.flush()
                elif case.log10_p != log10_p:
                    case.log10_p, case.updated = log10_p, _now()
                s.execute(update(ScanFile).where(ScanFile.id.in_(ids)).values(case_id=case.id))

    def cases(self) -> list[Case]:
        """Every case that holds files, oldest first."""
        with self._tx() as s:
            held = select(ScanFile.case_id).where(ScanFile.case_id.is_not(None))
            return list(s.scalars(select(Case).where(Case.id.in_(held)).order_by(Case.id)))

    def case(self, case_id: int) -> Case:
        found = None
        if 0 < case_id < 2**63:
            with self._tx() as s:
                found = s.get(Case, case_id)
                held = s.scalars(select(ScanFile.id).where(ScanFile.case_id == case_id)).first()
            if held is None:
                found = None
        if found is None:
            raise NotFoundError(f"no case with id {case_id}")
        return found

    def traces_by_id(self, ids: Sequence[int]) -> dict[int, Trace]:
        with self._tx() as s:
            return {t.id: t for t in s.scalars(select(Trace).where(Trace.id.in_(ids)))}

    def copy_proof(self, media_ids: Sequence[int], handles: Sequence[str]) -> list[dict[str, Any]]:
        """The registry's record of every copy of these media sent to these people: id, who,
        of what, when, the copy's hash (oldest first)."""
        with self._tx() as s:
            q = (
                select(Copy, Recipient.handle, Media.name, Media.sha256)
                .join(Recipient, Copy.recipient_id == Recipient.id)
                .join(Media, Copy.media_id == Media.id)
                .where(
                    Copy.media_id.in_(media_ids),
                    Recipient.handle.in_(handles),
                    Copy.state == "done",
                )
                .order_by(Copy.id)
            )
            return [
                {
                    "copy_id": c.id,
                    "handle": handle,
                    "media_id": c.media_id,
                    "media": name,
                    "media_sha256": media_sha,
                    "sent": _utc(c.created).isoformat(timespec="seconds"),
                    "sha256": c.sha256,
                    "strength": c.strength,
                    "format_version": c.format_version,
                }
                for c, handle, name, media_sha in s.execute(q)
            ]

    def record_export(self, case_id: int, manifest_sha256: str) -> CaseExport:
        row = CaseExport(case_id=case_id, manifest_sha256=manifest_sha256)
        with self._tx() as s:
            s.add(row)
            s.flush()
        return row

    def export_by_manifest(self, manifest_sha256: str) -> CaseExport | None:
        with self._tx() as s:
            q = select(CaseExport).where(CaseExport.manifest_sha256 == manifest_sha256)
            return s.scalars(q).first()

    # -- settings ----------------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        """The creator's settings (every known one; unset ones empty)."""
        with self._tx() as s:
            rows = {
                m.name.removeprefix("setting:"): m.value
                for m in s.scalars(select(Meta).where(Meta.name.like("setting:%")))
            }
        return {k: rows.get(k, "") for k in SETTINGS}

    def set_setting(self, name: str, value: str) -> None:
        """Set (or, with an empty value, clear) one of :data:`SETTINGS`."""
        if name not in SETTINGS:
            raise WorkspaceError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
        value = value.strip()
        if len(value) > _SETTING_MAX:
            raise WorkspaceError(f"{name} is longer than {_SETTING_MAX} characters")
        if _CONTROL.search(value):
            raise WorkspaceError(f"{name} contains a control character")
        with self._tx() as s:
            s.execute(delete(Meta).where(Meta.name == f"setting:{name}"))
            if value:
                s.add(Meta(name=f"setting:{name}", value=value))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
