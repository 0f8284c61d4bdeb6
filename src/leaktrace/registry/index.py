"""Which registered original does a leak come from, among 10⁵ of them: an approximate
nearest-neighbour index of the originals' fingerprints and features, kept beside the registry.

::

    index/
      prints.faiss     fingerprints (:func:`leaktrace.identify.print_vectors`), by media id:
                       exact inner product below 4,096 originals, IVF over 8-bit codes above
      features.faiss   up to :data:`INDEXED_FEATURES` SIFT descriptors of each original, each
                       labelled with its media id: exact L2 below 65,536 descriptors, IVF-PQ
                       above
      state.json       format, what the files hold (count, largest id and sum of the media
                       ids, number of descriptors) and how many originals the IVF was trained on
      keyframes.faiss  the videos' keyframe thumbnails, and keyframes.json its state: kept the
                       same way, by :mod:`.keyframes`
      .lock            flock: exclusive while the index is brought up to date, shared to read

Tracing asks the index for the :data:`CANDIDATES` originals whose fingerprints are nearest to
the leak's and for the originals its SIFT descriptors vote for (a k-NN search with the same
ratio test and vote as :func:`leaktrace.identify.feature_shortlist`), then loads only those
rows from the registry and scores the candidates' fingerprints exactly: the shortlist is the
exact one whenever the true originals are among the candidates (the benchmark measures how
often: ``benchmarks/index.py``).

Kept consistent the way the codewords' cache is (:mod:`.codebook`): every file is written under
a temporary name and moved into place, ``state.json`` last; before each search the registry's
media ids (count, largest, sum: one query) are compared with the state's, and the index is
brought up to date under the lock — new originals added, removed ones taken out, all of it
rebuilt when a file is missing, torn or foreign, or when the registry has grown four times past
what the IVF was trained on. So deleting the folder is always safe, and media registered by
another process (the service, another CLI) are found at the next trace. A read-only or full
disk costs the time of building the index in memory, never an answer.

Below :data:`EXACT_BELOW` originals, or without FAISS (``pip install 'leaktrace[index]'``), the
trace loads every original's fingerprint and features and searches them exactly, as
:mod:`leaktrace.identify` does; ``LEAKTRACE_INDEX=on`` (or ``off``) forces the choice.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from ..errors import WorkspaceError
from ..identify import (
    feature_shortlist as exact_feature_shortlist,
)
from ..identify import (
    print_vectors,
    probe_descriptors,
    shortlist,
    similarities,
    voted,
)
from .models import Media

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = [
    "CANDIDATES",
    "EXACT_BELOW",
    "INDEXED_FEATURES",
    "Identification",
    "KeptIndex",
    "MediaIndex",
    "available",
    "build_features",
    "build_prints",
    "identify",
    "indexed_descriptors",
    "keep_up",
    "nearest_prints",
    "voted_ids",
    "wanted",
]

_FORMAT = 1
#: Below this many registered originals a trace searches them all exactly.
EXACT_BELOW = 1000
#: Descriptors of each original kept in the index (of the 1,024 the registry stores).
INDEXED_FEATURES = 128
#: Originals whose fingerprints are nearest in the index, scored exactly.
CANDIDATES = 32
_DESCRIPTOR = 128
_PRINT_DIM = 64 * 64 + 16 * 16
_FLAT_PRINTS = 4096  # below: exact inner product
_FLAT_FEATURES = 65536  # below: exact L2
_PRINT_PROBES = 16
_FEATURE_PROBES = 4  # recall at 10⁵ as with 16 (benchmarks/index.py), a quarter of the time
_PROBE_MOST = 2000  # leak descriptors searched in the index
_RATIO = 0.65  # stricter than the exact 0.75: the index keeps 1 descriptor in 8
_CHUNK = 2000  # registry rows read at a time when building


def available() -> bool:
    """Whether FAISS (the ``index`` extra) can be imported."""
    try:
        _faiss()
    except ImportError:
        return False
    return True


def _faiss() -> Any:
    import faiss  # noqa: PLC0415 - optional, and slow to import

    return faiss


def indexed_descriptors(blob: bytes) -> np.ndarray:
    """The descriptors of an original's stored features the index keeps (uint8 rows): at
    most :data:`INDEXED_FEATURES`, taken evenly through them (they are stored cell by cell)."""
    rows = np.frombuffer(blob, np.uint8).reshape(-1, _DESCRIPTOR)
    if len(rows) <= INDEXED_FEATURES:
        return rows
    pick = np.linspace(0, len(rows), INDEXED_FEATURES, endpoint=False).astype(np.intp)
    return rows[pick]


def _lists(n: int, flat_below: int) -> int:
    """The IVF's number of lists for ``n`` vectors (0: a flat index)."""
    return 0 if n < flat_below else int(np.clip(2 * np.sqrt(n), 64, min(8192, n // 40)))


def _sample(vectors: np.ndarray, most: int) -> np.ndarray:
    if len(vectors) <= most:
        return vectors
    step = len(vectors) / most
    return vectors[(np.arange(most) * step).astype(np.intp)]


def build_prints(vectors: np.ndarray, ids: np.ndarray, *, lists: int | None = None) -> Any:
    """A FAISS index of fingerprint vectors (:func:`~leaktrace.identify.print_vectors`) by
    media id; ``lists``: the IVF's (0: exact), by default chosen from the count."""
    faiss = _faiss()
    nlist = _lists(len(vectors), _FLAT_PRINTS) if lists is None else lists
    if nlist == 0:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(_PRINT_DIM))
    else:
        quantizer = faiss.IndexFlatIP(_PRINT_DIM)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, _PRINT_DIM, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.train(_sample(vectors, 40 * nlist))
        index.nprobe = _PRINT_PROBES
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids.astype(np.int64))
    return index


def build_features(descriptors: np.ndarray, ids: np.ndarray, *, lists: int | None = None) -> Any:
    """A FAISS index of SIFT descriptors (uint8 or float rows), each labelled with the media
    id in ``ids`` (one per row; repeated for an original's descriptors)."""
    faiss = _faiss()
    nlist = _lists(len(descriptors), _FLAT_FEATURES) if lists is None else lists
    if nlist == 0:
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(_DESCRIPTOR))
    else:
        quantizer = faiss.IndexFlatL2(_DESCRIPTOR)
        index = faiss.IndexIVFPQ(quantizer, _DESCRIPTOR, nlist, 32, 8)
        index.train(np.ascontiguousarray(_sample(descriptors, 40 * nlist), np.float32))
        index.nprobe = _FEATURE_PROBES
    _add(index, descriptors, ids)
    return index


def _add(index: Any, rows: np.ndarray, ids: np.ndarray) -> None:
    for start in range(0, len(rows), 1 << 18):
        part = np.ascontiguousarray(rows[start : start + (1 << 18)], np.float32)
        index.add_with_ids(part, ids[start : start + (1 << 18)].astype(np.int64))


def nearest_prints(index: Any, probe: bytes, *, most: int = CANDIDATES) -> list[int]:
    """The media ids of the ``most`` fingerprints in ``index`` nearest to ``probe``."""
    if index.ntotal == 0:
        return []
    _, found = index.search(print_vectors([probe]), min(most, int(index.ntotal)))
    return [int(i) for i in found[0] if i >= 0]


def voted_ids(index: Any, descriptors: np.ndarray | None, *, most: int = 3) -> list[int]:
    """The media ids the leak's ``descriptors`` (:func:`~leaktrace.identify.probe_descriptors`)
    vote for in ``index``, best first: each clear nearest neighbour (ratio test) is a vote."""
    if descriptors is None or index.ntotal < 2:
        return []
    if len(descriptors) > _PROBE_MOST:
        descriptors = descriptors[
            np.linspace(0, len(descriptors), _PROBE_MOST, endpoint=False).astype(np.intp)
        ]
    dist, labels = index.search(np.ascontiguousarray(descriptors, np.float32), 2)
    # FAISS gives squared distances; the ratio test is on distances.
    d = np.sqrt(np.maximum(dist, 0))
    clear = labels[(labels[:, 1] >= 0) & (d[:, 0] < _RATIO * d[:, 1]), 0]
    if clear.size == 0:
        return []
    media, owners = np.unique(clear, return_inverse=True)
    return [int(media[i]) for i in voted(owners.ravel(), len(media), most=most)]


@dataclass(frozen=True)
class Identification:
    """The originals a leak may come from: ``similar``, the fingerprint's shortlist (most
    similar first); ``tried``, every original detection tries (``similar``, then those the
    leak's features vote for); ``similarity``, the similarity of each tried one by media id."""

    similar: list[Media]
    tried: list[Media]
    similarity: dict[int, float]


def _mode() -> str:
    mode = os.environ.get("LEAKTRACE_INDEX", "auto").strip().lower() or "auto"
    if mode not in ("auto", "on", "off"):
        raise WorkspaceError(f"LEAKTRACE_INDEX={mode!r}: use one of auto, on, off")
    return mode


def wanted(count: Callable[[], int], below: int) -> bool:
    """Whether a search goes through the index: ``LEAKTRACE_INDEX=on``, or ``auto`` with FAISS
    installed and at least ``below`` things to search (``count()``, asked only then)."""
    mode = _mode()
    if mode == "on" and not available():
        raise WorkspaceError("LEAKTRACE_INDEX=on needs FAISS: pip install 'leaktrace[index]'")
    return mode == "on" or (mode == "auto" and available() and count() >= below)


def identify(ws: Workspace, leak: np.ndarray, probe: bytes) -> Identification:
    """The registered originals ``leak`` (whose fingerprint is ``probe``) may come from: by
    the workspace's index when it is worth it (see the module's docstring), else exactly."""
    if not wanted(lambda: ws.media_stamp()[0], EXACT_BELOW):
        registered = ws.media()
        picks = shortlist(probe, [m.fingerprint for m in registered])
        voting = exact_feature_shortlist(leak, [m.features for m in registered])
        similar = [registered[i] for i in picks]
        tried = [registered[i] for i in dict.fromkeys(picks + voting)]
    else:
        near, votes = ws.index.search(probe, probe_descriptors(leak))
        rows = {m.id: m for m in ws.media_rows([*near, *votes])}
        # Scored exactly, in id order as the exact search does (ties keep the older original).
        candidates = [rows[i] for i in sorted(set(near)) if i in rows]
        similar = [candidates[i] for i in shortlist(probe, [m.fingerprint for m in candidates])]
        also = [rows[i] for i in votes if i in rows]
        tried = list({m.id: m for m in [*similar, *also]}.values())
    sims = similarities(probe, [m.fingerprint for m in tried])
    return Identification(
        similar, tried, {m.id: float(s) for m, s in zip(tried, sims, strict=True)}
    )


def keep_up(ws: Workspace) -> None:
    """After originals are registered or videos marked: bring the workspace's index up to
    date if it has one (else the next search that needs it builds it)."""
    if _mode() == "off" or not available():
        return
    if (ws.home / "index" / "state.json").exists():
        ws.index.refresh()
    if (ws.home / "index" / "keyframes.json").exists():
        ws.keyframes.refresh()


# -- the index on disk ------------------------------------------------------------------------
def _stamp(ids: np.ndarray) -> list[int]:
    return [int(len(ids)), int(ids.max()) if len(ids) else 0, int(ids.sum()) if len(ids) else 0]


class _Stamped(Protocol):
    @property
    def stamp(self) -> list[int]: ...


L = TypeVar("L", bound=_Stamped)


class KeptIndex(Generic[L]):
    """An index of ``ws``'s registry under ``folder``: kept in memory between searches, on
    disk between processes, and brought up to date with the registry before it is used.
    Safe to share between threads and processes. A kind of index says how to stamp the
    registry, and how to read, build, update and write itself."""

    def __init__(self, ws: Workspace, folder: Path) -> None:
        self._ws = ws
        self.folder = folder
        self._loaded: L | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Bring the index up to date with the registry now (rather than at the next search)."""
        with self._lock:
            self._current()

    def _current(self) -> L:
        """The index as the registry is now (caller holds ``_lock``): the one in memory if its
        stamp is the registry's, else the one on disk, updated or rebuilt and written back
        under the folder's file lock."""
        stamp = self._registry_stamp()
        if self._loaded is not None and self._loaded.stamp == stamp:
            return self._loaded
        with flocked(self.folder, fcntl.LOCK_EX):
            loaded = self._read()
            if loaded is None or not self._fits(loaded, stamp[0]):
                loaded = self._build()
            elif loaded.stamp != stamp:
                self._update(loaded)
            else:
                self._loaded = loaded
                return loaded
            try:
                for name, write in self._files(loaded):
                    written(self.folder, name, write)
            except (OSError, RuntimeError):
                pass  # a read-only or full disk costs speed, never an answer
        self._loaded = loaded
        return loaded

    def _registry_stamp(self) -> list[int]:
        raise NotImplementedError

    def _read(self) -> L | None:
        """The index on disk, or None when it is missing, torn or not this format's."""
        raise NotImplementedError

    def _fits(self, loaded: L, n: int) -> bool:
        """Whether the index's kind still suits ``n`` registered things (else it is rebuilt)."""
        raise NotImplementedError

    def _build(self) -> L:
        raise NotImplementedError

    def _update(self, loaded: L) -> None:
        raise NotImplementedError

    def _files(self, loaded: L) -> list[tuple[str, Callable[[Path], object]]]:
        """The files ``loaded`` is written as (the state last), each by its writer."""
        raise NotImplementedError


@dataclass
class _Loaded:
    prints: Any
    features: Any
    stamp: list[int]
    trained: int  # originals the IVFs were trained on (0: flat)


class MediaIndex(KeptIndex[_Loaded]):
    """The index of ``ws``'s originals under ``folder`` (see the module's docstring)."""

    def search(self, probe: bytes, descriptors: np.ndarray | None) -> tuple[list[int], list[int]]:
        """Media ids: the :data:`CANDIDATES` nearest fingerprints, and the feature votes."""
        with self._lock:
            loaded = self._current()
            return nearest_prints(loaded.prints, probe), voted_ids(loaded.features, descriptors)

    def _registry_stamp(self) -> list[int]:
        return list(self._ws.media_stamp())

    def _fits(self, loaded: _Loaded, n: int) -> bool:
        if loaded.trained == 0:
            return n < 2 * _FLAT_PRINTS
        return n <= 4 * loaded.trained

    def _read(self) -> _Loaded | None:
        faiss = _faiss()
        try:
            state = json.loads((self.folder / "state.json").read_bytes())
            if not isinstance(state, dict) or state.get("format") != _FORMAT:
                return None
            prints = faiss.read_index(str(self.folder / "prints.faiss"))
            feats = faiss.read_index(str(self.folder / "features.faiss"))
        except (OSError, ValueError, RuntimeError):
            return None
        stamp = state.get("stamp")
        if (
            not isinstance(stamp, list)
            or prints.ntotal != stamp[0]
            or prints.d != _PRINT_DIM
            or feats.d != _DESCRIPTOR
            or feats.ntotal != state.get("features")
        ):
            return None
        return _Loaded(prints, feats, stamp, int(state.get("trained", 0)))

    def _ids(self, index: Any) -> np.ndarray:
        faiss = _faiss()
        if isinstance(index, faiss.IndexIDMap2):
            return faiss.vector_to_array(index.id_map).astype(np.int64)
        invlists = index.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(k), invlists.list_size(k)).copy()
            for k in range(index.nlist)
            if invlists.list_size(k)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def _rows(
        self, ids: Sequence[int]
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The registry's originals ``ids`` in chunks: (ids, print vectors, descriptors and
        their ids)."""
        for start in range(0, len(ids), _CHUNK):
            chunk = self._ws.media_blobs(ids[start : start + _CHUNK])
            if not chunk:
                continue
            got = np.array([i for i, _, _ in chunk], np.int64)
            vectors = print_vectors([p for _, p, _ in chunk])
            desc = [indexed_descriptors(f) for _, _, f in chunk]
            owners = np.repeat(got, [len(d) for d in desc])
            yield got, vectors, np.concatenate(desc), owners

    def _build(self) -> _Loaded:
        ids = self._ws.media_ids()
        parts = list(self._rows(ids))
        got = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        vectors = (
            np.concatenate([p[1] for p in parts])
            if parts
            else np.zeros((0, _PRINT_DIM), np.float32)
        )
        desc = (
            np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, _DESCRIPTOR), np.uint8)
        )
        owners = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, np.int64)
        prints = build_prints(vectors, got)
        feats = build_features(desc, owners)
        trained = 0 if _lists(len(got), _FLAT_PRINTS) == 0 else len(got)
        return _Loaded(prints, feats, _stamp(got), trained)

    def _update(self, loaded: _Loaded) -> None:
        have = self._ids(loaded.prints)
        now = np.asarray(self._ws.media_ids(), np.int64)
        gone = np.setdiff1d(have, now)
        if gone.size:
            loaded.prints.remove_ids(gone)
            loaded.features.remove_ids(gone)
        for got, vectors, desc, owners in self._rows([int(i) for i in np.setdiff1d(now, have)]):
            loaded.prints.add_with_ids(vectors, got)
            _add(loaded.features, desc, owners)
        loaded.stamp = _stamp(self._ids(loaded.prints))

    def _files(self, loaded: _Loaded) -> list[tuple[str, Callable[[Path], object]]]:
        faiss = _faiss()
        state = {
            "format": _FORMAT,
            "stamp": loaded.stamp,
            "features": int(loaded.features.ntotal),
            "trained": loaded.trained,
        }
        return [
            ("prints.faiss", lambda p: faiss.write_index(loaded.prints, str(p))),
            ("features.faiss", lambda p: faiss.write_index(loaded.features, str(p))),
            ("state.json", lambda p: p.write_text(json.dumps(state))),
        ]


@contextmanager
def flocked(folder: Path, how: int) -> Iterator[None]:
    """Hold ``folder``'s ``.lock`` (``fcntl.LOCK_EX`` or ``LOCK_SH``) inside the block (the
    index's parts share it: :mod:`.keyframes`)."""
    try:
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # read-only: nobody else can write either
        yield
        return
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)


def written(folder: Path, name: str, write: Callable[[Path], object]) -> None:
    """Make ``folder / name`` whole or not at all: ``write`` fills a private temporary file
    beside it, which is then moved into place."""
    part = folder / f".{name}.{secrets.token_hex(4)}.part"
    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        write(part)
        os.replace(part, folder / name)
    finally:
        part.unlink(missing_ok=True)
