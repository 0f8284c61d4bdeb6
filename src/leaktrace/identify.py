"""Which registered original does a leak come from? Compact fingerprints and their matching.

A fingerprint is the luma squeezed to 64×64 (whatever the aspect ratio) with its smooth part
(a Gaussian blur of σ = 4) taken away, so that what is compared is structure — edges and
texture — not gradients, brightness or contrast; it is stored as int8. Two fingerprints'
similarity is their correlation in [-1, 1]. Among 204 photos and crops, a leak resized to 0.5
and recompressed scored 0.75 or more against its own original (less only for crops of bare
sky), and distinct pictures at most 0.82. So similarity only ranks: :func:`shortlist` keeps
the few best above :data:`MATCH_SIMILARITY`, and the workflow runs detection on each of them.
"""

from __future__ import annotations

import cv2
import numpy as np

from .transform import luma

__all__ = ["MATCH_SIMILARITY", "SHORTLIST_MARGIN", "fingerprint", "shortlist", "similarities"]

_SIDE = 64
#: Below this similarity to every registered original, a leak matches none of them.
MATCH_SIMILARITY = 0.5
#: Originals within this much of the best similarity are all tried by detection.
SHORTLIST_MARGIN = 0.1


def fingerprint(image: np.ndarray) -> bytes:
    """Return the 4,096-byte fingerprint of an image array."""
    small = cv2.resize(luma(image), (_SIDE, _SIDE), interpolation=cv2.INTER_AREA)
    detail = small - cv2.GaussianBlur(small, (0, 0), 4.0)
    detail -= detail.mean()
    peak = float(np.abs(detail).max())
    if peak == 0:
        return bytes(_SIDE * _SIDE)
    return np.rint(detail * (127 / peak)).astype(np.int8).tobytes()


def similarities(probe: bytes, prints: list[bytes]) -> np.ndarray:
    """Correlation of ``probe`` with each of ``prints`` (float array, same order)."""
    if not prints:
        return np.zeros(0)
    matrix = np.frombuffer(b"".join(prints), np.int8).reshape(len(prints), -1).astype(np.float32)
    vec = np.frombuffer(probe, np.int8).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(vec))
    return (matrix @ vec) / np.where(norms > 0, norms, 1.0)


def shortlist(probe: bytes, prints: list[bytes], *, most: int = 3) -> list[int]:
    """Indices of the originals a leak may come from, most similar first (maybe none)."""
    sims = similarities(probe, prints)
    if sims.size == 0 or sims.max() < MATCH_SIMILARITY:
        return []
    order = np.argsort(-sims, kind="stable")[:most]
    floor = max(MATCH_SIMILARITY, float(sims[order[0]]) - SHORTLIST_MARGIN)
    return [int(i) for i in order if sims[i] >= floor]
