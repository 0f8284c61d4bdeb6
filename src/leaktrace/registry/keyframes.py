"""Which registered video a leaked video comes from, among many: the third part of the
originals' index (:mod:`.index`), the videos' keyframe thumbnails.

::

    index/
      keyframes.faiss  of every video that has its variants, the thumbnails of its keyframes
                       (:func:`leaktrace.video.detect.keyframes`: one a second and one per shot)
                       as unit vectors, each labelled with its media id: exact inner product
                       below 65,536 keyframes, IVF over 8-bit codes above
      keyframes.json   format, the videos it holds (ids; count, largest and sum as the stamp)
                       and how many keyframes the IVF was trained on

A thumbnail is the 16×16 picture of the moving part of a frame with its mean taken out, as
:func:`leaktrace.video.detect.locate` compares them, so an inner product in the index is the
similarity ``locate`` uses. Tracing asks it about :data:`~leaktrace.video.detect.PROBES` of
the leak's thumbnails spread over the leak; each names the videos of its nearest keyframes
that look alike (similarity at least :data:`_ALIKE`), each video once, with that similarity
as its vote; the :data:`VIDEO_CANDIDATES` videos with the most votes are then placed exactly
by ``locate`` (only their rows and thumbnails are read), as every video is without the index.

A video enters the index when its variants are made (its plan is recorded; a video registered
before its first copies has none, and nothing to index yet), so the stamp is taken over those
videos only (:meth:`~leaktrace.registry.Workspace.video_stamp`). Otherwise the part is kept as
the others are: written under temporary names and moved into place (``keyframes.json`` last),
compared with the registry before each search, updated or rebuilt under the folder's lock; a
read-only or full disk costs the time of building it in memory, never an answer.

Below :data:`EXACT_VIDEOS_BELOW` videos, or without FAISS, a trace places the leak in every
video; ``LEAKTRACE_INDEX=on`` (or ``off``) forces the choice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .index import KeptIndex, _faiss, _lists, _sample, wanted

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = [
    "EXACT_VIDEOS_BELOW",
    "VIDEO_CANDIDATES",
    "KeyframeIndex",
    "build_keyframes",
    "keyframe_vectors",
    "nearest_videos",
    "use_keyframes",
]

_FORMAT = 1
#: Below this many videos with variants a trace places the leak in each of them.
EXACT_VIDEOS_BELOW = 100
#: Videos the index's vote names, placed exactly.
VIDEO_CANDIDATES = 8
_DIM = 16 * 16  # leaktrace.video.variants.THUMB², checked when the part is read
_FLAT = 65536  # keyframes below which the index is exact
_PROBES = 16  # IVF lists searched
_NEIGHBOURS = 16  # keyframes looked at per leak thumbnail
_ALIKE = 0.5  # similarity for a keyframe to vote (a match's frames are near 0.9)
_CHUNK = 500  # videos read at a time when building


def use_keyframes(ws: Workspace) -> bool:
    """Whether a video trace in ``ws`` goes through the keyframes' index (the module's
    docstring says when)."""
    return wanted(lambda: ws.video_stamp()[0], EXACT_VIDEOS_BELOW)


def keyframe_vectors(times: np.ndarray, thumbs: np.ndarray) -> np.ndarray:
    """The index's vectors of one video (its thumbnails' ``times`` and raw ``thumbs``, as
    kept with the variants): its keyframes' normalised thumbnails (float32 rows)."""
    from ..video.detect import keyframes, thumb_vectors  # noqa: PLC0415 - PyAV, for videos only

    return thumb_vectors(thumbs[keyframes(times, thumbs)])


def build_keyframes(vectors: np.ndarray, ids: np.ndarray, *, lists: int | None = None) -> Any:
    """A FAISS index of keyframe ``vectors`` (:func:`keyframe_vectors`), each labelled with
    its video's media id in ``ids``; ``lists``: the IVF's (0: exact), by default from the
    count."""
    faiss = _faiss()
    nlist = _lists(len(vectors), _FLAT) if lists is None else lists
    if nlist == 0:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(_DIM))
    else:
        quantizer = faiss.IndexFlatIP(_DIM)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, _DIM, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.train(np.ascontiguousarray(_sample(vectors, 40 * nlist), np.float32))
        index.nprobe = _PROBES
    _add(index, vectors, ids)
    return index


def _add(index: Any, rows: np.ndarray, ids: np.ndarray) -> None:
    for start in range(0, len(rows), 1 << 16):
        part = np.ascontiguousarray(rows[start : start + (1 << 16)], np.float32)
        index.add_with_ids(part, np.asarray(ids[start : start + (1 << 16)], np.int64))


def nearest_videos(index: Any, probes: np.ndarray, *, most: int = VIDEO_CANDIDATES) -> list[int]:
    """The media ids of the ``most`` videos the leak's thumbnails ``probes``
    (:func:`~leaktrace.video.detect.probe_thumbs`) vote for in ``index``, best first."""
    if index.ntotal == 0 or len(probes) == 0:
        return []
    sims, labels = index.search(
        np.ascontiguousarray(probes, np.float32), min(_NEIGHBOURS, int(index.ntotal))
    )
    votes: dict[int, float] = {}
    for row_sims, row_labels in zip(sims, labels, strict=True):
        seen: set[int] = set()
        for s, label in zip(row_sims, row_labels, strict=True):  # most similar first
            if label < 0 or s < _ALIKE or int(label) in seen:
                continue
            seen.add(int(label))
            votes[int(label)] = votes.get(int(label), 0.0) + float(s)
    return sorted(votes, key=lambda i: (-votes[i], i))[:most]


# -- the part on disk -------------------------------------------------------------------------
def _stamp(ids: Sequence[int]) -> list[int]:
    return [len(ids), max(ids, default=0), int(sum(ids))]


@dataclass
class _Loaded:
    index: Any
    videos: list[int]  # the media ids it was made from (a video without thumbnails adds none)
    trained: int  # keyframes the IVF was trained on (0: flat)

    @property
    def stamp(self) -> list[int]:
        return _stamp(self.videos)


class KeyframeIndex(KeptIndex[_Loaded]):
    """The keyframes of ``ws``'s videos under ``folder`` (see the module's docstring)."""

    def search(self, probes: np.ndarray, *, most: int = VIDEO_CANDIDATES) -> list[int]:
        """The media ids of the videos the leak's thumbnails ``probes`` vote for."""
        with self._lock:
            return nearest_videos(self._current().index, probes, most=most)

    def _registry_stamp(self) -> list[int]:
        return list(self._ws.video_stamp())

    def _fits(self, loaded: _Loaded, n: int) -> bool:
        keyframes = int(loaded.index.ntotal)  # what matters is keyframes, not videos (n)
        return keyframes < 2 * _FLAT if loaded.trained == 0 else keyframes <= 4 * loaded.trained

    def _read(self) -> _Loaded | None:
        faiss = _faiss()
        try:
            state = json.loads((self.folder / "keyframes.json").read_bytes())
            if not isinstance(state, dict) or state.get("format") != _FORMAT:
                return None
            index = faiss.read_index(str(self.folder / "keyframes.faiss"))
        except (OSError, ValueError, RuntimeError):
            return None
        videos = state.get("videos")
        if (
            not isinstance(videos, list)
            or not all(isinstance(i, int) for i in videos)
            or index.d != _DIM
            or index.ntotal != state.get("keyframes")
        ):
            return None
        return _Loaded(index, videos, int(state.get("trained", 0)))

    def _vectors(
        self, ids: Sequence[int] | None
    ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """The videos with variants (of ``ids``; all when None) in chunks: their ids, and
        their keyframes' vectors (float16, to halve a large build's memory) with their ids."""
        videos = self._ws.planned_videos(ids)
        for start in range(0, len(videos), _CHUNK):
            seen, parts, owners = [], [], []
            for media_id, sha256 in videos[start : start + _CHUNK]:
                seen.append(media_id)
                try:
                    with np.load(self._ws.variants_dir(sha256) / "thumbs.npz") as store:
                        v = keyframe_vectors(store["times"], store["thumbs"])
                except (OSError, ValueError, KeyError):
                    continue  # its variants are gone: nothing to find it by
                parts.append(v.astype(np.float16))
                owners.append(np.full(len(v), media_id, np.int64))
            yield (
                seen,
                np.concatenate(parts) if parts else np.zeros((0, _DIM), np.float16),
                np.concatenate(owners) if owners else np.zeros(0, np.int64),
            )

    def _build(self) -> _Loaded:
        chunks = list(self._vectors(None))
        videos = [i for seen, _, _ in chunks for i in seen]
        vectors = np.concatenate([v for _, v, _ in chunks]) if chunks else np.zeros((0, _DIM))
        owners = np.concatenate([o for _, _, o in chunks]) if chunks else np.zeros(0, np.int64)
        index = build_keyframes(vectors, owners)
        trained = 0 if _lists(len(vectors), _FLAT) == 0 else len(vectors)
        return _Loaded(index, videos, trained)

    def _update(self, loaded: _Loaded) -> None:
        now = [i for i, _ in self._ws.planned_videos()]
        gone = sorted(set(loaded.videos) - set(now))
        if gone:
            loaded.index.remove_ids(np.asarray(gone, np.int64))
        have = set(loaded.videos) - set(gone)
        for seen, vectors, owners in self._vectors(sorted(set(now) - have)):
            _add(loaded.index, vectors, owners)
            have.update(seen)
        loaded.videos = sorted(have)

    def _files(self, loaded: _Loaded) -> list[tuple[str, Callable[[Path], object]]]:
        faiss = _faiss()
        state = {
            "format": _FORMAT,
            "videos": loaded.videos,
            "stamp": loaded.stamp,
            "keyframes": int(loaded.index.ntotal),
            "trained": loaded.trained,
        }
        return [
            ("keyframes.faiss", lambda p: faiss.write_index(loaded.index, str(p))),
            ("keyframes.json", lambda p: p.write_text(json.dumps(state))),
        ]
