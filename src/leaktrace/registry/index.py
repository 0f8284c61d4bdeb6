"""placeholder"""

from __future__ import annotations

import numpy as np

INDEXED_FEATURES = 128
_DESCRIPTOR = 128


def indexed_descriptors(blob: bytes) -> np.ndarray:
    """The descriptors of an original's stored features the index keeps (uint8 rows): at
    most :data:`INDEXED_FEATURES`, taken evenly through them (they are stored cell by cell)."""
    rows = np.frombuffer(blob, np.uint8).reshape(-1, _DESCRIPTOR)
    if len(rows) <= INDEXED_FEATURES:
        return rows
    pick = np.linspace(0, len(rows), INDEXED_FEATURES, endpoint=False).astype(np.intp)
    return rows[pick]
