"""Recipients: who copies are made for (mixed into the :class:`~.workspace.Workspace`)."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ..errors import RecipientConflictError, RecipientError, UnknownRecipientError
from .models import Copy, Recipient
from .people import read_people

__all__ = ["EMAIL_MAX", "HANDLE_MAX", "NAME_MAX", "Imported", "Recipients"]

HANDLE_MAX = 64
NAME_MAX = 200
EMAIL_MAX = 254
_HANDLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Bidirectional overrides and isolates can make a name display as another.
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def _text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise RecipientError(f"{what} is longer than {limit} characters")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ord(ch) in _BIDI:
            raise RecipientError(f"{what} contains a control character ({ord(ch):#06x})")
    return value


@dataclass(frozen=True)
class Imported:
    """What an import did: the recipients added, and the handles of those already there."""

    added: list[Recipient]
    skipped: list[str]


class Recipients:
    """Registering, importing, listing and removing recipients."""

    _session: Any  # Workspace._session: one transaction

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
