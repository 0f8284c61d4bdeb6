"""The HTTP service through FastAPI's TestClient: every route, its auth and its errors."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

import leaktrace as lt
from leaktrace.registry.models import Trace
from leaktrace.registry.recipients import _HANDLE
from leaktrace.service import create_app
from leaktrace.service.uploads import NAME_BYTES, clean_name

from .conftest import KODAK, TEST_DB, registry

PHOTO = KODAK / "kodim05.png"
OTHER = KODAK / "kodim20.png"
PEOPLE = ["ann", "bob", "cy"]

# Every route but the health check, with a harmless body: all must answer 401 without a token.
GUARDED = [
    ("get", "/api/recipients"),
    ("post", "/api/recipients"),
    ("post", "/api/recipients/import"),
    ("delete", "/api/recipients/ann"),
    ("post", "/api/media"),
    ("get", "/api/media"),
    ("get", "/api/media/1"),
    ("get", "/api/media/1/copies"),
    ("post", "/api/media/1/copies"),
    ("get", "/api/media/1/copies/ann/download"),
    ("get", "/api/media/1/copies/ann"),
    ("post", "/api/media/1/links"),
    ("get", "/api/copies"),
    ("get", "/api/jobs"),
    ("get", "/api/jobs/x"),
    ("post", "/api/jobs/x/cancel"),
    ("get", "/api/jobs/x/download"),
    ("post", "/api/trace"),
    ("get", "/api/traces"),
    ("get", "/api/traces/1"),
    ("get", "/api/traces/1/report"),
    ("post", "/api/scan"),
    ("get", "/api/scans"),
    ("get", "/api/scans/x"),
    ("get", "/api/cases"),
    ("get", "/api/cases/1"),
    ("get", "/api/cases/1/export"),
]


def jpeg(path, quality=75) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def upload(client, route, name, data, **kw):
    return client.post(route, files={"file": (name, data)}, **kw)


def wait_for(client, job_id, timeout=120):
    """The job once it ended; one that made copies, once it offers its zip too (the registry
    can say "done" a moment before the worker lets go of the job; the page waits the same)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        finishing = job["status"] == "done" and job["done"] and not job["download_url"]
        if job["status"] in ("done", "failed", "cancelled") and not finishing:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A workspace with three recipients and one photo's copies, behind a running app."""
    home = tmp_path_factory.mktemp("served")
    ws = lt.Workspace.create(home)
    token, _ = ws.create_token("tests")
    app = create_app(home, max_upload=4 * 1024 * 1024, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for h in PEOPLE:
            assert client.post("/api/recipients", json={"handle": h}).status_code == 201
        media = upload(client, "/api/media", PHOTO.name, PHOTO.read_bytes()).json()
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"})
        assert job.status_code == 202, job.text
        assert job.json()["status"] in ("queued", "running", "done")
        done = wait_for(client, job.json()["id"])
        yield client, ws, media, done


def test_health_needs_no_token_and_docs_list_the_routes(served):
    client, *_ = served
    anonymous = TestClient(client.app)
    assert anonymous.get("/api/health").json() == {"status": "ok", "version": lt.__version__}
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/health",
        "/api/recipients",
        "/api/recipients/import",
        "/api/recipients/{handle}",
        "/api/media",
        "/api/media/{media_id}",
        "/api/media/{media_id}/copies",
        "/api/media/{media_id}/copies/{handle}/download",
        "/api/media/{media_id}/copies/{handle}",
        "/api/media/{media_id}/links",
        "/d/{token}",
        "/api/copies",
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/download",
        "/api/trace",
        "/api/traces",
        "/api/traces/{trace_id}",
        "/api/traces/{trace_id}/report",
        "/api/scan",
        "/api/scans",
        "/api/scans/{scan_id}",
        "/api/cases",
        "/api/cases/{case_id}",
        "/api/cases/{case_id}/export",
    }
    assert anonymous.get("/docs").status_code == 200
    page = anonymous.get("/")  # the web page needs no token to load; its API calls do
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="app.js"' in page.text
    assert anonymous.get("/app.js").status_code == 200
    assert anonymous.get("/style.css").status_code == 200


@pytest.mark.parametrize(("method", "route"), GUARDED)
def test_every_api_route_refuses_a_missing_or_bad_token(served, method, route):
    client, *_ = served
    anonymous = TestClient(client.app)
    for headers in ({}, {"Authorization": "Bearer lt_wrong"}, {"Authorization": "Basic x"}):
        r = anonymous.request(method, route, headers=headers)
        assert r.status_code == 401, (route, headers, r.text)
        assert "token" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"


def test_the_token_is_checked_before_the_body_is_read(served):
    client, *_ = served
    anonymous = TestClient(client.app)
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = anonymous.post(
            "/api/recipients",
            content=b"not json",
            headers={**headers, "content-type": "application/json"},
        )
        assert r.status_code == 401
        r = upload(anonymous, "/api/trace", "x.jpg", b"\0" * (5 * 1024 * 1024), headers=headers)
        assert r.status_code == 401  # not 413: a stranger learns nothing, not even the limit


def test_invalid_requests_get_one_line_messages(served):
    client, *_ = served
    cases = [
        (client.post("/api/recipients", json={}), "body.handle: Field required"),
        (client.post("/api/media"), "body.file: Field required"),
        (client.get("/api/media/abc"), "path.media_id: "),
        (
            client.post(
                "/api/recipients", content=b"{", headers={"content-type": "application/json"}
            ),
            "body.1: JSON decode error",
        ),
    ]
    for r, start in cases:
        assert r.status_code == 422
        assert isinstance(r.json()["detail"], str)
        assert r.json()["detail"].startswith(start), r.json()


def test_refused_requests_change_nothing_and_revoked_tokens_stop_working(served):
    client, ws, *_ = served
    anonymous = TestClient(client.app)
    r = anonymous.post("/api/recipients", json={"handle": "intruder"})
    assert r.status_code == 401
    assert "intruder" not in [p.handle for p in ws.recipients()]
    token, row = ws.create_token("temporary")
    auth = {"Authorization": f"Bearer {token}"}
    assert anonymous.get("/api/media", headers=auth).is_success
    ws.revoke_token(str(row.id))
    assert anonymous.get("/api/media", headers=auth).status_code == 401
    assert all(t.name != "temporary" for t in ws.tokens())


def test_tokens_are_stored_only_as_digests(served):
    _, ws, *_ = served
    token, _ = ws.create_token("secret-check")
    with registry(ws.home) as db:
        raw = repr(db.exec_driver_sql("select * from tokens").all()).encode()
    if TEST_DB == "sqlite":
        raw += (ws.home / lt.Workspace.DB_NAME).read_bytes()
        wal = ws.home / (lt.Workspace.DB_NAME + "-wal")
        raw += wal.read_bytes() if wal.exists() else b""
    assert token.encode() not in raw
    assert token[3:].encode() not in raw


def test_recipients_add_list_import_remove(served):
    client, *_ = served
    listed = client.get("/api/recipients").json()
    assert [r["handle"] for r in listed] == PEOPLE
    assert all(r["copies"] == 1 for r in listed)

    r = client.post("/api/recipients", json={"handle": "dee", "name": "Dee", "email": "d@x.org"})
    assert r.status_code == 201
    assert r.json() == {"handle": "dee", "name": "Dee", "email": "d@x.org", "copies": 0}
    assert client.post("/api/recipients", json={"handle": "dee"}).status_code == 409
    bad = client.post("/api/recipients", json={"handle": "no spaces"})
    assert bad.status_code == 422
    assert "bad handle" in bad.json()["detail"]
    assert client.post("/api/recipients", json={"name": "no handle"}).status_code == 422

    csv = b"handle,name,email\neve,Eve,e@x.org\nfay,Fay,\n"
    r = upload(client, "/api/recipients/import", "people.csv", csv)
    assert r.status_code == 201
    assert r.json()["imported"] == 2
    # One bad row: nothing is imported, and the line is named.
    r = upload(client, "/api/recipients/import", "more.csv", b"handle\ngus\nbad handle\n")
    assert r.status_code == 422
    assert "line 3" in r.json()["detail"]
    assert "gus" not in [p["handle"] for p in client.get("/api/recipients").json()]

    assert client.delete("/api/recipients/fay").status_code == 204
    assert client.delete("/api/recipients/fay").status_code == 404
    kept = client.delete("/api/recipients/ann")  # ann has a copy: her record stays
    assert kept.status_code == 409
    assert "copies" in kept.json()["detail"]
    for h in ("dee", "eve"):
        assert client.delete(f"/api/recipients/{h}").status_code == 204
    assert [r["handle"] for r in client.get("/api/recipients").json()] == PEOPLE


def test_media_upload_list_and_errors(served):
    client, _, media, _ = served
    assert media["name"] == PHOTO.name
    assert (media["width"], media["height"]) == (768, 512)
    again = upload(client, "/api/media", "renamed.png", PHOTO.read_bytes())
    assert again.status_code == 200
    assert again.json()["id"] == media["id"]
    assert again.json()["copies"] == len(PEOPLE)
    assert [m["id"] for m in client.get("/api/media").json()] == [media["id"]]
    assert client.get(f"/api/media/{media['id']}").json()["sha256"] == media["sha256"]
    assert client.get("/api/media/999").status_code == 404
    assert client.get("/api/media/999/copies").status_code == 404

    text = upload(client, "/api/media", "notes.png", b"just some text, not an image")
    assert text.status_code == 415
    assert text.json()["detail"] == "notes.png: not an image in a format leaktrace reads"
    truncated = upload(client, "/api/media", "cut.jpg", jpeg(OTHER)[:4000])
    assert truncated.status_code == 422
    assert truncated.json()["detail"].startswith("cut.jpg: the file is truncated")
    assert upload(client, "/api/media", "empty.png", b"").status_code == 422
    assert client.post("/api/media").status_code == 422  # no file field
    assert [m["id"] for m in client.get("/api/media").json()] == [media["id"]]


def test_uploads_over_the_limit_get_413_before_anything_is_stored(served):
    client, ws, *_ = served
    big = b"\0" * (5 * 1024 * 1024)
    r = upload(client, "/api/media", "huge.png", big)
    assert r.status_code == 413
    assert "4 MB" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(6):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    multipart = {"content-type": "multipart/form-data; boundary=b"}
    r = client.post("/api/trace", content=chunks(), headers=multipart)
    assert r.status_code == 413
    assert len(ws.media()) == 1


def test_copies_job_runs_to_completion_and_downloads_a_zip(served):
    client, _, media, job = served
    assert job["status"] == "done"
    assert (job["done"], job["total"], job["errors"]) == (3, 3, [])
    copies = client.get(f"/api/media/{media['id']}/copies").json()
    assert sorted(c["file"] for c in copies) == [f"{h}/kodim05.png" for h in PEOPLE]

    r = client.get(job["download_url"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert 'filename="kodim05-copies.zip"' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert sorted(zf.namelist()) == [f"{h}/kodim05.png" for h in PEOPLE]
        files = {n: zf.read(n) for n in zf.namelist()}
    by_hash = {c["sha256"]: c["file"] for c in copies}
    for name, data in files.items():
        assert by_hash[hashlib.sha256(data).hexdigest()] == name
    assert len(set(files.values())) == 3  # each recipient's copy is different

    # A second job for one recipient finds the copy already made.
    again = client.post(f"/api/media/{media['id']}/copies", json={"recipients": ["bob"]})
    assert again.status_code == 202
    finished = wait_for(client, again.json()["id"])
    assert (finished["status"], finished["done"], finished["total"]) == ("done", 1, 1)


def test_copies_job_refuses_bad_requests(served):
    client, _, media, _ = served
    route = f"/api/media/{media['id']}/copies"
    assert client.post("/api/media/999/copies", json={"recipients": "all"}).status_code == 404
    unknown = client.post(route, json={"recipients": ["ann", "zed"]})
    assert unknown.status_code == 404
    assert "zed" in unknown.json()["detail"]
    assert client.post(route, json={"recipients": []}).status_code == 422
    assert client.post(route, json={"recipients": "everyone"}).status_code == 422
    assert client.post(route, json={"recipients": "all", "strength": 0}).status_code == 422
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/download").status_code == 404


def test_a_failed_job_records_no_copies(tmp_path):
    ws = lt.Workspace.create(tmp_path)
    token, _ = ws.create_token()
    app = create_app(tmp_path, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        client.post("/api/recipients", json={"handle": "ann"})
        media = upload(client, "/api/media", OTHER.name, OTHER.read_bytes()).json()
        stored = ws.original_path(ws.media_by_id(media["id"]))
        stored.write_bytes(stored.read_bytes()[:3000])  # the disk lost the original
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"})
        failed = wait_for(client, job.json()["id"])
        assert failed["status"] == "failed"
        assert "truncated" in failed["errors"][0]
        assert failed["download_url"] is None
        assert client.get(job.json()["download_url"] or "/x").status_code in (404, 405)
        assert client.get(f"/api/jobs/{failed['id']}/download").status_code == 409
        assert client.get(f"/api/media/{media['id']}/copies").json() == []
        assert ws.copies() == []
        leftovers = list((tmp_path / "copies").rglob("*"))
        assert [p for p in leftovers if p.is_file()] == []


def test_trace_names_the_recipient_and_serves_its_report(served):
    client, *_ = served
    copies = zipfile.ZipFile(io.BytesIO(client.get(served[3]["download_url"]).content))
    leak = io.BytesIO()
    Image.open(io.BytesIO(copies.read("bob/kodim05.png"))).convert("RGB").save(
        leak, "JPEG", quality=70
    )
    r = upload(client, "/api/trace", "found-online.jpg", leak.getvalue())
    assert r.status_code == 200
    result = r.json()
    assert (result["verdict"], result["recipient"]) == ("match", "bob")
    assert result["p_value"] <= 1e-9
    assert result["leak"]["name"] == "found-online.jpg"
    scores = {c["handle"]: c["score"] for c in result["candidates"]}
    assert scores["bob"] > result["match_score"]
    assert max(scores["ann"], scores["cy"]) < result["match_score"]

    report = client.get(result["report_url"])
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "found-online.jpg" in report.text
    assert result["person"] == {"handle": "bob", "name": "", "email": ""}
    assert client.get(f"/api/traces/{result['trace_id']}").json()["recipient"] == "bob"
    listed = client.get("/api/traces").json()
    assert listed[0]["id"] == result["trace_id"]
    assert (listed[0]["person"]["handle"], listed[0]["media_id"]) == ("bob", served[2]["id"])
    assert client.get("/api/traces/999").status_code == 404
    assert client.get("/api/traces/999/report").status_code == 404


def test_trace_of_unrelated_or_bad_files(served):
    client, *_ = served
    r = upload(client, "/api/trace", "stranger.jpg", jpeg(OTHER))
    assert r.status_code == 200
    assert (r.json()["verdict"], r.json()["recipient"]) == ("no_match", None)
    assert client.get(r.json()["report_url"]).status_code == 200
    assert upload(client, "/api/trace", "x.jpg", b"GIF89a nonsense").status_code == 415
    assert upload(client, "/api/trace", "x.jpg", jpeg(OTHER)[:2000]).status_code == 422
    bad = client.post("/api/trace", files={"file": ("a.jpg", jpeg(OTHER))}, data={"threshold": "2"})
    assert bad.status_code == 422


def test_no_match_names_nobody_and_the_original_is_recognised(served):
    client, *_ = served
    # The original itself: no test, nobody named.
    r = upload(client, "/api/trace", "mine.png", PHOTO.read_bytes()).json()
    assert (r["verdict"], r["media"]["name"], r["candidates"]) == ("original", "kodim05.png", [])
    assert r["message"].startswith("this is your unmarked original kodim05.png")
    # The original re-encoded: every recipient tested, their scores shown, nobody named.
    r = upload(client, "/api/trace", "mine.jpg", jpeg(PHOTO, 92)).json()
    assert (r["verdict"], r["recipient"], r["person"]) == ("no_match", None, None)
    assert len(r["candidates"]) == 3 and all("handle" not in c for c in r["candidates"])
    report = client.get(r["report_url"]).text
    assert not any(h in r["message"] or f">{h}<" in report for h in PEOPLE)
    listed = client.get("/api/traces").json()[:2]
    assert [t["verdict"] for t in listed] == ["no_match", "original"]
    assert [t["person"] for t in listed] == [None, None]


def test_copies_of_one_recipient_across_originals(served):
    client, _, media, _ = served
    everyone = client.get("/api/copies").json()
    assert {c["handle"] for c in everyone} == set(PEOPLE)
    bobs = client.get("/api/copies", params={"to": "BOB"}).json()
    assert bobs and all(c["handle"] == "bob" for c in bobs)
    assert {(c["media_id"], c["media_name"]) for c in bobs} == {(media["id"], "kodim05.png")}
    assert bobs[-1]["file"] == "bob/kodim05.png" and bobs[-1]["download_url"]
    assert client.get(bobs[-1]["download_url"]).status_code == 200
    unknown = client.get("/api/copies", params={"to": "nobody"})
    assert unknown.status_code == 404 and unknown.json() == {"detail": "unknown recipient 'nobody'"}


def test_import_skips_who_is_registered_and_says_how_to_fix_an_encoding(served):
    client, *_ = served
    csv = b"handle,name,email\nann,,\nzed,Zed,z@x.org\n"
    refused = upload(client, "/api/recipients/import", "grown.csv", csv)
    assert (
        refused.status_code == 409
        and "line 2: ann is already registered" in (refused.json()["detail"])
    )
    r = client.post(
        "/api/recipients/import",
        files={"file": ("grown.csv", csv)},
        data={"skip_existing": "true"},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["imported"], r.json()["skipped"]) == (1, ["ann"])
    assert r.json()["recipients"][0]["handle"] == "zed"
    latin = "Name,Email\nZoë Blanc,zoe@x.org\n".encode("latin-1")
    bad = upload(client, "/api/recipients/import", "members.csv", latin)
    assert bad.status_code == 422 and "not UTF-8" in bad.json()["detail"]
    assert client.delete("/api/recipients/zed").status_code == 204


def test_eight_concurrent_traces_all_answer_correctly(served):
    client, *_ = served
    copies = zipfile.ZipFile(io.BytesIO(client.get(served[3]["download_url"]).content))
    leaks = {}
    for h in PEOPLE:
        buf = io.BytesIO()
        Image.open(io.BytesIO(copies.read(f"{h}/kodim05.png"))).convert("RGB").save(
            buf, "JPEG", quality=80
        )
        leaks[h] = buf.getvalue()
    jobs = [PEOPLE[i % 3] for i in range(8)]
    start = threading.Barrier(8)

    def one(handle):
        start.wait()
        return handle, upload(client, "/api/trace", f"{handle}.jpg", leaks[handle])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, jobs))
    for handle, r in answers:
        assert r.status_code == 200
        assert (r.json()["verdict"], r.json()["recipient"]) == ("match", handle)
    ids = [r.json()["trace_id"] for _, r in answers]
    assert len(set(ids)) == 8


# -- names, bad input, the documented errors, reports ------------------------------------------
UNICODE_NAME = "Été à Nice 東京.png"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (UNICODE_NAME, UNICODE_NAME),
        ("E\u0301te\u0301.png", "Été.png"),  # decomposed (as macOS sends it) → composed
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ann\\photo.jpg", "photo.jpg"),
        ("..hidden.png", "hidden.png"),
        (" . ..", "upload"),
        ("a\x00b\nc\td\x7f\x85.png", "abcd.png"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("line\u2028break.png", "linebreak.png"),
        ("", "upload"),
        (None, "upload"),
    ],
)
def test_upload_names_keep_their_letters(sent, kept):
    assert clean_name(sent) == kept


def test_long_upload_names_are_cut_keeping_their_suffix():
    name = clean_name("東" * 300 + ".jpeg")
    assert name.endswith(".jpeg") and name.startswith("東東")
    assert len(name.encode()) <= NAME_BYTES
    assert clean_name("x" * 500).encode() == b"x" * NAME_BYTES


def test_unicode_names_survive_the_api(tmp_path):
    ws = lt.Workspace.create(tmp_path)
    token, _ = ws.create_token()
    ws.add_recipients([("ann", "", ""), ("bob", "", "")])
    app = create_app(tmp_path, workers=1)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        media = upload(client, "/api/media", UNICODE_NAME, OTHER.read_bytes()).json()
        assert media["name"] == UNICODE_NAME
        assert client.get("/api/media").json()[0]["name"] == UNICODE_NAME
        # Without a suffix, the format's is added.
        jpeg_media = upload(client, "/api/media", "Ωμέγα", jpeg(PHOTO, 90)).json()
        assert jpeg_media["name"] == "Ωμέγα.jpg"
        job = client.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"})
        done = wait_for(client, job.json()["id"])
        assert done["media_name"] == UNICODE_NAME
        files = [c["file"] for c in client.get(f"/api/media/{media['id']}/copies").json()]
        assert sorted(files) == [f"ann/{UNICODE_NAME}", f"bob/{UNICODE_NAME}"]
        assert (tmp_path / "copies" / str(media["id"]) / "ann" / UNICODE_NAME).is_file()
        r = client.get(done["download_url"])
        assert (
            "filename*=utf-8''%C3%89t%C3%A9%20%C3%A0%20Nice%20%E6%9D%B1%E4%BA%AC-copies.zip"
            in (r.headers["content-disposition"])
        )
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            assert sorted(zf.namelist()) == sorted(files)
            leak = zf.read(f"bob/{UNICODE_NAME}")
        traced = upload(client, "/api/trace", "fuite « trouvée » 東京.png", leak).json()
        assert (traced["verdict"], traced["recipient"]) == ("match", "bob")
        assert traced["leak"]["name"] == "fuite « trouvée » 東京.png"
        assert client.get("/api/traces").json()[0]["name"] == "fuite « trouvée » 東京.png"


def table_counts(home):
    with registry(home) as db:
        return {
            t: db.exec_driver_sql(f"select count(*) from {t}").scalar()
            for t in ("recipients", "media", "copies", "traces", "jobs", "tokens")
        }


HUGE_IDS = [2**63, 2**64, -1, 0, -(2**63) - 1, 10**30]


def test_bad_requests_get_4xx_and_change_nothing(served):
    client, ws, media, _ = served
    before = table_counts(ws.home)
    json_type = {"content-type": "application/json"}
    copies = f"/api/media/{media['id']}/copies"
    cases = [
        *[(client.get(f"/api/media/{i}"), 404) for i in HUGE_IDS],
        *[(client.get(f"/api/media/{i}/copies"), 404) for i in HUGE_IDS],
        *[
            (client.post(f"/api/media/{i}/copies", json={"recipients": "all"}), 404)
            for i in HUGE_IDS
        ],
        *[(client.get(f"/api/traces/{i}"), 404) for i in HUGE_IDS],
        *[(client.get(f"/api/traces/{i}/report"), 404) for i in HUGE_IDS],
        (client.get("/api/media/1e3"), 422),
        (client.get("/api/traces/abc"), 422),
        (client.get(f"/api/jobs/{'x' * 5000}"), 404),
        (client.get("/api/jobs/%00"), 404),
        (client.post(f"/api/jobs/{2**64}/cancel"), 404),
        (client.get("/api/jobs?status=lost"), 422),
        (client.delete("/api/recipients/%00"), 404),
        (client.delete(f"/api/recipients/{'a' * 10000}"), 404),
        (client.post("/api/recipients", json=[]), 422),
        (client.post("/api/recipients", json={"handle": 5}), 422),
        (client.post("/api/recipients", json={"handle": None}), 422),
        (client.post("/api/recipients", json={"handle": "ok", "name": ["x"]}), 422),
        (client.post("/api/recipients", json={"handle": "dave\n"}), 422),
        (client.post("/api/recipients", json={"handle": "dave", "name": "\x1b[31mred"}), 422),
        (client.post("/api/recipients", json={"handle": "dave", "name": "x" * 1_000_000}), 422),
        (client.post("/api/recipients", json={"handle": "ANN"}), 409),
        (client.post("/api/recipients", content=b"\xff\xfe", headers=json_type), 422),
        (client.post("/api/recipients", content=b'{"handle": "a"', headers=json_type), 422),
        (client.post("/api/recipients", content=b"handle=a"), 422),
        (client.post(copies, json={"recipients": "all", "strength": 0.2}), 422),
        (client.post(copies, json={"recipients": "all", "strength": 2.5}), 422),
        (client.post(copies, json={"recipients": "all", "strength": "strong"}), 422),
        (
            client.post(copies, content=b'{"recipients":"all","strength":NaN}', headers=json_type),
            422,
        ),
        (
            client.post(
                copies, content=b'{"recipients":"all","strength":1e999}', headers=json_type
            ),
            422,
        ),
        (client.post(copies, json={"recipients": ["ann", "nobody"]}), 404),
        (client.post(copies, json={"recipients": ["ann", 7]}), 422),
        (client.post(copies, json={"recipients": "ann"}), 422),
        (client.post(copies, json={"recipients": []}), 422),
        (client.post(copies, json={}), 422),
        (
            client.post(
                "/api/trace",
                files={"file": ("a.png", PHOTO.read_bytes())},
                data={"threshold": "nan"},
            ),
            422,
        ),
        (
            client.post(
                "/api/trace", files={"file": ("a.png", PHOTO.read_bytes())}, data={"threshold": "0"}
            ),
            422,
        ),
        (client.post("/api/trace", data={"file": "not a file"}), 422),
        (
            client.post(
                "/api/trace",
                content=b"--b\r\nbroken",
                headers={"content-type": "multipart/form-data; boundary=b"},
            ),
            422,
        ),
        (
            client.post(
                "/api/media", content=b"x", headers={"content-type": "multipart/form-data"}
            ),
            400,
        ),
        (
            client.post(
                "/api/recipients", content=b'{"handle":"eve","name":"\\ud800"}', headers=json_type
            ),
            422,
        ),
        (client.post(copies, content=b'{"recipients":["\\udc80"]}', headers=json_type), 422),
        (client.post("/api/recipients", content=b"\xff\xff", headers=json_type), 400),
        (client.get("/api/no/such/route"), 404),
        (upload(client, "/api/recipients/import", "x.csv", b"\x00\xff" * 100), 422),
        (upload(client, "/api/recipients/import", "x.csv", b"handle\n" + b"a" * 200_000), 422),
    ]
    for r, status in cases:
        assert r.status_code == status, (r.request.method, str(r.request.url)[:100], r.text[:200])
        detail = r.json()["detail"]
        assert isinstance(detail, str) and detail and "Traceback" not in detail
    assert table_counts(ws.home) == before


def test_a_method_a_path_does_not_take_gets_405_naming_those_it_does(served):
    client, *_ = served
    for method, path, allowed in [
        ("OPTIONS", "/api/media", "GET, POST"),
        ("PUT", "/api/recipients", "GET, POST"),
        ("PATCH", "/api/recipients/ann", "DELETE"),
        ("GET", "/api/jobs/x/cancel", "POST"),
        ("DELETE", "/api/media/1/copies", "GET, POST"),
    ]:
        r = client.request(method, path)
        assert (r.status_code, r.headers["allow"]) == (405, allowed), (method, path)
        assert r.json()["detail"] == f"{method} is not allowed here (use {allowed})"


def flat_png(width, height, noise=0):
    pixels = np.full((height, width, 3), 128, np.uint8)
    if noise:
        pixels += np.random.default_rng(0).integers(0, noise, pixels.shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_originals_that_cannot_carry_a_mark_are_refused_saying_why(served):
    client, ws, *_ = served
    before = table_counts(ws.home)
    flat = upload(client, "/api/media", "wall.png", flat_png(640, 480))
    assert flat.status_code == 422
    assert flat.json()["detail"].startswith("wall.png: too flat or too small to carry a mark")
    tiny = upload(client, "/api/media", "icon.png", flat_png(48, 48, noise=60))
    assert tiny.status_code == 422
    assert "too small" in tiny.json()["detail"]
    # A copy is not an original: the answer names whose copy it is.
    copy = (ws.home / "copies").rglob("kodim05.png").__next__()
    again = upload(client, "/api/media", "innocent.png", copy.read_bytes())
    assert again.status_code == 422
    assert "copy of kodim05.png" in again.json()["detail"]
    assert table_counts(ws.home) == before


def test_the_openapi_documents_the_errors_really_sent(served):
    client, *_ = served
    schema = client.get("/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorOut"]
    assert (error["required"], list(error["properties"])) == (["detail"], ["detail"])
    assert error["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in str(schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = {int(c) for c in operation["responses"]}
            guarded = path.startswith("/api/") and path != "/api/health"  # not a /d/ link
            assert (401 in codes) == guarded, (method, path)
            for code in codes - {200, 201, 202, 204}:
                body = operation["responses"][str(code)]["content"]["application/json"]
                assert body["schema"] == {"$ref": "#/components/schemas/ErrorOut"}, (path, code)
            if "{" in path:
                assert 404 in codes, (method, path)
            if method == "post":
                assert {413, 422} <= codes, path
    handle = schema["components"]["schemas"]["RecipientIn"]["properties"]["handle"]
    assert handle["pattern"] == f"^{_HANDLE.pattern}$"  # the registry's own rule


def backdate_trace(home, trace_id, days):
    """Make a trace (and its report file) look ``days`` old."""
    when = datetime.now(UTC) - timedelta(days=days)
    with registry(home) as db:
        db.execute(update(Trace).where(Trace.id == trace_id).values(created=when))
    report = home / "reports" / f"{trace_id}.html"
    if report.exists():
        os.utime(report, (when.timestamp(), when.timestamp()))


def test_reports_are_private_and_expire(tmp_path):
    ws = lt.Workspace.create(tmp_path)
    token, _ = ws.create_token()
    auth = {"Authorization": f"Bearer {token}"}
    leak = jpeg(OTHER)
    with TestClient(create_app(tmp_path, keep_reports=30), headers=auth) as client:
        first = upload(client, "/api/trace", "a.jpg", leak).json()["trace_id"]
        second = upload(client, "/api/trace", "b.jpg", leak).json()["trace_id"]
        report = tmp_path / "reports" / f"{first}.html"
        assert stat.S_IMODE(report.stat().st_mode) == 0o600
        assert stat.S_IMODE(report.parent.stat().st_mode) == 0o700
        backdate_trace(tmp_path, first, 31)
        backdate_trace(tmp_path, second, 29)
        upload(client, "/api/trace", "c.jpg", leak)  # expires what is older after each trace
        assert not report.exists()
        gone = client.get(f"/api/traces/{first}/report")
        assert gone.status_code == 404
        assert gone.json()["detail"].startswith("report expired after 30 days")
        assert client.get(f"/api/traces/{first}").json()["trace_id"] == first  # record kept
        assert client.get(f"/api/traces/{second}/report").status_code == 200
    # At start too; 0 keeps every report.
    with TestClient(create_app(tmp_path, keep_reports=0), headers=auth) as client:
        backdate_trace(tmp_path, second, 10_000)
    with TestClient(create_app(tmp_path, keep_reports=0), headers=auth) as client:
        assert client.get(f"/api/traces/{second}/report").status_code == 200
    with TestClient(create_app(tmp_path, keep_reports=5000), headers=auth) as client:
        assert client.get(f"/api/traces/{second}/report").status_code == 404
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["3.html"]


def _odd(mode):
    scene = Image.open(KODAK / "kodim19.png").convert("RGB").resize((384, 256))
    buf = io.BytesIO()
    if mode in ("RGB;16", "I;16"):
        wide = np.asarray(scene)[..., ::-1].astype(np.uint16) * 257
        if mode == "I;16":
            wide = cv2.cvtColor(wide, cv2.COLOR_BGR2GRAY)
        return cv2.imencode(".png", wide)[1].tobytes()
    scene.convert(mode).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["LA", "RGB;16", "I;16", "P", "RGBA", "L", "1"])
def test_originals_in_any_pixel_layout_are_registered(tmp_path, mode):
    """Gray + alpha and 16-bit colour once made the re-share test fail (500)."""
    ws = lt.Workspace.create(tmp_path)
    token, _ = ws.create_token()
    with TestClient(create_app(tmp_path), headers={"Authorization": f"Bearer {token}"}) as c:
        r = upload(c, "/api/media", f"odd {mode}.png", _odd(mode))
        assert r.status_code == 201, r.text


def test_a_weak_mark_is_warned_naming_the_file_as_uploaded(tmp_path):
    # With this key, this picture's test re-share scores z = 9.2: a match needs 7.4, and
    # below 11.1 the mark is called weak.
    with mock.patch.object(lt.Key, "generate", return_value=lt.Key(bytes(range(32)))):
        ws = lt.Workspace.create(tmp_path)
    token, _ = ws.create_token()
    ws.add_recipient("ann")
    small = Image.open(KODAK / "kodim07.png").convert("RGB").resize((184, 122))
    buf = io.BytesIO()
    small.save(buf, "PNG")
    with TestClient(create_app(tmp_path), headers={"Authorization": f"Bearer {token}"}) as c:
        media = upload(c, "/api/media", "petit.png", buf.getvalue()).json()
        assert [w.split(":")[0] for w in media["warnings"]] == ["petit.png"]
        assert "its mark is weak" in media["warnings"][0]
        job = c.post(f"/api/media/{media['id']}/copies", json={"recipients": "all"}).json()
        done = wait_for(c, job["id"])
        assert done["status"] == "done" and done["warnings"] == media["warnings"]
        assert c.get(f"/api/media/{media['id']}").json()["warnings"] == []  # upload only


def test_the_contract_lists_every_route(served):
    """docs/api.md names each route the OpenAPI has, and no other."""
    client, *_ = served
    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    documented = {
        (method, re.sub(r"\{[^}]+\}", "{}", path))
        for method, path in re.findall(r"^\| `([A-Z]+) (/(?:api|d)/[^`?]*)`", text, re.MULTILINE)
    }
    schema = client.get("/openapi.json").json()
    served_routes = {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert documented == served_routes
