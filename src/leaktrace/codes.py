"""Codewords and the keyed layout that spreads them over the marked coefficients.

Every recipient of a media item gets a codeword of :data:`CODE_LENGTH` ±1 symbols derived
from (key, media id, recipient). The layout assigns every marked coefficient to one code
position (each position gets an equal share, scattered over the whole frame so a crop keeps
part of every position) and a ±1 chip. Both are keyed: without the key they can be neither
estimated nor forged. Context strings carry the format version that introduced the stream
(see :data:`FORMAT_VERSION`) so that a future engine can keep tracing copies made by this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .keys import Key, keyed_bytes

__all__ = ["CODE_LENGTH", "FORMAT_VERSION", "Layout", "codeword", "codewords", "layout"]

CODE_LENGTH = 1024
#: Version of what a copy carries. 2: the v1 codeword and layout plus the sync template
#: (:mod:`leaktrace.sync`). Each keyed stream's context names the version that introduced it,
#: so the codewords and layouts of version-1 copies are still those of today.
FORMAT_VERSION = 2
_STREAMS = 1  # version of the codeword and layout streams


def _signs(raw: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(raw)[:n].astype(np.float32) * 2.0 - 1.0


def codeword(key: Key, media_id: str, recipient: str, *, length: int = CODE_LENGTH) -> np.ndarray:
    """The ±1 (float32) codeword of ``recipient`` for ``media_id``."""
    ctx = f"leaktrace/v{_STREAMS}/codeword\x00{media_id}\x00{recipient}"
    return _signs(keyed_bytes(key, ctx, (length + 7) // 8), length)


def codewords(
    key: Key, media_id: str, recipients: Sequence[str], *, length: int = CODE_LENGTH
) -> np.ndarray:
    """Stack the codewords of ``recipients`` into an N × ``length`` float32 matrix."""
    out = np.empty((len(recipients), length), np.float32)
    for i, r in enumerate(recipients):
        out[i] = codeword(key, media_id, r, length=length)
    return out


@dataclass(frozen=True)
class Layout:
    """Which code position (``positions``) and which sign (``chips``) each coefficient carries."""

    positions: np.ndarray
    chips: np.ndarray
    length: int

    def spread(self, symbols: np.ndarray) -> np.ndarray:
        """Coefficient values ``chip * symbol[position]`` for a codeword."""
        return self.chips * symbols[self.positions]

    def collect(self, coefficients: np.ndarray) -> np.ndarray:
        """Soft value per code position: the sum of ``coefficient * chip`` over its share."""
        return np.bincount(self.positions, weights=coefficients * self.chips, minlength=self.length)


def layout(
    key: Key, media_id: str, shape: tuple[int, int], count: int, *, length: int = CODE_LENGTH
) -> Layout:
    """The keyed layout of ``count`` coefficients of a working grid of ``shape``."""
    ctx = f"leaktrace/v{_STREAMS}/layout\x00{media_id}\x00{shape[0]}x{shape[1]}"
    raw = keyed_bytes(key, ctx, 4 * count + (count + 7) // 8)
    order = np.argsort(raw[: 4 * count].view("<u4"), kind="stable")
    positions = np.empty(count, np.intp)
    positions[order] = np.arange(count) % length
    return Layout(positions, _signs(raw[4 * count :], count), length)
