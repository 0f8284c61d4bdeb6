"""Reading and writing images: the only engine module that touches files.

Every read starts with :func:`inspect_image`, which opens the header only and refuses, with a
one-line :class:`~leaktrace.MediaError` naming the file, anything that should not be decoded:
a missing, unreadable or empty file, data that is not an image, a format not accepted for the
purpose, a declared size above :data:`MAX_SIDE` or :data:`MAX_PIXELS`, a shape whose working
grid would exceed :data:`~leaktrace.transform.MAX_WORKING_PIXELS`, an original too small to
carry a mark, a pixel layout we cannot keep, and a JPEG whose data is too short for the size
its header declares. Only then does :func:`read_image` decode.

Originals must be in one of :data:`FORMATS` (what :func:`write_image` writes back); leaks may
also be in one of :data:`LEAK_FORMATS` (BMP, GIF's first frame, AVIF, HEIF/HEIC).

``read_image`` returns the pixels as stored (no EXIF rotation applied), as a numpy array:
H×W (gray), H×W×2 (gray + alpha), H×W×3 (RGB) or H×W×4 (RGBA), uint8 — or uint16 for 16-bit
gray, RGB and RGBA PNG and TIFF (RGB/RGBA through OpenCV, which Pillow would cut to 8 bits).
A file whose data ends before the image does is an error, never a partly grey picture. Python
warnings raised while a file is opened and decoded (Pillow's DecompressionBombWarning, corrupt
EXIF or TIFF metadata) are silenced on purpose: the checks above decide, and metadata we cannot
parse is passed through untouched.

``write_image(path, pixels, like=original)`` writes them back in the original's format with its
ICC profile and EXIF (so its orientation), and for JPEG its quantisation tables and chroma
subsampling, so a copy is the same size and quality as what it copies. 16-bit pixels are written
as 16-bit PNG or TIFF. Files are written to a temporary name in the same folder and renamed into
place.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError, features

from .errors import ImageArrayError, ImageTooLargeError, MediaError, UnsupportedMediaError
from .transform import MIN_SIDE, check_grid


def _quiet_decoders() -> None:
    """Hide the decoders' own warnings (Pillow's "possibly corrupt EXIF data", "truncated
    file"...): our checks decide what is refused, with a one-line message.

    They are filtered once, by the module that warns, when this module is imported. Wrapping
    each decode in ``warnings.catch_warnings`` instead swaps the process-wide filter list and is
    not thread-safe: a job thread leaving it put back the filters it had saved while a request
    built a route's schema inside FastAPI's own ``catch_warnings``, and FastAPI's filter was lost.
    """
    warnings.filterwarnings("ignore", module=r"(PIL|pillow_heif)(\.|$)")


_quiet_decoders()

__all__ = [
    "FORMATS",
    "LEAK_FORMATS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "ImageInfo",
    "Purpose",
    "VIDEO_SUFFIXES",
    "encode_image",
    "image_format",
    "inspect_image",
    "is_video",
    "read_image",
    "write_file",
    "write_image",
]

#: Formats of originals, read and written, by Pillow's name, with their usual suffixes.
FORMATS = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "WEBP": (".webp",),
    "TIFF": (".tif", ".tiff"),
}
#: Formats read for tracing only (leaks arrive in them; copies are never written in them).
#: GIF is read as its first frame; HEIF/HEIC through ``pillow-heif``, without registering it
#: with Pillow (so importing leaktrace changes nothing for other users of Pillow).
LEAK_FORMATS = {
    "BMP": (".bmp",),
    "GIF": (".gif",),
    "AVIF": (".avif",),
    "HEIF": (".heic", ".heif", ".hif"),
}
#: Largest declared pixel count read (64 MP): a 61 MP full-frame photo (9504×6336) passes, a
#: 100 MP medium-format one must be downscaled first. Memory follows the declared size, not
#: the file's: a 257 KB PNG can declare 9400×9400 pixels (265 MB decoded), and marking takes
#: about 11 bytes per pixel more (that one peaked at 1.3 GB).
MAX_PIXELS = 64_000_000
#: Longest side read, in pixels (a 12000×2000 panorama passes).
MAX_SIDE = 20_000

Purpose = Literal["original", "leak"]
Source = str | os.PathLike[str] | bytes

_PURPOSES: dict[str, dict[str, tuple[str, ...]]] = {
    "original": FORMATS,
    "leak": FORMATS | LEAK_FORMATS,
}
_PILLOW_PLUGINS = ["JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "AVIF"]
_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
# Pillow modes read as they are, and those converted (to the mode given) on reading.
_KEEP = {"L", "LA", "RGB", "RGBA"} | _WIDE_MODES
_CONVERT = {"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "YCbCr": "RGB"}
# ... and CMYK, converted to RGB for tracing; an original in CMYK could not be written back.
_LEAK_ONLY_MODES = {"CMYK": "RGB"}
# ISO-BMFF brands of HEIF files (HEVC-coded, and the generic image/sequence brands).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS |= {b"mif1", b"msf1"}
# JPEG start-of-frame markers; arithmetic-coded ones can hold a flat image in very few bytes.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_ARITHMETIC = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_MAX_MARKERS = 10_000


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says, as :func:`inspect_image` found it acceptable.

    ``format`` is Pillow's name (a key of :data:`FORMATS` or :data:`LEAK_FORMATS`; a JPEG
    with a multi-picture extension, which Pillow calls MPO, is "JPEG"). ``mode`` is Pillow's
    pixel mode as stored ("RGB", "L", "P", "I;16", ...). ``bits`` is the bits per sample of
    the array :func:`read_image` returns: 16 for 16-bit gray, RGB and RGBA PNG and TIFF,
    8 otherwise.
    """

    format: str
    width: int
    height: int
    mode: str
    bits: int


def _name(source: Source) -> str:
    return "<bytes>" if isinstance(source, bytes) else os.fspath(source)


def _reason(exc: BaseException) -> str:
    """A library's error message on one line (some end theirs with a newline)."""
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's log lines (libtiff's warnings and errors) around one decode."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


@contextmanager
def _file(source: Source) -> Iterator[tuple[IO[bytes], int]]:
    """The source as an open binary file and its size, with file-system failures translated."""
    name = _name(source)
    if isinstance(source, bytes):
        yield io.BytesIO(source), len(source)
        return
    try:
        st = os.stat(source)
        if stat.S_ISDIR(st.st_mode):
            raise MediaError(f"{name}: is a directory, not an image")
        if not stat.S_ISREG(st.st_mode):
            raise MediaError(f"{name}: not a regular file")
        fh = open(source, "rb")  # closed below, once the caller is done with it
    except FileNotFoundError as exc:
        raise MediaError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise MediaError(f"{name}: is a directory, not an image") from exc
    except PermissionError as exc:
        raise MediaError(f"{name}: permission denied (the file cannot be read)") from exc
    except OSError as exc:
        raise MediaError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    with fh:
        yield fh, st.st_size


def _open_heif(fh: IO[bytes]) -> Image.Image:
    # Imported here: loading libheif costs time that only HEIF files need. Its Pillow plugin
    # class is used directly, never registered with Pillow (no global side effect).
    from pillow_heif import HeifImageFile

    fh.seek(0)
    return HeifImageFile(fh)


def _open_pillow(fh: IO[bytes], name: str, head: bytes) -> Image.Image:
    """Open the header with Pillow (or pillow-heif), translating every failure."""
    try:
        try:
            return Image.open(fh, formats=_PILLOW_PLUGINS)
        except UnidentifiedImageError:
            if head[4:8] != b"ftyp" or head[8:12] not in _HEIF_BRANDS:
                raise
            return _open_heif(fh)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"{name}: too many pixels to read safely ({_reason(exc)})"
        ) from exc
    except UnidentifiedImageError as exc:
        if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis") and not features.check("avif"):
            raise UnsupportedMediaError(
                f"{name}: an AVIF image, and this Pillow was built without AVIF support"
            ) from exc
        raise UnsupportedMediaError(f"{name}: not an image in a format leaktrace reads") from exc
    except Exception as exc:  # decoders of untrusted data fail in many ways: all mean corrupt
        raise MediaError(f"{name}: cannot read the header, corrupt ({_reason(exc)})") from exc


def _png_bits(head: bytes) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR."""
    return (head[24], head[25]) if len(head) >= 26 else (8, 0)


def _tiff_bits(img: Image.Image) -> int:
    tags = getattr(img, "tag_v2", {})
    bits = tags.get(258, (8,))
    return max(bits) if isinstance(bits, tuple) and bits else int(bits or 8)


def _bits(img: Image.Image, head: bytes, name: str, purpose: Purpose) -> int:
    """Bits per sample read_image returns (8 or 16); refuse 16-bit layouts we cannot keep."""
    mode = img.mode
    if mode in _WIDE_MODES:
        return 16
    if img.format == "PNG":
        depth, colour = _png_bits(head)
        if depth == 16 and colour in (2, 6):
            return 16
        if depth == 16 and colour == 4 and purpose == "original":
            raise UnsupportedMediaError(
                f"{name}: a 16-bit gray + alpha PNG cannot be written back as it is "
                "(convert it to 16-bit RGBA, or 8-bit gray + alpha)"
            )
    elif img.format == "TIFF" and _tiff_bits(img) == 16:
        if mode in ("RGB", "RGBA"):
            return 16
        if purpose == "original":
            raise UnsupportedMediaError(
                f"{name}: a 16-bit {mode} TIFF cannot be written back as it is "
                "(16-bit gray, RGB and RGBA can)"
            )
    return 8


def _check_mode(img: Image.Image, name: str, purpose: Purpose) -> None:
    mode = img.mode
    if mode in _KEEP or mode in _CONVERT or mode in ("P", "PA"):
        return
    if mode in _LEAK_ONLY_MODES:
        if purpose == "leak":
            return
        raise UnsupportedMediaError(
            f"{name}: a {mode} original cannot be marked and written back as it is "
            "(convert it to RGB first)"
        )
    if mode in ("I", "F") or mode.startswith("I;"):
        raise UnsupportedMediaError(
            f"{name}: {'floating-point' if mode == 'F' else '32-bit or signed'} samples are "
            "not supported (save it with 8 or 16 bits per sample)"
        )
    raise UnsupportedMediaError(f"{name}: pixel mode {mode} is not supported")


def _check_limits(name: str, width: int, height: int) -> None:
    if max(width, height) > MAX_SIDE:
        raise ImageTooLargeError(
            f"{name}: {width}×{height} has a side longer than the limit of {MAX_SIDE:,} "
            "pixels (a possible decompression bomb)"
        )
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{name}: {width}×{height} = {width * height:,} pixels exceeds the limit of "
            f"{MAX_PIXELS:,} (a possible decompression bomb)"
        )


def _check_size(name: str, width: int, height: int, purpose: Purpose) -> None:
    if width <= 0 or height <= 0:
        raise MediaError(f"{name}: the image is empty ({width}×{height})")
    _check_limits(name, width, height)
    try:
        check_grid((height, width))
    except ImageArrayError as exc:
        raise ImageTooLargeError(f"{name}: {exc}") from exc
    if purpose == "original" and min(width, height) < MIN_SIDE:
        raise MediaError(
            f"{name}: {width}×{height} is too small to carry a traceable mark "
            f"(at least {MIN_SIDE} pixels a side)"
        )


def _jpeg_scan(fh: IO[bytes]) -> tuple[int, bool] | None:
    """Offset of a JPEG's first entropy-coded byte and whether it is arithmetic-coded, from
    its markers (None when they cannot be followed; Pillow has parsed them already)."""
    fh.seek(2)  # after SOI
    arithmetic = False
    for _ in range(_MAX_MARKERS):
        prefix, fill = fh.read(1), 0
        while prefix == b"\xff" and fill < _MAX_MARKERS:  # fill bytes before a marker code
            prefix, fill = fh.read(1), fill + 1
        if not prefix or prefix == b"\xff":
            return None
        code = prefix[0]
        if 0xD0 <= code <= 0xD8 or code == 0x01:  # markers without a length
            continue
        length = fh.read(2)
        if len(length) < 2:
            return None
        size = int.from_bytes(length, "big")
        if code in _SOF:
            arithmetic = code in _ARITHMETIC
        if code == 0xDA:
            return fh.tell() + size - 2, arithmetic
        fh.seek(size - 2, os.SEEK_CUR)
    return None


def _check_jpeg_data(fh: IO[bytes], total: int, name: str, width: int, height: int) -> None:
    """Refuse a JPEG whose entropy-coded data is too short for its declared size.

    Every 8×8 block of the first component costs at least one bit (a Huffman code for its DC
    difference), so a Huffman-coded JPEG of W×H pixels holds at least ⌈W/8⌉·⌈H/8⌉/8 bytes
    after its first scan header. A file below that ends before its image does, and a decoder
    would fill the rest with grey."""
    scan = _jpeg_scan(fh)
    if scan is None:
        return
    start, arithmetic = scan
    need = -(-width // 8) * -(-height // 8) // 8
    have = total - start
    if not arithmetic and have < need:
        raise MediaError(
            f"{name}: truncated or corrupt: its header declares {width}×{height} pixels, which "
            f"take at least {need:,} bytes of JPEG data, but it holds {max(have, 0):,}"
        )


def _boxes(data: bytes, start: int = 0) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, end) of each ISO-BMFF box in ``data[start:]``."""
    end = len(data)
    at = start
    while at + 8 <= end:
        size, kind, body = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8], at + 8
        if size == 1 and at + 16 <= end:
            size, body = int.from_bytes(data[at + 8 : at + 16], "big"), at + 16
        elif size == 0:
            size = end - at
        if size < body - at or at + size > end:
            return
        yield kind, body, at + size
        at += size


def _coded_sizes(fh: IO[bytes], total: int) -> list[tuple[int, int]]:
    """Every image size (ispe) a HEIF or AVIF file declares: its items, tiles, thumbnails and
    auxiliary images, before any crop (a file can declare a small picture cropped from a huge
    coded one)."""
    sizes: list[tuple[int, int]] = []
    at = 0
    while at + 8 <= total:
        fh.seek(at)
        header = fh.read(16)
        size, kind, skip = int.from_bytes(header[:4], "big"), header[4:8], 8
        if size == 1 and len(header) == 16:
            size, skip = int.from_bytes(header[8:16], "big"), 16
        elif size == 0:
            size = total - at
        if size < skip:
            break
        if kind == b"meta":
            fh.seek(at + skip)
            meta = fh.read(min(size - skip, total))
            for k, start, end in _boxes(meta, 4):  # meta is a full box: skip version, flags
                for k2, s2, e2 in _boxes(meta[:end], start) if k == b"iprp" else ():
                    for k3, s3, _ in _boxes(meta[:e2], s2) if k2 == b"ipco" else ():
                        if k3 == b"ispe" and s3 + 12 <= len(meta):
                            w, h = struct.unpack(">II", meta[s3 + 4 : s3 + 12])
                            sizes.append((w, h))
            break
        at += size
    return sizes


def _inspect(
    img: Image.Image, fh: IO[bytes], head: bytes, total: int, name: str, purpose: Purpose
) -> ImageInfo:
    fmt = "JPEG" if img.format == "MPO" else str(img.format)
    allowed = _PURPOSES[purpose]
    if fmt not in allowed:
        raise UnsupportedMediaError(
            f"{name}: {fmt} is read for tracing only; an original must be "
            f"{', '.join(FORMATS)} (the formats copies are written in)"
        )
    width, height = img.size
    if fmt in ("HEIF", "AVIF"):
        for coded in _coded_sizes(fh, total):
            _check_limits(name, *coded)
    if fmt == "JPEG" and width > 0 and height > 0:
        # First: a file that cannot hold the picture it declares is corrupt, whatever its size.
        _check_jpeg_data(fh, total, name, width, height)
    _check_size(name, width, height, purpose)
    _check_mode(img, name, purpose)
    bits = _bits(img, head, name, purpose)
    frames = int(getattr(img, "n_frames", 1)) if purpose == "original" and fmt != "JPEG" else 1
    if frames > 1:
        raise UnsupportedMediaError(
            f"{name}: has {frames} frames; an original must be a single image"
        )
    return ImageInfo(format=fmt, width=width, height=height, mode=img.mode, bits=bits)


_Opened = tuple[Image.Image, ImageInfo, IO[bytes]]


@contextmanager
def _opened(source: Source, purpose: Purpose) -> Iterator[_Opened]:
    """The image opened (header only) and checked, its info, and its open file."""
    if purpose not in _PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(_PURPOSES)}, not {purpose!r}")
    name = _name(source)
    with _file(source) as (fh, total):
        if total == 0:
            raise UnsupportedMediaError(f"{name}: the file is empty (0 bytes), not an image")
        head = fh.read(32)
        fh.seek(0)
        img = _open_pillow(fh, name, head)
        with img:
            try:
                info = _inspect(img, fh, head, total, name, purpose)
            except MediaError:
                raise
            except Exception as exc:  # a malformed header Pillow parsed lazily
                raise MediaError(
                    f"{name}: cannot read the header, corrupt ({_reason(exc)})"
                ) from exc
            yield img, info, fh


def inspect_image(source: Source, *, purpose: Purpose = "leak") -> ImageInfo:
    """Check an image file from its header alone, before anything is decoded.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        A path, or the file's bytes.
    purpose : {"leak", "original"}
        ``"leak"`` accepts everything :func:`read_image` reads for tracing (:data:`FORMATS`
        and :data:`LEAK_FORMATS`). ``"original"`` accepts only what :func:`write_image` can
        write back (:data:`FORMATS`, a single frame, not CMYK, no 16-bit layout other than
        gray, RGB and RGBA) and at least :data:`~leaktrace.transform.MIN_SIDE` pixels a side.

    Returns
    -------
    ImageInfo
        Format, size, Pillow mode and the bits per sample :func:`read_image` will return.

    Raises
    ------
    MediaError
        Missing file, a directory, unreadable, a header that cannot be parsed, an original
        too small to carry a mark, or a JPEG too short for its declared size ("truncated or
        corrupt"). ``UnsupportedMediaError``: empty, not an image, a format or pixel layout
        not accepted for ``purpose``. ``ImageTooLargeError``: a side above
        :data:`MAX_SIDE`, more than :data:`MAX_PIXELS` pixels, or a working grid above
        :data:`~leaktrace.transform.MAX_WORKING_PIXELS` (aspect ratio beyond about 10:1).

    Examples
    --------
    >>> info = inspect_image("photo.jpg", purpose="original")   # doctest: +SKIP
    >>> info.format, info.width, info.height, info.bits          # doctest: +SKIP
    ('JPEG', 6000, 4000, 8)
    """
    with _opened(source, purpose) as (_, info, _fh):
        return info


def image_format(source: Source) -> str:
    """The format (a key of :data:`FORMATS`) of an original, from its header: the same as
    ``inspect_image(source, purpose="original").format``, with the same errors."""
    return inspect_image(source, purpose="original").format


def read_image(source: Source, *, purpose: Purpose = "leak") -> np.ndarray:
    """Read an image file (path or bytes) into a numpy array of its stored pixels.

    The file is first checked by :func:`inspect_image` with the same ``purpose`` (by default
    ``"leak"``: every format tracing reads), then decoded.

    Raises
    ------
    MediaError
        As :func:`inspect_image`, and "truncated or corrupt" when the data ends before the
        image does or cannot be decoded.

    Examples
    --------
    >>> pixels = read_image("photo.jpg")   # doctest: +SKIP
    >>> pixels.shape, pixels.dtype         # doctest: +SKIP
    ((4000, 6000, 3), dtype('uint8'))
    """
    name = _name(source)
    with _opened(source, purpose) as (img, info, fh):
        try:
            pixels = _decode(img, info, fh, name)
        except MediaError:
            raise
        except Exception as exc:  # decoders of untrusted data fail in many ways
            raise MediaError(f"{name}: the file is truncated or corrupt ({_reason(exc)})") from exc
    if pixels.shape[:2] != (info.height, info.width):
        raise MediaError(
            f"{name}: corrupt: decoded {pixels.shape[1]}×{pixels.shape[0]} pixels, its header "
            f"declares {info.width}×{info.height}"
        )
    return pixels


def _decode(img: Image.Image, info: ImageInfo, fh: IO[bytes], name: str) -> np.ndarray:
    if info.bits == 16 and img.mode not in _WIDE_MODES:
        fh.seek(0)
        data = fh.read()
        if info.format == "PNG":
            # Let Pillow find what is wrong (to 8 bits, and cheaper than OpenCV's decode):
            # libpng would print its complaints on stderr before OpenCV gives up.
            img.load()
            if not _png_checksums_match(data):
                raise MediaError(f"{name}: the file is truncated or corrupt (a chunk's CRC)")
        return _decode_wide(data, name)
    img.load()
    mode = img.mode
    if info.format == "JPEG" and _grey_filled(img):
        raise MediaError(
            f"{name}: the file is truncated or corrupt: its data ends before the image does "
            "(the last row is the decoder's grey fill)"
        )
    if mode in _WIDE_MODES:
        return np.asarray(img).astype(np.uint16)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in _CONVERT or mode in _LEAK_ONLY_MODES:
        img = img.convert(_CONVERT.get(mode) or _LEAK_ONLY_MODES[mode])
    return np.array(img, dtype=np.uint8)


def _grey_filled(img: Image.Image) -> bool:
    """Whether a decoded JPEG's last pixel row (at least 8 wide) is uniformly the value a
    decoder gives the blocks it found no data for: 128 in every channel (127 for an Adobe
    CMYK JPEG, which is stored inverted). No photograph ends on such a row; a file cut short
    and closed with an end-of-image marker does."""
    width, height = img.size
    row = np.asarray(img.crop((0, height - 1, width, height)))
    low, high = int(row.min()), int(row.max())
    return width >= 8 and low == high and low in (127, 128)


def _png_checksums_match(data: bytes) -> bool:
    """Whether every chunk of a PNG, up to IEND, has the CRC it should."""
    view, at = memoryview(data), 8
    while at + 12 <= len(data):
        size = int.from_bytes(view[at : at + 4], "big")
        end = at + 12 + size
        if end > len(data) or zlib.crc32(view[at + 4 : end - 4]) != int.from_bytes(
            view[end - 4 : end], "big"
        ):
            return False
        if view[at + 4 : at + 8] == b"IEND":
            return True
        at = end
    return False


def _decode_wide(data: bytes, name: str) -> np.ndarray:
    """16-bit RGB or RGBA PNG/TIFF through OpenCV (Pillow would cut them to 8 bits)."""
    with _quiet_opencv():
        wide = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if wide is None or wide.dtype != np.uint16 or wide.ndim != 3 or wide.shape[2] not in (3, 4):
        raise MediaError(
            f"{name}: the file is truncated or corrupt (16-bit data OpenCV cannot decode)"
        )
    code = cv2.COLOR_BGRA2RGBA if wide.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(wide, code)


# -- writing ----------------------------------------------------------------------------------
def _save_options(like: Image.Image, fmt: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for k in ("icc_profile", "exif", "dpi"):
        if like.info.get(k):
            opts[k] = like.info[k]
    if fmt == "JPEG" and like.format in ("JPEG", "MPO"):
        opts["qtables"] = like.quantization  # type: ignore[attr-defined]
        opts["subsampling"] = JpegImagePlugin.get_sampling(like)
        opts["progressive"] = bool(like.info.get("progressive"))
    elif fmt == "TIFF" and like.format == "TIFF":
        opts["compression"] = like.info.get("compression", "raw")
    return opts


def _default_options(fmt: str) -> dict[str, Any]:
    return {"JPEG": {"quality": 95}, "WEBP": {"quality": 95, "method": 4}}.get(fmt, {})


def _format_for(path: Path, like: str | None) -> str:
    suffix = path.suffix.lower()
    for fmt, suffixes in FORMATS.items():
        if suffix in suffixes:
            return fmt
    if like is not None:
        return like
    raise UnsupportedMediaError(f"{path}: cannot tell the format from the suffix {suffix!r}")


def _check_pixels(pixels: object) -> np.ndarray:
    if not isinstance(pixels, np.ndarray) or pixels.dtype not in (np.uint8, np.uint16):
        raise ImageArrayError("pixels to write must be a uint8 or uint16 numpy array")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        raise ImageArrayError(f"an image is H×W, H×W×2, H×W×3 or H×W×4, not {pixels.shape}")
    if min(pixels.shape[:2]) < 1:
        raise ImageArrayError(f"cannot write an empty image ({pixels.shape})")
    return pixels


def _encode(pixels: np.ndarray, fmt: str, opts: dict[str, Any]) -> bytes:
    if pixels.dtype == np.uint16:
        if fmt not in ("PNG", "TIFF"):
            raise UnsupportedMediaError(f"16-bit pixels can be written as PNG or TIFF, not {fmt}")
        if pixels.ndim == 3 and pixels.shape[2] == 2:
            raise UnsupportedMediaError(
                "16-bit gray + alpha cannot be written (neither Pillow nor OpenCV can); "
                "write 16-bit RGBA or 8-bit gray + alpha"
            )
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, buf = cv2.imencode(".png" if fmt == "PNG" else ".tiff", cv2.cvtColor(pixels, code))
        if not ok:
            raise MediaError(f"OpenCV could not encode a 16-bit {fmt}")
        return buf.tobytes()
    img = Image.fromarray(pixels)  # 2-D uint16 becomes mode I;16
    if fmt == "JPEG" and img.mode in ("RGBA", "LA"):
        raise UnsupportedMediaError("JPEG has no alpha channel; write PNG, WebP or TIFF")
    out = io.BytesIO()
    try:
        img.save(out, format=fmt, **opts)
    except (OSError, ValueError, TypeError) as exc:
        raise MediaError(f"cannot encode {fmt}: {_reason(exc)}") from exc
    return out.getvalue()


def _reference(like: Source, target: Path) -> tuple[str, dict[str, Any]]:
    """The format and save options a copy of ``like`` is written with."""
    name = _name(like)
    with _opened(like, "original") as (ref, info, _):
        if info.format == "PNG":
            # A PNG may keep its EXIF after the pixel data, where only a full read finds it.
            try:
                ref.load()
            except Exception as exc:
                raise MediaError(
                    f"{name}: the file is truncated or corrupt ({_reason(exc)})"
                ) from exc
        fmt = _format_for(target, info.format)
        return fmt, _save_options(ref, fmt)


def encode_image(
    pixels: np.ndarray,
    path: str | os.PathLike[str],
    *,
    like: Source | None = None,
    quality: int | None = None,
) -> bytes:
    """The bytes :func:`write_image` would write to ``path`` (format from its suffix, or from
    ``like``): for callers that place the file themselves. Raises as :func:`write_image`."""
    target = Path(path)
    pixels = _check_pixels(pixels)
    if like is not None:
        fmt, opts = _reference(like, target)
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

    With ``like`` (the original's path or bytes, read from its header) the output keeps its
    format when the suffix does not say otherwise, its ICC profile, EXIF and DPI, and for JPEG
    its quantisation tables and chroma subsampling. ``quality`` forces a JPEG/WebP quality
    instead. Only :data:`FORMATS` are written; uint16 pixels only as PNG or TIFF.

    Raises
    ------
    ImageArrayError
        ``pixels`` is not a uint8/uint16 H×W or H×W×2..4 array.
    UnsupportedMediaError
        A format or layout that cannot be written (alpha in JPEG, 16-bit in JPEG/WebP,
        16-bit gray + alpha, an unknown suffix).
    MediaError
        ``like`` cannot be read, or the file cannot be written.
    """
    target = Path(path)
    return write_file(target, encode_image(pixels, target, like=like, quality=quality))


def write_file(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o666) -> Path:
    """Write ``data`` to ``path`` whole or not at all: a new temporary name in the same folder
    (created with ``mode``, less the umask), then renamed into place."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"cannot write {target}: {_reason(exc)}") from exc
    return target


#: Containers read as videos (originals and leaks), by their usual suffixes (decoded by
#: :mod:`leaktrace.video.io`; kept here so that telling a video from a photo loads no codec).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")


def is_video(path: str | os.PathLike[str]) -> bool:
    """True when the file's suffix names a video container leaktrace reads."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
