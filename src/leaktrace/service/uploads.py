"""Uploaded files: kept under the name they were sent with, made safe to store.

A name keeps every letter of every script (``Été à Nice 東京.png`` stays that): only what
could make it a path or hide what it says is removed — path separators (what comes before the
last one), control characters, line separators and bidirectional overrides, and leading dots
and spaces. It is cut to 180 bytes of UTF-8 (keeping its suffix), so that the copies named
after it, ``<stem>~<8 hex digits><ext>`` and their temporary names included, fit in a file
name.

A file is a video when its first bytes are those of a video container leaktrace reads (MP4 or
QuickTime, Matroska or WebM, AVI), whatever its name; one without a video suffix
(:data:`leaktrace.media.VIDEO_SUFFIXES`) gets its container's (``clip`` → ``clip.mp4``), as a
picture without its suffix gets its format's. Other files are judged as pictures.
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
from ..media import FORMATS, LEAK_FORMATS, image_format, inspect_image, is_video

__all__ = [
    "NAME_BYTES",
    "as_uploaded",
    "clean_name",
    "container_suffix",
    "named_for_its_format",
    "named_for_tracing",
    "saved",
]

NAME_BYTES = 180
_SEPARATORS = re.compile(r"[/\\]")
# Bidirectional embeddings, overrides and isolates can make a name display as another.
_BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_DROPPED = {"Cc", "Cs", "Zl", "Zp"}
_LEADING = re.compile(r"^[\s.]+")
# The boxes an MP4 or QuickTime file starts with (after its 4-byte size), and the brands of
# the pictures that share its format (HEIF, HEIC, AVIF: read as pictures).
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_PICTURE_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
)


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


def container_suffix(path: Path) -> str | None:
    """The suffix of the video container ``path``'s first bytes show (None: not a video)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    if head[4:8] in _MP4_BOXES:
        return None if head[4:8] == b"ftyp" and head[8:12] in _PICTURE_BRANDS else ".mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska and WebM
        return ".webm" if b"webm" in head[4:] else ".mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi"
    return None


def _as_video(path: Path, suffix: str) -> Path:
    return path if is_video(path) else path.rename(path.with_name(path.name + suffix))


def named_for_its_format(path: Path) -> Path:
    """Give an original the suffix of its real format, so copies are written and named right
    (a video is judged when it is registered)."""
    suffix = container_suffix(path)
    if suffix is not None:
        return _as_video(path, suffix)
    fmt = image_format(path)
    suffixes = FORMATS.get(fmt)
    if suffixes is None:
        raise UnsupportedMediaError(
            f"{path.name}: {fmt} pictures can be traced but not marked "
            f"(upload {', '.join(FORMATS)}, or a video)"
        )
    if path.suffix.lower() in suffixes:
        return path
    return path.rename(path.with_name(path.name + suffixes[0]))


def named_for_tracing(path: Path) -> Path:
    """A leak as tracing reads it: a video named as one (a picture is read whatever its name,
    and one named like a video is read as a picture)."""
    suffix = container_suffix(path)
    if suffix is not None:
        return _as_video(path, suffix)
    if not is_video(path):
        return path
    try:
        fmt = inspect_image(path).format
    except UnsupportedMediaError:
        raise UnsupportedMediaError(
            f"{path.name}: not a video or an image in a format leaktrace reads"
        ) from None
    return path.rename(path.with_name(path.name + {**FORMATS, **LEAK_FORMATS}[fmt][0]))
