"""Bad input through the HTTP API: damaged uploads (Hypothesis) and requests generated from the
OpenAPI (Schemathesis) get a 2xx or a documented 4xx with a one-line body — never a 5xx or a
traceback — and a refused request leaves the registry and the workspace's files as they were.

Both runs are bounded (a few hundred examples each) and print how many requests they made.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import struct
import time
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from PIL import Image

import leaktrace as lt
from leaktrace.service import create_app

from .conftest import KODAK

PHOTO = KODAK / "kodim05.png"
SCENE = KODAK / "kodim19.png"


# -- the workspace under test --------------------------------------------------------------------
@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A workspace with two recipients and one photo sent to both, behind a running app."""
    home = tmp_path_factory.mktemp("fuzz-service")
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("fuzz")
    ws.add_recipients([("ann", "", ""), ("bob", "", "")])
    app = create_app(home, max_upload=2 * 1024 * 1024, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        media = client.post("/api/media", files={"file": (PHOTO.name, PHOTO.read_bytes())})
        job = client.post(f"/api/media/{media.json()['id']}/copies", json={"recipients": "all"})
        deadline = time.monotonic() + 60
        while client.get(f"/api/jobs/{job.json()['id']}").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield client, home, token


def state(home: Path) -> tuple[str, list[str]]:
    """Every row of every table, and every file of the workspace but the database's own."""
    with sqlite3.connect(home / lt.Workspace.DB_NAME) as db:
        rows = "\n".join(db.iterdump())
    files = sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and not p.name.startswith(lt.Workspace.DB_NAME)
    )
    return rows, files


def counts(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / lt.Workspace.DB_NAME) as db:
        tables = [t for (t,) in db.execute("select name from sqlite_master where type='table'")]
        return {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}


def one_line(response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.strip(), response.text
    assert "Traceback" not in detail and 'File "' not in detail, detail
    return detail


# -- damaged images --------------------------------------------------------------------------
def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def seeds(home: Path) -> list[tuple[str, bytes]]:
    """Small images in the formats and pixel modes an upload may come in, and a re-shared
    copy (which traces to ann)."""
    scene = Image.open(SCENE).convert("RGB").resize((160, 112))
    copy = Image.open(next(home.glob(f"copies/*/ann/{PHOTO.name}"))).convert("RGB")
    wide = cv2.imencode(".png", (np.asarray(scene)[..., ::-1].astype(np.uint16) * 257))[1]
    return [
        ("png", encoded(scene, "PNG")),
        ("jpeg", encoded(scene, "JPEG", quality=85)),
        ("progressive jpeg", encoded(scene, "JPEG", quality=85, progressive=True)),
        ("webp", encoded(scene, "WEBP", quality=80)),
        ("tiff", encoded(scene, "TIFF")),
        ("L png", encoded(scene.convert("L"), "PNG")),
        ("1 png", encoded(scene.convert("1"), "PNG")),
        ("LA png", encoded(scene.convert("LA"), "PNG")),
        ("RGBA webp", encoded(scene.convert("RGBA"), "WEBP", lossless=True)),
        ("P png", encoded(scene.convert("P"), "PNG", transparency=0)),
        ("I;16 png", encoded(scene.convert("I;16"), "PNG")),
        ("I tiff", encoded(scene.convert("I"), "TIFF")),
        ("F tiff", encoded(scene.convert("F"), "TIFF")),
        ("CMYK jpeg", encoded(scene.convert("CMYK"), "JPEG")),
        ("CMYK tiff", encoded(scene.convert("CMYK"), "TIFF")),
        ("YCbCr tiff", encoded(scene.convert("YCbCr"), "TIFF")),
        ("LAB tiff", encoded(scene.convert("LAB"), "TIFF")),
        ("lzw tiff", encoded(scene, "TIFF", compression="tiff_lzw")),
        ("16-bit RGB png", wide.tobytes()),
        ("gif", encoded(scene, "GIF")),
        ("bmp", encoded(scene, "BMP")),
        ("ann's copy, jpeg", encoded(copy.resize((384, 256)), "JPEG", quality=80)),
    ]


def crc_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# Declared sizes: zero, tiny, extreme aspect ratios, around and far beyond the pixel limits.
SIDES = [0, 1, 7, 64, 9000, 10_000, 65535, 100_000, 2**31 - 1, 2**32 - 1]


def patch_size(data: bytearray, w: int, h: int, fix_crc: bool) -> bytearray:
    """Make a PNG's or JPEG's header declare ``w``×``h`` (the pixel data stays as it was)."""
    if data.startswith(b"\x89PNG") and len(data) >= 33:
        data[16:24] = struct.pack(">II", w, h)
        if fix_crc:
            data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        return data
    if data.startswith(b"\xff\xd8"):
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = data.find(marker)
            if at >= 0 and at + 9 <= len(data):
                data[at + 5 : at + 9] = struct.pack(">HH", min(h, 65535), min(w, 65535))
                return data
    # Anything else: a PNG header declaring that size, with a few bytes of data.
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return bytearray(
        b"\x89PNG\r\n\x1a\n"
        + crc_chunk(b"IHDR", ihdr)
        + crc_chunk(b"IDAT", body)
        + crc_chunk(b"IEND", b"")
    )


MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\0\0\0\0WEBP", b"II*\0", b"MM\0*", b"GIF89a"]


class Damaged(bytes):
    """Bytes that print as what was done to which seed (Hypothesis shows failing examples)."""

    how = ""

    def __repr__(self) -> str:
        return f"<{self.how}: {len(self)} bytes, {bytes(self[:16])!r}...>"


@st.composite
def damaged(draw, pool: list[tuple[str, bytes]]) -> Damaged:
    seed, original = draw(st.sampled_from(pool))
    data = bytearray(original)
    kind = draw(
        st.sampled_from(["as is", "truncate", "flip", "magic", "size", "splice", "garbage"])
    )
    how = f"{seed}, {kind}"
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
        how += f" to {len(data)}"
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 16))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
            how += f" {at}"
    elif kind == "magic":
        other = draw(st.sampled_from([*MAGIC, b""]))
        data[: len(other) or 4] = other or draw(st.binary(min_size=4, max_size=4))
        how += f" {bytes(data[:8])!r}"
    elif kind == "size":
        w, h = draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))
        fix = draw(st.booleans())
        data = patch_size(data, w, h, fix)
        how += f" {w}x{h}{' crc fixed' if fix else ''}"
    elif kind == "splice":
        name, other = draw(st.sampled_from(pool))
        at = draw(st.integers(0, min(len(data), len(other))))
        data = data[:at] + other[at:]
        how += f" with {name} at {at}"
    elif kind == "garbage":
        data = bytearray(draw(st.binary(min_size=1, max_size=2048)))
    out = Damaged(data)
    out.how = how
    return out


names = st.one_of(
    st.sampled_from(["leak.jpg", "photo.png", "Été à Nice 東京.png", "noext", "x.tif", ".png"]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
)


def test_damaged_uploads_never_get_a_server_error(service, caplog, record_property):
    client, home, _ = service
    pool = seeds(home)
    statuses: Counter[tuple[str, int]] = Counter()

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        data=damaged(pool),
        route=st.sampled_from(["/api/media", "/api/trace"]),
        name=names,
        threshold=st.one_of(st.none(), st.sampled_from(["1e-9", "0.5", "0", "2", "nan", "x"])),
    )
    def check(data, route, name, threshold):
        note(f"{route} {name!r} threshold={threshold!r}: {data.how}")
        before, rows = state(home), counts(home)
        form = {} if threshold is None else {"threshold": threshold}
        r = client.post(route, files={"file": (name, data)}, data=form)
        statuses[(route, r.status_code)] += 1
        assert r.status_code < 500, r.text
        if r.status_code >= 400 or (route, r.status_code) == ("/api/media", 200):
            if r.status_code >= 400:
                one_line(r)
            assert state(home) == before, (route, r.status_code, r.text)
        else:  # a new original, or a trace: that record and nothing else
            table = "media" if route == "/api/media" else "traces"
            assert counts(home) == {**rows, table: rows[table] + 1}

    with caplog.at_level(logging.WARNING):
        check()
    assert not [rec for rec in caplog.records if rec.exc_info], caplog.text
    record_property("requests", {f"{r} {code}": n for (r, code), n in sorted(statuses.items())})
    # The run reached the decoders, not only the format check, and some uploads worked.
    assert statuses[("/api/trace", 200)] and statuses[("/api/trace", 422)], statuses
    assert statuses[("/api/media", 415)] and statuses[("/api/media", 422)], statuses
    assert statuses[("/api/media", 413)] + statuses[("/api/trace", 413)], statuses


# -- requests generated from the OpenAPI ---------------------------------------------------------
#: Upload routes: a byte string the schema allows is seldom an image (or a CSV), so refusing
#: one is right there; everywhere else, a request the schema allows must not get a 4xx beyond
#: Schemathesis's defaults (401, 403, 404, 409).
UPLOADS = ["POST /api/media", "POST /api/trace", "POST /api/recipients/import", "POST /api/scan"]
MAX_EXAMPLES = 50
#: A scan takes any file and lists the unreadable ones in its results (tests/test_scan.py): a
#: file part holding JSON text is no "schema-violating" request there.
SCAN_TAKES_ANY_FILE = "checks.negative_data_rejection.enabled = false\n"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    """The OpenAPI of an app on a workspace with records for the ids a request may name (two
    recipients, a small original sent to both, a trace of a copy), with the token to send."""
    schemathesis = pytest.importorskip("schemathesis")
    home = tmp_path_factory.mktemp("schemathesis")
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("schemathesis")
    ws.add_recipients([("ann", "", ""), ("bob", "", "")])
    small = encoded(Image.open(PHOTO).convert("RGB").resize((256, 192)), "PNG")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(home, workers=1), headers=auth) as client:
        media = client.post("/api/media", files={"file": ("small.png", small)}).json()
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"}).json()
        deadline = time.monotonic() + 60
        while client.get(f"/api/jobs/{job['id']}").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        copy = next(home.glob("copies/*/ann/small.png")).read_bytes()
        assert client.post("/api/trace", files={"file": ("leak.png", copy)}).status_code == 200
    config = (
        f"""
headers = {{ Authorization = "Bearer {token}" }}
[generation]
max-examples = {MAX_EXAMPLES}
"""
        + "".join(
            f"""
[[operations]]
include-name = "{name}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "413", "415", "422"]
{SCAN_TAKES_ANY_FILE if name == "POST /api/scan" else ""}"""
            for name in UPLOADS
        )
        + "".join(
            f"""
# Schemathesis's inferred link from a scan's file (case_id: null) asks for /api/cases/None,
# which is not an integer, and calls the 422 a valid request refused.
[[operations]]
include-name = "{name}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "422"]
"""
            for name in ("GET /api/cases/{case_id}", "GET /api/cases/{case_id}/export")
        )
    )
    app = create_app(home, max_upload=1024 * 1024, workers=1)
    yield schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=schemathesis.Config.from_str(config)
    )
    from schemathesis.python.asgi import shutdown_lifespans

    shutdown_lifespans()  # Schemathesis ran the app's lifespan: stop its job runner


def test_the_api_answers_as_its_openapi_says(api_schema, record_property):
    """Schemathesis's whole run (examples, boundary values and unsupported methods, fuzzing,
    stateful sequences), with the token: every answer is one the OpenAPI documents (status,
    content type, body schema, Allow header), 0 server errors."""
    from schemathesis.engine import Status, events, from_schema

    requests: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: dict[tuple[str, str], str] = {}
    errors = []
    for event in from_schema(api_schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            rec = event.recorder
            for case_id, interaction in rec.interactions.items():
                if interaction.response is not None:
                    requests[rec.cases[case_id].value.operation.label] += 1
                    statuses[interaction.response.status_code] += 1
            for case_id, checks in rec.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        label = rec.cases[case_id].value.operation.label
                        failure = check.failure_info.failure
                        answer = rec.interactions.get(case_id)
                        status = answer.response.status_code if answer and answer.response else None
                        failures.setdefault(
                            (label, check.name),
                            f"{failure.title}: {failure} (answered {status}; "
                            f"{check.failure_info.code_sample})",
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(repr(event))
    record_property("requests", dict(sorted(requests.items())))
    record_property("statuses", dict(sorted(statuses.items())))
    assert not errors, errors
    assert not failures, "\n".join(f"{k}: {v}" for k, v in failures.items())
    assert not [code for code in statuses if code >= 500], statuses
    assert len(requests) == sum(len(ops) for ops in api_schema.raw_schema["paths"].values())
