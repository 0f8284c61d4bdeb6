import io
import os
import stat
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import leaktrace as lt

from .conftest import KODAK, WALRUS
from .images import encode, jpeg_with_size, photo, png_gray_alpha16, png_header, wide


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


def test_leak_formats_are_refused_as_originals(tmp_path):
    path = tmp_path / "x.gif"
    Image.fromarray(photo()).save(path)
    with pytest.raises(lt.UnsupportedMediaError, match="GIF.*original"):
        lt.read_image(path, purpose="original")


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


# -- header checks, leak formats, 16 bits (synthetic images only) ------------------------------
WRITABLE = ["JPEG", "PNG", "WEBP", "TIFF"]
LEAK_ONLY = ["BMP", "GIF", "AVIF", "HEIF"]


def _no_warnings(call, *args, **kwargs):
    """Run ``call`` and fail if it let any Python warning out: every warning is shown but
    those leaktrace filters for good (its decoders')."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lt.media._quiet_decoders()
        try:
            return call(*args, **kwargs)
        finally:
            assert not seen, [str(w.message) for w in seen]


@pytest.mark.parametrize("fmt", WRITABLE + LEAK_ONLY)
def test_inspect_reads_the_header_of_every_format(fmt):
    data = encode(photo(96, 160), fmt)
    info = lt.inspect_image(data)
    assert info == lt.ImageInfo(format=fmt, width=160, height=96, mode=info.mode, bits=8)
    if fmt in WRITABLE:
        assert lt.inspect_image(data, purpose="original").format == fmt
    else:
        with pytest.raises(lt.UnsupportedMediaError, match=f"{fmt} is read for tracing only"):
            lt.inspect_image(data, purpose="original")


@pytest.mark.parametrize("fmt", LEAK_ONLY)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_leak_formats_are_read(tmp_path, fmt, channels):
    img = photo(80, 120, channels=channels)
    path = tmp_path / f"leak.{fmt.lower()}"
    path.write_bytes(encode(img, fmt))
    pixels = _no_warnings(lt.read_image, path)
    assert pixels.dtype == np.uint8 and pixels.shape[:2] == img.shape[:2]
    assert pixels.ndim == 2 or pixels.shape[2] in (2, 3, 4)
    gray = pixels if pixels.ndim == 2 else pixels[..., 1]
    # Lossy formats change the pixels a little; a wrong layout or a bad frame changes them a lot.
    assert np.abs(gray.astype(int) - (img if img.ndim == 2 else img[..., 1])).mean() < 12
    if fmt == "BMP":  # lossless; Pillow reads a 32-bit BMP as RGB
        assert np.array_equal(pixels, img[..., :3] if channels == 4 else img)


def test_gif_first_frame_with_transparency_reads_as_rgba():
    frames = [Image.fromarray(photo(64, 96, seed=s)).quantize(64) for s in (0, 1)]
    frames[0].info["transparency"] = 0
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], transparency=0)
    pixels = lt.read_image(data)
    assert pixels.shape == (64, 96, 4)
    assert np.array_equal(pixels[..., :3], np.asarray(frames[0].convert("RGB")))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "AVIF", "HEIF"])
def test_a_copy_still_traces_after_conversion(key, fmt):
    original = photo(192, 256)
    copy = lt.embed(original, key, "m", "alice")
    opts = {"quality": 75} if fmt == "JPEG" else {}
    leak = lt.read_image(encode(copy, fmt, **opts))
    found = lt.detect(leak, key, "m", ["alice"] + [f"r{i}" for i in range(99)], original=original)
    assert found.verdict == "match" and found.recipient == "alice", (fmt, found)


def test_heif_opener_is_not_registered_with_pillow():
    lt.read_image(encode(photo(64, 64), "HEIF"))
    assert "HEIF" not in Image.OPEN  # leaktrace reads HEIF without changing Pillow for others


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda p: p / "absent.png", lt.MediaError, "no such file"),
        (lambda p: p, lt.MediaError, "is a directory"),
        (lambda p: _write(p / "empty.png", b""), lt.UnsupportedMediaError, "empty"),
        (lambda p: _write(p / "x.png", b"GIF89a nonsense"), lt.UnsupportedMediaError, "not an"),
        (lambda p: _write(p / "x.jpg", b"%PDF-1.4\n" + bytes(99)), lt.UnsupportedMediaError, None),
    ],
)
def test_file_errors_name_the_file(tmp_path, make, error, match):
    path = make(tmp_path)
    with pytest.raises(error, match=match) as caught:
        lt.inspect_image(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_refused(tmp_path):
    path = _write(tmp_path / "secret.png", encode(photo(64, 64), "PNG"))
    path.chmod(0)
    with pytest.raises(lt.MediaError, match="permission denied"):
        lt.inspect_image(path)


def test_unreadable_file_is_refused_even_as_root(tmp_path, monkeypatch):
    path = _write(tmp_path / "secret.png", encode(photo(64, 64), "PNG"))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(lt.MediaError, match="secret.png: permission denied"):
        lt.read_image(path)


@pytest.mark.parametrize(
    "width, height, error, match",
    [
        (60000, 60000, lt.ImageTooLargeError, "too many pixels"),  # Pillow refuses it too
        (25000, 2500, lt.ImageTooLargeError, "side longer"),
        (100000, 1, lt.ImageTooLargeError, "side longer"),
        (9000, 9000, lt.ImageTooLargeError, "81,000,000 pixels exceeds"),
        (10000, 64, lt.ImageTooLargeError, "elongated"),
        (5200, 500, lt.ImageTooLargeError, "elongated"),
    ],
)
def test_declared_sizes_are_refused_before_decoding(width, height, error, match):
    data = png_header(width, height)
    tracemalloc.start()
    try:
        with pytest.raises(error, match=match):
            lt.read_image(data)
        assert tracemalloc.get_traced_memory()[1] < 1_000_000
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("width, height", [(12000, 2000), (2000, 12000), (5000, 500), (8000, 8000)])
def test_real_sizes_and_panoramas_pass_the_header_check(width, height):
    info = lt.inspect_image(png_header(width, height), purpose="original")
    assert (info.width, info.height) == (width, height)


def test_limits_are_module_constants(monkeypatch):
    from leaktrace import media

    monkeypatch.setattr(media, "MAX_PIXELS", 100_000)
    with pytest.raises(lt.ImageTooLargeError, match="100,000"):
        lt.inspect_image(png_header(400, 300))
    monkeypatch.setattr(media, "MAX_SIDE", 300)
    with pytest.raises(lt.ImageTooLargeError, match="300"):
        lt.inspect_image(png_header(301, 64))


def test_pillow_bomb_warning_does_not_escape():
    # Between Pillow's warning and error thresholds: Pillow warns, our limit refuses.
    data = png_header(12000, 9000)
    with pytest.raises(lt.ImageTooLargeError):
        _no_warnings(lt.inspect_image, data)


def test_originals_too_small_for_a_mark_are_refused_leaks_are_not():
    from leaktrace.transform import MIN_SIDE

    data = encode(photo(MIN_SIDE - 1, 300), "PNG")
    with pytest.raises(lt.MediaError, match=f"too small.*at least {MIN_SIDE}"):
        lt.inspect_image(data, purpose="original")
    assert lt.read_image(data).shape == (MIN_SIDE - 1, 300, 3)
    assert lt.inspect_image(encode(photo(MIN_SIDE, 300), "PNG"), purpose="original")


def test_jpeg_declaring_more_than_its_data_holds_is_truncated(tmp_path):
    small = encode(photo(96, 128), "JPEG", quality=90)
    bomb = jpeg_with_size(small, 9000, 9000)
    assert len(bomb) < 12_000
    path = _write(tmp_path / "claims-9000.jpg", bomb)
    for call in (lt.inspect_image, lt.read_image):
        with pytest.raises(lt.MediaError, match="claims-9000.jpg: truncated or corrupt"):
            call(path)


@pytest.mark.parametrize(
    "mode, progressive", [("RGB", False), ("RGB", True), ("L", False), ("CMYK", False)]
)
def test_jpeg_cut_short_is_never_grey_filled(mode, progressive):
    picture = Image.fromarray(photo(256, 256)).convert(mode)
    data = encode(picture, "JPEG", quality=90, progressive=progressive)
    with pytest.raises(lt.MediaError, match="truncated"):
        lt.read_image(data[: len(data) // 2])
    try:  # only the end-of-image marker missing: refused, or every pixel there
        assert np.array_equal(lt.read_image(data[:-2]), lt.read_image(data))
    except lt.MediaError as exc:
        assert "truncated" in str(exc)
    # Cut short, then closed with an end-of-image marker: a decoder fills the rest with grey.
    closed = data[: len(data) // 3] + b"\xff\xd9"
    if progressive:  # the first scans cover every block: a blurred but whole picture
        assert lt.read_image(closed).shape[:2] == (256, 256)
    else:
        with pytest.raises(lt.MediaError, match="grey fill"):
            lt.read_image(closed)
    # A header patched to a few more rows than the data holds.
    with pytest.raises(lt.MediaError, match="truncated"):
        lt.read_image(jpeg_with_size(data, 256, 300))


def test_malformed_metadata_warnings_are_silenced():
    jpeg = encode(photo(64, 64), "JPEG")
    # A multi-picture (MPF) segment that does not parse: Pillow warns and reads a plain JPEG.
    mpf = b"\xff\xe2" + (4 + 8).to_bytes(2, "big") + b"MPF\0" + b"MM\0*\xff\xff\xff\xff"
    bad = jpeg[:2] + mpf + jpeg[2:]
    assert _no_warnings(lt.read_image, bad).shape == (64, 64, 3)
    assert _no_warnings(lt.inspect_image, bad, purpose="original").format == "JPEG"


def test_multi_picture_jpeg_is_a_jpeg(tmp_path, key):
    first, second = Image.fromarray(photo(96, 128)), Image.fromarray(photo(96, 128, seed=1))
    path = tmp_path / "phone.jpg"
    first.save(path, "MPO", save_all=True, append_images=[second], quality=80)
    with Image.open(path) as im:
        assert im.format == "MPO"
    assert lt.inspect_image(path, purpose="original").format == "JPEG"
    pixels = lt.read_image(path, purpose="original")
    out = lt.write_image(tmp_path / "copy.jpg", lt.embed(pixels, key, "m", "a"), like=path)
    with Image.open(path) as a, Image.open(out) as b:
        assert b.quantization == a.quantization


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".tif", "TIFF")])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_sixteen_bit_stays_sixteen_bit_in_both_directions(tmp_path, suffix, fmt, channels):
    img16 = wide(photo(70, 90, channels=channels))
    first = lt.write_image(tmp_path / f"orig{suffix}", img16)
    info = lt.inspect_image(first, purpose="original")
    assert (info.format, info.bits) == (fmt, 16)
    back = lt.read_image(first, purpose="original")
    assert back.dtype == np.uint16 and np.array_equal(back, img16)
    copy = back.copy()
    copy[::7, ::5] += 1
    out = lt.write_image(tmp_path / "copy.bin", copy, like=first)  # format from the original
    assert lt.inspect_image(out).format == fmt
    assert np.array_equal(lt.read_image(out), copy)


def test_sixteen_bit_rgb_tiff_from_another_writer(tmp_path):
    import cv2

    rgb16 = wide(photo(70, 90))
    ok, buf = cv2.imencode(".tiff", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))  # LZW-compressed
    pixels = lt.read_image(buf.tobytes())
    assert pixels.dtype == np.uint16 and np.array_equal(pixels, rgb16)


def test_sixteen_bit_layouts_that_cannot_be_kept():
    data = png_gray_alpha16(64, 80)
    with pytest.raises(lt.UnsupportedMediaError, match="16-bit gray \\+ alpha"):
        lt.inspect_image(data, purpose="original")
    leak = lt.read_image(data)  # traced from its 8 most significant bits
    assert leak.dtype == np.uint8 and leak.shape[:2] == (64, 80)
    with pytest.raises(lt.UnsupportedMediaError, match="PNG or TIFF, not JPEG"):
        lt.write_image("x.jpg", wide(photo(64, 64)))
    with pytest.raises(lt.UnsupportedMediaError, match="gray \\+ alpha"):
        lt.write_image("x.png", wide(photo(64, 64, channels=2)))
    with pytest.raises(lt.ImageArrayError):
        lt.write_image("x.png", np.zeros((64, 64), np.float32))


@pytest.mark.parametrize("mode, match", [("I", "32-bit"), ("F", "floating-point")])
def test_wide_sample_types_are_refused(mode, match):
    img = Image.fromarray(photo(64, 64, channels=1)).convert(mode)
    with pytest.raises(lt.UnsupportedMediaError, match=match):
        lt.read_image(encode(img, "TIFF"))


def test_cmyk_is_read_as_a_leak_but_not_taken_as_an_original():
    data = encode(Image.fromarray(photo(64, 96)).convert("CMYK"), "JPEG", quality=95)
    assert lt.read_image(data).shape == (64, 96, 3)
    with pytest.raises(lt.UnsupportedMediaError, match="CMYK.*RGB"):
        lt.inspect_image(data, purpose="original")


def test_multi_page_originals_are_refused():
    pages = [Image.fromarray(photo(64, 96, seed=s)) for s in (0, 1)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    with pytest.raises(lt.UnsupportedMediaError, match="2 frames"):
        lt.inspect_image(data, purpose="original")
    assert np.array_equal(lt.read_image(data), photo(64, 96))  # a leak: its first page


def test_bad_purpose_names_the_allowed_ones():
    with pytest.raises(ValueError, match="original, leak"):
        lt.inspect_image(b"x", purpose="copy")


def test_decoding_in_a_thread_leaves_the_warning_filters_alone(kodak):
    # The service decodes in job threads while requests are answered: a decode that swapped the
    # process-wide filters (warnings.catch_warnings) could drop another thread's filter.
    data = encode(kodak(5)[:128, :128], "JPEG")
    before = list(warnings.filters)
    done, changed = threading.Event(), []

    def decode() -> None:
        try:
            for _ in range(200):
                lt.read_image(data)
                lt.inspect_image(data)
        finally:
            done.set()

    worker = threading.Thread(target=decode)
    worker.start()
    while not done.is_set():
        if list(warnings.filters) != before:
            changed.append(True)
            break
    worker.join()
    assert not changed and list(warnings.filters) == before
