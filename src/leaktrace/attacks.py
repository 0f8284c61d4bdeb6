"""What leakers do to pictures, as pure functions on arrays (shared by tests and benchmarks).

Every function takes an H×W×3 RGB uint8 array and returns a new one (the codec round trips take
any layout the engine marks and, as a re-share does, keep 8 bits and no alpha); none of them
knows about watermarks. :data:`STANDARD` lists the named attacks the engine is held to.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "BLIND",
    "GEOMETRIC",
    "SOFTENING",
    "STANDARD",
    "blur",
    "box_blur",
    "brightness",
    "chain",
    "collage",
    "contrast",
    "crop",
    "flip",
    "gamma",
    "grayscale",
    "hsv_shift",
    "jpeg",
    "median",
    "noise",
    "rescale",
    "reshare",
    "restore_size",
    "rotate",
    "screenshot",
    "skew",
    "soften",
    "stretch",
    "webp",
]

Attack = Callable[[np.ndarray], np.ndarray]


def _codec(image: np.ndarray, fmt: str, **opts: object) -> np.ndarray:
    # What a re-share does to any picture the engine marks: 8 bits, no alpha.
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3:
        image = image[..., 0] if image.shape[2] in (1, 2) else image[..., :3]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format=fmt, **opts)
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


def median(image: np.ndarray, size: int) -> np.ndarray:
    """Median filter over ``size``×``size`` pixels (odd)."""
    return cv2.medianBlur(image, size)


def box_blur(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over ``size``×``size`` pixels."""
    return cv2.blur(image, (size, size))


def soften(image: np.ndarray, factor: float, *, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Downscale by ``factor`` (area averaging) and bring back up to the same size with
    ``interpolation``: a same-size copy that lost the detail finer than the small one held."""
    h, w = image.shape[:2]
    return cv2.resize(rescale(image, factor), (w, h), interpolation=interpolation)


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


def crop(image: np.ndarray, area: float, *, at: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """Keep a rectangle of the same aspect covering ``area`` of the picture.

    ``at`` places it: (0, 0) top-left, (0.5, 0.5) centred, (1, 1) bottom-right.
    """
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * area**0.5)), max(1, round(w * area**0.5))
    y, x = round((h - ch) * at[0]), round((w - cw) * at[1])
    return np.ascontiguousarray(image[y : y + ch, x : x + cw])


def rotate(image: np.ndarray, degrees: float, *, crop_borders: bool = False) -> np.ndarray:
    """Rotate counter-clockwise about the centre, on a canvas that holds it all (black corners),
    or cropped to the largest upright rectangle with no border (``crop_borders``)."""
    h, w = image.shape[:2]
    a = np.deg2rad(degrees)
    cos, sin = abs(np.cos(a)), abs(np.sin(a))
    nw, nh = round(w * cos + h * sin), round(w * sin + h * cos)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    m[:, 2] += ((nw - w) / 2, (nh - h) / 2)
    out = cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR)
    if not crop_borders:
        return out
    # Largest axis-aligned rectangle inside the rotated w×h one.
    long_side, short_side = max(w, h), min(w, h)
    if short_side <= 2 * sin * cos * long_side or abs(sin - cos) < 1e-10:
        x = 0.5 * short_side
        cw, chh = (x / sin, x / cos) if w >= h else (x / cos, x / sin)
    else:
        cos2 = cos * cos - sin * sin
        cw, chh = (w * cos - h * sin) / cos2, (h * cos - w * sin) / cos2
    cw, chh = int(cw), int(chh)
    y0, x0 = (nh - chh) // 2, (nw - cw) // 2
    return np.ascontiguousarray(out[y0 : y0 + chh, x0 : x0 + cw])


def flip(image: np.ndarray) -> np.ndarray:
    """Mirror left–right."""
    return np.ascontiguousarray(image[:, ::-1])


def stretch(image: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Resize each axis by its own factor (an aspect-ratio change)."""
    h, w = image.shape[:2]
    return cv2.resize(image, (round(w * fx), round(h * fy)), interpolation=cv2.INTER_AREA)


def skew(image: np.ndarray, amount: float, *, seed: int = 0) -> np.ndarray:
    """Perspective: move each corner inwards by up to ``amount`` of the side, at random."""
    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    jitter = (
        rng.uniform(0, amount, (4, 2)) * (w, h) * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    )
    dst = (src + jitter).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_LINEAR)


def hsv_shift(image: np.ndarray, *, hue: float = 0, saturation: float = 1.0) -> np.ndarray:
    """Rotate hue by ``hue`` degrees and scale saturation."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue / 2) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
    return cv2.cvtColor(np.rint(hsv).astype(np.uint8), cv2.COLOR_HSV2RGB)


def screenshot(image: np.ndarray, scale: float = 1.0, *, seed: int = 0) -> np.ndarray:
    """A phone or desktop screenshot: the picture scaled and pasted into a larger canvas with a
    coloured status bar, a caption bar with text and margins."""
    rng = np.random.default_rng(seed)
    shown = rescale(image, scale) if scale != 1 else image
    h, w = shown.shape[:2]
    top, bottom, side = 60 + int(rng.integers(0, 40)), 140 + int(rng.integers(0, 60)), 24
    canvas = np.empty((h + top + bottom, w + 2 * side, 3), np.uint8)
    canvas[:] = (246, 246, 248)
    canvas[:top] = (20, 24, 40)
    canvas[top + h :, :] = (255, 255, 255)
    canvas[top : top + h, side : side + w] = shown[..., :3]
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(
        canvas,
        "9:41  leaktrace-test  100%",
        (side, top - 20),
        font,
        0.8,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    cv2.putText(
        canvas,
        "look what I found #exclusive",
        (side, top + h + 50),
        font,
        1.0,
        (30, 30, 30),
        2,
        cv2.LINE_AA,
    )
    cv2.rectangle(canvas, (side, top + h + 80), (side + 160, top + h + 120), (0, 120, 255), -1)
    return canvas


def collage(image: np.ndarray, others: list[np.ndarray], *, share: float = 0.3) -> np.ndarray:
    """A sheet in which the picture fills ``share`` of the area, at its own size, on the left;
    ``others`` fill the rest in a 2×2 grid of tiles."""
    h, w = image.shape[:2]
    rest = round(w / share) - w
    sheet = np.full((h, w + rest, 3), 255, np.uint8)
    sheet[:, :w] = image[..., :3]
    th, tw = h // 2, rest // 2
    for i in range(4):
        tile = cv2.resize(
            others[i % len(others)][..., :3], (tw - 4, th - 4), interpolation=cv2.INTER_AREA
        )
        y, x = (i // 2) * th + 2, w + (i % 2) * tw + 2
        sheet[y : y + th - 4, x : x + tw - 4] = tile
    return sheet


def chain(image: np.ndarray) -> np.ndarray:
    """Re-sharing: JPEG 80 → resize 0.8 → JPEG 70."""
    return jpeg(rescale(jpeg(image, 80), 0.8), 70)


def reshare(image: np.ndarray) -> np.ndarray:
    """JPEG 80 → crop 90 % → longest side 1080 → JPEG 70 → screenshot."""
    step = crop(jpeg(image, 80), 0.9, at=(0.3, 0.6))
    step = rescale(step, 1080 / max(step.shape[:2]))
    return screenshot(jpeg(step, 70), 1.0, seed=1)


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


#: Same-size (or nearly) leaks that lost detail: the original as the leak shows it is softer.
SOFTENING: dict[str, Attack] = {
    "blur1.5": lambda im: blur(im, 1.5),
    "blur2.5": lambda im: blur(im, 2.5),
    "median5": lambda im: median(im, 5),
    "median7": lambda im: median(im, 7),
    "box5": lambda im: box_blur(im, 5),
    **{
        f"soften{f}-{name}": partial(soften, factor=f, interpolation=inter)
        for f in (0.3, 0.4)
        for name, inter in (("bicubic", cv2.INTER_CUBIC), ("bilinear", cv2.INTER_LINEAR))
    },
    "jpeg20": lambda im: jpeg(im, 20),
    "webp40": lambda im: webp(im, 40),
    "noise15": lambda im: noise(im, 15.0),
    "chain-soft": lambda im: jpeg(rescale(blur(jpeg(im, 70), 1.0), 0.5), 60),
}


def _j75(image: np.ndarray) -> np.ndarray:
    return jpeg(image, 75)


def _rotated_j75(image: np.ndarray, *, degrees: float, crop_borders: bool) -> np.ndarray:
    return jpeg(rotate(image, degrees, crop_borders=crop_borders), 75)


def _png(image: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


#: What leakers do to geometry (issue "survive what leakers do"), each on top of JPEG 75
#: unless its name says otherwise. ``collage`` needs other pictures and is not listed.
GEOMETRIC: dict[str, Attack] = {
    "crop50": lambda im: _j75(crop(im, 0.5)),
    "crop50-corner": lambda im: _j75(crop(im, 0.5, at=(0.1, 0.85))),
    "crop25": lambda im: _j75(crop(im, 0.25)),
    "crop25-corner": lambda im: _j75(crop(im, 0.25, at=(0.9, 0.2))),
    "crop10": lambda im: _j75(crop(im, 0.1)),
    "crop10-corner": lambda im: _j75(crop(im, 0.1, at=(0.15, 0.7))),
    **{
        f"rot{d:+d}": partial(_rotated_j75, degrees=d, crop_borders=False)
        for d in (2, -2, 7, 15, 45, 90)
    },
    **{
        f"rot{d:+d}-cropped": partial(_rotated_j75, degrees=d, crop_borders=True)
        for d in (2, -2, 7, 15, 45)
    },
    "flip": lambda im: _j75(flip(im)),
    "scale0.25": lambda im: _j75(rescale(im, 0.25)),
    "scale2": lambda im: _j75(rescale(im, 2.0)),
    "aspect0.8": lambda im: _j75(stretch(im, 1.0, 0.8)),
    "skew10": lambda im: _j75(skew(im, 0.1, seed=2)),
    "screenshot-png": lambda im: _png(screenshot(im, 0.8, seed=3)),
    "screenshot-jpeg85": lambda im: jpeg(screenshot(im, 1.25, seed=4), 85),
    "reshare": reshare,
    "tone+crop50": lambda im: _j75(
        crop(
            hsv_shift(contrast(brightness(im, 20), 0.85), hue=12, saturation=1.3),
            0.5,
            at=(0.3, 0.4),
        )
    ),
}


def _j75_after(attack: Attack) -> Attack:
    return lambda im: _j75(attack(im))


#: What blind detection (no original: the key, the media id and the original's size) is held
#: to (issue 11): rotations turned back or cropped, flips, aspect changes, rescales, crops and
#: screenshots, each on top of JPEG 75 unless its name says otherwise.
BLIND: dict[str, Attack] = {
    "none": lambda im: im,
    "jpeg75": _j75,
    **{
        f"rot{d:+d}{tail}": partial(_rotated_j75, degrees=d, crop_borders=cropped)
        for d in (2, -2, 5, -5, 10, -10, 20, -20)
        for tail, cropped in (("", False), ("-cropped", True))
    },
    "flip": GEOMETRIC["flip"],
    "aspect0.8": GEOMETRIC["aspect0.8"],
    "aspect1.25": _j75_after(partial(stretch, fx=1.0, fy=1.25)),
    "scale0.4": _j75_after(partial(rescale, factor=0.4)),
    "scale2": GEOMETRIC["scale2"],
    "crop50": GEOMETRIC["crop50"],
    "crop50-corner": GEOMETRIC["crop50-corner"],
    "screenshot-png": GEOMETRIC["screenshot-png"],
    "screenshot-jpeg85": GEOMETRIC["screenshot-jpeg85"],
}
