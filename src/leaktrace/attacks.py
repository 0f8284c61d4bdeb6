"""What leakers do to pictures, as pure functions on arrays (shared by tests and benchmarks).

Every function takes an H×W×3 RGB uint8 array and returns a new one; none of them knows about
watermarks. :data:`STANDARD` lists the named attacks the engine is held to.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "STANDARD",
    "blur",
    "brightness",
    "chain",
    "contrast",
    "gamma",
    "grayscale",
    "jpeg",
    "noise",
    "rescale",
    "restore_size",
    "webp",
]

Attack = Callable[[np.ndarray], np.ndarray]


def _codec(image: np.ndarray, fmt: str, **opts: object) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **opts)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip at ``quality`` with 4:2:0 chroma subsampling."""
    return _codec(image, "JPEG", quality=quality, subsampling=2)


def webp(image: np.ndarray, quality: int) -> np.ndarray:
    """Lossy WebP round trip at ``quality``."""
    return _codec(image, "WEBP", quality=quality, method=4)


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize both sides by ``factor`` (area averaging down, bicubic up)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    inter = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=inter)


def restore_size(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize back to an original's (height, width), as an informed detector does."""
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur."""
    return cv2.GaussianBlur(image, (0, 0), sigma)


def noise(image: np.ndarray, sigma: float, *, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise of standard deviation ``sigma`` levels."""
    rng = np.random.default_rng(seed)
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _lut(image: np.ndarray, curve: np.ndarray) -> np.ndarray:
    return cv2.LUT(image, np.clip(np.rint(curve), 0, 255).astype(np.uint8))


def brightness(image: np.ndarray, offset: float) -> np.ndarray:
    """Add ``offset`` levels (clipped)."""
    return _lut(image, np.arange(256) + offset)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale contrast about mid-grey by ``factor``."""
    return _lut(image, (np.arange(256) - 127.5) * factor + 127.5)


def gamma(image: np.ndarray, value: float) -> np.ndarray:
    """Gamma curve ``255 * (x/255) ** value``."""
    return _lut(image, 255.0 * (np.arange(256) / 255.0) ** value)


def grayscale(image: np.ndarray) -> np.ndarray:
    """Drop colour (BT.601 luma replicated in the three channels)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


def chain(image: np.ndarray) -> np.ndarray:
    """Re-sharing: JPEG 80 → resize 0.8 → JPEG 70."""
    return jpeg(rescale(jpeg(image, 80), 0.8), 70)


#: The attacks of the engine's acceptance list, by name. Resizes return a smaller picture.
STANDARD: dict[str, Attack] = {
    "none": lambda im: im,
    "jpeg90": lambda im: jpeg(im, 90),
    "jpeg70": lambda im: jpeg(im, 70),
    "jpeg50": lambda im: jpeg(im, 50),
    "jpeg30": lambda im: jpeg(im, 30),
    "webp50": lambda im: webp(im, 50),
    "scale0.5": lambda im: rescale(im, 0.5),
    "scale0.35": lambda im: rescale(im, 0.35),
    "blur1": lambda im: blur(im, 1.0),
    "noise8": lambda im: noise(im, 8.0),
    "bright+30": lambda im: brightness(im, 30),
    "contrast0.7": lambda im: contrast(im, 0.7),
    "gamma0.7": lambda im: gamma(im, 0.7),
    "grayscale": grayscale,
    "chain": chain,
}
