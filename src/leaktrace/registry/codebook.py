"""Recipients' codewords kept as packed bits beside the registry, so that a trace against a
million candidates scores them in a fraction of a second instead of deriving a million
codewords from the key (seconds) first.

::

    codewords/<sha256 of the code's ident>/   one folder per (key fingerprint, code, length,
                                              media id): :attr:`leaktrace.codes.Code.ident`
      <segment>.npy    packed codewords, one column per recipient (nbytes × n uint8)
      <segment>.json   {"ident": ..., "handles": [...]}: whose columns, written last

Why files beside the registry rather than rows in it or memory alone: a codeword is a pure
function of (key, media id, recipient, code, length), so an entry can never go stale, only
miss recipients, which are derived and appended as a new segment; 10⁶ recipients' codewords
are 128 MB, which a PostgreSQL row should not carry on every trace; and the CLI is a new
process per trace, so memory alone would rebuild them every time. A long-running process (the
service) also keeps the most recently used entries in memory.

What it never holds: the key (folders are named by a digest of the key's public fingerprint,
the code and the media id). What it does hold is as private as the copies themselves (the
codewords marked into them), so its files are the owner's only, like the workspace. Deleting
the folder is always safe: it is rebuilt on the next trace. A torn or foreign segment is
ignored, and :class:`leaktrace.detect.Scorer` checks every accused candidate's codeword against
the key before naming anyone (and forgets the entry if they disagree).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..codes import Code

__all__ = ["Codebook"]

_FORMAT = 1


@dataclass
class _Entry:
    handles: list[str]
    packed: np.ndarray
    segments: set[str]
    index: dict[str, int] | None = None
    view: tuple[list[str], np.ndarray] | None = field(default=None, repr=False)

    def lookup(self) -> dict[str, int]:
        if self.index is None:
            self.index = {h: i for i, h in enumerate(self.handles)}
        return self.index


class Codebook:
    """Packed codewords under ``folder`` (see the module's docstring), the ``memory`` most
    recently used entries also in memory. Safe to share between threads and processes."""

    def __init__(self, folder: Path, *, memory: int = 4) -> None:
        self.folder = folder
        self._memory = memory
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _dir(self, code: Code) -> Path:
        digest = hashlib.sha256(f"v{_FORMAT}/{code.ident}".encode()).hexdigest()[:32]
        return self.folder / digest

    def packed(self, code: Code, recipients: Sequence[str]) -> np.ndarray:
        """``code.packed(recipients)``: stored columns where there are, the others derived
        from the key and stored."""
        wanted = list(recipients)
        with self._lock:
            entry = self._refresh(code)
            if entry.view is not None and entry.view[0] == wanted:
                return entry.view[1]
            index = entry.lookup()
            missing = list(dict.fromkeys(h for h in wanted if h not in index))
            if missing:
                self._append(code, entry, missing, code.packed(missing))
                index = entry.lookup()
            if wanted == entry.handles:
                out = entry.packed
            else:
                out = entry.packed[:, np.fromiter((index[h] for h in wanted), np.intp, len(wanted))]
            entry.view = (wanted, out)
            return out

    def forget(self, code: Code) -> None:
        """Drop ``code``'s entry from memory and disk."""
        with self._lock:
            self._entries.pop(code.ident, None)
            shutil.rmtree(self._dir(code), ignore_errors=True)

    def _refresh(self, code: Code) -> _Entry:
        """``code``'s entry, with any segment other processes have written since."""
        entry = self._entries.pop(code.ident, None)
        if entry is None:
            entry = _Entry([], np.empty((code.nbytes, 0), np.uint8), set())
        self._entries[code.ident] = entry  # most recently used last
        while len(self._entries) > self._memory:
            self._entries.popitem(last=False)
        folder = self._dir(code)
        try:
            names = sorted(p.stem for p in folder.glob("*.json"))
        except OSError:
            return entry
        new = [n for n in names if n not in entry.segments]
        handles, blocks = [], []
        for name in new:
            loaded = _load(folder, name, code)
            entry.segments.add(name)
            if loaded is not None:
                handles.extend(loaded[0])
                blocks.append(loaded[1])
        if blocks:
            self._extend(entry, handles, np.concatenate(blocks, axis=1))
        return entry

    def _append(self, code: Code, entry: _Entry, handles: list[str], packed: np.ndarray) -> None:
        name = f"{len(entry.handles):012d}-{secrets.token_hex(8)}"
        folder = self._dir(code)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write(folder / f"{name}.npy", lambda fh: np.save(fh, packed, allow_pickle=False))
            data = json.dumps({"ident": code.ident, "handles": handles}).encode()
            _write(folder / f"{name}.json", lambda fh: fh.write(data))
            entry.segments.add(name)
        except OSError:
            pass  # a read-only or full disk costs speed, never an answer
        self._extend(entry, handles, packed)

    @staticmethod
    def _extend(entry: _Entry, handles: list[str], packed: np.ndarray) -> None:
        start = len(entry.handles)
        entry.packed = np.concatenate([entry.packed, packed], axis=1) if start else packed
        entry.handles = entry.handles + handles
        if entry.index is not None:
            entry.index.update((h, start + i) for i, h in enumerate(handles))
        entry.view = None


def _write(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write a private file under a temporary name and move it into place."""
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _load(folder: Path, name: str, code: Code) -> tuple[list[str], np.ndarray] | None:
    """A segment's handles and columns; None when it is torn or not ``code``'s."""
    try:
        about = json.loads((folder / f"{name}.json").read_bytes())
        packed = np.load(folder / f"{name}.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if not isinstance(about, dict):
        return None
    handles = about.get("handles")
    if (
        about.get("ident") != code.ident
        or not isinstance(handles, list)
        or not all(isinstance(h, str) for h in handles)
        or packed.dtype != np.uint8
        or packed.shape != (code.nbytes, len(handles))
    ):
        return None
    return handles, packed
