"""Uploaded files: kept under the name they were sent with, made safe to store.

A name keeps every letter of every script (``Été à Nice 東京.png`` stays that): only what
could make it a path or hide what it says is removed — path separators (what comes before the
last one), control characters, line separators and bidirectional overrides, and leading dots
and spaces. It is cut to 180 bytes of UTF-8 (keeping its suffix), so that the copies named
after it, ``<stem>~<8 hex digits><ext>`` and their temporary names included, fit in a file
name.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import UploadFile

from ..errors import LeaktraceError, MediaError, UnsupportedMediaError
from ..media import FORMATS, image_format

__all__ = ["NAME_BYTES", "as_uploaded", "clean_name", "named_for_its_format", "saved"]

NAME_BYTES = 180
_SEPARATORS = re.compile(r"[/\\]")
# Bidirectional embeddings, overrides and isolates can make a name display as another.
_BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_DROPPED = {"Cc", "Cs", "Zl", "Zp"}
_LEADING = re.compile(r"^[\s.]+")


def clean_name(raw: str | None, *, default: str = "upload") -> str:
    """An uploaded file's name, safe to use as a file name (see the module's docstring)."""
    name = _SEPARATORS.split(unicodedata.normalize("NFC", raw or ""))[-1]
    name = "".join(
        ch for ch in name if unicodedata.category(ch) not in _DROPPED and ord(ch) not in _BIDI
    )
    name = _LEADING.sub("", name).rstrip()
    if len(name.encode("utf-8")) > NAME_BYTES:
        stem, suffix = os.path.splitext(name)
        if len(suffix.encode("utf-8")) > 16:
            stem, suffix = name, ""
        room = NAME_BYTES - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip()
        name = stem + suffix
    return name or default


@contextmanager
def saved(upload: UploadFile) -> Iterator[Path]:
    """The upload as a file with its clean name, in a private temporary folder; errors raised
    inside name the file as uploaded, not where it was kept."""
    name = clean_name(upload.filename)
    with tempfile.TemporaryDirectory(prefix="leaktrace-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as fh:
            shutil.copyfileobj(upload.file, fh, 1 << 20)
        if path.stat().st_size == 0:
            raise MediaError(f"{name} is empty")
        try:
            yield path
        except LeaktraceError as exc:
            raise type(exc)(as_uploaded(str(exc), path)) from exc


def as_uploaded(message: str, path: Path) -> str:
    """A message about a :func:`saved` upload, naming it as uploaded, not where it was kept."""
    return message.replace(f"{path.parent}{os.sep}", "")


def named_for_its_format(path: Path) -> Path:
    """Give an image the suffix of its real format, so copies are written and named right."""
    fmt = image_format(path)
    suffixes = FORMATS.get(fmt)
    if suffixes is None:
        raise UnsupportedMediaError(
            f"{path.name}: {fmt} pictures can be traced but not marked "
            f"(upload {', '.join(FORMATS)})"
        )
    if path.suffix.lower() in suffixes:
        return path
    return path.rename(path.with_name(path.name + suffixes[0]))
