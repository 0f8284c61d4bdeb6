"""Perceptual mask: where the mark may be strong (texture, edges) and where it must vanish.

The mask is the local contrast of the luma (standard deviation over a Gaussian window of
about 5 pixels on the working grid), ramped from 0 at :data:`FLAT_STD` to 1 at
``FLAT_STD + RAMP_STD`` levels. Sky, skin and smooth gradients fall below the ramp and get no
mark at all; fine texture and edges get the full strength.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FLAT_STD", "RAMP_STD", "perceptual_mask"]

FLAT_STD = 1.0
RAMP_STD = 6.0


def perceptual_mask(plane: np.ndarray) -> np.ndarray:
    """Return a float32 mask in [0, 1] of the same shape as the luma ``plane``.

    Examples
    --------
    >>> import numpy as np
    >>> float(perceptual_mask(np.full((64, 64), 128, np.float32)).max())
    0.0
    """
    mean = cv2.GaussianBlur(plane, (0, 0), 2.0)
    var = cv2.GaussianBlur(plane * plane, (0, 0), 2.0) - mean * mean
    std = np.sqrt(np.maximum(var, 0.0))
    ramp = np.clip((std - FLAT_STD) / RAMP_STD, 0.0, 1.0)
    return cv2.GaussianBlur(ramp, (0, 0), 1.5)
