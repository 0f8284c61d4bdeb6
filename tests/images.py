"""Synthetic test pictures and hand-made image files (no corpus needed)."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image


def photo(h: int = 192, w: int = 256, *, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 picture: smooth shading plus fine texture (which carries a mark)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 90 + 60 * np.sin(x / 37 + seed) * np.cos(y / 23) + 40 * (x / w)
    texture = cv2.GaussianBlur(rng.normal(0, 30, (h, w, 3)).astype(np.float32), (0, 0), 1.5)
    img = np.clip(base[..., None] + texture + np.float32([10, 0, -10]), 0, 255).astype(np.uint8)
    if channels == 1:
        return np.ascontiguousarray(img[..., 1])
    if channels == 2:
        return np.dstack([img[..., 1], np.full((h, w), 200, np.uint8)])
    if channels == 4:
        return np.dstack([img, np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)])
    return img


def wide(pixels: np.ndarray) -> np.ndarray:
    """The same picture in 16 bits, with low bits that 8 bits would lose."""
    noise = (np.arange(pixels.size) % 7).astype(np.uint16).reshape(pixels.shape)
    return pixels.astype(np.uint16) * 257 + noise


def encode(pixels: np.ndarray | Image.Image, fmt: str, **opts) -> bytes:
    """The bytes of ``pixels`` saved as ``fmt`` (HEIF through pillow-heif)."""
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(img).save(out, **opts)
    else:
        img.save(out, fmt, **opts)
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int, *, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG that declares ``width``×``height`` and holds (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    )


def png_gray_alpha16(h: int, w: int) -> bytes:
    """A valid 16-bit gray + alpha PNG (which Pillow cannot write)."""
    values = (np.arange(h * w * 2, dtype=">u2") * 97).reshape(h, w * 2)
    raw = b"".join(b"\0" + row.tobytes() for row in values)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose start-of-frame header is patched to declare ``width``×``height``."""
    out = bytearray(data)
    at = 2
    while at + 4 <= len(out):
        code, size = out[at + 1], int.from_bytes(out[at + 2 : at + 4], "big")
        if code in (0xC0, 0xC1, 0xC2):
            out[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(out)
        at += 2 + size
    raise ValueError("no start-of-frame marker")


def foggy(h: int = 384, w: int = 576, *, grain: float = 1.5, seed: int = 0) -> np.ndarray:
    """A feature-poor picture (fog, sky): smooth shading and a faint pixel grain, which a
    rescale and JPEG wipe out, so that SIFT finds nothing to match."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 120 + 50 * np.sin(x / 150 + 1) * np.cos(y / 110) + 30 * (y / h)
    img = np.clip(shade + rng.normal(0, grain, (h, w)).astype(np.float32), 0, 255)
    return np.repeat(img[..., None], 3, axis=2).astype(np.uint8)
