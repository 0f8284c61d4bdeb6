import io
import os
import stat

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import leaktrace as lt

from .conftest import KODAK, WALRUS


def _icc():
    with Image.open(WALRUS) as im:  # header only, not decoded
        return im.info["icc_profile"]


def _jpeg_like(tmp_path, pixels, **opts):
    path = tmp_path / "orig.jpg"
    Image.fromarray(pixels).save(path, **opts)
    return path


def test_png_round_trip_is_lossless(tmp_path, kodak):
    img = kodak(20)
    out = lt.write_image(tmp_path / "a.png", img)
    assert np.array_equal(lt.read_image(out), img)
    assert not list(tmp_path.glob(".*.part"))
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask  # a normal file, not 0600


def test_jpeg_copy_keeps_tables_subsampling_and_icc(tmp_path, kodak, key):
    img = kodak(15)
    orig = _jpeg_like(tmp_path, img, quality=83, subsampling=1, icc_profile=_icc())
    pixels = lt.read_image(orig)
    copy = lt.embed(pixels, key, "m", "alice")
    out = lt.write_image(tmp_path / "copy.jpg", copy, like=orig)
    with Image.open(orig) as a, Image.open(out) as b:
        assert b.quantization == a.quantization
        assert JpegImagePlugin.get_sampling(b) == JpegImagePlugin.get_sampling(a) == 1
        assert b.info["icc_profile"] == a.info["icc_profile"]
    size_ratio = out.stat().st_size / orig.stat().st_size
    assert 0.9 < size_ratio < 1.15
    found = lt.detect(lt.read_image(out), key, "m", ["alice", "bob"], original=pixels)
    assert found.recipient == "alice"


def test_exif_orientation_is_kept_and_pixels_are_as_stored(tmp_path, kodak):
    img = kodak(7)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    orig = _jpeg_like(tmp_path, img, quality=95, exif=exif.tobytes())
    pixels = lt.read_image(orig)
    assert pixels.shape == img.shape  # not transposed
    out = lt.write_image(tmp_path / "copy.jpg", pixels, like=orig)
    with Image.open(out) as b:
        assert b.getexif()[0x0112] == 6


@pytest.mark.parametrize("fmt, suffix", [("WEBP", ".webp"), ("TIFF", ".tif"), ("PNG", ".png")])
def test_format_follows_the_original(tmp_path, kodak, fmt, suffix):
    img = kodak(19)
    orig = tmp_path / f"orig{suffix}"
    Image.fromarray(img).save(orig, format=fmt)
    out = lt.write_image(tmp_path / f"copy{suffix}", lt.read_image(orig), like=orig)
    with Image.open(out) as b:
        assert b.format == fmt and b.size == (img.shape[1], img.shape[0])


def test_rgba_and_gray_and_sixteen_bit_round_trip(tmp_path, kodak):
    img = kodak(5)
    rgba = np.dstack([img, np.full(img.shape[:2], 99, np.uint8)])
    gray16 = (img[..., 0].astype(np.uint16) * 257) + 3
    rgb16 = img.astype(np.uint16) * 250
    for name, arr in [
        ("rgba.png", rgba),
        ("gray.png", img[..., 0]),
        ("g16.png", gray16),
        ("rgb16.png", rgb16),
    ]:
        back = lt.read_image(lt.write_image(tmp_path / name, arr))
        assert back.dtype == arr.dtype and np.array_equal(back, arr), name


def test_truncated_file_is_a_clear_error(tmp_path):
    data = (KODAK / "kodim07.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(lt.MediaError, match="truncated"):
        lt.read_image(path)
    jpg = io.BytesIO()
    Image.open(KODAK / "kodim07.png").convert("RGB").save(jpg, "JPEG")
    with pytest.raises(lt.MediaError):
        lt.read_image(jpg.getvalue()[:3000])


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"%PDF-1.4\n" + bytes(500)])
def test_non_images_are_unsupported(tmp_path, data):
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    with pytest.raises(lt.UnsupportedMediaError):
        lt.read_image(path)


def test_other_formats_are_refused(tmp_path, kodak):
    path = tmp_path / "x.gif"
    Image.fromarray(kodak(20)).save(path)
    with pytest.raises(lt.UnsupportedMediaError, match="GIF"):
        lt.read_image(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (4000, 3000)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.raises(lt.ImageTooLargeError, match="limit"):
        lt.read_image(path)


def test_zero_size_image_is_refused():
    # A PNG whose header claims 0×0 pixels.
    import struct
    import zlib

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
    png += chunk(b"IEND", b"")
    with pytest.raises(lt.MediaError):
        lt.read_image(png)


def test_missing_file_and_bad_output(tmp_path, kodak):
    with pytest.raises(lt.MediaError, match="no such file"):
        lt.read_image(tmp_path / "absent.jpg")
    with pytest.raises(lt.UnsupportedMediaError, match="suffix"):
        lt.write_image(tmp_path / "out.xyz", kodak(20))
    with pytest.raises(lt.MediaError):
        lt.write_image(tmp_path / "no-such-dir" / "out.png", kodak(20))
    with pytest.raises(lt.UnsupportedMediaError, match="alpha"):
        lt.write_image(tmp_path / "out.jpg", np.zeros((64, 64, 4), np.uint8))
