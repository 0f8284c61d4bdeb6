"""`leaktrace trace` on damaged files: a verdict or a one-line error, never a traceback, and a
refused file leaves the registry as it was."""

from __future__ import annotations

import io
import sqlite3
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from leaktrace.cli import app
from leaktrace.registry import Workspace

from .conftest import KODAK

runner = CliRunner()


def encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    """A workspace with one photo sent to two recipients, and leaks of ann's copy."""
    root = tmp_path_factory.mktemp("fuzz")
    home = root / "ws"
    assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0
    for h in ("ann", "bob"):
        assert runner.invoke(app, ["--home", str(home), "recipients", "add", h]).exit_code == 0
    photo = root / "photo.png"
    photo.write_bytes((KODAK / "kodim15.png").read_bytes())
    made = runner.invoke(app, ["--home", str(home), "embed", str(photo), "--all", "-o", str(root)])
    assert made.exit_code == 0, made.output
    copy = np.asarray(Image.open(root / "ann" / "photo.png").convert("RGB"))
    small = copy[::2, ::2].copy()
    seeds = [encoded(small, fmt) for fmt in ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")]
    return home, root, seeds


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header declares any size, with a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (  # noqa: E731
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    )
    body = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@st.composite
def damaged(draw, seeds):
    data = bytearray(draw(st.sampled_from(seeds)))
    kind = draw(st.sampled_from(["truncate", "flip", "magic", "huge", "as is"]))
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "magic":
        data[:4] = draw(st.binary(min_size=4, max_size=4))
    elif kind == "huge":
        w = draw(st.sampled_from([1, 64, 100_000, 60_000, 2**31 - 1]))
        h = draw(st.sampled_from([1, 7, 100_000, 60_000]))
        data = bytearray(png_with_size(w, h))
    return bytes(data)


def table_counts(home):
    with sqlite3.connect(home / Workspace.DB_NAME) as db:
        return {
            t: db.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("recipients", "media", "copies", "traces", "jobs")
        }


def test_damaged_leaks_get_a_verdict_or_one_line(marked):
    home, root, seeds = marked
    leak = root / "leak.bin"
    seen: dict[int, int] = {}

    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )
    @given(data=damaged(seeds))
    def check(data):
        leak.write_bytes(data)
        before = table_counts(home)
        result = runner.invoke(app, ["--home", str(home), "trace", str(leak)])
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        assert result.exit_code in (0, 1, 2), result.output
        assert "Traceback" not in result.output
        after = table_counts(home)
        if result.exit_code == 2:
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), result.output
            assert after == before
        else:
            assert after == {**before, "traces": before["traces"] + 1}
        if result.exit_code == 0:
            assert result.output.startswith("leaked by ann")
        seen[result.exit_code] = seen.get(result.exit_code, 0) + 1

    check()
    assert seen.get(2, 0) > 0 and seen.get(0, 0) + seen.get(1, 0) > 0, seen
