"""Reading and writing images: the only engine module that touches files.

``read_image`` returns the pixels as stored (no EXIF rotation applied), as a numpy array:
H×W (gray), H×W×2 (gray + alpha), H×W×3 (RGB) or H×W×4 (RGBA), uint8 — or uint16 for 16-bit
PNG and TIFF. ``write_image(path, pixels, like=original)`` writes them back in the original's
format with its ICC profile and EXIF (so its orientation), and for JPEG its quantisation
tables and chroma subsampling, so a copy is the same size and quality as what it copies.
Files are written to a temporary name in the same folder and renamed into place.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from .errors import ImageTooLargeError, MediaError, UnsupportedMediaError

__all__ = ["FORMATS", "encode_image", "image_format", "read_image", "write_image"]

#: Formats read and written, by Pillow's name, with their usual suffixes.
FORMATS = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "WEBP": (".webp",),
    "TIFF": (".tif", ".tiff"),
}
_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I"}

Source = str | os.PathLike[str] | bytes


def _name(source: Source) -> str:
    return "<bytes>" if isinstance(source, bytes) else os.fspath(source)


def _check_size(name: str, img: Image.Image) -> None:
    if img.format not in FORMATS:
        raise UnsupportedMediaError(
            f"{name}: {img.format} images are not supported (use {', '.join(FORMATS)})"
        )
    w, h = img.size
    if w == 0 or h == 0:
        raise MediaError(f"{name}: the image is empty ({w}×{h})")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and w * h > limit:
        raise ImageTooLargeError(
            f"{name}: {w}×{h} = {w * h:,} pixels exceeds the limit of {limit:,} "
            "(a possible decompression bomb)"
        )


def _open(source: Source, *, decode: bool = True) -> Image.Image:
    """Open (and unless told not to, fully decode) an image, translating every failure into
    our errors."""
    name = _name(source)
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except FileNotFoundError as exc:
        raise MediaError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise MediaError(f"{name}: is a directory, not an image") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaError(f"{name}: not an image in a format leaktrace reads") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{name}: cannot read ({exc})") from exc
    try:
        _check_size(name, img)
        if decode:
            img.load()
    except MediaError:
        img.close()
        raise
    except Image.DecompressionBombError as exc:
        img.close()
        raise ImageTooLargeError(f"{name}: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        img.close()
        raise MediaError(f"{name}: the file is truncated or corrupt ({exc})") from exc
    return img


def _is_wide_colour_png(source: Source, img: Image.Image) -> bool:
    """16-bit colour PNGs, which Pillow would silently reduce to 8 bits."""
    if img.format != "PNG" or img.mode not in ("RGB", "RGBA"):
        return False
    if isinstance(source, bytes):
        head = source[:26]
    else:
        with Path(source).open("rb") as fh:
            head = fh.read(26)
    return len(head) > 24 and head[24] == 16


def read_image(source: Source) -> np.ndarray:
    """Read an image file (path or bytes) into a numpy array of its stored pixels.

    Raises
    ------
    MediaError
        Missing, truncated or corrupt file (``UnsupportedMediaError`` for a format or pixel
        layout we do not handle, ``ImageTooLargeError`` above Pillow's pixel limit).

    Examples
    --------
    >>> pixels = read_image("photo.jpg")   # doctest: +SKIP
    >>> pixels.shape, pixels.dtype         # doctest: +SKIP
    ((4000, 6000, 3), dtype('uint8'))
    """
    with _open(source) as img:
        return _pixels(source, img)


def image_format(source: Source) -> str:
    """The format (a key of :data:`FORMATS`) of an image file, from its header: a format or
    size :func:`read_image` refuses raises the same error (a truncated body is found only by
    reading it)."""
    with _open(source, decode=False) as img:
        return str(img.format)


def _pixels(source: Source, img: Image.Image) -> np.ndarray:
    if _is_wide_colour_png(source, img):
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        wide = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if wide is None:
            raise MediaError(f"{_name(source)}: cannot decode 16-bit PNG")
        code = cv2.COLOR_BGRA2RGBA if wide.shape[2] == 4 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(wide, code)
    mode = img.mode
    if mode in _WIDE_MODES:
        arr = np.asarray(img)
        if arr.dtype != np.uint16 and (arr.min() < 0 or arr.max() > 65535):
            raise UnsupportedMediaError(f"{_name(source)}: 32-bit images are not supported")
        return arr.astype(np.uint16)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "PA", "La", "RGBa", "RGBX"):
        img = img.convert({"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}.get(mode, "RGB"))
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise UnsupportedMediaError(f"{_name(source)}: pixel mode {mode} is not supported")
    return np.asarray(img).copy()


def _save_options(like: Image.Image, fmt: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for k in ("icc_profile", "exif", "dpi"):
        if like.info.get(k):
            opts[k] = like.info[k]
    if fmt == "JPEG" and like.format == "JPEG":
        opts["qtables"] = like.quantization  # type: ignore[attr-defined]
        opts["subsampling"] = JpegImagePlugin.get_sampling(like)
        opts["progressive"] = bool(like.info.get("progressive"))
    elif fmt == "TIFF" and like.format == "TIFF":
        opts["compression"] = like.info.get("compression", "raw")
    return opts


def _default_options(fmt: str) -> dict[str, Any]:
    return {"JPEG": {"quality": 95}, "WEBP": {"quality": 95, "method": 4}}.get(fmt, {})


def _format_for(path: Path, like: Image.Image | None) -> str:
    suffix = path.suffix.lower()
    for fmt, suffixes in FORMATS.items():
        if suffix in suffixes:
            return fmt
    if like is not None and like.format in FORMATS:
        return like.format
    raise UnsupportedMediaError(f"{path}: cannot tell the format from the suffix {suffix!r}")


def _encode(pixels: np.ndarray, fmt: str, opts: dict[str, Any]) -> bytes:
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        if fmt not in ("PNG", "TIFF"):
            raise UnsupportedMediaError(f"16-bit colour cannot be written as {fmt}")
        code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, buf = cv2.imencode(".png" if fmt == "PNG" else ".tiff", cv2.cvtColor(pixels, code))
        if not ok:
            raise MediaError(f"OpenCV could not encode a 16-bit {fmt}")
        return buf.tobytes()
    if pixels.dtype == np.uint16:
        img = Image.fromarray(pixels)  # 2-D uint16 becomes mode I;16
    else:
        img = Image.fromarray(pixels)
        if fmt == "JPEG" and img.mode in ("RGBA", "LA"):
            raise UnsupportedMediaError("JPEG has no alpha channel; write PNG, WebP or TIFF")
    out = io.BytesIO()
    try:
        img.save(out, format=fmt, **opts)
    except (OSError, ValueError, TypeError) as exc:
        raise MediaError(f"cannot encode {fmt}: {exc}") from exc
    return out.getvalue()


def encode_image(
    pixels: np.ndarray,
    path: str | os.PathLike[str],
    *,
    like: Source | None = None,
    quality: int | None = None,
) -> bytes:
    """The bytes :func:`write_image` would write to ``path`` (format from its suffix, or from
    ``like``): for callers that place the file themselves."""
    target = Path(path)
    if like is not None:
        with _open(like) as ref:
            fmt = _format_for(target, ref)
            opts = _save_options(ref, fmt)
    else:
        fmt = _format_for(target, None)
        opts = _default_options(fmt)
    if quality is not None:
        opts.pop("qtables", None)
        opts["quality"] = int(quality)
    elif fmt == "WEBP" and "quality" not in opts:
        opts.update(_default_options(fmt))
    return _encode(pixels, fmt, opts)


def write_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    like: Source | None = None,
    quality: int | None = None,
) -> Path:
    """Write ``pixels`` to ``path`` atomically (temporary file, then rename).

    With ``like`` (the original's path or bytes) the output keeps its format when the suffix
    does not say otherwise, its ICC profile, EXIF and DPI, and for JPEG its quantisation tables
    and chroma subsampling. ``quality`` forces a JPEG/WebP quality instead.
    """
    target = Path(path)
    data = encode_image(pixels, target, like=like, quality=quality)
    # A new name in the same folder, created with the usual permissions (umask applies).
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"cannot write {target}: {exc}") from exc
    return target
