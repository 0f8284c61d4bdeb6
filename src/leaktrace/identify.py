"""Which registered original does a leak come from? Compact fingerprints and their matching.

A fingerprint has two parts, each the luma squeezed to a fixed grid whatever the aspect ratio,
with its mean removed: *structure* (64×64, minus a Gaussian blur of σ = 4: edges and texture)
and *layout* (16×16: where it is light and dark). Each is stored as int8. The similarity of two
fingerprints is the mean of the two parts' correlations, in [-1, 1]; structure tells textured
photos apart, layout keeps smooth ones (sky, studio backdrops) recognisable after the leak's
fine detail is gone.

Measured on 204 pictures (the Kodak set and 180 overlapping crops of the 10–24 MP photos): a
leak resized to 0.5 and recompressed, or recompressed with a gamma change, ranked its own
original first every time, with similarity ≥ 0.60; other pictures reached 0.88 (overlapping
crops of the same sky). So similarity ranks but does not decide: :func:`shortlist` keeps the
few best above :data:`MATCH_SIMILARITY`, and the workflow runs detection on each of them.

A global fingerprint cannot recognise a crop, a rotated screenshot or a picture pasted into a
collage. For those each original also keeps its :func:`features` — 1,024 SIFT descriptors of
its working grid, 64 in each of 16 cells — and :func:`feature_shortlist` votes: every leak
descriptor that finds a clear nearest neighbour among all stored ones counts for that
neighbour's original. Votes only choose what to try; registration onto the original then
decides whether the leak comes from it at all.
"""

from __future__ import annotations

import cv2
import numpy as np

from .register import sift_features
from .transform import check_image, luma, to_working

__all__ = [
    "MATCH_SIMILARITY",
    "SHORTLIST_MARGIN",
    "feature_shortlist",
    "features",
    "fingerprint",
    "print_vectors",
    "probe_descriptors",
    "shortlist",
    "similarities",
    "voted",
]

_STRUCTURE, _LAYOUT = 64, 16
_SPLIT = _STRUCTURE * _STRUCTURE
#: Below this similarity to every registered original, a leak matches none of them.
MATCH_SIMILARITY = 0.5
#: Originals within this much of the best similarity are all tried by detection.
SHORTLIST_MARGIN = 0.1


def _int8(part: np.ndarray) -> bytes:
    part = part - part.mean()
    peak = float(np.abs(part).max())
    scaled = part * (127 / peak) if peak > 0 else part
    return np.rint(scaled).astype(np.int8).tobytes()


def fingerprint(image: np.ndarray) -> bytes:
    """Return the 4,352-byte fingerprint of an image array."""
    y = luma(image)
    small = cv2.resize(y, (_STRUCTURE, _STRUCTURE), interpolation=cv2.INTER_AREA)
    structure = small - cv2.GaussianBlur(small, (0, 0), 4.0)
    layout = cv2.resize(y, (_LAYOUT, _LAYOUT), interpolation=cv2.INTER_AREA)
    return _int8(structure) + _int8(layout)


def _correlations(matrix: np.ndarray, vec: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(vec))
    return (matrix @ vec) / np.where(norms > 0, norms, 1.0)


def similarities(probe: bytes, prints: list[bytes]) -> np.ndarray:
    """Similarity of ``probe`` to each of ``prints`` (float array, same order)."""
    if not prints:
        return np.zeros(0)
    matrix = np.frombuffer(b"".join(prints), np.int8).reshape(len(prints), -1).astype(np.float32)
    vec = np.frombuffer(probe, np.int8).astype(np.float32)
    structure = _correlations(matrix[:, :_SPLIT], vec[:_SPLIT])
    layout = _correlations(matrix[:, _SPLIT:], vec[_SPLIT:])
    return (structure + layout) / 2


def print_vectors(prints: list[bytes]) -> np.ndarray:
    """Fingerprints as unit float32 rows whose inner products are their :func:`similarities`
    (each part scaled to length 1/√2): what an inner-product index searches."""
    matrix = np.frombuffer(b"".join(prints), np.int8).reshape(len(prints), -1).astype(np.float32)
    for part in (matrix[:, :_SPLIT], matrix[:, _SPLIT:]):
        norms = np.linalg.norm(part, axis=1, keepdims=True) * np.sqrt(2)
        part /= np.where(norms > 0, norms, 1.0)
    return matrix


def shortlist(probe: bytes, prints: list[bytes], *, most: int = 3) -> list[int]:
    """Indices of the originals a leak may come from, most similar first (maybe none)."""
    sims = similarities(probe, prints)
    if sims.size == 0 or sims.max() < MATCH_SIMILARITY:
        return []
    order = np.argsort(-sims, kind="stable")[:most]
    floor = max(MATCH_SIMILARITY, float(sims[order[0]]) - SHORTLIST_MARGIN)
    return [int(i) for i in order if sims[i] >= floor]


_KEYPOINTS = 1024
_DESCRIPTOR = 128
_LEAST_VOTES = 3
_PROBE_PIXELS = 800_000


def features(image: np.ndarray) -> bytes:
    """SIFT descriptors of an original's working grid (uint8, 128 per feature), spread over a
    4×4 grid of cells so that a crop anywhere finds some of them.

    Raises :class:`~leaktrace.ImageArrayError` for an image the engine cannot mark (too small,
    or so elongated that its working grid would not fit in memory)."""
    check_image(image)
    plane = to_working(image)
    points, descriptors = sift_features(plane, contrast=0.01, features=4 * _KEYPOINTS)
    if descriptors is None:
        return b""
    h, w = plane.shape
    cells = np.minimum(points[:, 1] * 4 // h, 3) * 4 + np.minimum(points[:, 0] * 4 // w, 3)
    keep = np.concatenate(
        [np.flatnonzero(cells == c)[: _KEYPOINTS // 16] for c in range(16)]
    ).astype(np.intp)
    return np.clip(np.rint(descriptors[np.sort(keep)]), 0, 255).astype(np.uint8).tobytes()


def probe_descriptors(leak: np.ndarray) -> np.ndarray | None:
    """The SIFT descriptors of a leak that :func:`feature_shortlist` matches (float32 rows),
    or None when it has fewer than two."""
    _, probe = sift_features(luma(leak), most=_PROBE_PIXELS)
    if probe is None or len(probe) < 2:
        return None
    return probe.astype(np.float32)


def voted(owners: np.ndarray, n: int, *, most: int = 3) -> list[int]:
    """The originals (of ``n``) that clear matches vote for, best first: ``owners`` holds the
    original of each leak descriptor's clear nearest neighbour."""
    votes = np.bincount(owners, minlength=n) if owners.size else np.zeros(n, np.intp)
    if n == 0:
        return []
    order = np.argsort(-votes, kind="stable")[:most]
    top = votes[order[0]]
    return [int(i) for i in order if votes[i] >= max(_LEAST_VOTES, top / 4)]


def feature_shortlist(leak: np.ndarray, stored: list[bytes], *, most: int = 3) -> list[int]:
    """Indices of the originals whose stored features the leak's features vote for, best first."""
    counts = [len(b) // _DESCRIPTOR for b in stored]
    owners = np.repeat(np.arange(len(stored), dtype=np.intp), counts)
    if owners.size < 2:
        return []
    bank = np.frombuffer(b"".join(stored), np.uint8).reshape(-1, _DESCRIPTOR).astype(np.float32)
    probe = probe_descriptors(leak)
    if probe is None:
        return []
    matcher = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 64})
    pairs = matcher.knnMatch(probe, bank, k=2)
    clear = [
        m.trainIdx for m, n in (p for p in pairs if len(p) == 2) if m.distance < 0.75 * n.distance
    ]
    return voted(owners[np.asarray(clear, np.intp)], len(stored), most=most)
