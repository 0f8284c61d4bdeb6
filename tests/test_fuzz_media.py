"""Bounded fuzzing of the image-input layer.

Small valid images of every format we read, in many pixel modes, are damaged — truncated,
bit-flipped, given wrong magic bytes, extended with junk, or given a patched header size —
and fed to ``inspect_image`` and ``read_image``. The only exceptions allowed are
``leaktrace.MediaError`` subclasses; no Python warning may escape; a success is a uint8 or
uint16 array of 2 or 3 dimensions; and a header declaring a huge size is refused before
anything is decoded.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zlib
from functools import cache

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import leaktrace as lt

from .images import encode, photo, wide

H, W = 24, 40


def _img(mode: str) -> Image.Image:
    rgb = Image.fromarray(photo(H, W))
    if mode == "P+t":
        img = rgb.quantize(16)
        img.info["transparency"] = 3
        return img
    if mode == "I;16":
        return Image.fromarray(wide(photo(H, W, channels=1)))
    if mode in ("I", "F"):
        return rgb.convert("L").convert(mode)
    return rgb.convert(mode)


def _cv2(ext: str, pixels: np.ndarray) -> bytes:
    code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, buf = cv2.imencode(ext, cv2.cvtColor(pixels, code))
    assert ok
    return buf.tobytes()


@cache
def seeds() -> dict[str, bytes]:
    """Valid small files: "<format> <mode>" → bytes."""
    out: dict[str, bytes] = {}
    for mode in ("1", "L", "LA", "P+t", "RGB", "RGBA", "I;16"):
        out[f"PNG {mode}"] = encode(
            _img(mode), "PNG", **({"transparency": 3} if mode == "P+t" else {})
        )
    out["PNG RGB;16"] = _cv2(".png", wide(photo(H, W)))
    out["PNG RGBA;16"] = _cv2(".png", wide(photo(H, W, channels=4)))
    for mode in ("L", "RGB", "CMYK"):
        out[f"JPEG {mode}"] = encode(_img(mode), "JPEG", quality=80)
    out["JPEG RGB progressive"] = encode(_img("RGB"), "JPEG", quality=80, progressive=True)
    out["WEBP RGB"] = encode(_img("RGB"), "WEBP", quality=80)
    out["WEBP RGBA"] = encode(_img("RGBA"), "WEBP", quality=80)
    for mode in ("1", "L", "RGB", "RGBA", "CMYK", "I;16", "I", "F"):
        out[f"TIFF {mode}"] = encode(_img(mode), "TIFF")
    out["TIFF RGB lzw"] = encode(_img("RGB"), "TIFF", compression="tiff_lzw")
    out["TIFF RGB;16"] = _cv2(".tiff", wide(photo(H, W)))
    for mode in ("1", "L", "P+t", "RGB"):
        out[f"BMP {mode}"] = encode(_img(mode), "BMP")
    out["GIF P+t"] = encode(_img("P+t"), "GIF", transparency=3)
    out["GIF L"] = encode(_img("L"), "GIF")
    out["AVIF RGB"] = encode(_img("RGB"), "AVIF", quality=60)
    out["AVIF RGBA"] = encode(_img("RGBA"), "AVIF", quality=60)
    out["HEIF RGB"] = encode(_img("RGB"), "HEIF", quality=60)
    return out


# -- header size patches, per format -----------------------------------------------------------
def _png(data: bytearray, w: int, h: int) -> None:
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))


def _jpeg(data: bytearray, w: int, h: int) -> None:
    at = 2
    while at + 9 <= len(data):
        code, size = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if code in (0xC0, 0xC1, 0xC2):
            data[at + 5 : at + 9] = struct.pack(">HH", min(h, 65535), min(w, 65535))
            return
        at += 2 + size


def _bmp(data: bytearray, w: int, h: int) -> None:
    data[18:26] = struct.pack("<ii", min(w, 2**31 - 1), min(h, 2**31 - 1))


def _gif(data: bytearray, w: int, h: int) -> None:
    w, h = min(w, 65535), min(h, 65535)
    data[6:10] = struct.pack("<HH", w, h)
    at = data.find(b"\x2c", 13)  # the first image descriptor (or a byte that looks like it)
    if at > 0 and at + 9 <= len(data):
        data[at + 5 : at + 9] = struct.pack("<HH", w, h)


def _tiff(data: bytearray, w: int, h: int) -> None:
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag = struct.unpack(order + "H", data[at : at + 2])[0]
        if tag in (256, 257):
            value = w if tag == 256 else h
            data[at + 2 : at + 12] = struct.pack(order + "HII", 4, 1, value)


def _webp(data: bytearray, w: int, h: int) -> None:
    w, h = min(w, 2**24), min(h, 2**24)
    if data[12:16] == b"VP8X":
        data[24:30] = (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    elif data[12:16] == b"VP8 ":
        data[26:30] = struct.pack("<HH", min(w, 16383), min(h, 16383))


def _isobmff(data: bytearray, w: int, h: int) -> None:
    at = data.find(b"ispe")
    if at > 0:
        data[at + 8 : at + 16] = struct.pack(">II", w, h)


PATCH = {
    "PNG": _png,
    "JPEG": _jpeg,
    "BMP": _bmp,
    "GIF": _gif,
    "TIFF": _tiff,
    "WEBP": _webp,
    "AVIF": _isobmff,
    "HEIF": _isobmff,
}


def patched(name: str, w: int, h: int) -> bytes:
    data = bytearray(seeds()[name])
    PATCH[name.split()[0]](data, w, h)
    return bytes(data)


# -- the checks -------------------------------------------------------------------------------
#: Numpy memory a read may take per declared pixel (OpenCV's 16-bit RGBA and its RGBA copy),
#: and besides that.
PER_PIXEL, SLACK = 16, 16_000_000


def check(data: bytes) -> list[str]:
    """Run both entry points on ``data``; return what each did ("ok" or the error class).

    Each must raise a MediaError with a one-line message or succeed, with no warning, and
    allocate (as far as tracemalloc sees: numpy and OpenCV arrays) no more than the size the
    header declared allows, which the header check bounds."""
    outcomes = []
    declared = 0
    for call in (lt.inspect_image, lt.read_image):
        tracing = not tracemalloc.is_tracing()
        if tracing:
            tracemalloc.start()
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                lt.media._quiet_decoders()  # as a user's process has them
                try:
                    result = call(data)
                except lt.MediaError as exc:
                    assert str(exc) and "\n" not in str(exc)
                    outcomes.append(type(exc).__name__)
                    result = None
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            if tracing:
                tracemalloc.stop()
        assert not seen, [f"{w.category.__name__}: {w.message}" for w in seen]
        assert peak <= PER_PIXEL * declared + SLACK, (peak, declared, outcomes)
        if isinstance(result, np.ndarray):
            assert result.dtype in (np.uint8, np.uint16)
            assert result.ndim == 2 or (result.ndim == 3 and result.shape[2] in (2, 3, 4))
            assert min(result.shape[:2]) >= 1
            outcomes.append("ok")
        elif result is not None:
            assert isinstance(result, lt.ImageInfo) and result.bits in (8, 16)
            declared = result.width * result.height
            outcomes.append("ok")
    return outcomes


def test_every_seed_reads():
    for name, data in seeds().items():
        outcome = check(data)
        if name.split()[1] in ("I", "F"):  # 32-bit and float samples are refused by the header
            assert outcome == ["UnsupportedMediaError"] * 2, name
        else:
            assert outcome == ["ok", "ok"], name
            expected = 16 if name.endswith((";16", "I;16")) else 8
            assert lt.inspect_image(data).bits == expected, name


@st.composite
def damaged(draw) -> bytes:
    name = draw(st.sampled_from(sorted(seeds())))
    data = bytearray(seeds()[name])
    # Positions uniform over the file (Hypothesis's integers favour the first bytes, which
    # would mostly break the magic number).
    rnd = draw(st.randoms(use_true_random=True))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        if kind == "truncate" and len(data) > 1:
            del data[rnd.randrange(1, len(data)) :]
        elif kind == "flip" and data:
            for _ in range(draw(st.integers(1, 8))):
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        elif kind == "magic":  # another format's signature, or random bytes
            other = st.sampled_from(sorted(seeds())).map(lambda n: seeds()[n][:12])
            data[:12] = draw(st.one_of(other, st.binary(min_size=1, max_size=12)))
        elif kind == "size":
            huge = st.integers(30_000, 2**31 - 1)
            size = st.one_of(st.integers(1, 2048), huge, st.sampled_from([0, 1, 65535, 60000]))
            try:
                PATCH[name.split()[0]](data, draw(size), draw(size))
            except (struct.error, IndexError, ValueError, OverflowError):
                pass  # an earlier mutation broke the structure the patch follows
        elif kind == "junk":
            at = rnd.randrange(len(data) + 1)
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "zero" and data:
            at = rnd.randrange(len(data))
            data[at : at + rnd.randrange(1, 256)] = bytes(min(256, len(data) - at))
    return bytes(data)


MUTATIONS = ["truncate", "flip", "magic", "size", "junk", "zero"]


@settings(
    max_examples=2000,
    # A flipped size field can declare up to MAX_PIXELS: about a second to fill, several on a
    # loaded 2-core machine (5 s was exceeded once in CI-like runs). The bombs this guards
    # against took 25-44 s before the limits.
    deadline=20_000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(damaged())
def test_damaged_images_fail_cleanly(data):
    check(data)


@pytest.mark.parametrize("name", sorted(n for n in seeds() if n.split()[0] in PATCH))
def test_huge_declared_size_is_refused_before_decoding(name):
    data = patched(name, 60000, 60000)
    outcome = check(data)  # with nothing declared acceptable, next to nothing allocated
    assert "ok" not in outcome, name
    # Not decoded: a decoder would have been cut short as "corrupt" instead.
    if name.split()[0] in ("PNG", "BMP", "GIF", "TIFF", "JPEG", "WEBP"):
        assert outcome == ["ImageTooLargeError"] * 2, (name, outcome)


def test_huge_declared_sizes_stay_small_in_memory():
    """In a fresh process with a cap on its address space, every 60000×60000 header is
    refused as too large, and the peak resident size barely moves."""
    script = textwrap.dedent(
        """
        import resource, sys
        sys.path.insert(0, {root!r})
        import leaktrace as lt
        from tests.test_fuzz_media import PATCH, patched, seeds
        names = [n for n in sorted(seeds()) if n.split()[0] in PATCH]
        files = [patched(n, 60000, 60000) for n in names]
        lt.inspect_image(seeds()["HEIF RGB"])  # load the HEIF library before measuring
        with open("/proc/self/status") as fh:
            vm = next(int(l.split()[1]) for l in fh if l.startswith("VmSize")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (768 << 20), resource.RLIM_INFINITY))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for name, data in zip(names, files):
            for call in (lt.inspect_image, lt.read_image):
                try:
                    call(data)
                    print("ACCEPTED", name)
                except lt.ImageTooLargeError:
                    pass
                except lt.MediaError as exc:
                    if name.split()[0] not in ("AVIF", "HEIF"):
                        print("NOT REFUSED AS TOO LARGE", name, exc)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("grew", (after - before) // 1024, "MB")
        """
    ).format(root=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[:-1] == [], lines
    assert int(lines[-1].split()[1]) < 50, lines[-1]


def test_an_image_read_as_bytes_or_path_is_the_same(tmp_path):
    for name, data in seeds().items():
        if name.split()[1] in ("I", "F"):
            continue
        path = tmp_path / "x"
        path.write_bytes(data)
        assert np.array_equal(lt.read_image(path), lt.read_image(data)), name
