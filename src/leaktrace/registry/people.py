"""Lists of people as CSV files: the registry's own (``handle,name,email``) and exports of
other tools (a Patreon members export: ``Name``, ``Email``, ``Tier``, ...).

Columns are found by their header, ignoring case and spaces: the handle in ``handle``, the
name in ``name`` (or ``full name``), the email in ``email`` (or ``e-mail``, ``email address``);
other columns (``Tier``, ``Pledge Amount``, ...) are read past. Without a handle column each
row's handle is derived from its name, else from its email's local part, else ``patron``
(:func:`slug`), and made unique in file order: the second ``Ann Lee`` is ``ann-lee-2``. The
registry judges who is already registered (:meth:`Workspace.import_recipients`).
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass

from ..errors import RecipientError

__all__ = ["Person", "read_people", "slug"]

_COLUMNS = {
    "handle": "handle",
    "name": "name",
    "fullname": "name",
    "email": "email",
    "e-mail": "email",
    "emailaddress": "email",
}
_SLUG_MAX = 40  # leaves room for "-<n>" within a handle's 64 characters


@dataclass(frozen=True)
class Person:
    """One row: its line in the file, and whether its handle was derived (not given)."""

    line: int
    handle: str
    name: str
    email: str
    derived: bool


def slug(name: str, email: str) -> str:
    """A handle from a name (``Chloé Martin`` → ``chloe-martin``), else from the email's local
    part (``c.martin+x@host`` → ``c.martin-x``), else ``patron``: accents dropped, lower case,
    runs of other characters turned into one ``-``, at most 40 characters."""
    for text in (name, email.split("@")[0]):
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        found = re.sub(r"[^a-z0-9.]+", "-", ascii_text.lower()).strip("-._")[:_SLUG_MAX]
        found = found.rstrip("-._")
        if found:
            return found
    return "patron"


def read_people(path: str | os.PathLike[str]) -> list[Person]:
    """Every row of the CSV at ``path``, handles derived where the file has none (unique in
    the file; the registry makes them unique among its recipients)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            headers = reader.fieldnames or []
            keys = [re.sub(r"[\s_]+", "", h.strip().lower()) for h in headers]
            reader.fieldnames = [_COLUMNS.get(k, f"other:{k}") for k in keys]
            given = "handle" in reader.fieldnames
            if not given and not {"name", "email"} & set(reader.fieldnames):
                raise RecipientError(
                    f"{path}: the header row names no 'handle', 'name' or 'email' column"
                )
            people, taken = [], set()
            for row in reader:
                if None in row:
                    raise RecipientError(
                        f"{path}, line {reader.line_num}: more fields than the header"
                    )
                name, email = (row.get("name") or "").strip(), (row.get("email") or "").strip()
                handle = (row.get("handle") or "").strip()
                if not given:
                    base = handle = slug(name, email)
                    n = 1
                    while handle.lower() in taken:
                        n += 1
                        handle = f"{base}-{n}"
                taken.add(handle.lower())
                people.append(Person(reader.line_num, handle, name, email, not given))
    except OSError as exc:
        raise RecipientError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RecipientError(
            f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}): save it as “CSV UTF-8” (Excel: Save As, CSV UTF-8) and import again"
        ) from exc
    except csv.Error as exc:
        raise RecipientError(f"{path} is not a readable CSV file: {exc}") from exc
    if not people:
        raise RecipientError(f"{path} has no recipient rows")
    return people
