"""Luma extraction, the working grid and the wavelet bands that carry the mark.

The mark is defined on a *working grid*: the luma resized so that its shorter side is
:data:`WORK_SIDE` pixels (rounded to a multiple of 16). Its position in the picture therefore
does not depend on the file's resolution: a 24 MP original and its 1080-pixel re-share land on
the same grid, and the marked bands (:data:`MARKED_LEVELS` of a :data:`WAVELET` transform,
periods of roughly 1/64 to 1/16 of the shorter side) survive downscaling and strong JPEG.
"""

from __future__ import annotations

import cv2
import numpy as np
import pywt

from .errors import ImageArrayError

__all__ = [
    "LEVEL_GAINS",
    "MARKED_LEVELS",
    "MAX_WORKING_PIXELS",
    "MIN_LEAK_SIDE",
    "MIN_SIDE",
    "WAVELET",
    "WORK_SIDE",
    "analyse",
    "band_gains",
    "check_grid",
    "check_image",
    "check_shape",
    "grid_gains",
    "luma",
    "resize",
    "synthesise",
    "synthesise_flat",
    "to_working",
    "working_shape",
]

WAVELET = "db4"
#: Marked detail levels (1 = finest) and the relative amplitude of the mark in each.
LEVEL_GAINS = {3: 1.0, 4: 1.0}
MARKED_LEVELS = tuple(LEVEL_GAINS)
WORK_SIDE = 512
#: Shortest side (pixels) of an image that can carry a traceable mark.
MIN_SIDE = 64
#: Shortest side (pixels) of a leak that is still searched for a mark: a thumbnail keeps a
#: little of the coarsest marked band.
MIN_LEAK_SIDE = 32
#: Largest working grid (pixels) the engine accepts: 10 × ``WORK_SIDE``² = 2,621,440, which is
#: a picture up to about 10 times as long as it is high (a 12000×2000 panorama, 6:1, has a
#: 3072×512 grid). Working memory grows with the grid, not the file: registering an original
#: costs about 230 bytes per grid pixel (0.6 GB at this limit, 0.1 GB for a 3:2 photo), and a
#: 1×100000 strip would have a 512×51,200,000 grid (over 100 GB).
MAX_WORKING_PIXELS = 10 * WORK_SIDE * WORK_SIDE
_ALIGN = 2 ** max(MARKED_LEVELS)
_MODE = "periodization"


def check_shape(shape: tuple[int, ...], *, least: int = MIN_SIDE) -> None:
    """Raise :class:`ImageArrayError` unless an image of ``shape`` (height, width, ...) has
    ``least`` pixels a side (:data:`MIN_SIDE` to carry a mark, :data:`MIN_LEAK_SIDE` to be
    searched for one) and its working grid is at most :data:`MAX_WORKING_PIXELS`; nothing is
    allocated."""
    h, w = (int(n) for n in shape[:2])
    if min(h, w) < least:
        raise ImageArrayError(
            f"an image of {w}×{h} is too small to "
            f"{'carry' if least >= MIN_SIDE else 'show'} a mark (at least {least} pixels a side)"
        )
    check_grid((h, w))


def check_grid(shape: tuple[int, ...]) -> None:
    """Raise :class:`ImageArrayError` if the working grid of an image of ``shape`` would hold
    more than :data:`MAX_WORKING_PIXELS` (judged from the shape alone)."""
    h, w = (int(n) for n in shape[:2])
    gh, gw = working_shape((h, w))
    if gh * gw > MAX_WORKING_PIXELS:
        raise ImageArrayError(
            f"an image of {w}×{h} is too elongated to trace or mark: its working grid would be "
            f"{gw}×{gh} = {gh * gw:,} pixels, above the limit of {MAX_WORKING_PIXELS:,} "
            "(aspect ratios up to about 10:1 are accepted)"
        )


def check_image(image: object, *, least: int = MIN_SIDE) -> None:
    """Raise :class:`ImageArrayError` unless ``image`` is an array the engine can work on:
    uint8 or uint16, H×W or H×W×1..4, and of a shape :func:`check_shape` accepts with
    ``least``."""
    if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
        raise ImageArrayError("an image must be a uint8 or uint16 numpy array")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
        raise ImageArrayError(f"an image is H×W, H×W×2, H×W×3 or H×W×4, not {image.shape}")
    check_shape(image.shape, least=least)


def luma(image: np.ndarray) -> np.ndarray:
    """Return the BT.601 luma of ``image`` as float32 in 0..255 units.

    Accepts H×W (gray), H×W×2 (gray + alpha), H×W×3 (RGB) and H×W×4 (RGBA), uint8 or uint16;
    alpha is ignored.
    """
    if image.ndim == 2:
        y = image
    elif image.ndim == 3 and image.shape[2] in (1, 2):
        y = image[..., 0]
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        y = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    else:
        raise ImageArrayError(f"unsupported image shape {image.shape}")
    y = y.astype(np.float32)
    if image.dtype == np.uint16:
        y *= np.float32(255.0 / 65535.0)
    return y


def working_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return the (height, width) of the working grid for an image of ``shape``."""
    h, w = shape[:2]
    s = WORK_SIDE / min(h, w)
    return (
        max(_ALIGN, round(h * s / _ALIGN) * _ALIGN),
        max(_ALIGN, round(w * s / _ALIGN) * _ALIGN),
    )


def resize(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D or 3-D array to (height, width): area-averaging down, bicubic up."""
    h, w = shape
    if plane.shape[:2] == (h, w):
        return plane
    down = h * w < plane.shape[0] * plane.shape[1]
    return cv2.resize(plane, (w, h), interpolation=cv2.INTER_AREA if down else cv2.INTER_CUBIC)


def to_working(image: np.ndarray) -> np.ndarray:
    """Luma of ``image`` on its working grid (float32)."""
    return resize(luma(image), working_shape(image.shape))


def analyse(plane: np.ndarray) -> list[np.ndarray]:
    """Wavelet detail bands of a working-grid plane at :data:`MARKED_LEVELS`, fixed order."""
    coeffs = pywt.wavedec2(plane, WAVELET, level=max(MARKED_LEVELS), mode=_MODE)
    top = max(MARKED_LEVELS)
    return [band for level in MARKED_LEVELS for band in coeffs[top - level + 1]]


def band_gains(bands: list[np.ndarray]) -> np.ndarray:
    """Per-coefficient gain (float32, in :func:`analyse` order) for bands of that layout."""
    levels = [level for level in MARKED_LEVELS for _ in range(3)]
    return np.concatenate(
        [np.full(b.size, LEVEL_GAINS[lv], np.float32) for lv, b in zip(levels, bands, strict=True)]
    )


def _band_shapes(shape: tuple[int, int]) -> list[tuple[int, int]]:
    """Shapes of the bands :func:`analyse` returns for a grid of ``shape``, in its order."""
    top = max(MARKED_LEVELS)
    shapes = pywt.wavedecn_shapes(shape, WAVELET, mode=_MODE, level=top)
    return [tuple(shapes[top - lv + 1][k]) for lv in MARKED_LEVELS for k in ("ad", "da", "dd")]


def grid_gains(shape: tuple[int, int]) -> np.ndarray:
    """:func:`band_gains` for a grid of ``shape`` (h, w), computed from the shape alone: one
    gain per marked coefficient, in :func:`analyse` order."""
    levels = [level for level in MARKED_LEVELS for _ in range(3)]
    return np.concatenate(
        [
            np.full(h * w, LEVEL_GAINS[lv], np.float32)
            for lv, (h, w) in zip(levels, _band_shapes(shape), strict=True)
        ]
    )


def synthesise_flat(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """:func:`synthesise` of the marked coefficients given flat, in :func:`analyse` order."""
    bands, start = [], 0
    for h, w in _band_shapes(shape):
        bands.append(values[start : start + h * w].reshape(h, w))
        start += h * w
    return synthesise(bands, shape)


def synthesise(bands: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`analyse` with every other band zero: the pixel pattern of ``bands``."""
    top = max(MARKED_LEVELS)
    # Zero bands of the right shapes, without transforming an image of zeros every call.
    shapes = pywt.wavedecn_shapes(shape, WAVELET, mode=_MODE, level=top)
    coeffs: list = [np.zeros(shapes[0], np.float32)] + [
        tuple(np.zeros(d[k], np.float32) for k in ("ad", "da", "dd")) for d in shapes[1:]
    ]
    it = iter(bands)
    for level in MARKED_LEVELS:
        coeffs[top - level + 1] = (next(it), next(it), next(it))
    return pywt.waverec2(coeffs, WAVELET, mode=_MODE).astype(np.float32)
