"""Copies made on demand: one recipient's copy of one original, made the first time it is
asked for and recorded before it is handed out.

The per-photo work (decoding the original, :func:`leaktrace.embed.prepare`) is kept in a
small LRU cache, so each further recipient's copy costs its embed and encode only. A copy is
made once however many ask for it at once: within a process, askers of the same copy queue
on one lock; across processes (and machines sharing the registry),
:meth:`~leaktrace.registry.Workspace.claim_copy` lets exactly one of them record it pending,
and the others wait until it is done (a maker that died meanwhile is settled by
:meth:`~leaktrace.registry.Workspace.recover`, and the copy claimed again). The file is
written under the batch's temporary name and linked into place, never replacing a file, as
a batch of copies does; a video's copy is the usual remux of its variants.

Copies go where the service's batches put theirs, under their names
(``copies/<media id>/<handle>/<original's name>``), so a later batch finds them made and a
job's zip includes them; the bytes are those a batch makes at the same strength.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .embed import EmbedPlan, prepare
from .errors import ConflictError, WorkspaceError
from .media import read_image
from .registry import Claim, CopyRecord, Media, Workspace, file_sha256
from .workflow import write_photo_copy

__all__ = ["CopyMaker", "Delivered", "PlanCache"]

#: How long a request waits for a copy another process is making before it gives up.
DEFAULT_WAIT = 600.0
#: How often a waiting request settles batches whose processes died (seconds).
_RECOVER_EVERY = 2.0


@dataclass(frozen=True)
class Delivered:
    """A recorded copy whose file is in place; ``made``: this call made it."""

    copy: CopyRecord
    made: bool

    @property
    def path(self) -> Path:
        return Path(self.copy.path)


class PlanCache:
    """A bounded LRU of prepared photos, ``(pixels, plan)`` by key; concurrent first requests
    for one key prepare it once (the others wait for it)."""

    def __init__(self, size: int = 4) -> None:
        if size < 1:
            raise ValueError("a plan cache holds at least one photo")
        self.size = size
        self._items: OrderedDict[Hashable, tuple[np.ndarray, EmbedPlan]] = OrderedDict()
        self._lock = threading.Lock()
        self._making: dict[Hashable, threading.Lock] = {}
        self.prepared = 0  # how many preparations ran (the cache's misses)

    def get(
        self, key: Hashable, make: Callable[[], tuple[np.ndarray, EmbedPlan]]
    ) -> tuple[np.ndarray, EmbedPlan]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._making.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                value = make()
                with self._lock:
                    self.prepared += 1
                    self._items[key] = value
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._making.pop(key, None)
        return value

    def __len__(self) -> int:
        return len(self._items)


class _KeyedLocks:
    """One lock per key, alive only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Hashable, list[Any]] = {}  # key -> [lock, holders and waiters]

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        with self._lock:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


class CopyMaker:
    """Makes and records copies on demand for one process (a service holds one).

    ``cache_size``: prepared photos kept (a 12 MP photo takes about 40 MB); ``concurrency``:
    copies made at once (default: one per core; the others wait their turn)."""

    def __init__(self, *, cache_size: int = 4, concurrency: int | None = None) -> None:
        self.plans = PlanCache(cache_size)
        self._copies = _KeyedLocks()
        self._working = threading.BoundedSemaphore(max(1, concurrency or os.cpu_count() or 1))

    def copy(
        self,
        ws: Workspace,
        media: Media,
        handle: str,
        folder: Path,
        *,
        strength: float = 1.0,
        wait: float = DEFAULT_WAIT,
    ) -> Delivered:
        """``handle``'s copy of ``media`` in ``folder`` (``<folder>/<handle>/<name>``): the
        one recorded there if its file is in place, else made now and recorded before this
        returns. A video's strength is that of its variants; ``strength`` is a photo's."""
        (recipient,) = ws.recipients([handle])  # unknown: UnknownRecipientError
        handle = recipient.handle
        if media.kind == "video":
            from .videos import plan_of

            if media.plan is None:
                raise ConflictError(
                    f"{media.name} is not marked yet: its first batch of copies marks it "
                    "(once, a long encode); copies are made on demand after that"
                )
            strength = plan_of(media).settings.strength
        with self._copies.hold((os.fspath(ws.home), media.id, handle)):
            claim, target = self._claimed(ws, media, handle, folder, strength, wait)
            if claim.done is not None:
                return Delivered(claim.done, made=False)
            batch, copy_id = claim.batch, claim.copy_id
            if batch is None or copy_id is None:
                raise RuntimeError(f"claim_copy answered nothing: {claim}")
            try:
                with self._working:
                    sha, placed = self._write(ws, media, handle, target, batch.id, strength)
                if not placed and file_sha256(target) != sha:
                    ws.forget_copies([copy_id])
                    raise ConflictError(f"{target} appeared meanwhile; it was not overwritten")
                # Recorded before it is handed out (the same bytes, if another made it first).
                ws.finish_copies([(copy_id, sha)])
            finally:
                ws.end_batch(batch)
        return Delivered(ws.copy_record(copy_id), made=placed)

    def _claimed(
        self,
        ws: Workspace,
        media: Media,
        handle: str,
        folder: Path,
        strength: float,
        wait: float,
    ) -> tuple[Claim, Path]:
        """The claim on the copy's name (the first of a batch's two that is not another
        file), waiting while another process makes it."""
        deadline = time.monotonic() + wait
        recovered = time.monotonic()
        pause = 0.02
        names = _names(ws, media)
        i = 0
        while True:
            target = (folder / handle / names[i]).absolute()
            claim = ws.claim_copy(media, handle, target, strength=strength)
            if claim.batch is not None and os.path.lexists(target):
                # A file nobody recorded (not a copy of ours): never replaced; the next name.
                # (Forgotten before the batch ends: ending it would take that file for ours.)
                ws.forget_copies([] if claim.copy_id is None else [claim.copy_id])
                ws.end_batch(claim.batch)
                i += 1
                if i == len(names):
                    raise WorkspaceError(
                        f"cannot name {handle}'s copy of {media.name}: "
                        f"{', '.join(names)} are taken in {folder / handle}"
                    )
                continue
            if claim.busy is None:
                return claim, target
            now = time.monotonic()
            if now > deadline:
                raise ConflictError(
                    f"{handle}'s copy of {media.name} is still being made by another process; "
                    "try again shortly"
                )
            if now - recovered > _RECOVER_EVERY:  # its maker may have died
                ws.recover()
                recovered = now
            time.sleep(pause)
            pause = min(2 * pause, 0.25)

    def _write(
        self, ws: Workspace, media: Media, handle: str, target: Path, batch: str, strength: float
    ) -> tuple[str, bool]:
        if media.kind == "video":
            from .videos import copy_args, make_copy

            return make_copy(*copy_args(ws, media, handle, target, batch))
        source = ws.original_path(media)

        def prepared() -> tuple[np.ndarray, EmbedPlan]:
            pixels = read_image(source)
            return pixels, prepare(pixels, ws.key, media.mark_id, strength=strength)

        key = (ws.key.fingerprint, media.sha256, float(strength))
        pixels, plan = self.plans.get(key, prepared)
        return write_photo_copy(plan, pixels, str(source), handle, str(target), batch)


def _names(ws: Workspace, media: Media) -> list[str]:
    """The two names a batch may give a copy of ``media`` (see :mod:`leaktrace.workflow`)."""
    label = Path(media.name)
    if media.kind == "video":
        from .video import copy_suffix, inspect_video

        label = label.with_suffix(copy_suffix(inspect_video(ws.original_path(media)).audio))
    return [label.name, f"{label.stem}~{media.sha256[:8]}{label.suffix}"]
